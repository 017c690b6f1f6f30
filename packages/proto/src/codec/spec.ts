/**
 * Compression specs: a pipeline written as stages joined by "+", e.g. "topk:0.001+q8" (keep the 0.1% largest values,
 * then quantize them to 8 stochastic bits) or "delta+fp16" (downlink: the difference from the agent's model, as
 * half floats). Grammar: [delta] [topk:FRACTION] [VALUES], VALUES one of VALUE_CODECS (float32 when absent; "none" is
 * float32). Parsed with zod once, into a canonical string and a Pipeline; errors name the option they came from.
 */
import { z } from 'zod';
import { ValidationError } from '../errors.js';
import { VALUE_CODECS } from './values.js';

/** Top-k at most keeps half the values: above it the index section and values outgrow float32. */
export const TOPK_FRACTION_MAX = 0.5;

export type Direction = 'uplink' | 'downlink';

export interface Pipeline {
  /** Canonical spec ("float32", "topk:0.001+q8", "delta+fp16"). */
  spec: string;
  /** Downlink: the payload is the new model minus the agent's held version. */
  delta: boolean;
  /** Fraction of values kept by top-k; absent: dense. */
  topk?: number;
  /** VALUE_CODECS name applied to the (kept) values. */
  values: string;
}

const STAGES = (): string => `delta, topk:FRACTION, ${Object.keys(VALUE_CODECS).join(', ')} (or none)`;

/** A zod schema turning a spec string into a Pipeline; messages start with `option` (e.g. "compression.uplink"). */
export function pipelineSchema(option: string, direction: Direction) {
  return z.string({ message: `${option}: must be a string such as "topk:0.01+q8"` }).transform((raw, ctx): Pipeline => {
    const fail = (msg: string): never => {
      ctx.addIssue({ code: 'custom', message: `${option}: ${msg}` });
      return z.NEVER;
    };
    const text = raw.trim();
    if (!text) return fail(`empty; use float32 (none) or stages such as topk:0.01+q8 (stages: ${STAGES()})`);
    const p: { delta: boolean; topk?: number; values?: string } = { delta: false };
    let order = 0; // delta 1, topk 2, values 3: each at most once, in this order
    for (const token of text.split('+').map((t) => t.trim())) {
      const [name, arg, extra] = token.split(':');
      const misplaced = (rank: number, what: string): boolean => {
        if (rank > order) {
          order = rank;
          return false;
        }
        fail(`"${token}" in "${text}": ${what} must come ${rank === 1 ? 'first' : rank === 2 ? 'before the value codec' : 'last'} and at most once (order: delta, topk, values)`);
        return true;
      };
      if (extra !== undefined) return fail(`"${token}": one ":" at most`);
      if (name === 'delta') {
        if (arg !== undefined) return fail('"delta" takes no argument');
        if (direction === 'uplink') return fail('"delta" is for the downlink (updates are already deltas); drop it');
        if (misplaced(1, 'delta')) return z.NEVER;
        p.delta = true;
      } else if (name === 'topk') {
        if (misplaced(2, 'topk')) return z.NEVER;
        const f = Number(arg);
        if (arg === undefined || arg === '' || !Number.isFinite(f) || f <= 0 || f > TOPK_FRACTION_MAX)
          return fail(`"${token}": topk needs a fraction in (0, ${TOPK_FRACTION_MAX}], e.g. topk:0.01`);
        p.topk = f;
      } else {
        const v = name === 'none' ? 'float32' : name!;
        if (!VALUE_CODECS[v]) return fail(`unknown stage "${token}" in "${text}"; stages: ${STAGES()}`);
        if (arg !== undefined) return fail(`"${name}" takes no argument`);
        if (misplaced(3, 'the value codec')) return z.NEVER;
        p.values = v;
      }
    }
    if (direction === 'downlink' && !p.delta)
      return fail(`"${text}": a downlink pipeline sends the difference from the agent's model, so it starts with delta (delta+fp16, delta+q8); leave the option out for full float32 models`);
    if (p.delta && direction === 'downlink' && p.topk !== undefined)
      return fail('topk on the downlink would drop parts of the model the agent trains from; use delta+fp16 or delta+q8');
    const values = p.values ?? 'float32';
    const parts = [...(p.delta ? ['delta'] : []), ...(p.topk !== undefined ? [`topk:${p.topk}`] : []), ...(values !== 'float32' || (!p.delta && p.topk === undefined) ? [values] : [])];
    return { spec: parts.join('+'), delta: p.delta, ...(p.topk !== undefined ? { topk: p.topk } : {}), values };
  });
}

const cache = new Map<string, Pipeline>();

/** Parses `spec` (memoized); throws ValidationError whose message names `option`. */
export function parsePipeline(spec: string, direction: Direction = 'uplink', option = `compression.${direction}`): Pipeline {
  const key = `${direction}\u0000${option}\u0000${spec}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const r = pipelineSchema(option, direction).safeParse(spec);
  if (!r.success) throw new ValidationError(r.error.issues.map((i) => i.message).join('; '));
  if (cache.size > 1000) cache.clear();
  cache.set(key, r.data);
  return r.data;
}

/** The pipeline with top-k at a different density (warm-up). */
export function withDensity(p: Pipeline, fraction: number): Pipeline {
  if (p.topk === undefined) return p;
  const f = Math.min(TOPK_FRACTION_MAX, Math.max(p.topk, Number(fraction.toPrecision(3))));
  return parsePipeline(p.spec.replace(/topk:[^+]+/, `topk:${f}`), p.delta ? 'downlink' : 'uplink', 'warm-up density');
}
