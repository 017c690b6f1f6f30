/**
 * The chart's alert rules, Grafana dashboard and probes (issue 15). The PrometheusRule is rendered from
 * alerts/fedge-rules.yaml; `promtool check rules` and the unit tests of fedge-rules.promtool.yaml run on that file and
 * on the rules taken out of the rendered chart, so the chart ships exactly the tested rules. The dashboard ConfigMap
 * carries dashboards/fedge.json for the Grafana sidecar. The probes the chart renders are sent to a real coordinator
 * and agent started with the rendered container arguments.
 *
 * Needs .tools/bin/helm and .tools/bin/promtool (scripts/install-helm.sh, scripts/install-promtool.sh) and a build.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FEDGE, FEDGE_AGENT, freePort, killAll, startProcess } from '../e2e/harness.js';
import { CHART, Helm, ROOT, type Obj } from './helm.js';

const PROMTOOL = path.join(ROOT, '.tools/bin/promtool');
const RULES = path.join(CHART, 'alerts/fedge-rules.yaml');
const RULE_TESTS = path.join(ROOT, 'test/chart/fedge-rules.promtool.yaml');
const DASHBOARD = path.join(CHART, 'dashboards/fedge.json');

const helm = new Helm();
afterAll(() => {
  killAll();
  helm.close();
});

function promtool(args: string[]): { status: number | null; out: string } {
  if (!existsSync(PROMTOOL)) throw new Error(`promtool not found at ${path.relative(ROOT, PROMTOOL)}: run scripts/install-promtool.sh`);
  const r = spawnSync(PROMTOOL, args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const byKind = (objs: Obj[], kind: string): Obj[] => objs.filter((o) => o.kind === kind);
const alertNames = (groups: Obj[]): string[] => groups.flatMap((g) => g.rules.map((r: Obj) => r.alert as string));
const fileGroups = (): Obj[] => helm.parse(readFileSync(RULES, 'utf8'))[0]!.groups as Obj[];

describe('alert rules', () => {
  it('pass promtool check rules and their unit tests (fedge-rules.promtool.yaml), which cover every alert', () => {
    const check = promtool(['check', 'rules', RULES]);
    expect(check.status, check.out).toBe(0);
    const names = alertNames(fileGroups());
    expect(check.out).toContain(`SUCCESS: ${names.length} rules found`);
    const t = promtool(['test', 'rules', RULE_TESTS]);
    expect(t.status, t.out).toBe(0);
    expect(t.out).toMatch(/SUCCESS/);
    const tested = new Set([...readFileSync(RULE_TESTS, 'utf8').matchAll(/alertname: (\w+)/g)].map((m) => m[1]));
    expect(names.filter((n) => !tested.has(n)), 'alerts without a promtool test').toEqual([]);
  });

  it('the unit tests can fail: a rule with a changed threshold breaks them', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fedge-rules-'));
    writeFileSync(path.join(dir, 'rules.yaml'), readFileSync(RULES, 'utf8').replace('fedge_epsilon / fedge_epsilon_max > 0.9', 'fedge_epsilon / fedge_epsilon_max > 0.99'));
    writeFileSync(path.join(dir, 'tests.yaml'), readFileSync(RULE_TESTS, 'utf8').replace(/rule_files:\n {2}- .*\n/, 'rule_files:\n  - rules.yaml\n'));
    const t = promtool(['test', 'rules', path.join(dir, 'tests.yaml')]);
    expect(t.status).not.toBe(0);
    expect(t.out).toMatch(/FedgePrivacyBudgetNearlySpent/);
  });

  it('render as a PrometheusRule only with prometheusRule.enabled, holding exactly the tested rules', () => {
    expect(byKind(helm.render(), 'PrometheusRule')).toEqual([]);
    const [pr, ...more] = byKind(helm.render({ prometheusRule: { enabled: true, labels: { release: 'kube-prometheus-stack' } } }), 'PrometheusRule');
    expect(more).toEqual([]);
    expect(pr!.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(pr!.metadata).toMatchObject({ name: 'fedge', namespace: 'edge-ml', labels: { release: 'kube-prometheus-stack', 'app.kubernetes.io/part-of': 'fedge' } });
    expect(pr!.spec.groups).toEqual(fileGroups());
    // The rules promtool tests, taken from the render: the same unit tests pass on them.
    const dir = mkdtempSync(path.join(tmpdir(), 'fedge-rules-'));
    writeFileSync(path.join(dir, 'rendered.json'), JSON.stringify({ groups: pr!.spec.groups }));
    writeFileSync(path.join(dir, 'tests.yaml'), readFileSync(RULE_TESTS, 'utf8').replace(/rule_files:\n {2}- .*\n/, 'rule_files:\n  - rendered.json\n'));
    const check = promtool(['check', 'rules', path.join(dir, 'rendered.json')]);
    expect(check.status, check.out).toBe(0);
    const t = promtool(['test', 'rules', path.join(dir, 'tests.yaml')]);
    expect(t.status, t.out).toBe(0);
  });

  it('leave out disabled alerts, add ruleLabels and extraRules, and refuse an alert name the chart does not have', () => {
    const [pr] = byKind(helm.render({ prometheusRule: {
      enabled: true, disabledAlerts: ['FedgeRoundsFailing'], ruleLabels: { team: 'ml', severity: 'page' },
      extraRules: [{ alert: 'MyFedgeAlert', expr: 'fedge_runs{status="failed"} > 0', for: '5m', labels: { severity: 'info' } }],
    } }), 'PrometheusRule');
    const names = alertNames(pr!.spec.groups);
    expect(names).not.toContain('FedgeRoundsFailing');
    expect(names).toContain('FedgeServingErrors');
    expect(names.at(-1)).toBe('MyFedgeAlert');
    const rule = (n: string): Obj => pr!.spec.groups.flatMap((g: Obj) => g.rules).find((r: Obj) => r.alert === n);
    // ruleLabels are added; an alert's own severity stays.
    expect(rule('FedgeServingErrors').labels).toEqual({ severity: 'critical', team: 'ml' });
    const bad = helm.template({ prometheusRule: { enabled: true, disabledAlerts: ['FedgeNoSuchAlert'] } });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/prometheusRule.disabledAlerts: no alert named "FedgeNoSuchAlert"; the chart's alerts are FedgeAgentsOffline/);
  });
});

describe('Grafana dashboard', () => {
  it('is a ConfigMap labelled for the sidecar with dashboards/fedge.json, only with grafanaDashboard.enabled', () => {
    expect(byKind(helm.render(), 'ConfigMap')).toEqual([]);
    const [cm] = byKind(helm.render({ grafanaDashboard: { enabled: true, annotations: { grafana_folder: 'fedge' } } }), 'ConfigMap');
    expect(cm!.metadata).toMatchObject({ name: 'fedge-dashboard', labels: { grafana_dashboard: '1' }, annotations: { grafana_folder: 'fedge' } });
    const file = readFileSync(DASHBOARD, 'utf8');
    expect(cm!.data['fedge.json']).toBe(file.trimEnd());
    const d = JSON.parse(file) as Obj;
    expect(d.uid).toBe('fedge-overview');
    const titles = (d.panels as Obj[]).map((p) => p.title as string).join(' | ');
    for (const want of ['Runs by status', 'Rounds', 'Accuracy', 'epsilon', 'Agents by status', 'Drift', 'latency', 'Canar']) expect(titles).toContain(want);
    for (const p of (d.panels as Obj[]).filter((x) => x.type !== 'row')) {
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets) expect(t.datasource?.uid, `${p.title}: queries go to the dashboard's data source variable`).toBe('${datasource}');
    }
  });
});

/** The container's args with every 0.0.0.0:PORT listen address moved to a free loopback port; ports maps chart port -> real. */
async function localArgs(args: string[], replace: Record<string, string>): Promise<{ args: string[]; ports: Map<number, number> }> {
  const ports = new Map<number, number>();
  const out: string[] = [];
  for (const a of args) {
    const m = /^0\.0\.0\.0:(\d+)$/.exec(a);
    if (m) {
      const p = await freePort();
      ports.set(Number(m[1]), p);
      out.push(`127.0.0.1:${p}`);
    } else out.push(replace[a] ?? a);
  }
  return { args: out, ports };
}

