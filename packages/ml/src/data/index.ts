/** The agent's data: raw tables from real formats, their profiles, the fleet's combined statistics and preprocessing, encoding. */
export { type RawColumn, type RawTable, type TablePartitionOptions, subsetTable, splitTable, partitionTable, deriveFingerprint, columnWidth, findColumn } from './table.js';
export { type LoadTableOptions, type MissingPolicy } from './schema.js';
export { loadTable, DATA_SPECS } from './load.js';
export { parseNpy, type NpyArray } from './npy.js';
export { decodeImage, resizeBilinear, type RgbImage } from './images.js';
export { type ModuleData } from './module.js';
export { profileTable, profileColumn } from './profile.js';
export { combineProfiles, columnMoments, schemaDifference, type ProfileEntry, type CombinedProfiles } from './combine.js';
export { buildPreprocessing, classesOf, defaultPreprocessing, type PreprocessingOptions } from './preprocess.js';
export { encodeTable } from './encode.js';
