/** Symmetric per-output-channel int8 weight quantization and activation-range helpers. */

export interface QuantizedWeights {
  /** int8 values in [-127, 127], same layout as the input. */
  q: Int8Array;
  /** One scale per output channel: w ~= q * scale. */
  scales: Float32Array;
}

/**
 * Quantizes `w`, laid out so that output channel `c` of element `i` is `channelOf(i)`, symmetrically per
 * channel: scale_c = max|w_c| / 127, zero point 0. Channels that are all zero get scale 1.
 */
export function quantizePerChannel(w: Float32Array, channels: number, channelOf: (i: number) => number): QuantizedWeights {
  const absMax = new Float32Array(channels);
  for (let i = 0; i < w.length; i++) {
    const c = channelOf(i);
    const a = Math.abs(w[i]!);
    if (a > absMax[c]!) absMax[c] = a;
  }
  const scales = new Float32Array(channels);
  for (let c = 0; c < channels; c++) scales[c] = absMax[c]! > 0 ? absMax[c]! / 127 : 1;
  const q = new Int8Array(w.length);
  for (let i = 0; i < w.length; i++) {
    const v = Math.round(w[i]! / scales[channelOf(i)]!);
    q[i] = v > 127 ? 127 : v < -127 ? -127 : v;
  }
  return { q, scales };
}

/** uint8 affine parameters covering [min, max] (always including 0, as ONNX quantization requires). */
export function uint8Params(min: number, max: number): { scale: number; zeroPoint: number } {
  const lo = Math.min(0, min);
  const hi = Math.max(0, max);
  if (!(hi > lo)) return { scale: 1, zeroPoint: 0 };
  const scale = (hi - lo) / 255;
  const zeroPoint = Math.min(255, Math.max(0, Math.round(-lo / scale)));
  return { scale, zeroPoint };
}
