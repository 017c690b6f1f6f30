/** The error codes are one list: every `E_...` code raised anywhere in the sources is in ERROR_CODES. */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES, isErrorCode } from './errors.js';

const packages = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

describe('ERROR_CODES', () => {
  it('lists every code the sources raise', () => {
    const used = new Map<string, string>();
    for (const pkg of readdirSync(packages)) {
      const src = path.join(packages, pkg, 'src');
      try {
        statSync(src);
      } catch {
        continue;
      }
      for (const f of sources(src))
        for (const m of readFileSync(f, 'utf8').matchAll(/['"`](E_[A-Z][A-Z_]+)['"`]/g)) used.set(m[1]!, path.relative(packages, f));
    }
    expect(used.size).toBeGreaterThan(10);
    const missing = [...used].filter(([code]) => !isErrorCode(code)).map(([code, f]) => `${code} (${f})`);
    expect(missing, 'add these to ERROR_CODES in packages/proto/src/errors.ts').toEqual([]);
  });

  it('has a meaning for each code and recognises only listed codes', () => {
    for (const [code, meaning] of Object.entries(ERROR_CODES)) {
      expect(code).toMatch(/^E_[A-Z_]+$/);
      expect(meaning.length).toBeGreaterThan(10);
    }
    expect(isErrorCode('E_STORAGE')).toBe(true);
    expect(isErrorCode('E_NOPE')).toBe(false);
    expect(isErrorCode('toString')).toBe(false);
  });
});
