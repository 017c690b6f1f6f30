/** Data drift: histograms on shared edges, PSI, binned two-sample KS, and the fleet's bin edges for a run. */
export * from './histogram.js';
export * from './psi.js';
export * from './ks.js';
export * from './spec.js';
export * from './profile.js';
