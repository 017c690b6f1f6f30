/** The `site` report section: an aggregator site's agent count and examples, validated like every section. */
import { describe, expect, it } from 'vitest';
import { parseReportBody } from './index.js';

describe('report section site', () => {
  it('parses counts and names the field of a bad one', () => {
    expect(parseReportBody(JSON.stringify({ site: { agents: 3, examples: 30_000 } })).site).toEqual({ agents: 3, examples: 30_000 });
    expect(() => parseReportBody(JSON.stringify({ site: { agents: -1, examples: 0 } }))).toThrow(/body_json\.site\.agents/);
    expect(() => parseReportBody(JSON.stringify({ site: { agents: 1, examples: 1, name: 'x' } }))).toThrow(/body_json\.site/);
  });
});
