/** Starts real fedge processes (coordinator, agents, CLI) on loopback for end-to-end tests, and cleans them up. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FEDGE = path.join(root, 'packages/coordinator/dist/cli/main.js');
export const FEDGE_AGENT = path.join(root, 'packages/edge-agent/dist/cli/main.js');

export interface Proc {
  child: ChildProcess;
  output: () => string;
  /** Resolves with the first line matching `re` (rejects after `ms`). */
  waitFor: (re: RegExp, ms?: number) => Promise<string>;
  exited: Promise<number | null>;
}

const live = new Set<ChildProcess>();

export function startProcess(script: string, args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, [script, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, FEDGE_LOG_LEVEL: 'info', ...env },
  });
  live.add(child);
  let out = '';
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  const onData = (b: Buffer): void => {
    out += b.toString();
    for (const w of [...waiters]) {
      const line = out.split('\n').find((l) => w.re.test(l));
      if (line) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => {
    live.delete(child);
    r(code);
  }));
  return {
    child,
    output: () => out,
    exited,
    waitFor: (re, ms = 60_000) =>
      new Promise((resolve, reject) => {
        const line = out.split('\n').find((l) => re.test(l));
        if (line) return resolve(line);
        const t = setTimeout(() => reject(new Error(`timed out waiting for ${re} in output:\n${out.slice(-3000)}`)), ms);
        waiters.push({ re, resolve: (l) => { clearTimeout(t); resolve(l); } });
        void exited.then((code) => reject(new Error(`process exited (${code}) before ${re}:\n${out.slice(-3000)}`)));
      }),
  };
}

/**
 * Starts `fedge serve` on an ephemeral loopback port and returns its address. MQTT stays off unless `extraArgs`
 * ask for it (e.g. `--mqtt-listen 127.0.0.1:0`): tests must not grab the machine's default port 1883.
 */
export async function startCoordinator(extraArgs: string[] = [], env: Record<string, string> = {}): Promise<Proc & { address: string; mqttUrl?: string; uiUrl?: string }> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'fedge-e2e-'));
  const mqtt = extraArgs.some((a) => a.startsWith('--mqtt') || a === '--no-mqtt') ? [] : ['--no-mqtt'];
  const p = startProcess(FEDGE, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, ...mqtt, ...extraArgs], env);
  const line = await p.waitFor(/coordinator ready on/);
  const address = /ready on ([\d.]+:\d+)/.exec(line)![1]!;
  const mqttUrl = /MQTT broker on (mqtt:\/\/[\d.]+:\d+)/.exec(p.output())?.[1];
  // With --ui: the dashboard's base URL (logged before the ready line).
  const uiUrl = /dashboard on (https?:\/\/[\d.]+:\d+)/.exec(p.output())?.[1];
  return { ...p, address, ...(mqttUrl ? { mqttUrl } : {}), ...(uiUrl ? { uiUrl } : {}) };
}

/** `address`: HOST:PORT of the gRPC listener, or a full URL (mqtt://HOST:PORT) to pick another transport. */
export function startAgent(address: string, args: string[], env: Record<string, string> = {}): Proc {
  const url = /^[a-z]+:\/\//.test(address) ? address : `grpc://${address}`;
  return startProcess(FEDGE_AGENT, ['--coordinator', url, '--data', 'mnist', ...args], env);
}

/** Runs a fedge CLI command to completion and returns its exit code and output. */
export async function fedge(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [FEDGE, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  live.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  live.delete(child);
  return { code, stdout, stderr };
}

/** Parses the last line of stdout as JSON (the CLI's --format json contract). */
export function lastJson<T = Record<string, unknown>>(stdout: string): T {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as T;
}

export function killAll(): void {
  for (const c of live) c.kill('SIGKILL');
  live.clear();
}

/** A loopback port that was free a moment ago (for tests that restart a server on the same port). */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
