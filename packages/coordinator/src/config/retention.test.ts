import { describe, expect, it } from 'vitest';
import { parseRunConfig } from './run-config.js';
import { parseKeepLast } from './retention.js';

describe('retention config', () => {
  it('is absent by default (the coordinator default applies) and parsed once by the run config schema', () => {
    expect(parseRunConfig({}).retention).toBeUndefined();
    expect(parseRunConfig({ retention: { keepLast: 3 } }).retention).toEqual({ keepLast: 3 });
    expect(parseRunConfig({ retention: { keepLast: 'all' } }).retention).toEqual({ keepLast: 'all' });
  });
  it('refuses nonsense naming the field and the fix', () => {
    expect(() => parseRunConfig({ retention: { keepLast: 0 } })).toThrow(/retention.keepLast: use a whole number of versions >= 1, or "all"/);
    expect(() => parseRunConfig({ retention: { keepLast: 2.5 } })).toThrow(/retention.keepLast/);
    expect(() => parseRunConfig({ retention: { keep: 2 } })).toThrow(/retention/);
  });
  it('parses --keep-versions / --keep-last values', () => {
    expect(parseKeepLast('5', '--keep-last')).toBe(5);
    expect(parseKeepLast('all', '--keep-last')).toBe('all');
    for (const bad of ['0', '-1', '1.5', '', 'some', '5x']) expect(() => parseKeepLast(bad, '--keep-versions')).toThrow(/--keep-versions must be a whole number of versions >= 1 or "all"/);
  });
});
