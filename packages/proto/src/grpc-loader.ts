/** Loads the .proto services with @grpc/proto-loader so both ends share one definition without a codegen step. */
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const PROTO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'proto');

/** proto-loader options: camelCase fields, int64 as JS numbers (all our int64s stay below 2^53), defaults filled. */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

export interface FedgeServices {
  AgentService: grpc.ServiceClientConstructor;
  AdminService: grpc.ServiceClientConstructor;
}

let cached: FedgeServices | undefined;

export function loadServices(): FedgeServices {
  if (cached) return cached;
  const def = protoLoader.loadSync(['agent.proto', 'admin.proto'], LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def) as unknown as { fedge: { v1: FedgeServices } };
  cached = pkg.fedge.v1;
  return cached;
}

/** Chunk size for model and update streams: large enough to amortise per-message cost, far below message limits. */
export const CHUNK_BYTES = 1 << 20;

/** Per-message cap. Payloads of any size travel as CHUNK_BYTES pieces; this only bounds one message (+ header). */
export const MAX_MESSAGE_BYTES = 8 << 20;

/**
 * HTTP/2 flow-control window. grpc-js defaults to 64 KiB, which caps a stream at ~250 MiB/s here;
 * a larger window let 1 MiB chunks stream at ~1 GiB/s between processes on the same machine.
 */
export const FLOW_CONTROL_WINDOW = 16 << 20;

/** Largest HTTP/2 frame a receiver accepts (the protocol maximum); fewer frames per 1 MiB chunk. */
export const MAX_FRAME = 2 ** 24 - 1;

/**
 * Keepalive: pings every 20 s; a peer is dead after 60 s without the answer. Not less: when a process's event loop is
 * blocked (a large model's synchronous work: packing a 100 MB update, static int8 calibration, or training on the main
 * thread as agents did before the training worker), its timers fire before the socket is read when the loop comes
 * back, and a short timeout closes healthy connections (seen with a 24M-param model on a loaded 2-core machine). Dead
 * agents are still found within a round deadline, which bounds what waits on them.
 */
const KEEPALIVE_TIME_MS = 20_000;
const KEEPALIVE_TIMEOUT_MS = 60_000;

export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW,
  'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
  'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
  'grpc.keepalive_permit_without_calls': 1,
};

export const SERVER_OPTIONS: grpc.ServerOptions = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
  'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.min_ping_interval_without_data_ms': 5_000,
};
