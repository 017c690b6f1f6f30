/** Training kernels for the wasm backend, rebuilt on its fast forward ops (XNNPACK conv2d, untransposed matmul). */
import * as tf from '@tensorflow/tfjs';

// Why: stock tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter (the CNN cannot train at all), its
// Conv2DBackpropInput is a naive loop (~9x slower than the equivalent forward conv) and its matmul with a
// transposed operand is 10-20x slower than transposing explicitly first. Overriding the kernels (rather than
// gradients) also covers tfjs' fused ops, whose gradients call these kernels directly.

type Info = tf.TensorInfo;
type Attrs = tf.NamedAttrMap;
type Padding = [[number, number], [number, number], [number, number], [number, number]];

const BACKEND = 'wasm';
const originals = new Map<string, tf.KernelConfig>();
let installed = false;

function call(name: string, inputs: tf.NamedTensorInfoMap, backend: object, attrs: Attrs): Info {
  const cfg = originals.get(name) ?? tf.getKernel(name, BACKEND);
  if (!cfg) throw new Error(`wasm backend has no ${name} kernel`);
  return cfg.kernelFunc({ inputs, backend, attrs }) as Info;
}

function dispose(backend: object, ...infos: Info[]): void {
  for (const t of infos) (backend as tf.KernelBackend).disposeData(t.dataId);
}

function swapLastTwo(x: Info, backend: object): Info {
  const r = x.shape.length;
  const perm = [...Array(r).keys()];
  perm[r - 2] = r - 1;
  perm[r - 1] = r - 2;
  return call('Transpose', { x }, backend, { perm });
}

/** Wraps a matmul kernel so transposed operands are materialised first and the fast path is always used. */
function untransposed(name: 'BatchMatMul' | '_FusedMatMul'): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
    if (!transposeA && !transposeB) return call(name, inputs, backend, attrs!);
    const a = inputs['a']!, b = inputs['b']!;
    const at = transposeA ? swapLastTwo(a, backend) : a;
    const bt = transposeB ? swapLastTwo(b, backend) : b;
    try {
      return call(name, { ...inputs, a: at, b: bt }, backend, { ...attrs, transposeA: false, transposeB: false });
    } finally {
      if (transposeA) dispose(backend, at);
      if (transposeB) dispose(backend, bt);
    }
  };
}

function convInfo(xShape: number[], filterShape: number[], attrs: Attrs, strides: number | [number, number]) {
  const { pad, dataFormat, dimRoundingMode } = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  const fmt = tf.backend_util.convertConv2DDataFormat(dataFormat);
  if (fmt !== 'channelsLast') throw new Error(`fedge wasm conv gradients support NHWC only, got ${dataFormat}`);
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    strides, 1, pad, dimRoundingMode, false, fmt,
  );
}

/**
 * dW[i,j,c,o] = sum_{b,h,w} xpad[b, h*s+i, w*s+j, c] * dy[b,h,w,o]: a forward conv of x viewed as
 * [C, H, W, B] with dy viewed as a [h, w, B, O] filter (dilated by the stride), batch acting as channels.
 */
function conv2DBackpropFilter({ inputs, backend, attrs }: Parameters<tf.KernelFunc>[0]): Info {
  const x = inputs['x']!, dy = inputs['dy']!;
  const a = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  const info = convInfo(x.shape, a.filterShape, attrs!, a.strides);
  const { top, bottom, left, right } = info.padInfo;
  const tmp: Info[] = [];
  try {
    let xp = x;
    if (top || bottom || left || right) {
      xp = call('PadV2', { x }, backend, { paddings: [[0, 0], [top, bottom], [left, right], [0, 0]], constantValue: 0 });
      tmp.push(xp);
    }
    const xt = call('Transpose', { x: xp }, backend, { perm: [3, 1, 2, 0] });
    tmp.push(xt);
    const dyt = call('Transpose', { x: dy }, backend, { perm: [1, 2, 0, 3] });
    tmp.push(dyt);
    let r = call('Conv2D', { x: xt, filter: dyt }, backend, {
      strides: 1, pad: 'valid', dataFormat: 'NHWC', dilations: [info.strideHeight, info.strideWidth],
    });
    tmp.push(r);
    if (r.shape[1] !== info.filterHeight || r.shape[2] !== info.filterWidth) {
      // Rows of padding the forward conv never reached come out as extra positions; drop them.
      r = call('Slice', { x: r }, backend, { begin: [0, 0, 0, 0], size: [-1, info.filterHeight, info.filterWidth, -1] });
      tmp.push(r);
    }
    return call('Transpose', { x: r }, backend, { perm: [1, 2, 0, 3] });
  } finally {
    dispose(backend, ...tmp);
  }
}

/** Stride 1: dx = conv2d(dy, W flipped spatially with in/out channels swapped), padded to give back x's shape. */
function conv2DBackpropInput(args: Parameters<tf.KernelFunc>[0]): Info {
  const { inputs, backend, attrs } = args;
  const dy = inputs['dy']!, filter = inputs['filter']!;
  const a = attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const info = convInfo(a.inputShape, filter.shape, attrs!, a.strides);
  const kh = info.filterHeight, kw = info.filterWidth;
  const pt = kh - 1 - info.padInfo.top, pl = kw - 1 - info.padInfo.left;
  const pb = info.inHeight - info.outHeight + kh - 1 - pt, pr = info.inWidth - info.outWidth + kw - 1 - pl;
  if (info.strideHeight !== 1 || info.strideWidth !== 1 || pt < 0 || pl < 0 || pb < 0 || pr < 0)
    return call('Conv2DBackpropInput', inputs, backend, attrs!); // rare shapes: stock (slow but correct) kernel
  const flipped = call('Reverse', { x: filter }, backend, { dims: [0, 1] });
  const wt = call('Transpose', { x: flipped }, backend, { perm: [0, 1, 3, 2] });
  try {
    const pad: Padding = [[0, 0], [pt, pb], [pl, pr], [0, 0]];
    return call('Conv2D', { x: dy, filter: wt }, backend, { strides: 1, pad, dataFormat: 'NHWC', dilations: 1 });
  } finally {
    dispose(backend, flipped, wt);
  }
}

function override(kernelName: string, kernelFunc: tf.KernelFunc): void {
  const orig = tf.getKernel(kernelName, BACKEND);
  if (orig) {
    originals.set(kernelName, orig);
    tf.unregisterKernel(kernelName, BACKEND);
  }
  // Keep the original setup: when we register before the backend initialises, it is what binds the wasm function.
  const cfg: tf.KernelConfig = { kernelName, backendName: BACKEND, kernelFunc };
  if (orig?.setupFunc) cfg.setupFunc = orig.setupFunc;
  tf.registerKernel(cfg);
}

/** Installs the fedge kernels on the registered wasm backend; idempotent. Returns the kernel names replaced. */
export function installWasmTrainingKernels(): string[] {
  const names = ['BatchMatMul', '_FusedMatMul', 'Conv2DBackpropFilter', 'Conv2DBackpropInput'];
  if (installed) return names;
  override('BatchMatMul', untransposed('BatchMatMul'));
  override('_FusedMatMul', untransposed('_FusedMatMul'));
  override('Conv2DBackpropFilter', conv2DBackpropFilter as tf.KernelFunc);
  override('Conv2DBackpropInput', conv2DBackpropInput as tf.KernelFunc);
  installed = true;
  return names;
}
