/**
 * The dashboard server over real HTTP with a stub coordinator: security headers, the admin token on write actions,
 * request validation, the static file table, event streams and the --ui option. The CLI-equality and browser checks
 * are in test/e2e/dashboard.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator, RunView } from '../coordinator.js';
import { listing, parseParticipantQuery } from '../engine/participants-view.js';
import { parseRunConfig } from '../config/run-config.js';
import { NotFoundError } from '@fedge/proto';
import type { PromoteOptions } from '../engine/promotion.js';
import { parseUiOptions } from './options.js';
import { SECURITY_HEADERS, startUiServer, type UiServer } from './server.js';

const TOKEN = 'adm1n-s3cret-token';

function run(id: string): RunView {
  return {
    id, config: parseRunConfig({ model: 'mnist-mlp', rounds: 3 }), status: 'completed', createdAt: '2026-01-01T00:00:00.000Z', endedAt: '2026-01-01T00:01:00.000Z',
    startedAt: '2026-01-01T00:00:00.000Z', round: 1, modelVersion: 1,
    rounds: [{ round: 1, baseVersion: 0, version: 1, status: 'completed', startedAt: '', endedAt: '', seconds: 2, participants: [], bytesSent: 10, bytesReceived: 5, centralAccuracy: 0.9, trainLoss: undefined }],
    versions: [{ version: 0, sha256: 'a'.repeat(64), round: 0, createdAt: '' }, { version: 1, sha256: 'b'.repeat(64), round: 1, createdAt: '', centralAccuracy: 0.9 }],
  } as RunView;
}

/** Just what the dashboard calls; promote/rollback calls are recorded. */
function stubCoordinator(): { coord: Coordinator; calls: unknown[] } {
  const calls: unknown[] = [];
  const get = async (id: string): Promise<RunView> => {
    if (id !== 'run-1') throw new NotFoundError(`run "${id}" not found; see fedge run list`);
    return run(id);
  };
  const agent = (id: string, name: string, status: string) => ({ id, name, status, backend: 'wasm', agentVersion: '0.1.0', numExamples: 5, labels: {}, joinedAt: '', lastSeen: '', tasksCompleted: 1, tasksFailed: 0 });
  const agents = [agent('a1', 'agent-1', 'online'), agent('a3', 'agent-3', 'offline'), agent('a2', 'agent-2', 'online')];
  const coord = {
    listRuns: async () => [run('run-1')],
    getRun: get,
    showRun: get,
    // As the coordinator: the query checked by participants-view's schema, then a page of the store's rows.
    listParticipants: async (id: string, query: unknown) => {
      const q = parseParticipantQuery(query);
      await get(id);
      calls.push(['participants', id, q]);
      return listing(id, q, { total: 3, participants: [{ round: 1, agentId: 'a2', name: 'agent-2', outcome: 'late', reason: 'round deadline passed' }] });
    },
    listAgents: () => agents,
    registry: { records: () => agents.values(), record: (id: string) => agents.find((a) => a.id === id) },
    watchRun: (id: string) => {
      throw new NotFoundError(`run "${id}" is not active on this coordinator`);
    },
    promoteModel: async (id: string, opts: PromoteOptions) => {
      calls.push(['promote', id, opts]);
      return { ...(await get(id)), promotion: { version: opts.version, history: [] } };
    },
    rollbackModel: async (id: string) => {
      calls.push(['rollback', id]);
      return { ...(await get(id)), promotion: { version: 0, history: [] } };
    },
  } as unknown as Coordinator;
  return { coord, calls };
}

let server: UiServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** `adminToken` null: a coordinator started without FEDGE_ADMIN_TOKEN. */
async function start(adminToken: string | null = TOKEN): Promise<{ url: string; calls: unknown[] }> {
  const { coord, calls } = stubCoordinator();
  server = await startUiServer(coord, { host: '127.0.0.1', port: 0 }, { adminToken: adminToken ?? undefined });
  return { url: server.url, calls };
}

const post = (url: string, body: unknown, token?: string): Promise<Response> =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });

