import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame } from './mqtt-frame.js';
import { z } from 'zod';
import { joinRequestSchema, parseJsonField, parseOrThrow } from './schemas.js';

describe('formatZodError', () => {
  it('clips a peer-chosen record key, so the error still fits an MQTT error frame an agent can decode', () => {
    const big = 'x'.repeat(70_000);
    const join = { name: 'n', agentId: '', joinToken: big, backend: '', agentVersion: '', numExamples: 1, labels: { [big]: big } };
    let message = '';
    try {
      parseOrThrow(joinRequestSchema, join, 'join');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^join\.joinToken: /);
    expect(message).toContain('join.labels.xxxx');
    expect(message).toContain('(70000 chars)');
    expect(message.length).toBeLessThan(1500);
    const frame = decodeFrame(encodeFrame({ t: 'error', id: 'j1', code: 'E_VALIDATION', message }));
    expect(frame.env.message).toBe(message);
  });
});

describe('parseJsonField', () => {
  it('names the field: not JSON, or where it does not match, then the hint', () => {
    const schema = z.object({ n: z.number() });
    expect(parseJsonField(schema, '{"n":1}', 'x_json')).toEqual({ n: 1 });
    expect(() => parseJsonField(schema, '{', 'x_json')).toThrow(/^x_json: not valid JSON \(/);
    expect(() => parseJsonField(schema, '{"n":"1"}', 'x_json', '; older agent?')).toThrow(/^x_json: n: .*; older agent\?$/);
  });
});
