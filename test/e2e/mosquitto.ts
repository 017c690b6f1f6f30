/** A real Mosquitto broker on a loopback port for e2e tests (installed by scripts/install-mosquitto.sh), restartable on the same port. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
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

/** An MQTT 5 client of the broker on loopback `port` (so a refused publish is answered with PUBACK reason 135), without reconnects. */
export function brokerClient(port: number, clientId: string, username: string, password: string): Promise<mqtt.MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId, username, password, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000 });
    c.once('connect', () => resolve(c));
    c.once('error', (err) => (c.end(true), reject(err)));
  });
}

const running = new Set<ChildProcess>();

/** fedge's shipped Mosquitto configuration (deploy/mosquitto): the main file and the ACL, used in place. */
export const SHIPPED_MOSQUITTO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../deploy/mosquitto');

export interface MosquittoOptions {
  /**
   * Run deploy/mosquitto/mosquitto.conf and its ACL (the shipped bytes, copied beside the password file only because
   * the checkout may sit in a directory the mosquitto user cannot enter) instead of an anonymous broker, with these
   * MQTT users (name -> password, written with mosquitto_passwd). Only the listener port, the password file's path,
   * the ACL's path and logging are changed; a shipped file that no longer has those lines fails here.
   */
  shipped?: { users: Record<string, string> };
  /**
   * Run deploy/mosquitto/mosquitto-dynsec.conf and the shipped acl: logins in the dynamic security plugin, its admin
   * (the coordinator's user) made with `mosquitto_ctrl dynsec init` as the README says, and these further clients
   * (name -> password) made with `mosquitto_ctrl dynsec createClient` once the broker runs.
   */
  dynsec?: { admin: { username: string; password: string }; clients?: Record<string, string> };
  /** log_type all: every PUBLISH in and out with its size, so a test can see a transfer in flight. */
  verbose?: boolean;
}

/**
 * deploy/mosquitto/`name` with this broker's port, ACL path and logging, and the `more` lines swapped; a shipped file
 * that no longer has one of those lines fails here.
 */
function shippedFile(name: string, port: number, acl: string, verbose: boolean, more: [RegExp, string][]): string {
  let conf = readFileSync(path.join(SHIPPED_MOSQUITTO_DIR, name), 'utf8');
  const swaps: [RegExp, string][] = [[/^listener 1883 127\.0\.0\.1$/m, `listener ${port} 127.0.0.1`], ...more, [/^acl_file .*$/m, `acl_file ${acl}`], [/^log_dest syslog$/m, 'log_dest stdout']];
  for (const [re, line] of swaps) {
    if (!re.test(conf)) throw new Error(`deploy/mosquitto/${name} has no line matching ${re}; update test/e2e/mosquitto.ts with it`);
    conf = conf.replace(re, line);
  }
  return verbose ? `${conf}\nlog_type all\n` : conf;
}

/** The shipped mosquitto.conf with this broker's port, password file, ACL path and logging. */
function shippedConfig(port: number, passwd: string, acl: string, verbose: boolean): string {
  return shippedFile('mosquitto.conf', port, acl, verbose, [[/^password_file .*$/m, `password_file ${passwd}`]]);
}

/** The shipped mosquitto-dynsec.conf with this broker's port, plugin file, ACL path and logging. */
function dynsecConfig(port: number, file: string, acl: string, verbose: boolean): string {
  let conf = shippedFile('mosquitto-dynsec.conf', port, acl, verbose, [[/^plugin_opt_config_file .*$/m, `plugin_opt_config_file ${file}`]]);
  // The shipped path is Debian's on x86-64; elsewhere the package puts the plugin under its own multiarch directory.
  const plugin = /^plugin (\S+)$/m.exec(conf)?.[1];
  if (!plugin) throw new Error('deploy/mosquitto/mosquitto-dynsec.conf has no plugin line; update test/e2e/mosquitto.ts with it');
  if (!existsSync(plugin)) {
    const found = spawnSync('sh', ['-c', 'ls /usr/lib/*/mosquitto_dynamic_security.so /usr/lib/mosquitto_dynamic_security.so /usr/local/lib/mosquitto_dynamic_security.so 2>/dev/null | head -1'], { encoding: 'utf8' }).stdout.trim();
    if (!found) throw new Error(`the dynamic security plugin is neither at ${plugin} nor under /usr/lib/*/: is mosquitto 2.0 installed (bash scripts/install-mosquitto.sh)?`);
    conf = conf.replace(`plugin ${plugin}`, `plugin ${found}`);
  }
  return conf;
}

