import { describe, expect, it } from 'vitest';
import type { UpdateSlot } from '../strategy/aggregate.js';
import { RejectedUpdateError } from '@fedge/proto';
import { StagedUpload, type StagedUploadHooks } from './upload.js';

function slot(n: number): UpdateSlot {
  const view = new Float32Array(n);
  return { numParams: n, view, write: (off, bytes) => new Uint8Array(view.buffer).set(bytes, off) };
}

/** Hooks that record what the upload did to `events`; the round stays open. */
function hooks(events: string[], onComplete: StagedUploadHooks['onComplete']): StagedUploadHooks {
  return {
    onComplete,
    onReject: (reason) => events.push(`rejected ${reason}`),
    onAbort: (reason) => events.push(`aborted ${reason}`),
    release: () => events.push('released'),
    isOpen: () => true,
  };
}

describe('StagedUpload', () => {
  it('a disconnect while the complete payload is being committed neither releases the slot early nor drops the update', async () => {
    const events: string[] = [];
    let finishCommit!: () => void;
    const s = slot(4);
    const up = new StagedUpload(16, s, undefined, hooks(events, async () => {
      events.push('commit started');
      await new Promise<void>((r) => (finishCommit = r));
      events.push('folded');
    }));
    up.write(0, new Uint8Array(16).fill(1));
    const reply = up.commit();
    await Promise.resolve();
    up.abort('disconnected'); // the agent went away right after its last chunk
    expect(events).toEqual(['commit started']);
    finishCommit();
    expect(await reply).toMatchObject({ accepted: true });
    expect(events).toEqual(['commit started', 'folded', 'released']);
  });

  it('a disconnect before the payload is complete aborts and releases at once', () => {
    const events: string[] = [];
    const up = new StagedUpload(16, slot(4), undefined, hooks(events, () => undefined));
    up.write(0, new Uint8Array(8));
    up.abort('disconnected');
    expect(events).toEqual(['released', 'aborted disconnected']);
  });

  it('a commit that rejects the update releases the slot and reports the reason', async () => {
    const events: string[] = [];
    const up = new StagedUpload(16, slot(4), undefined, hooks(events, async () => {
      throw new RejectedUpdateError('non_finite', 'NaN at 3');
    }));
    up.write(0, new Uint8Array(16));
    expect(await up.commit()).toMatchObject({ accepted: false, reason: 'non_finite' });
    up.abort('late disconnect');
    expect(events).toEqual(['released', 'rejected non_finite']);
  });

  it('a commit that frees its slot early (spooled, waiting for the disk) releases it once, before the reply', async () => {
    const events: string[] = [];
    let durable!: () => void;
    const up = new StagedUpload(16, slot(4), undefined, hooks(events, async (_s, free) => {
      events.push('written');
      free();
      free();
      await new Promise<void>((r) => (durable = r));
      events.push('durable');
    }));
    up.write(0, new Uint8Array(16));
    const reply = up.commit();
    await Promise.resolve();
    expect(events).toEqual(['written', 'released']);
    durable();
    expect(await reply).toMatchObject({ accepted: true });
    expect(events).toEqual(['written', 'released', 'durable']);
  });
});
