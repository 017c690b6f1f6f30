/**
 * Reads an ONNX model's metadata_props (ModelProto field 14) and fedge's input/output column mapping from it.
 * onnxruntime-node does not expose custom metadata, and @fedge/ml's full decoder would load tfjs into the standalone
 * server and parse every weight; this walks only the top-level fields, skipping the graph by its length.
 */

/** Protobuf wire-format reader over the top level of a message; enough for string fields and skipping the rest. */
class Reader {
  pos = 0;
  constructor(private readonly b: Uint8Array, private readonly end = b.length) {}
  more(): boolean {
    return this.pos < this.end;
  }
  varint(): number {
    let v = 0;
    let mul = 1;
    for (;;) {
      if (this.pos >= this.end) throw new Error('truncated varint');
      const byte = this.b[this.pos++]!;
      v += (byte & 0x7f) * mul; // exact below 2^53, which every length and tag here is
      if (byte < 0x80) return v;
      mul *= 128;
    }
  }
  bytes(): Uint8Array {
    const n = this.varint();
    if (this.pos + n > this.end) throw new Error('truncated field');
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
}

const MODEL_METADATA_PROPS = 14;

/** metadata_props as a record; undefined if the bytes are not a well-formed ModelProto at the top level. */
export function readOnnxMetadata(bytes: Uint8Array): Record<string, string> | undefined {
  const utf8 = new TextDecoder();
  const out: Record<string, string> = {};
  try {
    const r = new Reader(bytes);
    while (r.more()) {
      const tag = r.varint();
      const field = Math.floor(tag / 8);
      const wire = tag % 8;
      if (field !== MODEL_METADATA_PROPS || wire !== 2) {
        r.skip(wire);
        continue;
      }
      const entry = r.bytes();
      const e = new Reader(entry);
      let key = '';
      let value = '';
      while (e.more()) {
        const t = e.varint();
        if (t === (1 << 3) + 2) key = utf8.decode(e.bytes());
        else if (t === (2 << 3) + 2) value = utf8.decode(e.bytes());
        else e.skip(t % 8);
      }
      out[key] = value;
    }
  } catch {
    return undefined;
  }
  return out;
}

/** What fedge.inputs / fedge.outputs say about one tensor (see @fedge/ml onnx/preprocess.ts and outputs.ts). */
export interface ColumnInfo {
  name: string;
  kind: string;
  columns?: string[];
  values?: string[];
  positive?: string;
}

/** Parses a fedge.inputs / fedge.outputs value; anything malformed is ignored (the model still serves). */
export function parseColumns(json: string | undefined): Map<string, ColumnInfo> {
  const m = new Map<string, ColumnInfo>();
  if (json === undefined) return m;
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    return m;
  }
  if (!Array.isArray(doc)) return m;
  const strings = (v: unknown): string[] | undefined => (Array.isArray(v) && v.every((s) => typeof s === 'string') ? (v as string[]) : undefined);
  for (const c of doc as Record<string, unknown>[]) {
    if (!c || typeof c.name !== 'string' || typeof c.kind !== 'string') continue;
    const columns = strings(c.columns);
    const values = strings(c.values);
    m.set(c.name, {
      name: c.name,
      kind: c.kind,
      ...(columns ? { columns } : {}),
      ...(values ? { values } : {}),
      ...(typeof c.positive === 'string' ? { positive: c.positive } : {}),
    });
  }
  return m;
}
