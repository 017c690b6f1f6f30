/**
 * Reads and writes models as a tfjs "layers-model" directory (model.json + weights.bin, and preprocessing.json with
 * the run's task and preprocessing when it has them) with atomic writes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import {
  bytesToFloat32, float32ToBytes, preprocessingSchema, resolvedTaskSchema, tensorSpecsSchema, totalParams, ValidationError,
  type ModelBlob, type Preprocessing, type ResolvedTask,
} from '@fedge/proto';

const MODEL_JSON = 'model.json';
const WEIGHTS_BIN = 'weights.bin';
export const PREPROCESSING_JSON = 'preprocessing.json';

/** What a model needs besides its weights to be used on raw data: the task it was trained for and its preprocessing. */
export interface ModelDirMeta { task?: ResolvedTask; preprocessing?: Preprocessing }

/** Validates a parsed preprocessing.json; returns the problem (field path and message) or the value. */
function parseMeta(doc: unknown): { error: string } | { meta: ModelDirMeta } {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return { error: 'expected an object with task and/or preprocessing' };
  const extra = Object.keys(doc).find((k) => k !== 'task' && k !== 'preprocessing');
  if (extra !== undefined) return { error: `unknown key "${extra}" (task and preprocessing only)` };
  const d = doc as { task?: unknown; preprocessing?: unknown };
  const meta: ModelDirMeta = {};
  if (d.task !== undefined) {
    const r = resolvedTaskSchema.safeParse(d.task);
    if (!r.success) return { error: issue('task', r.error.issues) };
    meta.task = r.data;
  }
  if (d.preprocessing !== undefined) {
    const r = preprocessingSchema.safeParse(d.preprocessing);
    if (!r.success) return { error: issue('preprocessing', r.error.issues) };
    meta.preprocessing = r.data;
  }
  return { meta };
}

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
 * Writes weights.bin, preprocessing.json (when `meta` has a task or preprocessing; a stale one is removed otherwise)
 * then model.json, each via tmp file + rename, so readers never see a torn file. model.json is written last and
 * holds the sha256 of the others ("fedge" key, ignored by tfjs), so loadModelDir and loadModelDirMeta detect the
 * brief window in which an overwrite has replaced them but not yet model.json. Returns the model.json path.
 */
export async function saveModelDir(blob: ModelBlob, dir: string, meta?: ModelDirMeta): Promise<string> {
  const n = totalParams(blob.tensors);
  if (blob.weights.length !== n) throw new ValidationError(`weights: tensors describe ${n} values but the buffer holds ${blob.weights.length}`);
  let metaText: string | undefined;
  if (meta && (meta.task !== undefined || meta.preprocessing !== undefined)) {
    // Validated on the way out too: a file this writes must load.
    const parsed = parseMeta(meta);
    if ('error' in parsed) throw new ValidationError(`${PREPROCESSING_JSON}: ${parsed.error}`);
    metaText = JSON.stringify(parsed.meta, null, 2);
  }
  await mkdir(dir, { recursive: true });
  const bytes = float32ToBytes(blob.weights);
  const modelJson = {
    format: 'layers-model',
    generatedBy: 'fedge',
    convertedBy: null,
    modelTopology: blob.topology,
    weightsManifest: [{ paths: [WEIGHTS_BIN], weights: blob.tensors }],
    fedge: { weightsSha256: sha256(bytes), params: n, ...(metaText !== undefined ? { preprocessingSha256: sha256(Buffer.from(metaText)) } : {}) },
  };
  await writeAtomic(join(dir, WEIGHTS_BIN), bytes);
  if (metaText !== undefined) await writeAtomic(join(dir, PREPROCESSING_JSON), metaText);
  else await unlink(join(dir, PREPROCESSING_JSON)).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
  const path = join(dir, MODEL_JSON);
  await writeAtomic(path, JSON.stringify(modelJson));
  return resolve(path);
}

function issue(field: string, issues: readonly { path: readonly PropertyKey[]; message: string }[]): string {
  const i = issues[0];
  return i ? `${[field, ...i.path.map(String)].join('.')}: ${i.message}` : `${field}: invalid`;
}

async function modelJsonPath(pathToModelJsonOrDir: string): Promise<string> {
  return (await stat(pathToModelJsonOrDir)).isDirectory() ? join(pathToModelJsonOrDir, MODEL_JSON) : pathToModelJsonOrDir;
}

/**
 * The task and preprocessing saved beside a model (preprocessing.json next to model.json), or undefined when there
 * is none (models saved before runs had preprocessing, MNIST). A corrupt file is a ValidationError naming it.
 */
export async function loadModelDirMeta(pathToModelJsonOrDir: string): Promise<ModelDirMeta | undefined> {
  const jsonPath = await modelJsonPath(pathToModelJsonOrDir);
  const path = join(dirname(jsonPath), PREPROCESSING_JSON);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ValidationError(`${path}: not valid JSON: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const parsed = parseMeta(doc);
  if ('error' in parsed) throw new ValidationError(`${path}: ${parsed.error} (not a task and preprocessing as fedge saves them; save the model again or fix the file)`);
  // Checked only when model.json names a checksum: a hand-written preprocessing.json beside a tfjs model is fine.
  const want = await readFile(jsonPath, 'utf8').then((t) => (JSON.parse(t) as { fedge?: { preprocessingSha256?: unknown } }).fedge?.preprocessingSha256, () => undefined);
  if (typeof want === 'string' && want !== sha256(Buffer.from(text)))
    throw new ValidationError(`${path}: checksum mismatch with ${jsonPath} (concurrent overwrite or corruption); retry`);
  return parsed.meta;
}

/** Accepts a directory or a model.json path; reads all weight shards in manifest order. */
export async function loadModelDir(pathToModelJsonOrDir: string): Promise<ModelBlob> {
  const jsonPath = await modelJsonPath(pathToModelJsonOrDir);
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
