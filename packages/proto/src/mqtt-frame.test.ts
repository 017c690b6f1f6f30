import { describe, expect, it } from 'vitest';
import { AckSchedule, MQTT_FRAME_VERSION, MQTT_WINDOW_BYTES, SendWindow, decodeFrame, encodeFrame, mqttQos } from './mqtt-frame.js';
import { CHUNK_BYTES } from './grpc-loader.js';
import { fetchModelRequestSchema, parseOrThrow } from './schemas.js';

describe('mqtt framing', () => {
  it('round-trips an envelope and a binary body without copying on decode', () => {
    const body = new Uint8Array([0, 1, 2, 255]);
    const buf = encodeFrame({ t: 'chunk', id: 'r1', offset: 4096 }, body);
    expect(buf[0]).toBe(MQTT_FRAME_VERSION);
    const f = decodeFrame(buf);
    expect(f.env).toEqual({ t: 'chunk', id: 'r1', offset: 4096 });
    expect([...f.body]).toEqual([0, 1, 2, 255]);
    expect(f.body.buffer).toBe(buf.buffer);
    expect(decodeFrame(encodeFrame({ t: 'gone' })).body.byteLength).toBe(0);
  });

  it('sends transfers at QoS 0 and everything else at QoS 1', () => {
    expect((['model', 'chunk', 'end', 'ack'] as const).map(mqttQos)).toEqual([0, 0, 0, 0]);
    expect((['join', 'tasks', 'fetch', 'submit', 'reply', 'error', 'task', 'close', 'gone', 'cancel', 'status'] as const).map(mqttQos)).toEqual(Array(11).fill(1));
  });

  it('rejects malformed frames with the failing part named', () => {
    expect(() => decodeFrame(new Uint8Array(3))).toThrow(/^frame: 3 bytes/);
    const ok = encodeFrame({ t: 'end', id: 'r1' });
    const v2 = Buffer.from(ok);
    v2[0] = 2;
    expect(() => decodeFrame(v2)).toThrow(/^frame\.version: expected 1, got 2/);
    const long = Buffer.from(ok);
    long.writeUInt32BE(1e6, 1);
    expect(() => decodeFrame(long)).toThrow(/^frame\.envelope: length 1000000/);
    const json = Buffer.from('{nope');
    const notJson = Buffer.concat([Buffer.from([1, 0, 0, 0, json.length]), json]);
    expect(() => decodeFrame(notJson)).toThrow(/^frame\.envelope: not JSON/);
    expect(() => decodeFrame(encodeFrame({ t: 'bogus' } as never))).toThrow(/^frame\.t: t must be one of/);
    expect(() => decodeFrame(encodeFrame({ t: 'ack', id: 'r/1' }))).toThrow(/^frame\.id:/);
    expect(() => decodeFrame(encodeFrame({ t: 'ack', id: 'r1', offset: -1 }))).toThrow(/^frame\.offset:/);
    expect(() => decodeFrame(encodeFrame({ t: 'ack', id: 'r1', offset: 1.5 }))).toThrow(/^frame\.offset:/);
  });
});

describe('mqtt fetch request', () => {
  const base = { agentId: 'agent-1', sessionToken: 'tok', runId: 'run-1', modelVersion: 5 };
  const fetchMsg = (msg: unknown): unknown => decodeFrame(encodeFrame({ t: 'fetch', id: 'f1', msg })).env.msg;

  it('carries the held version (compression.downlink) through the envelope; an older agent that names none gets the defaults', () => {
    const sha = 'ab'.repeat(32);
    expect(parseOrThrow(fetchModelRequestSchema, fetchMsg({ ...base, haveVersion: 4, haveSha256: sha }), 'fetch_model')).toMatchObject({ modelVersion: 5, haveVersion: 4, haveSha256: sha });
    expect(parseOrThrow(fetchModelRequestSchema, fetchMsg(base), 'fetch_model')).toMatchObject({ haveVersion: 0, haveSha256: '', blobSha256: '' });
  });

  it('refuses a malformed held version, naming the field', () => {
    expect(() => parseOrThrow(fetchModelRequestSchema, fetchMsg({ ...base, haveVersion: 4, haveSha256: 'XYZ' }), 'fetch_model')).toThrow(/haveSha256/);
    expect(() => parseOrThrow(fetchModelRequestSchema, fetchMsg({ ...base, haveVersion: -1, haveSha256: 'ab'.repeat(32) }), 'fetch_model')).toThrow(/haveVersion/);
    expect(() => parseOrThrow(fetchModelRequestSchema, fetchMsg({ ...base, haveVersion: '4' }), 'fetch_model')).toThrow(/haveVersion/);
  });
});

describe('credit window', () => {
  it('lets a sender run one window ahead of the acks and no further', async () => {
    const w = new SendWindow(4 * CHUNK_BYTES);
    for (let i = 1; i <= 4; i++) await w.reserve(i * CHUNK_BYTES);
    let fifth = false;
    const p = w.reserve(5 * CHUNK_BYTES).then(() => (fifth = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(fifth).toBe(false);
    w.ack(CHUNK_BYTES);
    await p;
    expect(fifth).toBe(true);
    expect(w.bytesAcked).toBe(CHUNK_BYTES);
  });

  it('starts closed for uploads until the receiver grants the first window', async () => {
    const w = new SendWindow(MQTT_WINDOW_BYTES, false);
    let started = false;
    const p = w.reserve(CHUNK_BYTES).then(() => (started = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(started).toBe(false);
    w.ack(0);
    await p;
    expect(started).toBe(true);
  });

  it('refuses acks for bytes never sent and fails a waiting sender', async () => {
    const w = new SendWindow(CHUNK_BYTES);
    await w.reserve(CHUNK_BYTES);
    expect(() => w.ack(2 * CHUNK_BYTES)).toThrow(/^ack\.offset: 2097152 is beyond the 1048576 bytes sent/);
    const p = w.reserve(2 * CHUNK_BYTES);
    w.fail(new Error('receiver gone'));
    await expect(p).rejects.toThrow('receiver gone');
    await expect(w.reserve(3 * CHUNK_BYTES)).rejects.toThrow('receiver gone');
    expect(() => new SendWindow(CHUNK_BYTES - 1)).toThrow(RangeError);
  });

  it('acks every quarter window and always at the end', () => {
    const s = new AckSchedule(10 * CHUNK_BYTES + 5, 8 * CHUNK_BYTES);
    const acked: number[] = [];
    for (let r = CHUNK_BYTES; r <= 10 * CHUNK_BYTES; r += CHUNK_BYTES) if (s.due(r)) acked.push(r / CHUNK_BYTES);
    expect(acked).toEqual([2, 4, 6, 8, 10]);
    expect(s.due(10 * CHUNK_BYTES + 5)).toBe(true);
    expect(s.due(10 * CHUNK_BYTES + 5)).toBe(false);
  });
});
