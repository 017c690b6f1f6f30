/** Activation ranges for static int8 quantization, measured with tfjs on calibration data (e.g. the local split). */
import * as tf from '@tensorflow/tfjs';
import { ValidationError, type ModelBlob } from '@fedge/proto';
import { modelFromBlob } from '../weights.js';
import { exportOnnx, type ActivationRanges, type OnnxExport, type OnnxExportOptions } from './export.js';

/** Min/max of the input of every Dense and Conv2D layer over `n` rows of `x` (row-major, the model's input size). */
export async function calibrateActivationRanges(blob: ModelBlob, x: Float32Array, n: number, batchSize = 256): Promise<ActivationRanges> {
  const model = await modelFromBlob(blob);
  try {
    const layers = model.layers.filter((l) => l.getClassName() === 'Dense' || l.getClassName() === 'Conv2D');
    const probe = tf.model({ inputs: model.inputs, outputs: layers.map((l) => l.input as tf.SymbolicTensor) });
    const rowSize = x.length / n;
    const ranges: ActivationRanges = Object.fromEntries(layers.map((l) => [l.name, { min: Infinity, max: -Infinity }]));
    for (let i = 0; i < n; i += batchSize) {
      const m = Math.min(batchSize, n - i);
      const outs = tf.tidy(() => {
        const input = tf.tensor2d(x.subarray(i * rowSize, (i + m) * rowSize), [m, rowSize]);
        const ys = probe.predict(input);
        return (Array.isArray(ys) ? ys : [ys]).map((y) => [y.min(), y.max()] as const);
      });
      for (const [j, [lo, hi]] of outs.entries()) {
        const r = ranges[layers[j]!.name]!;
        r.min = Math.min(r.min, (await lo.data())[0]!);
        r.max = Math.max(r.max, (await hi.data())[0]!);
        tf.dispose([lo, hi]);
      }
    }
    return ranges;
  } finally {
    model.dispose();
  }
}

/**
 * exportOnnx plus calibration: with `activations: 'static'`, measures the activation ranges on up to
 * `calibrationRows` rows of `calibration` first (e.g. the device's local training split).
 */
export async function exportOnnxCalibrated(
  blob: ModelBlob,
  opts: OnnxExportOptions & { calibration?: { x: Float32Array; n: number }; calibrationRows?: number },
): Promise<OnnxExport> {
  const { calibration, calibrationRows, ...rest } = opts;
  if (rest.quantize === 'int8' && rest.activations === 'static' && !rest.activationRanges) {
    if (!calibration || calibration.n === 0) throw new ValidationError('onnx export: static int8 activations need calibration data');
    const n = Math.min(calibration.n, calibrationRows ?? 512);
    const rowSize = calibration.x.length / calibration.n;
    rest.activationRanges = await calibrateActivationRanges(blob, calibration.x.subarray(0, n * rowSize), n);
  }
  return exportOnnx(blob, rest);
}
