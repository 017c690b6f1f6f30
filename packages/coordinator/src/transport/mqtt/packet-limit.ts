/**
 * A size limit on the MQTT packets a network client may send to the embedded broker: MQTT lets a packet declare up to
 * 256 MiB, and the broker's parser buffers a packet whole before anyone can look at it, so without a limit one
 * connection (even one without the join token: CONNECT is a packet too) could make the coordinator hold 256 MiB.
 */
import { Duplex, Transform, type TransformCallback } from 'node:stream';
import type { Socket } from 'node:net';
import { CHUNK_BYTES } from '@fedge/proto';

/** The largest legitimate packet is a 1 MiB chunk plus its envelope and topic, or a model header with its topology. */
export const MQTT_MAX_PACKET_BYTES = CHUNK_BYTES + (3 << 20);

/** The limiter's own refusal, told apart from errors the connection passes to it (a reset, an abort). */
export class PacketRefusedError extends Error {}

/**
 * Passes bytes through untouched while following the packets' fixed headers (type byte, 1-4 byte remaining length);
 * errors as soon as a header declares more than `maxBytes`, before the body arrives.
 */
export class PacketSizeLimiter extends Transform {
  private skip = 0; // body bytes of the current packet still to pass
  private lenBytes = -1; // -1: next byte is a packet type; 0-3: reading the remaining length
  private len = 0;
  private mult = 1;

  constructor(private readonly maxBytes: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      if (this.lenBytes < 0) {
        i++; // packet type and flags
        this.lenBytes = 0;
        this.len = 0;
        this.mult = 1;
        continue;
      }
      const b = chunk[i++]!;
      this.len += (b & 0x7f) * this.mult;
      this.mult *= 128;
      this.lenBytes++;
      if (b & 0x80) {
        if (this.lenBytes >= 4) return cb(new PacketRefusedError('malformed MQTT packet: remaining length longer than 4 bytes'));
        continue;
      }
      if (this.len > this.maxBytes) return cb(new PacketRefusedError(`MQTT packet of ${this.len} bytes refused: the limit is ${this.maxBytes}`));
      this.skip = this.len;
      this.lenBytes = -1;
    }
    cb(null, chunk);
  }
}

/** Wraps a client connection so the broker reads it through the limiter; a refused packet closes the connection. */
export function limitPackets(socket: Socket, maxBytes: number, onRefused: (reason: string) => void): Duplex {
  const limiter = new PacketSizeLimiter(maxBytes);
  limiter.on('error', (err) => {
    // The wrapper destroys the limiter with the socket's own errors too (ECONNRESET when a client vanishes): those are
    // no refusal, and the broker already sees them on the connection.
    if (err instanceof PacketRefusedError) onRefused(err.message);
    socket.destroy();
  });
  socket.pipe(limiter);
  const conn = Duplex.from({ readable: limiter, writable: socket });
  // The broker closes what it was given; the socket must close with it.
  conn.once('close', () => socket.destroy());
  socket.once('close', () => conn.destroy());
  return conn;
}
