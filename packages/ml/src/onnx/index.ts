export * from './export.js';
export { calibrateActivationRanges, exportOnnxCalibrated } from './calibrate.js';
export { quantizePerChannel, uint8Params } from './quantize.js';
export { decodeModel as decodeOnnxModel } from './proto.js';