describe('dashboard server', () => {
  it('sends the security headers on the page, its assets and the API, and no secret in any file it serves', async () => {
    const { url } = await start();
    for (const p of ['/', '/app.css', '/js/app.js', '/vendor/uPlot.iife.min.js', '/api/runs', '/api/nope']) {
      const res = await fetch(url + p);
      const body = await res.text();
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) expect(res.headers.get(k), `${p} ${k}`).toBe(v);
      expect(body).not.toContain(TOKEN);
    }
    const csp = SECURITY_HEADERS['content-security-policy']!;
    expect(csp).toMatch(/frame-ancestors 'none'/);
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval/);
    const html = await (await fetch(`${url}/`)).text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // no inline script
    expect(html).not.toMatch(/<style|\sstyle=/); // no inline style
  });

  it('serves only the files of its table (no path from the request reaches the file system)', async () => {
    const { url } = await start();
    expect((await fetch(`${url}/js/app.js`)).headers.get('content-type')).toMatch(/javascript/);
    for (const p of ['/../package.json', '/%2e%2e/package.json', '/js/../../src/ui/server.ts', '/js/app.d.ts', '/index.html/x'])
      expect((await fetch(url + p)).status, p).toBe(404);
  });

  it('refuses write actions without the right token with 401, and without an admin token configured at all', async () => {
    const { url, calls } = await start();
    for (const token of [undefined, 'wrong', `${TOKEN}x`]) {
      const res = await post(`${url}/api/runs/run-1/promote`, { version: 1 }, token);
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('E_AUTH');
      expect((await post(`${url}/api/runs/run-1/rollback`, {}, token)).status).toBe(401);
    }
    // Unauthenticated callers learn nothing: an unknown run is 401 too, not 404.
    expect((await post(`${url}/api/runs/nope/rollback`, {})).status).toBe(401);
    expect(calls).toEqual([]);
    await server!.close();
    const off = await start(null);
    const res = await post(`${off.url}/api/runs/run-1/promote`, { version: 1 }, TOKEN);
    expect(res.status).toBe(401);
    expect(await res.text()).toMatch(/FEDGE_ADMIN_TOKEN/);
    expect(off.calls).toEqual([]);
  });

  it('with the token: promote, canary and rollback reach the coordinator as the CLI sends them; bad bodies are 400 naming the field', async () => {
    const { url, calls } = await start();
    let res = await post(`${url}/api/runs/run-1/promote`, { version: 1 }, TOKEN);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ version: 1, history: [] });
    res = await post(`${url}/api/runs/run-1/promote`, { version: 1, canary: 0.25, margin: 0.01 }, TOKEN);
    expect(res.status).toBe(200);
    res = await post(`${url}/api/runs/run-1/rollback`, {}, TOKEN);
    expect(res.status).toBe(200);
    expect(calls).toEqual([['promote', 'run-1', { version: 1 }], ['promote', 'run-1', { version: 1, canary: 0.25, margin: 0.01 }], ['rollback', 'run-1']]);
    for (const [body, field] of [[{ version: -1 }, 'version'], [{ version: 1, canary: 1 }, 'canary'], [{ version: 1, extra: true }, 'body'], [{}, 'version']] as const) {
      res = await post(`${url}/api/runs/run-1/promote`, body, TOKEN);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { message: string } }).error.message).toContain(field);
    }
    res = await fetch(`${url}/api/runs/run-1/promote`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: 'version=1' });
    expect(res.status).toBe(400);
    expect((await post(`${url}/api/runs/nope/promote`, { version: 1 }, TOKEN)).status).toBe(404);
    expect((await fetch(`${url}/api/runs/run-1/promote`)).status).toBe(405);
  });

  it('bound to loopback, answers only requests addressed to a loopback name (DNS rebinding)', async () => {
    const { url } = await start();
    const port = new URL(url).port;
    const get = (host: string): Promise<number> =>
      new Promise((resolve, reject) => {
        http.get({ host: '127.0.0.1', port, path: '/api/runs', headers: { host } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject);
      });
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'LOCALHOST', `127.1.2.3:${port}`]) expect(await get(host), host).toBe(200);
    for (const host of [`attacker.example:${port}`, 'attacker.example', `127.0.0.1.attacker.example:${port}`]) expect(await get(host), host).toBe(421);
  });

  it('reads: runs, a run, agents and models; an unknown run is 404', async () => {
    const { url } = await start();
    const runs = (await (await fetch(`${url}/api/runs`)).json()) as { id: string; roundsDetail: unknown[] }[];
    expect(runs.map((r) => r.id)).toEqual(['run-1']);
    const one = (await (await fetch(`${url}/api/runs/run-1`)).json()) as Record<string, unknown>;
    expect(one).toMatchObject({ id: 'run-1', status: 'completed', accuracy: 0.9 });
    // The JSON round trip drops undefined fields, as the CLI's gRPC path does.
    expect((one['roundsDetail'] as Record<string, unknown>[])[0]).not.toHaveProperty('trainLoss');
    // Agents in name order, all of them without a query; with one, the page and filters of fedge agent list.
    const names = async (q: string): Promise<string[]> => ((await (await fetch(`${url}/api/agents${q}`)).json()) as { name: string }[]).map((a) => a.name);
    expect(await names('')).toEqual(['agent-1', 'agent-2', 'agent-3']);
    expect(await names('?limit=1&after=a1')).toEqual(['agent-2']);
    expect(await names('?state=online')).toEqual(['agent-1', 'agent-2']);
    const bad = await fetch(`${url}/api/agents?state=asleep`);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { code: 'E_VALIDATION', message: expect.stringMatching(/^state: expected one of online, offline, busy, idle/) } });
    const models = (await (await fetch(`${url}/api/models?run=run-1`)).json()) as { version: number; latest: boolean }[];
    expect(models.map((m) => [m.version, m.latest])).toEqual([[0, false], [1, true]]);
    expect((await fetch(`${url}/api/runs/nope`)).status).toBe(404);
    expect((await fetch(`${url}/api/runs/nope/events`)).status).toBe(404);
    // A run's participants, a page at a time: fedge run participants' query from URL parameters, checked by its schema.
    const page = (await (await fetch(`${url}/api/runs/run-1/participants?round=1&status=failed&limit=5&offset=2`)).json()) as Record<string, unknown>;
    expect(page).toMatchObject({ run: 'run-1', total: 3, query: { round: 1, status: 'failed', limit: 5, offset: 2 }, participants: [{ round: 1, name: 'agent-2' }] });
    const badPage = await fetch(`${url}/api/runs/run-1/participants?limit=0`);
    expect(badPage.status).toBe(400);
    expect(await badPage.json()).toMatchObject({ error: { code: 'E_VALIDATION', message: expect.stringMatching(/^limit: /) } });
    expect((await fetch(`${url}/api/runs/run-1/participants?status=lost`)).status).toBe(400);
    expect((await fetch(`${url}/api/runs/nope/participants`)).status).toBe(404);
  });

  it('streams a finished run once, then ends; the overview stream sends runs and agents', async () => {
    const { url } = await start();
    const res = await fetch(`${url}/api/runs/run-1/events`);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const text = await res.text(); // ends: the run is not active
    expect(text).toMatch(/event: run\ndata: \{"id":"run-1"/);
    expect(text).toMatch(/event: end\n/);
    const ac = new AbortController();
    const ov = await fetch(`${url}/api/events`, { signal: ac.signal });
    const reader = ov.body!.getReader();
    let got = '';
    while (!/event: agents/.test(got)) got += new TextDecoder().decode((await reader.read()).value);
    expect(got).toMatch(/event: runs\ndata: \[\{"id":"run-1"/);
    ac.abort();
  });

  it('the overview stream carries the agents\' summary and one page of them, as /api/agents with the same query', async () => {
    const { url } = await start();
    /** The first `agents` event of GET /api/events?QUERY. */
    const agentsEvent = async (q: string): Promise<{ summary: Record<string, unknown>; page: { agents: { name: string }[]; total: number; skipped: number; next?: string; fleet: number } }> => {
      const ac = new AbortController();
      const res = await fetch(`${url}/api/events${q}`, { signal: ac.signal });
      expect(res.status, await (res.ok ? Promise.resolve('') : res.text())).toBe(200);
      const reader = res.body!.getReader();
      let got = '';
      let m: RegExpExecArray | null = null;
      while (!(m = /event: agents\ndata: (.*)\n\n/.exec(got))) got += new TextDecoder().decode((await reader.read()).value);
      ac.abort();
      return JSON.parse(m[1]!);
    };
    const first = await agentsEvent('?limit=1');
    expect(first.summary).toMatchObject({ total: 3, fleet: 3, state: { online: 2, offline: 1, busy: 0, idle: 2 } });
    expect(first.page).toMatchObject({ agents: [{ name: 'agent-1' }], total: 3, skipped: 0, next: 'a1', fleet: 3 });
    expect(first.page.agents[0]).not.toHaveProperty('secretSha256');
    const second = await agentsEvent('?limit=1&after=a1');
    expect(second.page).toMatchObject({ agents: [{ name: 'agent-2' }], skipped: 1, next: 'a2' });
    const online = await agentsEvent('?state=online&after=a1');
    expect(online.page.agents.map((a) => a.name)).toEqual(['agent-2']);
    expect(online.page).not.toHaveProperty('next');
    // The page's summary is the whole fleet's (the counts the page shows), whatever the filter.
    expect(online.summary).toMatchObject({ total: 3, state: { offline: 1 } });
    // Without a limit: one page of 50 (never the whole fleet); 0 (every agent) or more than 500 is refused.
    expect((await agentsEvent('')).page.agents).toHaveLength(3);
    for (const [q, msg] of [['?limit=0', /^limit: the event stream carries one page of 1 to 500 agents \(got 0\)/], ['?limit=501', /^limit: .*\(got 501\)/], ['?after=nope', /^after: no agent "nope"/], ['?state=asleep', /^state: expected one of/]] as const) {
      const bad = await fetch(`${url}/api/events${q}`);
      expect(bad.status, q).toBe(400);
      expect(await bad.json(), q).toMatchObject({ error: { code: 'E_VALIDATION', message: expect.stringMatching(msg) } });
    }
  });
});

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl (as test/e2e/tls.test.ts does). */
function certificates(): Record<'ca' | 'serverCert' | 'serverKey' | 'clientCert' | 'clientKey', Buffer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'fedge-ui-tls-'));
  const f = (n: string): string => path.join(dir, n);
  const openssl = (...args: string[]): void => void execFileSync('openssl', args, { stdio: 'pipe' });
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '1', '-subj', '/CN=fedge ui test ca');
  writeFileSync(f('san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  for (const [name, cn, ext] of [['server', '127.0.0.1', ['-extfile', f('san.ext')]], ['client', 'operator', []]] as const) {
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`);
    openssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f(`${name}.pem`), '-days', '1', ...ext);
  }
  const r = (n: string): Buffer => readFileSync(f(n));
  return { ca: r('ca.pem'), serverCert: r('server.pem'), serverKey: r('server.key'), clientCert: r('client.pem'), clientKey: r('client.key') };
}

function httpsGet(url: string, opts: { ca: Buffer; cert?: Buffer; key?: Buffer }): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, opts, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      })
      .on('error', reject);
  });
}

describe('dashboard over TLS (fedge serve --tls-cert/--tls-key)', () => {
  it('serves the page and the API over HTTPS, and with a client CA only to browsers presenting a certificate from it', async () => {
    const c = certificates();
    const { coord } = stubCoordinator();
    server = await startUiServer(coord, { host: '127.0.0.1', port: 0 }, { adminToken: TOKEN, tls: { cert: c.serverCert, key: c.serverKey } });
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const page = await httpsGet(`${server.url}/`, { ca: c.ca });
    expect(page.status).toBe(200);
    expect(page.headers['content-security-policy']).toBe(SECURITY_HEADERS['content-security-policy']);
    expect(JSON.parse((await httpsGet(`${server.url}/api/runs`, { ca: c.ca })).body)).toMatchObject([{ id: 'run-1' }]);
    await server.close();
    server = await startUiServer(coord, { host: '127.0.0.1', port: 0 }, { adminToken: TOKEN, tls: { cert: c.serverCert, key: c.serverKey, clientCa: c.ca } });
    await expect(httpsGet(`${server.url}/api/runs`, { ca: c.ca })).rejects.toThrow();
    expect((await httpsGet(`${server.url}/api/runs`, { ca: c.ca, cert: c.clientCert, key: c.clientKey })).status).toBe(200);
  });
});

describe('--ui option', () => {
  it('binds loopback unless a host is given, and names the flag when the value is wrong', () => {
    expect(parseUiOptions({})).toEqual({});
    expect(parseUiOptions({ ui: '' })).toEqual({});
    expect(parseUiOptions({ ui: '8080' })).toEqual({ ui: { host: '127.0.0.1', port: 8080, exposed: false } });
    expect(parseUiOptions({ ui: '127.0.0.1:9000' })).toEqual({ ui: { host: '127.0.0.1', port: 9000, exposed: false } });
    expect(parseUiOptions({ ui: '0.0.0.0:8080' }).ui).toMatchObject({ exposed: true });
    expect(parseUiOptions({ ui: '[::1]:8080' }).ui).toMatchObject({ host: '[::1]', exposed: false });
    for (const bad of ['x:y', '127.0.0.1:70000', 'http://127.0.0.1:8080', ':8080'])
      expect(() => parseUiOptions({ ui: bad }), bad).toThrow(/^--ui: ".*" is not HOST:PORT or PORT/);
  });
});
