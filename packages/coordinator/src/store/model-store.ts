/**
 * Content-addressed model files: DATA_DIR/models/<sha256>.json (topology and tensor specs) and
 * DATA_DIR/models/<sha256>.bin (the float32 weights, little-endian, in tensor order). The name is the model's
 * digest as agents verify it (@fedge/proto modelDigest over topology, tensor specs and weights), so a file can
 * never hold anything but the model it is named after: every read recomputes the digest.
 *
 * Writes are atomic: each file goes to a temporary name in the same directory, is fsynced, renamed into place,
 * and the directory is fsynced. The header is written before the weights, so a `.bin` that exists is complete.
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { open, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { FedgeError, blobDigest, modelDigest, type ModelBlob, type TensorSpec } from '@fedge/proto';

const SHA256 = /^[0-9a-f]{64}$/;
const HEADER_FORMAT = 'fedge-model/1';

interface Header {
  format: typeof HEADER_FORMAT;
  sha256: string;
  topology: unknown;
  tensors: TensorSpec[];
  byteLength: number;
}

/** Writes `data` to `file` atomically and durably: temp file + fsync + rename + directory fsync. */
export async function writeFileAtomic(file: string, data: Uint8Array | string): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fh = await open(tmp, 'wx', 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fsyncDir(dir);
}

export async function fsyncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

export class ModelStore {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  /** Removes temporary files left by a write that never finished (call only while holding the data directory). */
  removeTemporaryFiles(): number {
    let n = 0;
    for (const f of readdirSync(this.dir)) {
      if (f.startsWith('.') && f.includes('.tmp-')) {
        rmSync(path.join(this.dir, f), { force: true });
        n++;
      }
    }
    return n;
  }

  paths(sha256: string): { header: string; weights: string } {
    if (!SHA256.test(sha256)) throw new FedgeError('E_VALIDATION', `not a sha256 digest: "${sha256}"`);
    return { header: path.join(this.dir, `${sha256}.json`), weights: path.join(this.dir, `${sha256}.bin`) };
  }

  async has(sha256: string): Promise<boolean> {
    return exists(this.paths(sha256).weights);
  }

  /** Stores `blob` under its digest, which must equal `sha256`; a model already stored is left as it is. Returns the weight bytes. */
  async put(sha256: string, blob: ModelBlob): Promise<number> {
    const p = this.paths(sha256);
    const actual = blobDigest(blob);
    if (actual !== sha256) throw new FedgeError('E_MODEL_DIGEST', `model digest is ${actual}, not ${sha256} as given`);
    const bytes = new Uint8Array(blob.weights.buffer, blob.weights.byteOffset, blob.weights.byteLength);
    if (await exists(p.weights)) return bytes.byteLength;
    const header: Header = { format: HEADER_FORMAT, sha256, topology: blob.topology, tensors: blob.tensors, byteLength: bytes.byteLength };
    await writeFileAtomic(p.header, JSON.stringify(header));
    await writeFileAtomic(p.weights, bytes);
    return bytes.byteLength;
  }

  /**
   * Removes the model's files (weights first: a header without weights reads as "not stored"); returns the weight
   * bytes freed, 0 when it was not stored. Idempotent, so a removal interrupted by a crash is finished by the next.
   */
  async delete(sha256: string): Promise<number> {
    const p = this.paths(sha256);
    let bytes = 0;
    try {
      bytes = (await stat(p.weights)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await rm(p.weights, { force: true });
    await rm(p.header, { force: true });
    await fsyncDir(this.dir);
    return bytes;
  }

  /** The model named `sha256`, or undefined when it was never stored. Throws E_MODEL_CORRUPT when the files do not hash to their name. */
  async get(sha256: string): Promise<ModelBlob | undefined> {
    const p = this.paths(sha256);
    let raw: Buffer;
    try {
      raw = await readFile(p.weights);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    let header: Header;
    try {
      header = JSON.parse(await readFile(p.header, 'utf8')) as Header;
    } catch (err) {
      throw new FedgeError('E_MODEL_CORRUPT', `model ${sha256}: header ${p.header} is missing or unreadable: ${(err as Error).message}`, { cause: err });
    }
    if (header.format !== HEADER_FORMAT || !Array.isArray(header.tensors)) {
      throw new FedgeError('E_MODEL_CORRUPT', `model ${sha256}: ${p.header} is not a ${HEADER_FORMAT} header`);
    }
    if (raw.byteLength !== header.byteLength || raw.byteLength % 4 !== 0) {
      throw new FedgeError('E_MODEL_CORRUPT', `model ${sha256}: ${p.weights} has ${raw.byteLength} bytes, the header says ${header.byteLength}`);
    }
    const actual = modelDigest(JSON.stringify(header.topology), header.tensors, raw);
    if (actual !== sha256) {
      throw new FedgeError('E_MODEL_CORRUPT', `model ${sha256}: stored files hash to ${actual}; ${p.weights} or its header is damaged`);
    }
    // Float32Array needs 4-byte alignment; small reads may come from Node's shared buffer pool at any offset.
    const weights = raw.byteOffset % 4 === 0
      ? new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4)
      : new Float32Array(new Uint8Array(raw).buffer);
    return { topology: header.topology, tensors: header.tensors, weights };
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
