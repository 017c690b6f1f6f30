/**
 * Secure aggregation (Bonawitz et al. 2017, SecAgg+ neighborhoods of Bell et al. 2020): a transport-free library.
 * The coordinator learns only the weighted sum of the round's updates; agents may drop out at any stage.
 *
 * Round, per agent (SecAggClient) and at the coordinator (SecAggServer):
 *   advertise()            -> collectAdvertise(id, m)   ... closeAdvertise()  -> per agent SecAggShareKeysRequest
 *   shareKeys(req)         -> collectShares(id, m)      ... routeShares()     -> per agent SecAggRoutedShares
 *   receiveShares(routed); maskedInput(update, weight) -> addMaskedInput(id, m) ... closeMaskedInput() -> per agent SecAggUnmaskRequest
 *   unmask(req)            -> collectUnmask(id, m)      ... finalize()        -> SecAggResult
 * A close*() below threshold, and finalize(), answer { ok: false, reason } instead of throwing: the round fails as data.
 * finalizeAsync() and maskedInputAsync() do the same with the PRG work (seconds at 100 agents for the coordinator)
 * on worker threads, so a server's event loop keeps running; finalize() splits it over threads too but blocks.
 * Stage messages are plain objects (Uint8Array fields); each has a zod schema (secagg*Schema) that also reads the
 * base64 strings secaggToJson writes. A masked vector travels as bytes: maskedToBytes / maskedFromBytes.
 *
 * Threat model. Honest-but-curious coordinator and broker, and up to t - 1 colluding agents in any neighborhood:
 * they learn the sum of the survivors' weighted updates and nothing else about an individual update (each masked
 * input is uniform in Z_{2^bits}^(m+1) to them). Because t is a strict majority of each secret's k + 1 holders, a
 * coordinator that lies about who dropped cannot collect both the self-mask shares and the key shares of one agent
 * (an honest holder in both majorities refuses to reveal both: SecAggClient.unmask). Not covered: a coordinator
 * that forges the roster (there is no consistency round with signatures, Bonawitz et al. 2017 section 4.2 "active
 * adversary"), and malicious agents: any agent can corrupt the sum (its input is masked, so no norm or range check
 * can run on it at the coordinator; clipping happens on the agent) or falsely report a neighbor's box as tampered
 * to have that neighbor dropped.
 *
 * Changes from the brief's sketch, and why:
 * - shareKeys takes a SecAggShareKeysRequest { x, neighbors } built by SecAggServer.closeAdvertise (the agent's own
 *   Shamir x and its k neighbors' keys), not the whole roster and graph: an agent's message stays O(k), not O(n).
 *   neighborGraph(seed, ids, k) is still exported (the coordinator uses it; anyone can recompute it from the seed).
 * - SecAggServer adds close*() calls that end each stage (the transport calls them when everyone answered or the
 *   stage deadline passed) and collectShares(id, m) (the brief's routeShares is the close of that stage).
 * - finalize() returns `mean` (the weighted FedAvg mean), `weightedSum` (sum of w_i x_i, for central DP) and
 *   `weightSum`, instead of a `sum` field holding a mean.
 * - The masked input carries `rejected` (senders whose share box did not open) besides `y`.
 * - secaggParams' result also has nAgents: the quantization grid depends on it (quantLevels).
 * - advertise() also returns bCommit (SHA-256 of the self-mask seed) so the coordinator can verify a rebuilt seed
 *   and step over a wrong share; finalizeAsync / maskedInputAsync keep the event loop free.
 */
export { secaggParams, checkParams, quantLevels, ringBitsFor, INT8_LEVELS, majorityThreshold, type SecAggParams, type SecAggParamsOptions } from './params.js';
export { neighborGraph, graphSeedBytes } from './graph.js';
export { shamirSplit, shamirCombine, SHAMIR_PRIME, SHARE_BYTES, type ShamirShare } from './shamir.js';
export { prgExpand, prgStream, ringMask, PRG_ALGORITHM, PRG_ALGORITHMS, PRG_CHUNK, type PrgAlgorithm, type PrgStream, type MaskTerm } from './prg.js';
export { applyMasks, applyMasksAsync, type ApplyMasksOptions } from './mask.js';
export { quantizeInto, dequantizeSum, quantizationBound, type Rounding, type Dequantized } from './quantize.js';
export { SecAggClient, pairSign } from './client.js';
export { SecAggServer, type SecAggServerOptions, type SecAggFailure } from './server.js';
export { maskedToBytes, maskedFromBytes, maskedByteLength } from './wire.js';
export * from './messages.js';