/** GET the probe's path on the real port behind its named container port; the status, retried until `want` or timeout. */
async function probe(c: Obj, name: string, ports: Map<number, number>, want: number, ms = 90_000): Promise<{ status: number; body: string }> {
  const h = c[name]?.httpGet;
  expect(h, `${name} is an httpGet probe`).toBeDefined();
  const containerPort = (c.ports as Obj[]).find((p) => p.name === h.port)?.containerPort as number;
  const port = ports.get(containerPort);
  expect(port, `${name} port ${h.port} (${containerPort}) is one the process listens on`).toBeDefined();
  const end = Date.now() + ms;
  let last = { status: 0, body: '' };
  while (Date.now() < end) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}${h.path}`);
      last = { status: r.status, body: await r.text() };
      if (last.status === want) return last;
    } catch (err) {
      last = { status: 0, body: (err as Error).message };
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  return last;
}

describe('probes', () => {
  it('coordinator and agent probes are GET /healthz and /readyz on the metrics port, and answer on real processes started with the rendered args', { timeout: 180_000 }, async () => {
    const objs = helm.render({ agent: { metrics: { enabled: true } } });
    const sts = objs.find((o) => o.kind === 'StatefulSet')!;
    const ds = objs.find((o) => o.kind === 'DaemonSet')!;
    const cc = sts.spec.template.spec.containers.find((x: Obj) => x.name === 'coordinator');
    const ac = ds.spec.template.spec.containers.find((x: Obj) => x.name === 'agent');
    expect([cc.startupProbe.httpGet, cc.livenessProbe.httpGet, cc.readinessProbe.httpGet]).toEqual([
      { path: '/healthz', port: 'metrics' }, { path: '/healthz', port: 'metrics' }, { path: '/readyz', port: 'metrics' },
    ]);
    expect([ac.livenessProbe.httpGet, ac.readinessProbe.httpGet]).toEqual([{ path: '/healthz', port: 'metrics' }, { path: '/readyz', port: 'metrics' }]);

    const dataDir = mkdtempSync(path.join(tmpdir(), 'fedge-chart-probe-'));
    const co = await localArgs(cc.args, { '/data': dataDir });
    const coord = startProcess(FEDGE, co.args);
    const ready = await coord.waitFor(/coordinator ready on/, 60_000);
    const grpc = /ready on ([\d.]+:\d+)/.exec(ready)![1]!;
    for (const [name, want] of [['startupProbe', 200], ['livenessProbe', 200], ['readinessProbe', 200]] as const) {
      const r = await probe(cc, name, co.ports, want, 10_000);
      expect(r.status, `coordinator ${name}: ${r.body}`).toBe(want);
    }
    expect(JSON.parse((await probe(cc, 'readinessProbe', co.ports, 200)).body)).toEqual({ ready: true });

    const coordinatorUrl = ac.args[ac.args.indexOf('--coordinator') + 1] as string;
    const ag = await localArgs(ac.args, { [coordinatorUrl]: `grpc://${grpc}`, '$(NODE_NAME)': 'chart-probe-node' });
    startProcess(FEDGE_AGENT, ag.args);
    const live = await probe(ac, 'livenessProbe', ag.ports, 200);
    expect(live.status, live.body).toBe(200);
    const r = await probe(ac, 'readinessProbe', ag.ports, 200);
    expect(r.status, `agent readiness (joined to the coordinator): ${r.body}`).toBe(200);
    coord.child.kill('SIGKILL');
    await coord.exited;
    // Within the reconnect grace the agent stays ready; the coordinator's probes no longer answer.
    expect((await probe(ac, 'readinessProbe', ag.ports, 200, 2_000)).status).toBe(200);
    expect((await probe(cc, 'livenessProbe', co.ports, 200, 1_000)).status).toBe(0);
  });

  it('without metrics the coordinator falls back to a TCP check of gRPC; a probe given in values is used as it is', () => {
    const off = helm.render({ coordinator: { metrics: { enabled: false } } }).find((o) => o.kind === 'StatefulSet')!;
    const c = off.spec.template.spec.containers[0];
    for (const p of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
      expect(c[p].tcpSocket, p).toEqual({ port: 'grpc' });
      expect(c[p].httpGet, p).toBeUndefined();
    }
    expect(c.startupProbe).toMatchObject({ periodSeconds: 5, failureThreshold: 60 });
    // Values merge with the defaults (the timings stay); null removes a probe.
    const own = helm.render({ coordinator: { readinessProbe: { exec: { command: ['true'] }, periodSeconds: 3 }, livenessProbe: null } }).find((o) => o.kind === 'StatefulSet')!;
    const oc = own.spec.template.spec.containers[0];
    expect(oc.readinessProbe).toEqual({ exec: { command: ['true'] }, periodSeconds: 3, timeoutSeconds: 5, failureThreshold: 3 });
    expect(oc.livenessProbe).toBeUndefined();
    expect(oc.startupProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
  });
});
