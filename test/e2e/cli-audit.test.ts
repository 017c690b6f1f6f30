/**
 * CLI audit (issue 18): walks fedge's command table (the one --help and `fedge completion` read) and checks every
 * command has an example in its --help, and every command that prints takes --format json and prints valid JSON,
 * run for real against a coordinator with an agent. A new command fails here until it is given an invocation below.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { Command } from 'commander';
import { FEDGE, FEDGE_AGENT, fedge, killAll, lastJson, startAgent, startCoordinator, startProcess } from './harness.js';

afterAll(() => killAll());

const { createProgram } = (await import(pathToFileURL(path.join(path.dirname(FEDGE), 'program.js')).href)) as { createProgram(): Command };

/** Leaf commands as argv prefixes, e.g. ['run', 'export']; aliases listed separately. */
function leaves(cmd: Command, prefix: string[] = []): { path: string[]; cmd: Command }[] {
  return cmd.commands.flatMap((c) => (c.commands.length ? leaves(c, [...prefix, c.name()]) : [{ path: [...prefix, c.name()], cmd: c }]));
}

const program = createProgram();
const all = leaves(program);
/** Commands whose output is not a report: the completion script is shell code by nature. */
const NOT_JSON: Record<string, string> = { completion: 'prints a shell script' };

describe('fedge command table', () => {
  it('every command has --help examples', { timeout: 180_000 }, async () => {
    const missing: string[] = [];
    for (const { path: p } of [{ path: [] as string[] }, ...all]) {
      const r = await fedge([...p, '--help']);
      expect(r.code, p.join(' ')).toBe(0);
      // An "Examples:" block whose first line is a command line (fedge ..., source <(fedge ...), VAR=... fedge ...).
      if (!/Examples:\n\s+\S*.*\bfedge\b/.test(r.stdout)) missing.push(`fedge ${p.join(' ')}`);
    }
    expect(missing).toEqual([]);
  });

  it('every command that prints takes --format json, and every list command answers to ls', () => {
    const noFormat = all.filter(({ path: p, cmd }) => !NOT_JSON[p.join(' ')] && !cmd.options.some((o) => o.long === '--format')).map(({ path: p }) => p.join(' '));
    expect(noFormat).toEqual([]);
    const lists = all.filter(({ cmd }) => cmd.name() === 'list');
    expect(lists.length).toBeGreaterThanOrEqual(3);
    for (const { path: p, cmd } of lists) expect(cmd.aliases(), p.join(' ')).toContain('ls');
  });

  it('every command that talks to the coordinator takes --tls-ca, --tls-cert and --tls-key', () => {
    const partial = all
      .filter(({ cmd }) => cmd.options.some((o) => o.long === '--coordinator'))
      .filter(({ cmd }) => !['--tls-ca', '--tls-cert', '--tls-key'].every((f) => cmd.options.some((o) => o.long === f)))
      .map(({ path: p }) => p.join(' '));
    expect(partial).toEqual([]);
  });
});

