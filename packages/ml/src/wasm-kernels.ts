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

/**
 * op(A)·op(B) on the fast untransposed path. Either materialise the transposed operands, or compute
 * C^T = op(B)^T·op(A)^T and transpose C, whichever moves fewer elements: for a Dense layer's dx = dy·W^T
 * the second plan transposes dy and dx instead of the (much larger) kernel W, ~2.5x faster.
 */
function untransposed(name: 'BatchMatMul' | '_FusedMatMul'): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const { transposeA: tA, transposeB: tB } = attrs as { transposeA: boolean; transposeB: boolean };
    if (!tA && !tB) return call(name, inputs, backend, attrs!);
    const a = inputs['a']!, b = inputs['b']!;
    const size = (t: Info) => t.shape.reduce((x, y) => x * y, 1);
    const m = a.shape[a.shape.length - (tA ? 1 : 2)]!, n = b.shape[b.shape.length - (tB ? 2 : 1)]!;
    const batch = Math.max(size(a) / (a.shape.at(-1)! * a.shape.at(-2)!), size(b) / (b.shape.at(-1)! * b.shape.at(-2)!));
    const cost1 = (tA ? size(a) : 0) + (tB ? size(b) : 0);
    const cost2 = (tA ? 0 : size(a)) + (tB ? 0 : size(b)) + batch * m * n;
    const tmp: Info[] = [];
    const t = (x: Info) => {
      const r = swapLastTwo(x, backend);
      tmp.push(r);
      return r;
    };
    const plain = { ...attrs, transposeA: false, transposeB: false };
    try {
      // Bias/activation only make sense on C itself, so fused matmuls always take the first plan.
      if (name === '_FusedMatMul' || cost1 <= cost2)
        return call(name, { ...inputs, a: tA ? t(a) : a, b: tB ? t(b) : b }, backend, plain);
      const ct = call(name, { a: tB ? b : t(b), b: tA ? a : t(a) }, backend, plain);
      tmp.push(ct);
      return swapLastTwo(ct, backend);
    } finally {
      dispose(backend, ...tmp);
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

interface HeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): Info;
  typedArrayFromHeap(t: Info): Float32Array;
}

/**
 * Scatters dy onto the first maximum of each window (TF semantics, like the cpu backend), in JS directly on
 * the wasm heap: about 3x faster than the stock wasm MaxPoolGrad on the CNN's pools.
 */
function maxPoolGrad({ inputs, backend, attrs }: Parameters<tf.KernelFunc>[0]): Info {
  const dy = inputs['dy']!, x = inputs['input']!;
  const { filterSize, strides, pad, dimRoundingMode } = attrs as unknown as tf.MaxPoolGradAttrs;
  const info = tf.backend_util.computePool2DInfo(x.shape as [number, number, number, number], filterSize, strides, 1, pad, dimRoundingMode);
  const be = backend as unknown as HeapBackend;
  const out = be.makeOutput(x.shape, 'float32');
  const dx = be.typedArrayFromHeap(out);
  dx.fill(0);
  // Views are taken after makeOutput: allocating may grow (and so detach) the wasm heap.
  const xs = be.typedArrayFromHeap(x), g = be.typedArrayFromHeap(dy);
  const { batchSize, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = info;
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw } = info;
  const { top, left } = info.padInfo;
  let o = 0;
  for (let b = 0; b < batchSize; b++) {
    const xb = b * H * W * C;
    for (let r = 0; r < OH; r++) {
      const r0 = Math.max(0, r * sh - top), r1 = Math.min(H, r * sh - top + fh);
      for (let c = 0; c < OW; c++) {
        const c0 = Math.max(0, c * sw - left), c1 = Math.min(W, c * sw - left + fw);
        for (let d = 0; d < C; d++, o++) {
          let best = -Infinity, at = -1;
          for (let i = r0; i < r1; i++)
            for (let j = c0; j < c1; j++) {
              const p = xb + (i * W + j) * C + d;
              if (xs[p]! > best) (best = xs[p]!), (at = p);
            }
          if (at >= 0) dx[at]! += g[o]!;
        }
      }
    }
  }
  return out;
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
  const names = ['BatchMatMul', '_FusedMatMul', 'Conv2DBackpropFilter', 'Conv2DBackpropInput', 'MaxPoolGrad'];
  if (installed) return names;
  override('BatchMatMul', untransposed('BatchMatMul'));
  override('_FusedMatMul', untransposed('_FusedMatMul'));
  override('Conv2DBackpropFilter', conv2DBackpropFilter as tf.KernelFunc);
  override('Conv2DBackpropInput', conv2DBackpropInput as tf.KernelFunc);
  override('MaxPoolGrad', maxPoolGrad as tf.KernelFunc);
  installed = true;
  return names;
}
