/** Reads and writes models as a tfjs "layers-model" directory (model.json + weights.bin) with atomic writes. */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { bytesToFloat32, float32ToBytes, tensorSpecsSchema, totalParams, ValidationError, type ModelBlob } from '@fedge/proto';

const MODEL_JSON = 'model.json';
const WEIGHTS_BIN = 'weights.bin';

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function writeAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/**
 * Writes weights.bin then model.json, each via tmp file + rename, so readers never see a torn file. The
 * weights' sha256 in model.json ("fedge" key, ignored by tfjs) lets loadModelDir detect the brief window in
 * which an overwrite has replaced weights.bin but not yet model.json. Returns the model.json path.
 */
export async function saveModelDir(blob: ModelBlob, dir: string): Promise<string> {
  const n = totalParams(blob.tensors);
  if (blob.weights.length !== n) throw new ValidationError(`weights: tensors describe ${n} values but the buffer holds ${blob.weights.length}`);
  await mkdir(dir, { recursive: true });
  const bytes = float32ToBytes(blob.weights);
  const modelJson = {
    format: 'layers-model',
    generatedBy: 'fedge',
    convertedBy: null,
    modelTopology: blob.topology,
    weightsManifest: [{ paths: [WEIGHTS_BIN], weights: blob.tensors }],
    fedge: { weightsSha256: sha256(bytes), params: n },
  };
  await writeAtomic(join(dir, WEIGHTS_BIN), bytes);
  const path = join(dir, MODEL_JSON);
  await writeAtomic(path, JSON.stringify(modelJson));
  return resolve(path);
}

/** Accepts a directory or a model.json path; reads all weight shards in manifest order. */
export async function loadModelDir(pathToModelJsonOrDir: string): Promise<ModelBlob> {
  const jsonPath = (await stat(pathToModelJsonOrDir)).isDirectory() ? join(pathToModelJsonOrDir, MODEL_JSON) : pathToModelJsonOrDir;
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(await readFile(jsonPath, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new ValidationError(`${jsonPath}: not valid JSON: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (typeof doc['modelTopology'] !== 'object' || doc['modelTopology'] === null) throw new ValidationError(`${jsonPath}: missing modelTopology`);
  const manifest = doc['weightsManifest'];
  if (!Array.isArray(manifest) || manifest.length === 0) throw new ValidationError(`${jsonPath}: missing weightsManifest`);
  const specs = [];
  const chunks: Buffer[] = [];
  for (const [g, group] of manifest.entries()) {
    const parsed = tensorSpecsSchema.safeParse((group as { weights?: unknown }).weights);
    if (!parsed.success) throw new ValidationError(`${jsonPath}: weightsManifest[${g}].weights: ${parsed.error.issues[0]?.message ?? 'invalid'} (only float32 is supported)`);
    specs.push(...parsed.data);
    const paths = (group as { paths?: unknown }).paths;
    if (!Array.isArray(paths) || !paths.every((p) => typeof p === 'string' && !p.includes('..')))
      throw new ValidationError(`${jsonPath}: weightsManifest[${g}].paths must be relative file names`);
    for (const p of paths as string[]) chunks.push(await readFile(join(dirname(jsonPath), p)));
  }
  const bytes = new Uint8Array(Buffer.concat(chunks));
  const n = totalParams(specs);
  if (bytes.byteLength !== n * 4) throw new ValidationError(`${jsonPath}: weights hold ${bytes.byteLength} bytes, tensors need ${n * 4}`);
  const want = (doc['fedge'] as { weightsSha256?: unknown } | undefined)?.weightsSha256;
  if (typeof want === 'string' && want !== sha256(bytes))
    throw new ValidationError(`${jsonPath}: weights checksum mismatch (concurrent overwrite or corruption); retry`);
  return { topology: doc['modelTopology'], tensors: specs, weights: bytesToFloat32(bytes) };
}
