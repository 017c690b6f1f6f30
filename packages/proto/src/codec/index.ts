/** Update and model codecs both ends agree on: today's fixed codecs (legacy.ts) and composable pipelines (spec.ts, pipeline.ts). */
export * from './legacy.js';
export { type UpdateDecoder } from './bytes.js';
export { topkCount, kthLargestAbs, bitmapBytes, varintIndexBytes, INDEX_BITMAP, INDEX_VARINT } from './sparse.js';
export * from './spec.js';
export * from './pipeline.js';
export { VALUE_CODECS, valueCodec, type ValueCodec } from './values.js';
export { QUANT_BLOCK, QuantCodec } from './quantize.js';
export * from './feedback.js';
export { toHalf, fromHalf } from './half.js';
export * from './downlink.js';