/** `mosquitto_ctrl` with its arguments; throws with its output when it fails. */
export function mosquittoCtrl(args: string[]): string {
  const r = spawnSync('mosquitto_ctrl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mosquitto_ctrl ${args.filter((a) => !/pw|secret|password/i.test(a)).join(' ')} failed (${r.status}): ${r.stdout}${r.stderr}`);
  return r.stdout;
}

/**
 * Starts Mosquitto on a free loopback port: by default with anonymous access and no persistence (a restart forgets
 * retained messages, as a default install does); with `shipped`, fedge's own configuration and ACL.
 */
export async function startMosquitto(opts: MosquittoOptions = {}): Promise<Mosquitto> {
  const bin = mosquittoBinary();
  if (!bin) throw new Error('mosquitto is not installed: run `bash scripts/install-mosquitto.sh` (CI does)');
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'fedge-mosquitto-'));
  const conf = path.join(dir, 'mosquitto.conf');
  if (opts.shipped) {
    const passwd = path.join(dir, 'passwd');
    for (const [i, [user, pw]] of Object.entries(opts.shipped.users).entries()) {
      const r = spawnSync('mosquitto_passwd', [...(i === 0 ? ['-c'] : []), '-b', passwd, user, pw], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`mosquitto_passwd failed (${r.status}): ${r.stderr}`);
    }
    // Started as root, the broker drops to the mosquitto user before it reads these files, so they live in a
    // directory it can enter (a fresh clone under a 0700 temp dir cannot be read by it: CI failed on that).
    const acl = path.join(dir, 'acl');
    copyFileSync(path.join(SHIPPED_MOSQUITTO_DIR, 'acl'), acl);
    chmodSync(dir, 0o755);
    chmodSync(passwd, 0o644);
    chmodSync(acl, 0o644);
    writeFileSync(conf, shippedConfig(port, passwd, acl, !!opts.verbose));
  } else if (opts.dynsec) {
    const file = path.join(dir, 'dynamic-security.json');
    mosquittoCtrl(['dynsec', 'init', file, opts.dynsec.admin.username, opts.dynsec.admin.password]);
    const acl = path.join(dir, 'acl');
    copyFileSync(path.join(SHIPPED_MOSQUITTO_DIR, 'acl'), acl);
    chmodSync(dir, 0o755);
    chmodSync(acl, 0o644);
    // The plugin rewrites its file (beside it, then renamed) on every change, as the mosquitto user when started as root.
    const uid = process.getuid?.() === 0 ? Number(spawnSync('id', ['-u', 'mosquitto'], { encoding: 'utf8' }).stdout.trim()) : NaN;
    if (Number.isInteger(uid)) for (const f of [dir, file]) chownSync(f, uid, -1);
    writeFileSync(conf, dynsecConfig(port, file, acl, !!opts.verbose));
  } else {
    writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stdout\n${opts.verbose ? 'log_type all\n' : ''}`);
  }
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
  const d = opts.dynsec;
  for (const [user, pw] of Object.entries(d?.clients ?? {}))
    mosquittoCtrl(['-h', '127.0.0.1', '-p', String(port), '-u', d!.admin.username, '-P', d!.admin.password, 'dynsec', 'createClient', user, '-p', pw]);
  return { url: `mqtt://127.0.0.1:${port}`, port, start, stop, output: () => out };
}

/** Kills every broker these helpers started (afterAll). */
export function killMosquittos(): void {
  for (const c of running) c.kill('SIGKILL');
  running.clear();
}