describe('completion scripts', () => {
  /** What bash offers for the words typed so far (the last one is being completed). */
  function complete(script: string, fn: string, words: string[]): string[] {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'fedge-compl-')), 'c.sh');
    writeFileSync(file, script);
    const r = spawnSync('bash', ['-c', `source ${file}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; ${fn}; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    return r.stdout.split('\n').filter(Boolean);
  }

  it('fedge completion bash completes commands, aliases, flags and flag choices from the command table', async () => {
    const r = await fedge(['completion', 'bash']);
    expect(r.code, r.stderr).toBe(0);
    const fn = '_fedge_complete';
    expect(complete(r.stdout, fn, ['fedge', ''])).toEqual(expect.arrayContaining(['serve', 'run', 'agent', 'demo', 'privacy', 'model', 'completion']));
    expect(complete(r.stdout, fn, ['fedge', 'run', ''])).toEqual(expect.arrayContaining(['start', 'list', 'ls', 'show', 'stop', 'export']));
    expect(complete(r.stdout, fn, ['fedge', 'run', 'ls', '--f'])).toEqual(['--format']);
    expect(complete(r.stdout, fn, ['fedge', 'run', 'export', 'run-1', '--to', ''])).toEqual(['csv', 'mlflow']);
    expect(complete(r.stdout, fn, ['fedge', 'model', 'export', '--tls-'])).toEqual(['--tls-ca', '--tls-cert', '--tls-key']);
    expect(complete(r.stdout, fn, ['fedge', 'completion', ''])).toEqual(expect.arrayContaining(['bash', 'zsh']));
    const zsh = await fedge(['completion', 'zsh']);
    expect(zsh.stdout).toMatch(/^#compdef fedge/);
    expect(zsh.stdout).toContain('bashcompinit');
  });

  it('fedge-agent completion bash completes the agent\'s flags and choices', () => {
    const r = spawnSync(process.execPath, [FEDGE_AGENT, 'completion', 'bash'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const fn = '_fedge-agent_complete'.replace('-', '_');
    expect(complete(r.stdout, fn, ['fedge-agent', '--partition', ''])).toEqual(['iid', 'shards', 'dirichlet']);
    expect(complete(r.stdout, fn, ['fedge-agent', 'se'])).toEqual(['serve']);
  });
});

describe('fedge --format json against a real coordinator', () => {
  it('each printing command prints one valid JSON document (serve: JSON lines)', { timeout: 240_000 }, async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'fedge-audit-'));
    const coord = await startCoordinator(['--data-dir', dataDir]);
    const agent = startAgent(coord.address, ['--name', 'audit-0', '--num-partitions', '6', '--partition-id', '0']);
    await agent.waitFor(/joined/);
    const c = ['--coordinator', coord.address];
    const out = mkdtempSync(path.join(tmpdir(), 'fedge-audit-out-'));
    const started = await fedge(['run', 'start', ...c, '--model', 'mnist-mlp', '--rounds', '2', '--min-agents', '1', '--epochs', '1', '--watch', '--format', 'json']);
    expect(started.code, started.stderr).toBe(0);
    const runId = lastJson<{ id: string; status: string }>(started.stdout).id;
    // A run that waits for more agents than there are, for `run stop`.
    const waiting = lastJson<{ id: string }>((await fedge(['run', 'start', ...c, '--model', 'mnist-mlp', '--rounds', '1', '--min-agents', '5', '--format', 'json'])).stdout).id;

    // One invocation per command (in this order: promote before rollback); `--format json` is appended.
    const invocations: Record<string, string[]> = {
      'run start': ['run', 'start', ...c, '--model', 'mnist-mlp', '--rounds', '1', '--min-agents', '5'],
      'run list': ['run', 'list', ...c],
      'run show': ['run', 'show', runId, ...c],
      'run participants': ['run', 'participants', runId, ...c, '--round', '1'],
      'run stop': ['run', 'stop', waiting, ...c],
      'run export': ['run', 'export', runId, ...c, '--to', 'csv', '-o', path.join(out, 'rounds.csv')],
      'agent list': ['agent', 'list', ...c],
      'agent drift': ['agent', 'drift', ...c],
      'agent enroll': ['agent', 'enroll', 'audit-dev', ...c],
      'agent revoke': ['agent', 'revoke', 'audit-dev', ...c],
      'privacy epsilon': ['privacy', 'epsilon', '--sampling-rate', '0.1', '--noise-multiplier', '1.1', '--steps', '100', '--delta', '1e-5'],
      'privacy noise': ['privacy', 'noise', '--target-epsilon', '2', '--sampling-rate', '0.1', '--steps', '100', '--delta', '1e-5'],
      'model list': ['model', 'list', ...c],
      'model show': ['model', 'show', '1', '--run', runId, ...c],
      'model key': ['model', 'key', '--data-dir', dataDir],
      'model export': ['model', 'export', '--run', runId, ...c, '-o', path.join(out, 'm.onnx')],
      'model promote': ['model', 'promote', '2', '--run', runId, '--force', ...c],
      'model rollback': ['model', 'rollback', '--run', runId, ...c],
      'model gc': ['model', 'gc', '--dry-run', ...c],
      demo: ['demo', '--agents', '2', '--rounds', '1', '--data-dir', path.join(out, 'demo')],
    };
    const printing = all.map(({ path: p }) => p.join(' ')).filter((p) => !NOT_JSON[p] && p !== 'serve');
    expect(Object.keys(invocations).sort()).toEqual(printing.sort());
    // rollback needs a promotion before the current one.
    expect((await fedge(['model', 'promote', '1', '--run', runId, '--force', ...c])).code).toBe(0);
    for (const p of printing) {
      const r = await fedge([...invocations[p]!, '--format', 'json']);
      expect(r.code, `fedge ${p}: ${r.stderr}`).toBe(0);
      const lines = r.stdout.trim().split('\n');
      expect(lines.length, `fedge ${p} printed more than one line on stdout:\n${r.stdout.slice(0, 500)}`).toBe(1);
      expect(() => JSON.parse(lines[0]!), `fedge ${p}: ${lines[0]!.slice(0, 200)}`).not.toThrow();
    }
    expect(readFileSync(path.join(out, 'rounds.csv'), 'utf8')).toMatch(/^round,/);
    expect(existsSync(path.join(out, 'm.onnx'))).toBe(true);

    // serve: a ready line on stdout (logs on stderr), a stopped line after SIGTERM.
    const serve = startProcess(FEDGE, ['serve', '--listen', '127.0.0.1:0', '--in-memory', '--no-mqtt', '--format', 'json']);
    const stdout: string[] = [];
    serve.child.stdout!.on('data', (b: Buffer) => stdout.push(b.toString()));
    await serve.waitFor(/"event":"ready"/);
    await serve.waitFor(/coordinator ready on/);
    serve.child.kill('SIGTERM');
    expect(await serve.exited).toBe(0);
    const events = stdout.join('').trim().split('\n').map((l) => JSON.parse(l) as { event: string; grpc?: string; store?: string; code?: number });
    expect(events.map((e) => e.event)).toEqual(['ready', 'stopped']);
    expect(events[0]!.grpc).toMatch(/^grpc:\/\/127\.0\.0\.1:\d+$/);
    expect(events[0]!.store).toBe('memory');
    expect(events[1]!.code).toBe(0);
  });

  it('fedge-agent serve --format json: a ready line with the URL and tensors on stdout, a stopped line at exit', async () => {
    const { createBuiltinModel, exportOnnx, initBackend, modelToBlob } = await import('@fedge/ml');
    await initBackend('cpu');
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'fedge-audit-serve-')), 'm.onnx');
    const m = createBuiltinModel('mnist-mlp', 5);
    writeFileSync(file, exportOnnx(modelToBlob(m), { quantize: 'none' }).bytes);
    m.dispose();
    const serve = startProcess(FEDGE_AGENT, ['serve', '--model', file, '--listen', '127.0.0.1:0', '--format', 'json']);
    const stdout: string[] = [];
    serve.child.stdout!.on('data', (b: Buffer) => stdout.push(b.toString()));
    await serve.waitFor(/"event":"ready"/);
    const ready = JSON.parse(stdout.join('').trim().split('\n')[0]!) as { url: string; inputs: { name: string }[] };
    expect(ready.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await fetch(`${ready.url}/v2/health/ready`)).status).toBe(200);
    expect(ready.inputs[0]!.name).toBe('input');
    serve.child.kill('SIGTERM');
    expect(await serve.exited).toBe(0);
    const events = stdout.join('').trim().split('\n').map((l) => (JSON.parse(l) as { event: string }).event);
    expect(events).toEqual(['ready', 'stopped']);
  });

  it('run export: --format csv still works, with a deprecation warning; --format json with CSV on stdout is refused', async () => {
    const coord = await startCoordinator();
    const r = await fedge(['run', 'start', '--coordinator', coord.address, '--model', 'mnist-mlp', '--rounds', '1', '--min-agents', '3', '--format', 'json']);
    const id = lastJson<{ id: string }>(r.stdout).id;
    const old = await fedge(['run', 'export', id, '--coordinator', coord.address, '--format', 'csv']);
    expect(old.code, old.stderr).toBe(0);
    expect(old.stdout).toMatch(/^round,/);
    expect(old.stderr).toMatch(/--format csv is deprecated; use --to csv/);
    const clash = await fedge(['run', 'export', id, '--coordinator', coord.address, '--format', 'json']);
    expect(clash.code).toBe(1);
    expect(clash.stderr).toMatch(/give the CSV a file with -o FILE/);
  });
});
