/** A real Mosquitto broker on a loopback port for e2e tests (installed by scripts/install-mosquitto.sh), restartable on the same port. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './harness.js';

/** The mosquitto binary, or undefined when it is not installed. */
export function mosquittoBinary(): string | undefined {
  for (const p of ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto', '/usr/bin/mosquitto']) if (existsSync(p)) return p;
  const r = spawnSync('sh', ['-c', 'command -v mosquitto'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

export interface Mosquitto {
  url: string;
  port: number;
  /** Stops the broker (SIGTERM) and resolves once it has exited. */
  stop(): Promise<void>;
  /** Starts it again on the same port; resolves once it accepts connections. */
  start(): Promise<void>;
  output(): string;
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

const running = new Set<ChildProcess>();

/** Starts Mosquitto with anonymous access and no persistence (a restart forgets retained messages, as a default install does). */
export async function startMosquitto(): Promise<Mosquitto> {
  const bin = mosquittoBinary();
  if (!bin) throw new Error('mosquitto is not installed: run `bash scripts/install-mosquitto.sh` (CI does)');
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'fedge-mosquitto-'));
  const conf = path.join(dir, 'mosquitto.conf');
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stdout\n`);
  let child: ChildProcess | undefined;
  let out = '';
  const start = async (): Promise<void> => {
    const c = spawn(bin, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    running.add(c);
    c.on('exit', () => running.delete(c));
    c.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    c.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    const t0 = Date.now();
    while (!(await listening(port))) {
      if (c.exitCode !== null) throw new Error(`mosquitto exited (${c.exitCode}):\n${out}`);
      if (Date.now() - t0 > 10_000) throw new Error(`mosquitto not listening on ${port} after 10 s:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async (): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    await exited;
  };
  await start();
  return { url: `mqtt://127.0.0.1:${port}`, port, start, stop, output: () => out };
}

/** Kills every broker these helpers started (afterAll). */
export function killMosquittos(): void {
  for (const c of running) c.kill('SIGKILL');
  running.clear();
}
