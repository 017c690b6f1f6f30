// Preloaded with NODE_OPTIONS=--require by native-backend.test.ts: every native addon load fails as a missing
// libtensorflow does (dlopen error), in the main thread and in worker threads alike, so the tests can exercise an
// installed @tensorflow/tfjs-node whose addon cannot load without breaking the machine's real install.
const realDlopen = process.dlopen;
process.dlopen = function (module, filename, ...rest) {
  if (String(filename).endsWith('tfjs_binding.node'))
    throw new Error(`${filename}: libtensorflow.so.2: cannot open shared object file (simulated by break-native-addon.cjs)`);
  return realDlopen.call(this, module, filename, ...rest);
};
