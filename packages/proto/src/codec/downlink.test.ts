import { describe, expect, it } from 'vitest';
import { createRng } from '../rng.js';
import { RejectedUpdateError } from '../errors.js';
import { applyChain, chainEncoding, encodeChain, parsePipeline, publishDelta } from './index.js';

function walk(n: number, seed: number, steps: number): Float32Array[] {
  const rng = createRng(seed);
  const out = [Float32Array.from({ length: n }, () => rng() - 0.5)];
  for (let s = 0; s < steps; s++) out.push(out.at(-1)!.map((v) => v + (rng() - 0.5) * 0.01 * (rng() < 0.05 ? 30 : 1)));
  return out;
}

const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

describe('downlink deltas', () => {
  for (const spec of ['delta+fp16', 'delta+q8', 'delta+q4', 'delta']) {
    it(`${spec}: the published chain reconstructs every version bit-exactly from any held one`, () => {
      const p = parsePipeline(spec, 'downlink');
      const trained = walk(3000, 7, 5);
      // The coordinator publishes each version as previous + decoded delta.
      const published = [trained[0]!];
      const payloads: Uint8Array[] = [];
      for (let v = 1; v < trained.length; v++) {
        const { weights, payload } = publishDelta(published[v - 1]!, trained[v]!, p, createRng(v));
        published.push(weights);
        payloads.push(payload);
        // The published version stays near what was trained (within the codec's precision of the step).
        let worst = 0;
        for (let i = 0; i < weights.length; i++) worst = Math.max(worst, Math.abs(weights[i]! - trained[v]![i]!));
        expect(worst, `${spec} v${v}`).toBeLessThan(spec === 'delta+q4' ? 0.05 : 0.003);
      }
      for (let have = 0; have < published.length - 1; have++) {
        const chain = encodeChain(payloads.slice(have));
        const got = applyChain(published[have]!, chainEncoding(p), chain);
        expect(bits(got), `${spec} from v${have}`).toEqual(bits(published.at(-1)!));
      }
      if (spec === 'delta+fp16') expect(payloads[0]!.byteLength).toBe(2 * 3000);
    });
  }

  it('a corrupted or malformed chain is refused (or, if it decodes, reconstructs other bytes the sha256 check refuses)', () => {
    const p = parsePipeline('delta+fp16', 'downlink');
    const [a, b] = walk(500, 3, 1);
    const { weights, payload } = publishDelta(a!, b!, p);
    const chain = encodeChain([payload]);
    const reason = (f: () => unknown): string => {
      try {
        f();
        return 'accepted';
      } catch (err) {
        return err instanceof RejectedUpdateError ? err.reason : String(err);
      }
    };
    expect(reason(() => applyChain(a!, 'chain:pipe:fp16', chain))).toBe('bad_encoding');
    expect(reason(() => applyChain(a!, chainEncoding(p), chain.subarray(0, chain.length - 1)))).toBe('size_mismatch');
    expect(reason(() => applyChain(a!, chainEncoding(p), encodeChain([])))).toBe('malformed');
    const inf = chain.slice();
    inf[8 + 1] = 0x7c; // the first value becomes +-Infinity
    inf[8] = 0;
    expect(reason(() => applyChain(a!, chainEncoding(p), inf))).toBe('non_finite');
    const flipped = chain.slice();
    flipped[100]! ^= 0x01;
    const got = applyChain(a!, chainEncoding(p), flipped);
    expect(bits(got)).not.toEqual(bits(weights));
    // From another held version the same chain gives other bytes too.
    expect(bits(applyChain(b!, chainEncoding(p), chain))).not.toEqual(bits(weights));
  });
});
