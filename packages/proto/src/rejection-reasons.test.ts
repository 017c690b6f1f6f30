/** agent.proto's comment and the README name exactly the rejection reasons of REJECTION_REASONS: one list, three places. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { REJECTION_REASON_NAMES } from './rejection-reasons.js';

const read = (rel: string): string => readFileSync(new URL(rel, import.meta.url), 'utf8');
const sorted = (xs: Iterable<string>): string[] => [...xs].sort();

describe('rejection reasons', () => {
  it('agent.proto lists exactly REJECTION_REASONS above SubmitReply.reason', () => {
    const lines = read('../proto/agent.proto').split('\n').filter((l) => /^\s*\/\/ reasons:/.test(l));
    const named = lines.flatMap((l) => l.replace(/^\s*\/\/ reasons:/, '').split(',').map((x) => x.trim()).filter(Boolean));
    expect(sorted(named)).toEqual(sorted(REJECTION_REASON_NAMES));
    expect(new Set(named).size).toBe(named.length);
  });

  it('the README table lists exactly REJECTION_REASONS', () => {
    const readme = read('../../../README.md');
    const section = readme.slice(readme.indexOf('### Why an update is rejected'));
    expect(section.length).toBeLessThan(readme.length);
    const table = section.slice(0, section.indexOf('\n\n', section.indexOf('| reason |')));
    const named = [...table.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]!);
    expect(sorted(named)).toEqual(sorted(REJECTION_REASON_NAMES));
  });
});
