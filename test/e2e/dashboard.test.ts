/**
 * End to end: the web dashboard of `fedge serve --ui` in headless Chromium. A coordinator and three agents run a
 * federation; the run page's metric chart gains a point per round with no reload, the agents table lists every
 * agent (and the version the serving one reports), a promotion confirmed on the models page shows in
 * `fedge model show`, and the API's JSON equals the CLI's. With 30 simulated agents, the agents page pages on the
 * coordinator (10 a page, next/previous, filters) and its event stream carries the counts and one page, not the fleet.
 * A screenshot of the run page is written to test-output/dashboard/ (and to docs/dashboard.png with
 * FEDGE_DOCS_SCREENSHOT=1).
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { FEDGE_AGENT, fedge, freePort, killAll, lastJson, startAgent, startCoordinator, startProcess } from './harness.js';
import { launchChromium } from './browser.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUT = path.join(root, 'test-output', 'dashboard');
const TOKEN = 'dashboard-e2e-admin';
const ROUNDS = 4;

let browser: Browser | undefined;
afterAll(async () => {
  await browser?.close();
  killAll();
});

describe('dashboard', () => {
  it('follows a run live, lists the agents, promotes from the page, and serves the CLI\'s JSON', { timeout: 120_000 }, async () => {
    const t0 = Date.now();
    const phases: string[] = [];
    const phase = (name: string): number => phases.push(`${name} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const env = { FEDGE_ADMIN_TOKEN: TOKEN };
    const coord = await startCoordinator(['--ui', '127.0.0.1:0'], env);
    expect(coord.uiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const ui = coord.uiUrl!;
    const names = ['dash-0', 'dash-1', 'dash-2'];
    // A twelfth of MNIST each, trained at half speed: rounds of a second or two, long enough for the page (loaded
    // after the run starts) to see the chart grow one point at a time.
    // dash-0 also serves the global model: the agents table shows the version it reports serving.
    const servePort = await freePort();
    const agents = names.map((n, i) => startAgent(coord.address, ['--name', n, '--partition', 'iid', '--num-partitions', '12', '--partition-id', String(i), '--seed', '7', '--slowdown', '2',
      ...(i === 0 ? ['--serve', `127.0.0.1:${servePort}`] : [])]));
    browser = await launchChromium();
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const problems: string[] = [];
    page.on('console', (m) => {
      // The one 401 is the promotion tried below before the token is entered.
      if ((m.type() === 'error' && !/status of 401/.test(m.text())) || /Content Security Policy/i.test(m.text())) problems.push(m.text());
    });

    page.on('pageerror', (e) => problems.push(e.message));
    phase('coordinator and browser up');
    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/)));
    phase('agents joined');
    const cli = (args: string[]) => fedge([...args, '--coordinator', coord.address, '--format', 'json'], env);

    // The agents table lists every agent.
    await page.goto(`${ui}/#/agents`);
    await page.waitForFunction((n) => document.querySelectorAll('#agents tbody tr').length === n, names.length, { timeout: 20_000 });
    const listed = await page.$$eval('#agents tbody tr td:first-child', (tds) => tds.map((td) => td.textContent));
    expect(listed.sort()).toEqual(names);
    // The transport column appears once agents report one: these three joined over gRPC.
    const headers = await page.$$eval('#agents thead th', (ths) => ths.map((th) => th.textContent));
    const col = headers.indexOf('transport');
    expect(col, headers.join(', ')).toBeGreaterThan(0);
    expect(await page.$$eval(`#agents tbody tr td:nth-child(${col + 1})`, (tds) => tds.map((td) => td.textContent))).toEqual(names.map(() => 'grpc'));
    mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: path.join(OUT, 'agents.png') });

    // Top-k uploads, so the run page has a compression ratio to plot (no DP: with 3 agents its noise stops learning).
    const started = await cli(['run', 'start', '--model', 'mnist-mlp', '--rounds', String(ROUNDS), '--min-agents', '3', '--epochs', '1', '--lr', '0.1', '--compression', 'topk:0.1']);
    expect(started.code, started.stderr).toBe(0);
    const runId = lastJson<{ id: string }>(started.stdout).id;
    phase('run started');

    // The run page: the accuracy chart's point count, read as the rounds finish, on one page load.
    await page.goto(`${ui}/#/run/${runId}`);
    await page.evaluate(() => ((window as unknown as { loadMarker: number }).loadMarker = 1));
    const seen: number[] = [];
    const chart = '[data-chart="metric-accuracy"]';
    const deadline = Date.now() + 75_000;
    for (;;) {
      const n = Number((await page.getAttribute(chart, 'data-points').catch(() => null)) ?? -1);
      if (n >= 0 && seen.at(-1) !== n) seen.push(n);
      if (n >= ROUNDS) break;
      if (Date.now() > deadline) throw new Error(`the accuracy chart reached ${seen.at(-1)} points of ${ROUNDS}: saw ${seen.join(', ')}`);
      await page.waitForTimeout(100);
    }
    // One point per round, added while the page stayed open (not all at once at the end, no reload).
    expect(seen.at(-1)).toBe(ROUNDS);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(seen.filter((n) => n > 0 && n < ROUNDS).length, `point counts seen: ${seen.join(', ')}`).toBeGreaterThanOrEqual(2);
    expect(await page.evaluate(() => (window as unknown as { loadMarker?: number }).loadMarker)).toBe(1);
    // Who took part: a square per invited agent and round, its name and outcome on hover.
    const dots = await page.$$eval('.strip-row:last-child .dot', (ds) => ds.map((d) => d.getAttribute('title') ?? ''));
    expect(dots.map((t) => t.split(':')[0]).sort()).toEqual(names);
    for (const t of dots) expect(t).toMatch(/^dash-\d: completed, \d+\.\d s$/);
    // No privacy, no async: no epsilon chart, no staleness histogram.
    expect(await page.$$('[data-chart="epsilon"], [data-chart="staleness"]')).toEqual([]);
    await page.waitForFunction(() => /completed/.test(document.querySelector('#run-head h1')?.textContent ?? ''), undefined, { timeout: 20_000 });
    for (const key of ['train-loss', 'participants', 'bytes', 'compression', 'duration'])
      expect(Number(await page.getAttribute(`[data-chart="${key}"]`, 'data-points')), key).toBe(ROUNDS);
    phase('run completed');
    const shot = path.join(OUT, 'run-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    if (process.env.FEDGE_DOCS_SCREENSHOT) {
      mkdirSync(path.join(root, 'docs'), { recursive: true });
      copyFileSync(shot, path.join(root, 'docs', 'dashboard.png'));
    }

    // The API's JSON equals the CLI's for the same (finished) run, agents and registry.
    const api = async (p: string): Promise<unknown> => (await fetch(ui + p)).json();
    const [show, models, runs] = await Promise.all([cli(['run', 'show', runId]), cli(['model', 'list']), cli(['run', 'list'])]);
    expect(show.code, show.stderr).toBe(0);
    expect(await api(`/api/runs/${runId}`)).toEqual(lastJson(show.stdout));
    expect(await api('/api/models')).toEqual(lastJson(models.stdout));
    expect(await api('/api/runs')).toEqual(lastJson(runs.stdout));
    // Agents report in now and then (lastSeen): equal on one of a few tries.
    let agentsEqual = false;
    for (let i = 0; i < 5 && !agentsEqual; i++) {
      const before = await api('/api/agents');
      const list = await cli(['agent', 'list']);
      const after = await api('/api/agents');
      const want = lastJson<unknown>(list.stdout);
      agentsEqual = JSON.stringify(before) === JSON.stringify(want) || JSON.stringify(after) === JSON.stringify(want);
      if (!agentsEqual && i === 4) expect(after).toEqual(want);
    }
    expect(agentsEqual).toBe(true);
    // Writes need the token.
    const bare = await fetch(`${ui}/api/runs/${runId}/promote`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"version":1}' });
    expect(bare.status).toBe(401);

    phase('API = CLI checked');
    // The runs list: the run with its status, mode, strategy, round/version and best metric.
    await page.goto(`${ui}/#/runs`);
    await page.waitForSelector(`#runs a[href="#/run/${runId}"]`, { timeout: 10_000 });
    const row = (await page.textContent(`#runs tbody tr:has(a[href="#/run/${runId}"])`)) ?? '';
    expect(row).toMatch(new RegExp(`${runId}completedsyncfedavg${ROUNDS}/${ROUNDS} · v${ROUNDS}accuracy \\d+\\.\\d+%`));
    await page.screenshot({ path: path.join(OUT, 'runs.png') });

    // Promote the latest version from the models page: refused without the token, done with it after confirming.
    await page.goto(`${ui}/#/models/${runId}`);
    const promote = `button[data-action="promote"][data-version="${ROUNDS}"]`;
    await page.click(promote);
    await page.click('#confirm-ok');
    await page.waitForFunction(() => /E_AUTH/.test(document.querySelector('#action-status')?.textContent ?? ''), undefined, { timeout: 10_000 });
    await page.fill('#token', TOKEN);
    await page.click(promote);
    expect(await page.textContent('#confirm-text')).toContain(`Promote version ${ROUNDS} of ${runId}`);
    await page.click('#confirm-ok');
    await page.waitForFunction(() => /promoted/.test(document.querySelector('#action-status')?.textContent ?? ''), undefined, { timeout: 10_000 });
    const shown = await cli(['model', 'show', String(ROUNDS), '--run', runId]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(lastJson<{ serving?: string }>(shown.stdout).serving).toBe('promoted');
    await page.waitForFunction((v) => /promoted/.test(document.querySelector(`#models tbody tr:has(button[data-version="${v}"])`)?.textContent ?? ''), ROUNDS, { timeout: 10_000 });

    await page.screenshot({ path: path.join(OUT, 'models.png') });

    // The agents table's 'version served' (live, no reload): the promoted version for the serving agent, none for the others.
    await page.goto(`${ui}/#/agents`);
    const servedCells = (): Promise<string[]> => page.evaluate((ns) => {
      const c = [...document.querySelectorAll('#agents thead th')].map((th) => th.textContent).indexOf('version served');
      const rows = [...document.querySelectorAll('#agents tbody tr')];
      return ns.map((n) => (c < 0 ? '?' : rows.find((tr) => tr.children[0]?.textContent === n)?.children[c]?.textContent ?? '?'));
    }, names);
    await page.waitForFunction((v) => {
      const c = [...document.querySelectorAll('#agents thead th')].map((th) => th.textContent).indexOf('version served');
      return c >= 0 && [...document.querySelectorAll('#agents tbody tr')].some((tr) => tr.children[0]?.textContent === 'dash-0' && tr.children[c]?.textContent === v);
    }, String(ROUNDS), { timeout: 30_000 }).catch(() => undefined);
    expect(await servedCells()).toEqual([String(ROUNDS), '–', '–']); // the table shows an empty cell as a dash

    // The page never tripped its own CSP (no inline script or style) nor threw.
    expect(problems).toEqual([]);
    phase('promoted from the page');
    // A clean stop with the page's event stream still open (the server ends its streams instead of waiting on them).
    coord.child.kill('SIGTERM');
    expect(await coord.exited).toBe(0);
    console.log(`dashboard e2e: ${phases.join(', ')}; accuracy chart point counts seen: ${seen.join(', ')}; screenshot ${path.relative(root, shot)}`);
  });

  it('pages the agents: 30 simulated agents 10 a page, next/previous, filters by name and state, live counts', { timeout: 90_000 }, async () => {
    const coord = await startCoordinator(['--in-memory', '--ui', '127.0.0.1:0', '--mqtt-listen', '127.0.0.1:0', '--max-token-agents', '100', '--join-rate', '500', '--join-burst', '500']);
    const ui = coord.uiUrl!;
    const fleet = startProcess(FEDGE_AGENT, ['--coordinator', coord.mqttUrl!, '--simulate', '30', '--echo', '--name', 'pg'], { FEDGE_LOG_LEVEL: 'warn' });
    await fleet.waitFor(/simulated fleet: 30\/30 joined/, 60_000);
    const names = (from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => `pg-${String(from + i).padStart(2, '0')}`);

    // The stream carries the fleet's counts and one page: 10 agents of 30, a fraction of what /api/agents sends.
    const ac = new AbortController();
    const stream = await fetch(`${ui}/api/events?limit=10`, { signal: ac.signal });
    const reader = stream.body!.getReader();
    let got = '';
    let m: RegExpExecArray | null = null;
    while (!(m = /event: agents\ndata: (.*)\n\n/.exec(got))) got += new TextDecoder().decode((await reader.read()).value);
    ac.abort();
    const event = JSON.parse(m[1]!) as { summary: { fleet: number; state: Record<string, number> }; page: { agents: { name: string }[]; total: number; next?: string } };
    expect(event.summary).toMatchObject({ fleet: 30, state: { online: 30, offline: 0 } });
    expect(event.page.agents.map((a) => a.name)).toEqual(names(0, 10));
    expect(event.page.total).toBe(30);
    expect(event.page.next).toEqual(expect.any(String));
    const everyAgent = await (await fetch(`${ui}/api/agents`)).text();
    expect((JSON.parse(everyAgent) as unknown[]).length).toBe(30);
    expect(m[1]!.length).toBeLessThan(everyAgent.length / 2);

    browser ??= await launchChromium();
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const problems: string[] = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error' || /Content Security Policy/i.test(msg.text())) problems.push(msg.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    const rows = (): Promise<string[]> => page.$$eval('#agents tbody tr td:first-child', (tds) => tds.map((td) => td.textContent ?? ''));
    /** Waits until the table lists exactly `want` and the range reads `range`. */
    const showing = async (want: string[], range: string): Promise<void> => {
      await page.waitForFunction(([w, r]) => [...document.querySelectorAll('#agents tbody tr td:first-child')].map((td) => td.textContent).join(',') === w
        && document.querySelector('#agents-range')?.textContent === r, [want.join(','), range] as const, { timeout: 15_000 })
        .catch(async () => {
          throw new Error(`agents page: want ${want.join(',')} (${range}), shows ${(await rows()).join(',')} (${await page.textContent('#agents-range')})`);
        });
    };
    const disabled = (id: string): Promise<boolean> => page.$eval(id, (b) => (b as HTMLButtonElement).disabled);

    await page.goto(`${ui}/#/agents?limit=10`);
    await page.evaluate(() => ((window as unknown as { loadMarker: number }).loadMarker = 1));
    await showing(names(0, 10), '1–10 of 30');
    expect(await page.textContent('h1')).toBe('Agents (30)');
    expect(await page.textContent('#agents-summary')).toMatch(/^30 agents: 30 online \(0 busy, 30 idle\), 0 offline · transport mqtt 30 · serving none 30/);
    expect([await disabled('#agents-prev'), await disabled('#agents-next')]).toEqual([true, false]);
    await page.click('#agents-next');
    await showing(names(10, 20), '11–20 of 30');
    expect(await disabled('#agents-prev')).toBe(false);
    await page.click('#agents-next');
    await showing(names(20, 30), '21–30 of 30');
    expect([await disabled('#agents-prev'), await disabled('#agents-next')]).toEqual([false, true]);
    await page.click('#agents-prev');
    await showing(names(10, 20), '11–20 of 30');
    await page.click('#agents-prev');
    await showing(names(0, 10), '1–10 of 30');
    expect(await disabled('#agents-prev')).toBe(true);

    // A name prefix: pg-1 is pg-10 .. pg-19, one page; the URL keeps the filter.
    await page.fill('#agents-filter input[name="name"]', 'pg-1');
    await page.click('#agents-filter button[type="submit"]');
    await showing(names(10, 20), '1–10 of 10 matching the filter (of 30)');
    expect(await page.evaluate(() => location.hash)).toBe('#/agents?limit=10&name=pg-1');
    expect([await disabled('#agents-prev'), await disabled('#agents-next')]).toEqual([true, true]);
    // No offline agent yet; once the fleet stops, the open page lists them and the counts follow (no reload).
    await page.selectOption('#agents-filter select[name="state"]', 'offline');
    await page.waitForSelector('#agents-none', { timeout: 15_000 });
    expect(await page.textContent('#agents-none')).toBe('No agent matches the filter.');
    expect(await page.textContent('#agents-range')).toBe('0 of 0 matching the filter (of 30)');
    fleet.child.kill('SIGTERM');
    await showing(names(10, 20), '1–10 of 10 matching the filter (of 30)');
    expect(await page.textContent('#agents-summary')).toMatch(/^30 agents: 0 online \(0 busy, 0 idle\), 30 offline/);
    expect(await page.evaluate(() => (window as unknown as { loadMarker?: number }).loadMarker)).toBe(1);
    mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: path.join(OUT, 'agents-paged.png') });
    expect(problems).toEqual([]);

    // A query the coordinator refuses: the page shows its error, which names the parameter.
    await page.goto(`${ui}/#/agents?limit=0`);
    await page.waitForSelector('#agents-page .status-error', { timeout: 15_000 });
    expect(await page.textContent('#agents-page .status-error')).toMatch(/^E_VALIDATION: limit: the event stream carries one page of 1 to 500 agents \(got 0\)/);
    await page.close();
    coord.child.kill('SIGTERM');
    expect(await coord.exited).toBe(0);
  });

  it('is served over HTTPS with fedge serve\'s TLS flags', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fedge-dash-tls-'));
    const f = (n: string): string => path.join(dir, n);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('key.pem'), '-out', f('cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'pipe' });
    const coord = await startCoordinator(['--ui', '127.0.0.1:0', '--tls-cert', f('cert.pem'), '--tls-key', f('key.pem')]);
    expect(coord.uiUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const ca = readFileSync(f('cert.pem'));
    const get = (p: string): Promise<{ status: number; type: string; body: string }> =>
      new Promise((resolve, reject) => {
        https.get(coord.uiUrl! + p, { ca }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
        }).on('error', reject);
      });
    expect(await get('/api/runs')).toEqual({ status: 200, type: 'application/json; charset=utf-8', body: '[]' });
    expect((await get('/')).body).toContain('<script type="module" src="/js/app.js"></script>');
    // Plain HTTP on the TLS port gets no dashboard.
    await expect(fetch(coord.uiUrl!.replace('https:', 'http:') + '/api/runs').then((r) => r.status)).rejects.toThrow();
    coord.child.kill('SIGTERM');
    expect(await coord.exited).toBe(0);
  });
});
