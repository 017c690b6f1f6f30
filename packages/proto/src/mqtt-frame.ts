/** MQTT message framing (JSON envelope + raw binary body) and the credit window that paces chunked transfers. */
import { z } from 'zod';
import { FedgeError, ValidationError } from './errors.js';
import { parseOrThrow } from './schemas.js';
import { CHUNK_BYTES } from './grpc-loader.js';

/**
 * Every MQTT payload is one frame: byte 0 the framing version, bytes 1-4 the envelope length (uint32 BE), the
 * envelope as UTF-8 JSON, then the body. Control messages are small JSON (the same fields, names and zod schemas as
 * the gRPC messages); chunk bodies stay raw bytes, so a 1 MiB chunk costs 1 MiB plus a few dozen bytes, not base64.
 */
export const MQTT_FRAME_VERSION = 1;
const PREFIX = 5;
/** Largest envelope accepted: a model header carries the topology JSON and up to MAX_TENSORS specs. */
export const MQTT_MAX_ENVELOPE_BYTES = 16 << 20;

/**
 * Bytes a sender may have in flight beyond the receiver's last ack. Bounds what the broker holds per transfer
 * (8 chunks), whatever the model size and however slow the receiver, while keeping the pipe full on a LAN.
 */
export const MQTT_WINDOW_BYTES = 8 * CHUNK_BYTES;

/**
 * agent -> coordinator: challenge (a nonce for a signed join; identity.ts), join, tasks, fetch (model download), ack (download credit), cancel (abandon a download),
 * submit (upload header), chunk, end (upload complete), secagg (a secure-aggregation stage message; its reply comes
 * when the stage has closed), report (agent status, report/), gone (last will / clean close).
 * coordinator -> agent: reply, error, model (download header), chunk, end, ack (upload credit), task, close (task
 * stream ended), status (retained, coordinator online or not).
 */
export const MQTT_MESSAGE_TYPES = [
  'challenge', 'join', 'tasks', 'fetch', 'ack', 'cancel', 'submit', 'chunk', 'end', 'secagg', 'report', 'gone',
  'reply', 'error', 'model', 'task', 'close', 'status',
] as const;
export type MqttMessageType = (typeof MQTT_MESSAGE_TYPES)[number];

/**
 * A transfer (model header, chunks, end, acks) travels at QoS 0: all its messages share one topic and one QoS, so the
 * broker keeps them in order, and the receiver checks every offset, the total size (and, for models, the sha256) and
 * gives up after a silence, so a message a broker dropped fails the transfer visibly instead of corrupting it. QoS 1
 * per chunk cost 2-3x the throughput (puback bookkeeping in broker and clients; bench/mqtt.mjs). Requests, replies
 * and tasks, which nothing else would notice missing, use QoS 1.
 */
export function mqttQos(t: MqttMessageType): 0 | 1 {
  return t === 'model' || t === 'chunk' || t === 'end' || t === 'ack' ? 0 : 1;
}

/** Correlation id of a request; every reply, chunk and ack of that exchange carries it. */
export const mqttRequestIdSchema = z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and - only');

export const mqttEnvelopeSchema = z.object({
  t: z.enum(MQTT_MESSAGE_TYPES, { message: `t must be one of ${MQTT_MESSAGE_TYPES.join(', ')}` }),
  id: mqttRequestIdSchema.optional(),
  /** chunk: byte offset of the body; ack: bytes received so far (the sender may run MQTT_WINDOW_BYTES past it). */
  offset: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
  /** The request or reply proper, validated by the schema of its type (joinRequestSchema, resultHeaderSchema...). */
  msg: z.unknown().optional(),
  /** error: FedgeError code; close: why the task stream ended. */
  code: z.string().max(64).optional(),
  message: z.string().max(4096).optional(),
  online: z.boolean().optional(),
});
export type MqttEnvelope = z.output<typeof mqttEnvelopeSchema>;

export interface MqttFrame {
  env: MqttEnvelope;
  /** A view into the received payload (no copy). */
  body: Uint8Array;
}

