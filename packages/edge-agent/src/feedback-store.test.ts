import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodePipeline, parsePipeline, pipelineEncoding } from '@fedge/proto';
import { FeedbackStore } from './feedback-store.js';

describe('FeedbackStore', () => {
  it('a new store on the same directory continues with the residual; another run id discards it', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fedge-ef-'));
    const p = parsePipeline('topk:0.1+q4');
    const a = new FeedbackStore(dir);
    const ef = a.get('run-1', 0.5);
    const delta = Float32Array.from({ length: 200 }, (_, i) => Math.sin(i));
    ef.apply(delta);
    ef.update(delta, encodePipeline(delta, p), pipelineEncoding(p));
    a.save('run-1');
    const restarted = new FeedbackStore(dir).get('run-1', 0.5);
    expect(restarted.norm()).toBeGreaterThan(0);
    expect(restarted.norm()).toBeCloseTo(ef.norm(), 5);
    expect(restarted.serialize()).toEqual(ef.serialize());
    const other = new FeedbackStore(dir).get('run-2', 0.5);
    expect(other.norm()).toBe(0);
    expect(existsSync(path.join(dir, 'feedback.bin'))).toBe(false);
  });

  it('a damaged file starts afresh instead of failing the task', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fedge-ef-'));
    const id = Buffer.from('run-1');
    writeFileSync(path.join(dir, 'feedback.bin'), Buffer.concat([Buffer.from([id.length, 0, 0, 0]), id, Buffer.from('garbage')]));
    expect(new FeedbackStore(dir).get('run-1', 0).norm()).toBe(0);
  });
});
