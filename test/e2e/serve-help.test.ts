/** `fedge serve --help` says what a restart does to a round in progress (issue 11, bug 6: it said the round restarts). */
import { describe, expect, it } from 'vitest';
import { fedge } from './harness.js';

describe('fedge serve --help', () => {
  it('says an interrupted round keeps its accepted updates and does not ask their agents again', async () => {
    const r = await fedge(['serve', '--help']);
    expect(r.code).toBe(0);
    const text = r.stdout.replace(/\s+/g, ' ');
    expect(text).toMatch(/A round in progress when the process died continues: the updates it had accepted are kept and their agents are not asked again/);
    expect(text).not.toMatch(/from its beginning/);
  });
});