export function encodeFrame(env: MqttEnvelope, body?: Uint8Array): Buffer {
  const json = Buffer.from(JSON.stringify(env), 'utf8');
  const out = Buffer.allocUnsafe(PREFIX + json.byteLength + (body?.byteLength ?? 0));
  out[0] = MQTT_FRAME_VERSION;
  out.writeUInt32BE(json.byteLength, 1);
  json.copy(out, PREFIX);
  if (body) out.set(body, PREFIX + json.byteLength);
  return out;
}

/** Parses a frame; throws ValidationError naming what is wrong (frame.version, frame.envelope, frame.t...). */
export function decodeFrame(payload: Uint8Array): MqttFrame {
  if (payload.byteLength < PREFIX) throw new ValidationError(`frame: ${payload.byteLength} bytes is shorter than the ${PREFIX}-byte prefix`);
  if (payload[0] !== MQTT_FRAME_VERSION) throw new ValidationError(`frame.version: expected ${MQTT_FRAME_VERSION}, got ${payload[0]}`);
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const len = view.getUint32(1);
  if (len > MQTT_MAX_ENVELOPE_BYTES || PREFIX + len > payload.byteLength)
    throw new ValidationError(`frame.envelope: length ${len} exceeds the ${payload.byteLength - PREFIX} bytes present (limit ${MQTT_MAX_ENVELOPE_BYTES})`);
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset + PREFIX, len).toString('utf8'));
  } catch (err) {
    throw new ValidationError(`frame.envelope: not JSON (${(err as Error).message})`);
  }
  const env = parseOrThrow(mqttEnvelopeSchema, json, 'frame');
  return { env, body: payload.subarray(PREFIX + len) };
}

/** A credit window was abandoned: the receiver refused, vanished or the transfer was cancelled. */
export class TransferAbortedError extends FedgeError {
  constructor(message: string) {
    super('E_CONNECTION', message);
    this.name = 'TransferAbortedError';
  }
}

/**
 * Sender side of a chunked transfer: `reserve(end)` resolves once bytes up to `end` fit in the window the
 * receiver's acks have opened. The receiver acks end to end (through the broker), so a slow receiver slows the
 * sender instead of piling chunks up in the broker.
 */
export class SendWindow {
  private acked: number;
  private sent = 0;
  private waiter: { need: number; resolve: () => void; reject: (e: Error) => void } | undefined;
  private error: Error | undefined;

  /** `open`: the sender may start at once (downloads); otherwise it waits for a first ack (uploads wait for a slot). */
  constructor(readonly windowBytes = MQTT_WINDOW_BYTES, open = true) {
    if (windowBytes < CHUNK_BYTES) throw new RangeError('window smaller than a chunk');
    this.acked = open ? 0 : -Infinity;
  }

  /** Records an ack (bytes received); throws ValidationError when it claims bytes that were never sent. */
  ack(offset: number): void {
    if (offset > this.sent) throw new ValidationError(`ack.offset: ${offset} is beyond the ${this.sent} bytes sent`);
    if (offset > this.acked) this.acked = offset;
    const w = this.waiter;
    if (w && w.need - this.acked <= this.windowBytes) {
      this.waiter = undefined;
      w.resolve();
    }
  }

  /** Waits until bytes up to `end` may be sent, then counts them as sent. */
  async reserve(end: number): Promise<void> {
    if (this.error) throw this.error;
    if (end - this.acked > this.windowBytes) {
      if (this.waiter) throw new Error('SendWindow: one reserve at a time');
      await new Promise<void>((resolve, reject) => (this.waiter = { need: end, resolve, reject }));
    }
    this.sent = Math.max(this.sent, end);
  }

  fail(err: Error): void {
    this.error ??= err;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(err);
  }

  get bytesAcked(): number {
    return Math.max(0, this.acked);
  }
}

/** Receiver side: when to ack, so the sender never stalls on a full window nor floods the topic with acks. */
export class AckSchedule {
  private last = 0;
  constructor(readonly totalBytes: number, readonly windowBytes = MQTT_WINDOW_BYTES) {}
  /** True when `received` bytes should be acked now: a quarter window since the last ack, or the transfer is complete. */
  due(received: number): boolean {
    if (received - this.last >= this.windowBytes / 4 || (received === this.totalBytes && received > this.last)) {
      this.last = received;
      return true;
    }
    return false;
  }
}
