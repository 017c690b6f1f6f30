import { describe, expect, it } from 'vitest';
import { createServer, connect, type Socket } from 'node:net';
import { PacketSizeLimiter, limitPackets } from './packet-limit.js';

/** Feeds `bytes` in pieces of `piece` bytes; resolves with the bytes passed through, or the error. */
function run(max: number, bytes: Buffer, piece: number): Promise<{ out: Buffer; error?: string }> {
  return new Promise((resolve) => {
    const l = new PacketSizeLimiter(max);
    const out: Buffer[] = [];
    l.on('data', (b: Buffer) => out.push(b));
    l.on('error', (e) => resolve({ out: Buffer.concat(out), error: e.message }));
    l.on('end', () => resolve({ out: Buffer.concat(out) }));
    for (let i = 0; i < bytes.length; i += piece) l.write(bytes.subarray(i, i + piece));
    l.end();
  });
}

/** An MQTT packet: type byte, variable-length remaining length, body. */
function packet(type: number, bodyLen: number): Buffer {
  const len: number[] = [];
  let x = bodyLen;
  do {
    let b = x % 128;
    x = Math.floor(x / 128);
    if (x > 0) b |= 0x80;
    len.push(b);
  } while (x > 0);
  return Buffer.concat([Buffer.from([type, ...len]), Buffer.alloc(bodyLen, 7)]);
}

describe('PacketSizeLimiter', () => {
  it('passes packets up to the limit through unchanged, however the bytes are split', async () => {
    const stream = Buffer.concat([packet(0x10, 12), packet(0x30, 0), packet(0x32, 200), packet(0x30, 16_384), packet(0xc0, 0)]);
    for (const piece of [1, 2, 3, 7, 128, 1 << 20]) {
      const r = await run(16_384, stream, piece);
      expect(r.error, `piece ${piece}`).toBeUndefined();
      expect(r.out.equals(stream)).toBe(true);
    }
  });

  it('refuses a packet declaring more than the limit as soon as its header arrives', async () => {
    const start = packet(0x30, 100 << 20).subarray(0, 5 + 1000); // the fixed header of a 100 MiB PUBLISH and some body
    const r = await run(4 << 20, Buffer.concat([packet(0x10, 10), start]), 2);
    expect(r.error).toMatch(/MQTT packet of 104857600 bytes refused: the limit is 4194304/);
    // The CONNECT went through, and at most the big packet's 5 header bytes: none of its body.
    expect(r.out.length).toBeLessThanOrEqual(12 + 5);
  });

  it('refuses a remaining length longer than 4 bytes', async () => {
    const r = await run(1 << 30, Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]), 1);
    expect(r.error).toMatch(/malformed MQTT packet/);
  });

  it('does not report a connection reset by the client as a refused packet', async () => {
    const refused: string[] = [];
    let serverSide: Socket | undefined;
    const server = createServer((socket) => {
      serverSide = socket;
      const conn = limitPackets(socket, 1024, (reason) => refused.push(reason));
      conn.on('error', () => {}); // the broker's side of the reset
      conn.resume();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const client = connect((server.address() as { port: number }).port, '127.0.0.1');
    await new Promise<void>((r) => client.once('connect', () => r()));
    client.write(packet(0x10, 12));
    while (!serverSide) await new Promise((r) => setTimeout(r, 10));
    const closed = new Promise((r) => serverSide!.once('close', r));
    // The error a reset gives the server's socket (whether the kernel reports it depends on timing, so it is raised here).
    serverSide.destroy(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
    client.destroy();
    await closed;
    await new Promise<void>((r) => server.close(() => r()));
    expect(refused).toEqual([]);
  });
});
