/**
 * A round's append-only spool segment: framed, checksummed update records written asynchronously at reserved offsets
 * and made durable by group commit (one fdatasync covers every record written while the previous one ran).
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { fsyncDir } from '../store/model-store.js';

/*
 * Record: magic "FSP1" | key length u32 | payload length u64 | payload crc32 | header crc32 (of the 20 bytes before
 * it and the key) | key (utf-8) | payload. Little-endian. A record is named (its reference put in a run record) only
 * after the fdatasync that covers it, so a torn record at the tail of a crashed process's segment is never named; a
 * named record whose bytes do not check out (a damaged disk) is refused when read, never folded.
 */
const MAGIC = 0x31505346; // "FSP1"
const FIXED = 24;
const MAX_KEY = 4096;

/** Where a spooled record lives: "<segment>.spool#<offset of its header>". */
export const SEGMENT_REF = /^(.*\.spool)#(\d+)$/;

function header(key: string, payload: Uint8Array): Buffer {
  const k = Buffer.from(key, 'utf8');
  const h = Buffer.alloc(FIXED + k.length);
  h.writeUInt32LE(MAGIC, 0);
  h.writeUInt32LE(k.length, 4);
  h.writeBigUInt64LE(BigInt(payload.byteLength), 8);
  h.writeUInt32LE(crc32(payload), 16);
  k.copy(h, FIXED);
  h.writeUInt32LE(crc32(k, crc32(h.subarray(0, 20))), 20);
  return h;
}

/** One open segment: appends reserve their offset at once, so concurrent writes never overlap. */
export class Segment {
  private end = 0;
  private syncing: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  private constructor(
    readonly file: string,
    private readonly fh: FileHandle,
    private readonly durable: boolean,
  ) {}

  /**
   * Opens (creating it and its directory) the segment at `file`. New records go after whatever is there: the torn
   * tail of a crashed writer stays unnamed bytes in the middle, skipped by offset.
   */
  static async open(file: string, durable: boolean): Promise<Segment> {
    const dir = path.dirname(file);
    // The first directory mkdir made (undefined if all existed): from its parent down, each new entry must be synced too.
    const created = await mkdir(dir, { recursive: true });
    const fh = await open(file, constants.O_RDWR | constants.O_CREAT, 0o644);
    try {
      const seg = new Segment(file, fh, durable);
      seg.end = (await fh.stat()).size;
      if (durable) {
        // The segment's directory entry, and those of the run and round directories made just now, are durable before
        // any record in it is acknowledged: a crash could otherwise drop the new round directory with the segment.
        const dirs = [dir];
        if (created) for (let d = path.resolve(dir), top = path.dirname(path.resolve(created)); d !== top && d !== path.dirname(d); ) dirs.push((d = path.dirname(d)));
        for (const d of dirs) await fsyncDir(d);
      }
      return seg;
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Writes one record; resolves with its reference once it is durable (or written, for a scratch segment).
   * `written` is called once `payload` has been copied to the file (it may be reused while the sync runs).
   */
  async append(key: string, payload: Uint8Array, written?: () => void): Promise<string> {
    const h = header(key, payload);
    const at = this.end;
    this.end += h.byteLength + payload.byteLength;
    let done = await this.fh.writev([h, payload], at).then((r) => r.bytesWritten);
    // A short vectored write (rare: signals, huge payloads) is finished piece by piece.
    while (done < h.byteLength + payload.byteLength) {
      const [buf, off] = done < h.byteLength ? [h, done] : [payload, done - h.byteLength];
      const { bytesWritten } = await this.fh.write(buf, off, buf.byteLength - off, at + done);
      done += bytesWritten;
    }
    written?.();
    if (this.durable) await this.sync();
    return `${this.file}#${at}`;
  }

  /**
   * Group commit: a record whose write finished while an fdatasync was running waits for the next one, which starts
   * when the running one ends and covers every record written meanwhile.
   */
  private sync(): Promise<void> {
    if (!this.syncing) {
      const s = this.fh.datasync().finally(() => {
        if (this.syncing === s) this.syncing = undefined;
      });
      this.syncing = s;
      return s;
    }
    this.next ??= this.syncing.catch(() => undefined).then(() => {
      this.next = undefined;
      return this.sync();
    });
    return this.next;
  }

  /** Closes the segment once the writes and syncs in flight end (FileHandle.close waits for them). */
  close(): Promise<void> {
    return this.fh.close();
  }
}

/** An open spooled update: its file descriptor and where its payload starts. */
export interface OpenedUpdate {
  fd: number;
  base: number;
}

function readFully(fd: number, into: Uint8Array, at: number, what: string): void {
  for (let got = 0; got < into.byteLength; ) {
    const n = readSync(fd, into, got, into.byteLength - got, at + got);
    if (n === 0) throw new Error(`spooled update ${what} ended at byte ${at + got}`);
    got += n;
  }
}

/** Checks a segment record (framing, both checksums, payload `size`) and returns where its payload starts. */
function checkRecord(fd: number, ref: string, at: number, size: number): number {
  const fixed = Buffer.alloc(FIXED);
  readFully(fd, fixed, at, ref);
  const keyLen = fixed.readUInt32LE(4);
  if (fixed.readUInt32LE(0) !== MAGIC || keyLen > MAX_KEY) throw new Error(`spooled update ${ref} is not a spool record (damaged segment?)`);
  const key = Buffer.alloc(keyLen);
  readFully(fd, key, at + FIXED, ref);
  if (crc32(key, crc32(fixed.subarray(0, 20))) !== fixed.readUInt32LE(20)) throw new Error(`spooled update ${ref}: header checksum mismatch (damaged segment)`);
  const length = Number(fixed.readBigUInt64LE(8));
  if (length !== size) throw new Error(`spooled update ${ref} has ${length} bytes, expected ${size}`);
  const base = at + FIXED + keyLen;
  // The payload's checksum before any of it is used: a fold never takes in a damaged update.
  const buf = Buffer.allocUnsafe(Math.min(size, 1 << 20));
  let crc = 0;
  for (let off = 0; off < size; off += buf.byteLength) {
    const piece = buf.subarray(0, Math.min(buf.byteLength, size - off));
    readFully(fd, piece, base + off, ref);
    crc = crc32(piece, crc);
  }
  if (crc !== fixed.readUInt32LE(16)) throw new Error(`spooled update ${ref}: payload checksum mismatch (damaged segment)`);
  return base;
}

/**
 * Opens a spooled update of exactly `size` bytes, checked before anything is read from it: a segment record
 * ("x.spool#offset") or a whole file (one update per file: the scratch spool's tests, records of older versions).
 */
export function openSpooled(ref: string, size: number): OpenedUpdate {
  const seg = SEGMENT_REF.exec(ref);
  const fd = openSync(seg ? seg[1]! : ref, 'r');
  try {
    if (seg) return { fd, base: checkRecord(fd, ref, Number(seg[2]), size) };
    const actual = fstatSync(fd).size;
    if (actual !== size) throw new Error(`spooled update ${ref} has ${actual} bytes, expected ${size}`);
    return { fd, base: 0 };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** Reads `into.byteLength` bytes of an opened update from byteOffset of its payload. */
export function readSpooled(u: OpenedUpdate, ref: string, into: Uint8Array, byteOffset: number): void {
  readFully(u.fd, into, u.base + byteOffset, ref);
}
