/** The chart tests' renders of deploy/k3s/fedge: `helm template` with overrides, the shared VARIANTS (rendered once per file), and finders. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { CHART, Helm, type Obj } from './helm.js';

export const RELEASE = 'fedge';
export const NAMESPACE = 'edge-ml';

/** Without .tools/bin/helm every call throws "helm not found ...: run scripts/install-helm.sh". */
export const h = new Helm();
const work = h.work;
export const helm = (args: string[]): { status: number; stdout: string; stderr: string } => h.run(args);

/** `--set`-style overrides plus an optional values file (for lists and maps). */
export interface Overrides {
  set?: string[];
  setString?: string[];
  values?: Obj;
}

let valuesFiles = 0;
export function overrideArgs(o: Overrides = {}): string[] {
  const args: string[] = [];
  if (o.values) {
    const file = path.join(work, `values-${valuesFiles++}.json`);
    writeFileSync(file, JSON.stringify(o.values)); // JSON is YAML
    args.push('-f', file);
  }
  for (const s of o.set ?? []) args.push('--set', s);
  for (const s of o.setString ?? []) args.push('--set-string', s);
  return args;
}

export function template(o: Overrides = {}): { status: number; stdout: string; stderr: string } {
  return helm(['template', RELEASE, CHART, '--namespace', NAMESPACE, ...overrideArgs(o)]);
}

/** Multi-document YAML -> objects, parsed by helm's own fromYaml. */
const yamlToObjects = (yamlText: string): Obj[] => h.parse(yamlText);

export function render(o: Overrides = {}): Obj[] {
  const r = template(o);
  if (r.status !== 0) throw new Error(`helm template failed (${JSON.stringify(o)}):\n${r.stderr}`);
  return yamlToObjects(r.stdout);
}

export const find = (objs: Obj[], kind: string, name?: string): Obj[] => objs.filter((x) => x.kind === kind && (name === undefined || x.metadata?.name === name));
export function one(objs: Obj[], kind: string, name: string): Obj {
  const found = find(objs, kind, name);
  expect(found, `${kind}/${name} in ${objs.map((x) => `${x.kind}/${x.metadata?.name}`).join(', ')}`).toHaveLength(1);
  return found[0]!;
}
export const workloads = (objs: Obj[]): Obj[] => objs.filter((x) => ['StatefulSet', 'DaemonSet', 'Deployment', 'Job', 'CronJob'].includes(x.kind));
export const podSpec = (w: Obj): Obj => (w.kind === 'CronJob' ? w.spec.jobTemplate.spec.template.spec : w.spec.template.spec);
export const containersOf = (w: Obj): Obj[] => [...(podSpec(w).initContainers ?? []), ...podSpec(w).containers];
export const container = (w: Obj, name: string): Obj => {
  const c = podSpec(w).containers.find((x: Obj) => x.name === name);
  expect(c, `container ${name} in ${w.kind}/${w.metadata.name}`).toBeDefined();
  return c;
};

/** Every render the security and token checks run on. */
export const VARIANTS: Record<string, Overrides> = {
  defaults: {},
  existingSecret: { set: ['auth.existingSecret=my-fedge-tokens', 'auth.joinTokenKey=join', 'auth.adminTokenKey=admin'] },
  serviceMonitor: { set: ['serviceMonitor.enabled=true', 'agent.metrics.enabled=true'], values: { serviceMonitor: { labels: { release: 'kube-prometheus-stack' } } } },
  serving: { set: ['agent.serving.enabled=true', 'agent.serving.modelName=mnist'] },
  mqtt: { set: ['coordinator.mqtt.enabled=true', 'agent.transport=mqtt', 'networkPolicy.enabled=true'] },
  mosquitto: { set: ['mosquitto.enabled=true', 'agent.transport=mqtt', 'networkPolicy.enabled=true', 'mosquitto.tls.existingSecret=mq-tls'] },
  mosquittoDynsec: { set: ['mosquitto.enabled=true', 'agent.transport=mqtt', 'networkPolicy.enabled=true', 'mosquitto.dynsec.enabled=true'] },
  tls: { set: ['coordinator.tls.existingSecret=fedge-tls'] },
  ui: {
    set: ['coordinator.ui.enabled=true', 'coordinator.ui.ingress.enabled=true', 'coordinator.ui.ingress.host=fedge.example.com', 'networkPolicy.enabled=true'],
    values: { coordinator: { ui: { ingress: { annotations: { 'traefik.ingress.kubernetes.io/router.entrypoints': 'websecure' }, tls: [{ secretName: 'fedge-ui-tls', hosts: ['fedge.example.com'] }] } } } },
  },
  identity: { set: ['agent.identity.enabled=true', 'agent.identity.enrollmentSecret=fedge-enroll'] },
  site: { set: ['coordinator.upstream=grpc://fedge-root.example:7070', 'coordinator.siteName=factory-1', 'coordinator.site.minAgents=3', 'coordinator.site.upstreamJoinTokenSecret=root-join'] },
  gpu: {
    set: ['agent.gpu.enabled=true', 'agent.gpu.count=2', 'agent.backend=tensorflow'],
    setString: ['agent.gpu.nodeSelector.nvidia\\.com/gpu\\.present=true', 'agent.nodeSelector.node-role\\.kubernetes\\.io/edge=true'],
  },
  everything: {
    set: [
      'auth.joinToken=join-s3cret-value',
      'auth.adminToken=admin-s3cret-value',
      'serviceMonitor.enabled=true',
      'agent.serving.enabled=true',
      'agent.metrics.enabled=true',
      'networkPolicy.enabled=true',
      'coordinator.persistence.size=50Gi',
      'coordinator.service.type=NodePort',
      'coordinator.service.nodePort=30070',
      'agent.data=csv:/data/local.csv',
      'agent.dataVolume.type=hostPath',
      'agent.dataVolume.hostPath.path=/srv/fedge',
      'prometheusRule.enabled=true',
      'grafanaDashboard.enabled=true',
      'coordinator.keepVersions=3',
    ],
    setString: ['agent.nodeSelector.node-role\\.kubernetes\\.io/edge=true'],
    values: { agent: { tolerations: [{ key: 'node-role.kubernetes.io/edge', operator: 'Exists', effect: 'NoSchedule' }], extraArgs: ['--holdout', '0.2'] } },
  },
};

/** The render of one of VARIANTS, made on first use (so that without helm each test fails, naming the install script). */
const cache = new Map<string, Obj[]>();
export function rendered(name: keyof typeof VARIANTS): Obj[] {
  if (!cache.has(name)) cache.set(name, render(VARIANTS[name]!));
  return cache.get(name)!;
}
export const allRendered = (): Array<[string, Obj[]]> => Object.keys(VARIANTS).map((name) => [name, rendered(name)]);

export const names = {
  coordinator: `${RELEASE}-coordinator`,
  agent: `${RELEASE}-agent`,
  secret: `${RELEASE}-tokens`,
  sa: RELEASE,
};
