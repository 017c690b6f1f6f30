/** compression.uplink/downlink pipelines, momentum and warm-up: the run config, the flags and what train tasks carry. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { parseRunConfig } from './run-config.js';
import { expectedEncoding, trainCodecFields, warmupFraction } from './compression.js';
import { addRunFlags, buildRunConfig, type RunFlags, type TaskFlags } from '../cli/run-flags.js';

function build(args: string[]): Record<string, unknown> {
  const cmd = addRunFlags(new Command('start').option('--config <file>')).exitOverride().configureOutput({ writeErr: () => {} });
  cmd.parse(args, { from: 'user' });
  return buildRunConfig(cmd.opts<RunFlags & TaskFlags>());
}

describe('compression config', () => {
  it('takes uplink and downlink pipelines in canonical form; train tasks carry the uplink and its encoding', () => {
    const c = parseRunConfig({ compression: { uplink: 'topk:0.0010 + q8', downlink: 'delta+fp16' } });
    expect(c.compression).toMatchObject({ uplink: 'topk:0.001+q8', downlink: 'delta+fp16', errorFeedback: true });
    const t = trainCodecFields(c.compression, 3);
    expect(t).toEqual({ codec: 'topk:0.001+q8', errorFeedback: true });
    expect(expectedEncoding(t)).toBe('pipe:topk:0.001+q8');
    // today's configs keep their wire form
    expect(trainCodecFields(parseRunConfig({ compression: { codec: 'topk', topkFraction: 0.05 } }).compression, 1)).toEqual({ codec: 'topk', topkFraction: 0.05, errorFeedback: true });
    expect(expectedEncoding({ codec: 'int8' })).toBe('int8-delta');
    expect(expectedEncoding({})).toBe('float32-delta');
    expect(expectedEncoding(trainCodecFields(parseRunConfig({ compression: { uplink: 'int8' } }).compression, 1))).toBe('int8-delta');
    expect(trainCodecFields(parseRunConfig({ compression: { uplink: 'none' } }).compression, 1)).toEqual({});
  });

  it('warm-up ramps the top-k density from 25% down to the fraction; momentum rides along', () => {
    const c = parseRunConfig({ compression: { uplink: 'topk:0.001+q8', momentum: 0.9, warmupRounds: 4 } }).compression;
    const codecs = [1, 2, 3, 4, 5, 6].map((r) => trainCodecFields(c, r).codec);
    expect(codecs).toEqual(['topk:0.251+q8', 'topk:0.0631+q8', 'topk:0.0158+q8', 'topk:0.00398+q8', 'topk:0.001+q8', 'topk:0.001+q8']);
    expect(trainCodecFields(c, 1).efMomentum).toBe(0.9);
    expect(warmupFraction(0.001, 0, 1)).toBe(0.001);
    for (let r = 1; r < 20; r++) expect(warmupFraction(0.01, 8, r + 1)).toBeLessThanOrEqual(warmupFraction(0.01, 8, r));
  });

  it('refuses bad specs and combinations with the option named', () => {
    expect(() => parseRunConfig({ compression: { uplink: 'topk:0.01+q3' } })).toThrow(/compression.uplink: unknown stage "q3"/);
    expect(() => parseRunConfig({ compression: { uplink: 'delta+fp16' } })).toThrow(/compression.uplink: "delta" is for the downlink/);
    expect(() => parseRunConfig({ compression: { downlink: 'fp16' } })).toThrow(/compression.downlink: "fp16": a downlink pipeline .* starts with delta/);
    expect(() => parseRunConfig({ compression: { codec: 'int8', uplink: 'q4' } })).toThrow(/compression.codec int8 and compression.uplink "q4": give one/);
    expect(() => parseRunConfig({ compression: { uplink: 'q4', momentum: 0.9, errorFeedback: false } })).toThrow(/compression.momentum: momentum correction accumulates/);
    expect(() => parseRunConfig({ compression: { uplink: 'q4', warmupRounds: 3 } })).toThrow(/compression.warmupRounds: .* needs an uplink with topk/);
    expect(() => parseRunConfig({ compression: { uplink: 'q8', momentum: 1 } })).toThrow(/compression.momentum: must be in \[0, 1\)/);
    expect(() => parseRunConfig({ strategy: { name: 'scaffold' }, compression: { uplink: 'topk:0.01+q8' } })).toThrow(/scaffold cannot run with compression.codec topk:0.01\+q8/);
  });

  it('--compression SPEC and --downlink-compression SPEC; today\'s flag forms unchanged', () => {
    expect(build(['--compression', 'topk:0.001+q8', '--downlink-compression', 'delta+fp16']).compression).toEqual({ uplink: 'topk:0.001+q8', downlink: 'delta+fp16' });
    expect(build(['--compression', 'topk:0.05']).compression).toEqual({ codec: 'topk', topkFraction: 0.05 });
    expect(build(['--compression', 'int8']).compression).toEqual({ codec: 'int8' });
    expect(() => build(['--compression', 'topk:0.01+q9'])).toThrow(/--compression: unknown stage "q9"/);
    expect(() => build(['--downlink-compression', 'delta+topk:0.1'])).toThrow(/--downlink-compression: topk on the downlink/);
    // the flag replaces a file's uplink in either form
    const f = path.join(mkdtempSync(path.join(tmpdir(), 'fedge-compression-')), 'run.json');
    writeFileSync(f, JSON.stringify({ compression: { codec: 'topk', topkFraction: 0.2, momentum: 0.5 } }));
    const cfg = build(['--config', f, '--compression', 'q4']);
    expect(cfg.compression).toEqual({ momentum: 0.5, uplink: 'q4' });
    expect(parseRunConfig(cfg).compression.uplink).toBe('q4');
  });
});
