/**
 * The K3s Helm chart (deploy/k3s/fedge): `helm lint`, `helm template` with default values and with overrides,
 * and checks on the rendered objects (security contexts, tokens, listeners, persistence, schema errors).
 *
 * Needs .tools/bin/helm: `bash scripts/install-helm.sh` (CI runs it before `npm test`). Without it every test
 * fails with "run scripts/install-helm.sh" instead of being skipped.
 *
 * The rendered YAML is turned into JSON by helm itself (no YAML dependency; ./helm.ts): a throwaway chart whose
 * only template reads the rendered manifests from a file, parses each document with `fromYaml` and prints a v1 List
 * with `toJson`.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CHART, ROOT, type Obj } from './helm.js';
import { NAMESPACE, RELEASE, VARIANTS, allRendered, container, containersOf, find, h, helm, names, one, overrideArgs, podSpec, render, rendered, template, workloads, type Overrides } from './chart-render.js';

afterAll(() => h.close());

/** The flags (--x) a CLI's help lists. */
function cliFlags(script: string, ...args: string[]): Set<string> {
  const r = spawnSync(process.execPath, [path.join(ROOT, script), ...args, '--help'], { encoding: 'utf8' });
  expect(r.status, `${script} ${args.join(' ')} --help: ${r.stderr}`).toBe(0);
  return new Set(r.stdout.match(/--[a-z][a-z0-9-]*/g) ?? []);
}

describe('helm chart deploy/k3s/fedge', () => {
  it('passes helm lint --strict, with default values and with every override set', () => {
    const lint = helm(['lint', '--strict', CHART, '--namespace', NAMESPACE]);
    expect(lint.status, lint.stdout + lint.stderr).toBe(0);
    expect(lint.stdout).toMatch(/0 chart\(s\) failed/);
    expect(lint.stdout).not.toMatch(/\[(ERROR|WARNING)\]/);
    for (const [name, o] of Object.entries(VARIANTS)) {
      const r = helm(['lint', '--strict', CHART, '--namespace', NAMESPACE, ...overrideArgs(o)]);
      expect(r.status, `${name}: ${r.stdout}${r.stderr}`).toBe(0);
    }
  });

  it('has appVersion = the root package.json version', () => {
    const version = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    const chart = readFileSync(path.join(CHART, 'Chart.yaml'), 'utf8');
    expect(chart).toMatch(/^apiVersion: v2$/m);
    expect(chart.match(/^appVersion:\s*"?([^"\s]+)"?\s*$/m)?.[1]).toBe(version);
    const sts = one(rendered('defaults'), 'StatefulSet', names.coordinator);
    expect(container(sts, 'coordinator').image).toBe(`fedge:${version}`);
  });

  it('renders by default: ServiceAccount, token Secret, coordinator StatefulSet + Services, agent DaemonSet; nothing optional', () => {
    const objs = rendered('defaults');
    const kinds = objs.map((x) => `${x.kind}/${x.metadata.name}`).sort();
    expect(kinds).toEqual(
      [
        `DaemonSet/${names.agent}`,
        `Secret/${names.secret}`,
        `Service/${names.coordinator}`,
        `Service/${names.coordinator}-headless`,
        `ServiceAccount/${names.sa}`,
        `StatefulSet/${names.coordinator}`,
      ].sort(),
    );
    for (const x of objs) {
      expect(x.metadata.namespace, `${x.kind}/${x.metadata.name}`).toBe(NAMESPACE);
      expect(x.metadata.labels['app.kubernetes.io/instance']).toBe(RELEASE);
      expect(x.metadata.labels['app.kubernetes.io/managed-by']).toBe('Helm');
    }
  });

  it('runs every pod non-root, read-only, without privilege escalation or capabilities, with seccomp and no API token', () => {
    for (const [variant, objs] of allRendered()) {
      const sa = one(objs, 'ServiceAccount', names.sa);
      expect(sa.automountServiceAccountToken).toBe(false);
      expect(workloads(objs).length, variant).toBeGreaterThan(0);
      for (const w of workloads(objs)) {
        const where = `${variant}: ${w.kind}/${w.metadata.name}`;
        const spec = podSpec(w);
        expect(spec.automountServiceAccountToken, where).toBe(false);
        expect(spec.serviceAccountName, where).toBe(names.sa);
        expect(spec.hostNetwork ?? false, where).toBe(false);
        expect(spec.hostPID ?? false, where).toBe(false);
        expect(spec.securityContext, where).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } });
        expect(spec.terminationGracePeriodSeconds, where).toBeGreaterThan(0);
        for (const c of containersOf(w)) {
          const at = `${where} container ${c.name}`;
          expect(c.securityContext, at).toMatchObject({
            runAsNonRoot: true,
            runAsUser: 1000,
            readOnlyRootFilesystem: true,
            allowPrivilegeEscalation: false,
            seccompProfile: { type: 'RuntimeDefault' },
          });
          expect(c.securityContext.privileged ?? false, at).toBe(false);
          expect(c.securityContext.capabilities.drop, at).toContain('ALL');
          expect(c.securityContext.capabilities.add ?? [], at).toEqual([]);
          // read-only root filesystem: /tmp is a writable emptyDir
          const tmp = (c.volumeMounts ?? []).find((m: Obj) => m.mountPath === '/tmp');
          expect(tmp, at).toBeDefined();
          expect(spec.volumes.find((v: Obj) => v.name === tmp.name)?.emptyDir, at).toBeDefined();
          expect(c.resources?.requests, at).toBeDefined();
        }
      }
    }
  });

  it('passes tokens only as env from secretKeyRef, never as args or plain values', () => {
    for (const [variant, objs] of allRendered()) {
      const secretName = variant === 'existingSecret' ? 'my-fedge-tokens' : names.secret;
      const keys = variant === 'existingSecret' ? { join: 'join', admin: 'admin' } : { join: 'join-token', admin: 'admin-token' };
      for (const w of workloads(objs)) {
        for (const c of containersOf(w)) {
          const at = `${variant}: ${w.kind}/${w.metadata.name} container ${c.name}`;
          const argv = [...(c.command ?? []), ...(c.args ?? [])].join(' ');
          expect(argv, at).not.toMatch(/token|s3cret/i);
          const tokens = (c.env ?? []).filter((e: Obj) => /TOKEN/.test(e.name));
          for (const e of tokens) {
            expect(e.value, `${at} ${e.name}`).toBeUndefined();
            // A site's token for its root lives in a Secret of its own (coordinator.site.upstreamJoinTokenSecret).
            expect(e.valueFrom?.secretKeyRef?.name, `${at} ${e.name}`).toBe(e.name === 'FEDGE_UPSTREAM_JOIN_TOKEN' ? 'root-join' : secretName);
          }
          const join = tokens.find((e: Obj) => e.name === 'FEDGE_JOIN_TOKEN');
          // The Mosquitto broker itself runs no fedge process: only its password-file init container reads the token
          // (with mosquitto.dynsec the coordinator keeps fedge-agent's login, so that init container needs none).
          if (c.name !== 'mosquitto' && c.name !== 'dynsec-init') expect(join?.valueFrom.secretKeyRef.key, at).toBe(keys.join);
          const admin = tokens.find((e: Obj) => e.name === 'FEDGE_ADMIN_TOKEN');
          if (w.kind === 'StatefulSet') expect(admin?.valueFrom.secretKeyRef.key, at).toBe(keys.admin);
          else expect(admin, `${at}: agents do not get the admin token`).toBeUndefined();
        }
      }
      expect(JSON.stringify(workloads(objs)), variant).not.toMatch(/s3cret/);
    }
    // existingSecret: the chart creates no Secret
    expect(find(rendered('existingSecret'), 'Secret')).toEqual([]);
    // chart-created Secret: given tokens, base64 in data; generated ones are 32 characters
    const given = one(rendered('everything'), 'Secret', names.secret);
    expect(Buffer.from(given.data['join-token'], 'base64').toString()).toBe('join-s3cret-value');
    expect(Buffer.from(given.data['admin-token'], 'base64').toString()).toBe('admin-s3cret-value');
    const generated = one(rendered('defaults'), 'Secret', names.secret);
    for (const key of ['join-token', 'admin-token']) expect(Buffer.from(generated.data[key], 'base64').toString()).toMatch(/^[A-Za-z0-9]{32}$/);
  });

  it('runs the coordinator as a one-replica StatefulSet with its data dir on a local-path PVC', () => {
    const objs = rendered('defaults');
    const sts = one(objs, 'StatefulSet', names.coordinator);
    expect(sts.spec.replicas).toBe(1);
    expect(sts.spec.serviceName).toBe(`${names.coordinator}-headless`);
    const c = container(sts, 'coordinator');
    expect(c.command).toEqual(['fedge']);
    expect(c.args).toEqual(['serve', '--listen', '0.0.0.0:7070', '--data-dir', '/data', '--metrics', '0.0.0.0:9464', '--no-mqtt']);
    const claims = sts.spec.volumeClaimTemplates;
    expect(claims).toHaveLength(1);
    expect(claims[0].metadata.name).toBe('data');
    expect(claims[0].spec).toMatchObject({ storageClassName: 'local-path', accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '10Gi' } } });
    expect(c.volumeMounts).toContainEqual({ name: 'data', mountPath: '/data' });
    expect(podSpec(sts).volumes.find((v: Obj) => v.name === 'data'), 'data comes from the claim, not a pod volume').toBeUndefined();
    expect(c.ports.map((p: Obj) => [p.name, p.containerPort])).toEqual([['grpc', 7070], ['metrics', 9464]]);
    // Metrics on (the default): the probes ask the metrics listener (/healthz, /readyz); test/chart/observability.test.ts
    // sends them to a real coordinator.
    for (const [probe, p] of [['livenessProbe', '/healthz'], ['readinessProbe', '/readyz'], ['startupProbe', '/healthz']] as const) expect(c[probe]?.httpGet, probe).toEqual({ path: p, port: 'metrics' });
    expect(podSpec(sts).terminationGracePeriodSeconds).toBe(60);

    const svc = one(objs, 'Service', names.coordinator);
    expect(svc.spec.type).toBe('ClusterIP');
    expect(svc.spec.ports.map((p: Obj) => [p.name, p.port, p.targetPort])).toEqual([['grpc', 7070, 'grpc'], ['metrics', 9464, 'metrics']]);
    expect(svc.spec.selector).toEqual(sts.spec.selector.matchLabels);
    expect(sts.spec.template.metadata.labels).toMatchObject(sts.spec.selector.matchLabels);

    const big = one(rendered('everything'), 'StatefulSet', names.coordinator);
    expect(big.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe('50Gi');
    expect(one(rendered('everything'), 'Service', names.coordinator).spec.ports[0]).toMatchObject({ nodePort: 30070 });
    // persistence off: an emptyDir, no claim
    const eph = one(render({ set: ['coordinator.persistence.enabled=false'] }), 'StatefulSet', names.coordinator);
    expect(eph.spec.volumeClaimTemplates).toBeUndefined();
    expect(podSpec(eph).volumes.find((v: Obj) => v.name === 'data')?.emptyDir).toBeDefined();
  });

  it('runs one agent per node, named after the node, pointed at the coordinator Service, listening on nothing by default', () => {
    const ds = one(rendered('defaults'), 'DaemonSet', names.agent);
    const c = container(ds, 'agent');
    expect(c.command).toEqual(['fedge-agent']);
    const args: string[] = c.args;
    expect(args.slice(0, 4)).toEqual(['--coordinator', `grpc://${names.coordinator}.${NAMESPACE}.svc:7070`, '--name', '$(NODE_NAME)']);
    expect(args[args.indexOf('--data') + 1]).toBe('mnist');
    expect(c.env.find((e: Obj) => e.name === 'NODE_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('spec.nodeName');
    expect(JSON.stringify(c.args)).not.toContain('0.0.0.0');
    expect(args).not.toContain('--serve');
    expect(args).not.toContain('--metrics');
    expect(c.ports).toBeUndefined();
    expect(find(rendered('defaults'), 'Service', names.agent)).toEqual([]);
    // the coordinator Service the agents dial exists and serves that port
    expect(one(rendered('defaults'), 'Service', names.coordinator).spec.ports[0].port).toBe(7070);

    // edge nodes, tolerations, hostPath data, extra args
    const edge = one(rendered('everything'), 'DaemonSet', names.agent);
    const spec = podSpec(edge);
    expect(spec.nodeSelector).toEqual({ 'node-role.kubernetes.io/edge': 'true' });
    expect(spec.tolerations).toEqual([{ key: 'node-role.kubernetes.io/edge', operator: 'Exists', effect: 'NoSchedule' }]);
    const ec = container(edge, 'agent');
    expect(ec.args[ec.args.indexOf('--data') + 1]).toBe('csv:/data/local.csv');
    expect(ec.args.slice(-2)).toEqual(['--holdout', '0.2']);
    expect(ec.volumeMounts).toContainEqual({ name: 'data', mountPath: '/data', readOnly: true });
    expect(spec.volumes.find((v: Obj) => v.name === 'data')?.hostPath).toEqual({ path: '/srv/fedge', type: 'Directory' });
  });

  it('serves the global model on 0.0.0.0:8080 behind a Service only when agent.serving.enabled', () => {
    const objs = rendered('serving');
    const c = container(one(objs, 'DaemonSet', names.agent), 'agent');
    const args: string[] = c.args;
    expect(args.slice(args.indexOf('--serve'), args.indexOf('--serve') + 4)).toEqual(['--serve', '0.0.0.0:8080', '--serve-name', 'mnist']);
    expect(args).not.toContain('--metrics');
    expect(c.ports).toEqual([{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
    // /readyz and /healthz of the serving port (aliases of /v2/health/ready and /live): ready once a model is loaded.
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    const svc = one(objs, 'Service', names.agent);
    expect(svc.spec.ports.map((p: Obj) => [p.name, p.port, p.targetPort])).toEqual([['http', 8080, 'http']]);
    expect(svc.spec.selector['app.kubernetes.io/component']).toBe('agent');
  });

  it('enrolls agents with per-device keys from a Secret of codes (agent.identity), keeping each key on its node', () => {
    expect(container(one(rendered('defaults'), 'DaemonSet', names.agent), 'agent').args).not.toContain('--state-dir');
    const ds = one(rendered('identity'), 'DaemonSet', names.agent);
    const c = container(ds, 'agent');
    const args: string[] = c.args;
    expect(args.slice(args.indexOf('--state-dir'), args.indexOf('--state-dir') + 2)).toEqual(['--state-dir', '/var/lib/fedge-agent']);
    // Each node reads only its own key of the Secret, by node name; the code never appears in args or env.
    expect(args.slice(args.indexOf('--enroll-code-file'), args.indexOf('--enroll-code-file') + 2)).toEqual(['--enroll-code-file', '/etc/fedge/enroll/$(NODE_NAME)']);
    expect(JSON.stringify(c.env)).not.toMatch(/ENROLL/);
    expect(c.volumeMounts).toContainEqual({ name: 'state', mountPath: '/var/lib/fedge-agent' });
    expect(c.volumeMounts).toContainEqual({ name: 'enroll', mountPath: '/etc/fedge/enroll', readOnly: true });
    const vols: Obj[] = podSpec(ds).volumes;
    expect(vols.find((v) => v.name === 'state')?.hostPath).toEqual({ path: '/var/lib/fedge/agent-state', type: 'Directory' });
    expect(vols.find((v) => v.name === 'enroll')?.secret).toEqual({ secretName: 'fedge-enroll', defaultMode: 0o400, optional: true });
    // Without a Secret (every node enrolled earlier) the key alone is used.
    const noCodes = container(one(render({ set: ['agent.identity.enabled=true'] }), 'DaemonSet', names.agent), 'agent');
    expect(noCodes.args).toContain('--state-dir');
    expect(noCodes.args).not.toContain('--enroll-code-file');
    const bad = template({ set: ['agent.identity.enabled=true', 'agent.identity.stateHostPath='] });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/agent.identity.stateHostPath/);
    expect(template({ set: ['agent.identity.enabled=yes-please'] }).stderr).toMatch(/identity/);
  });

  it('puts agents on GPU nodes only with agent.gpu.enabled: nvidia.com/gpu limit, NVIDIA runtime class, GPU node labels, native backend', () => {
    const plain = podSpec(one(rendered('defaults'), 'DaemonSet', names.agent));
    expect(plain.runtimeClassName).toBeUndefined();
    expect(JSON.stringify(plain)).not.toMatch(/nvidia/);
    const spec = podSpec(one(rendered('gpu'), 'DaemonSet', names.agent));
    expect(spec.runtimeClassName).toBe('nvidia');
    const c = spec.containers.find((x: Obj) => x.name === 'agent');
    // The GPU limit joins the chart's own limits and requests, which stay as they were.
    expect(c.resources).toEqual({ limits: { memory: '1Gi', 'nvidia.com/gpu': 2 }, requests: { cpu: '100m', memory: '256Mi' } });
    expect(c.args.slice(c.args.indexOf('--backend'), c.args.indexOf('--backend') + 2)).toEqual(['--backend', 'tensorflow']);
    expect(spec.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true', 'node-role.kubernetes.io/edge': 'true' });
    expect(c.env).toContainEqual({ name: 'TF_FORCE_GPU_ALLOW_GROWTH', value: 'true' });
    // No runtime class (the GPU Operator made nvidia the default runtime): none rendered.
    const noClass = podSpec(one(render({ set: ['agent.gpu.enabled=true', 'agent.backend=tensorflow', 'agent.gpu.runtimeClassName='] }), 'DaemonSet', names.agent));
    expect(noClass.runtimeClassName).toBeUndefined();
    // A GPU agent on `auto` would silently train on wasm where the GPU backend does not load: refused.
    const auto = template({ set: ['agent.gpu.enabled=true'] });
    expect(auto.status).not.toBe(0);
    expect(auto.stderr).toMatch(/agent.backend=tensorflow/);
    expect(template({ set: ['agent.gpu.enabled=true', 'agent.backend=tensorflow', 'agent.gpu.count=0'] }).stderr).toMatch(/count/);
  });

  it('passes join limits to fedge serve only when coordinator.joinLimits sets them, and the schema refuses nonsense', () => {
    // Unset: fedge serve's own defaults, no flags.
    const args: string[] = container(one(rendered('defaults'), 'StatefulSet', names.coordinator), 'coordinator').args;
    expect(args.filter((a) => /^--(max-token-agents|join-rate|join-burst)$/.test(a))).toEqual([]);
    const set = container(one(render({ set: ['coordinator.joinLimits.maxTokenAgents=50', 'coordinator.joinLimits.rate=0.5', 'coordinator.joinLimits.burst=400'] }), 'StatefulSet', names.coordinator), 'coordinator').args as string[];
    const flag = (f: string): string | undefined => set[set.indexOf(f) + 1];
    expect([flag('--max-token-agents'), flag('--join-rate'), flag('--join-burst')]).toEqual(['50', '0.5', '400']);
    expect(container(one(render({ values: { coordinator: { joinLimits: { rate: 2.5 } } } }), 'StatefulSet', names.coordinator), 'coordinator').args).toContain('2.5');
    expect(template({ set: ['coordinator.joinLimits.burst=0'] }).stderr).toMatch(/burst/);
    expect(template({ set: ['coordinator.joinLimits.rate=fast'] }).stderr).toMatch(/rate/);
  });

  it('makes the release an aggregator site of a root only with coordinator.upstream (fedge serve --upstream --name), the root\'s token from a Secret', () => {
    const args: string[] = container(one(rendered('defaults'), 'StatefulSet', names.coordinator), 'coordinator').args;
    expect(args.filter((a) => /^--(upstream|name|site-)/.test(a))).toEqual([]);
    const c = container(one(rendered('site'), 'StatefulSet', names.coordinator), 'coordinator');
    const site = c.args as string[];
    const flag = (f: string): string | undefined => site[site.indexOf(f) + 1];
    expect([flag('--upstream'), flag('--name'), flag('--site-min-agents'), flag('--site-fraction'), flag('--site-deadline')]).toEqual(['grpc://fedge-root.example:7070', 'factory-1', '3', '1', '600']);
    expect((c.env as Obj[]).find((e) => e.name === 'FEDGE_UPSTREAM_JOIN_TOKEN')?.valueFrom.secretKeyRef).toEqual({ name: 'root-join', key: 'joinToken' });
    // The site's own agents still join this release's coordinator.
    expect(container(one(rendered('site'), 'DaemonSet', names.agent), 'agent').args.join(' ')).toContain(names.coordinator);
    expect(template({ set: ['coordinator.upstream=grpc://root:7070'] }).stderr).toMatch(/coordinator.siteName/);
    expect(template({ set: ['coordinator.upstream=http://root:7070', 'coordinator.siteName=x'] }).stderr).toMatch(/upstream/);
  });

  it('uses only flags the CLIs really have', () => {
    const serve = cliFlags('packages/coordinator/dist/cli/main.js', 'serve');
    const agent = cliFlags('packages/edge-agent/dist/cli/main.js');
    for (const [variant, objs] of allRendered()) {
      const coordArgs: string[] = container(one(objs, 'StatefulSet', names.coordinator), 'coordinator').args;
      for (const a of coordArgs.filter((x) => x.startsWith('--'))) expect(serve.has(a), `${variant}: fedge serve ${a}`).toBe(true);
      const agentArgs: string[] = container(one(objs, 'DaemonSet', names.agent), 'agent').args;
      for (const a of agentArgs.filter((x) => x.startsWith('--'))) expect(agent.has(a), `${variant}: fedge-agent ${a}`).toBe(true);
    }
  });

  it('creates ServiceMonitors for the coordinator (and agents with metrics) when serviceMonitor.enabled', () => {
    const objs = rendered('serviceMonitor');
    const sm = one(objs, 'ServiceMonitor', names.coordinator);
    expect(sm.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(sm.metadata.labels.release).toBe('kube-prometheus-stack');
    expect(sm.spec.endpoints).toEqual([expect.objectContaining({ port: 'metrics', path: '/metrics' })]);
    expect(sm.spec.namespaceSelector).toEqual({ matchNames: [NAMESPACE] });
    const svc = one(objs, 'Service', names.coordinator);
    expect(svc.metadata.labels).toMatchObject(sm.spec.selector.matchLabels);
    expect(svc.spec.ports.map((p: Obj) => p.name)).toContain('metrics');
    // agent metrics: a Service with the metrics port and its own ServiceMonitor
    const agentSm = one(objs, 'ServiceMonitor', names.agent);
    const agentSvc = one(objs, 'Service', names.agent);
    expect(agentSvc.metadata.labels).toMatchObject(agentSm.spec.selector.matchLabels);
    expect(agentSvc.spec.ports.map((p: Obj) => [p.name, p.port])).toEqual([['metrics', 9465]]);
    const args: string[] = container(one(objs, 'DaemonSet', names.agent), 'agent').args;
    expect(args[args.indexOf('--metrics') + 1]).toBe('0.0.0.0:9465');
    expect(find(rendered('defaults'), 'ServiceMonitor')).toEqual([]);
  });

  it('restricts ingress with NetworkPolicies when networkPolicy.enabled', () => {
    const objs = rendered('everything');
    const coord = one(objs, 'NetworkPolicy', names.coordinator);
    expect(coord.spec.policyTypes).toEqual(['Ingress']);
    const grpc = coord.spec.ingress.find((r: Obj) => r.ports[0].port === 'grpc');
    expect(grpc.from).toEqual([{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'fedge', 'app.kubernetes.io/instance': RELEASE, 'app.kubernetes.io/component': 'agent' } } }]);
    expect(one(objs, 'NetworkPolicy', names.agent).spec.ingress.map((r: Obj) => r.ports[0].port)).toEqual(['http', 'metrics']);
    expect(one(render({ set: ['networkPolicy.enabled=true'] }), 'NetworkPolicy', names.agent).spec.ingress).toEqual([]);
    expect(find(rendered('defaults'), 'NetworkPolicy')).toEqual([]);
  });

  it('passes model retention (--keep-versions) to fedge serve only when coordinator.keepVersions is set', () => {
    const argsOf = (o: Obj[]): string[] => container(one(o, 'StatefulSet', names.coordinator), 'coordinator').args;
    expect(argsOf(rendered('defaults'))).not.toContain('--keep-versions');
    const keep = argsOf(rendered('everything'));
    expect(keep.slice(keep.indexOf('--keep-versions'), keep.indexOf('--keep-versions') + 2)).toEqual(['--keep-versions', '3']);
    const all = argsOf(render({ setString: ['coordinator.keepVersions=all'] }));
    expect(all.slice(all.indexOf('--keep-versions'), all.indexOf('--keep-versions') + 2)).toEqual(['--keep-versions', 'all']);
    const zero = template({ set: ['coordinator.keepVersions=0'] });
    expect(zero.status).not.toBe(0);
    expect(zero.stderr).toMatch(/keepVersions/);
  });

  it('serves TLS from coordinator.tls.existingSecret; agents dial grpcs:// / mqtts:// trusting only its CA, never mounting the key', () => {
    const objs = rendered('tls');
    const sts = one(objs, 'StatefulSet', names.coordinator);
    const c = container(sts, 'coordinator');
    const env = Object.fromEntries(c.env.filter((e: Obj) => e.value !== undefined).map((e: Obj) => [e.name, e.value]));
    expect(env).toMatchObject({ FEDGE_TLS_CERT: '/etc/fedge/tls/tls.crt', FEDGE_TLS_KEY: '/etc/fedge/tls/tls.key' });
    expect(c.volumeMounts).toContainEqual({ name: 'tls', mountPath: '/etc/fedge/tls', readOnly: true });
    expect(podSpec(sts).volumes.find((v: Obj) => v.name === 'tls').secret).toMatchObject({ secretName: 'fedge-tls', items: [{ key: 'tls.crt', path: 'tls.crt' }, { key: 'tls.key', path: 'tls.key' }] });
    const ds = one(objs, 'DaemonSet', names.agent);
    const args: string[] = container(ds, 'agent').args;
    expect(args[args.indexOf('--coordinator') + 1]).toBe(`grpcs://${names.coordinator}.${NAMESPACE}.svc:7070`);
    expect(args[args.indexOf('--tls-ca') + 1]).toBe('/etc/fedge/tls/ca.crt');
    expect(podSpec(ds).volumes.find((v: Obj) => v.name === 'tls-ca').secret).toEqual({ secretName: 'fedge-tls', items: [{ key: 'ca.crt', path: 'ca.crt' }] });
    expect(JSON.stringify(ds)).not.toContain('tls.key');
    // over MQTT: mqtts://; a publicly trusted certificate (caKey ""): the system's CAs, nothing mounted
    const mq = render({ set: ['coordinator.tls.existingSecret=fedge-tls', 'coordinator.mqtt.enabled=true', 'agent.transport=mqtt', 'coordinator.tls.caKey='] });
    const mqArgs: string[] = container(one(mq, 'DaemonSet', names.agent), 'agent').args;
    expect(mqArgs[mqArgs.indexOf('--coordinator') + 1]).toBe(`mqtts://${names.coordinator}.${NAMESPACE}.svc:1883`);
    expect(mqArgs).not.toContain('--tls-ca');
    // off by default
    const plain = container(one(rendered('defaults'), 'StatefulSet', names.coordinator), 'coordinator');
    expect(plain.env.map((e: Obj) => e.name)).not.toContain('FEDGE_TLS_CERT');
    expect(container(one(rendered('defaults'), 'DaemonSet', names.agent), 'agent').args).not.toContain('--tls-ca');
  });

  it('serves the dashboard on Service port ui only with coordinator.ui.enabled, with a Traefik Ingress and a NetworkPolicy rule when asked', () => {
    const objs = rendered('ui');
    const c = container(one(objs, 'StatefulSet', names.coordinator), 'coordinator');
    expect(c.args.slice(c.args.indexOf('--ui'), c.args.indexOf('--ui') + 2)).toEqual(['--ui', '0.0.0.0:8080']);
    expect(c.ports).toContainEqual({ name: 'ui', containerPort: 8080, protocol: 'TCP' });
    const svc = one(objs, 'Service', names.coordinator);
    expect(svc.spec.ports.find((p: Obj) => p.name === 'ui')).toEqual({ name: 'ui', port: 8080, targetPort: 'ui', protocol: 'TCP', appProtocol: 'http' });
    const ing = one(objs, 'Ingress', `${names.coordinator}-ui`);
    expect(ing.spec.ingressClassName).toBe('traefik');
    expect(ing.metadata.annotations).toEqual({ 'traefik.ingress.kubernetes.io/router.entrypoints': 'websecure' });
    expect(ing.spec.tls).toEqual([{ secretName: 'fedge-ui-tls', hosts: ['fedge.example.com'] }]);
    expect(ing.spec.rules).toEqual([{ host: 'fedge.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: names.coordinator, port: { name: 'ui' } } } }] } }]);
    // NetworkPolicy: the ui port is open to the cluster (Traefik lives in kube-system) unless uiFrom narrows it.
    const rule = one(objs, 'NetworkPolicy', names.coordinator).spec.ingress.find((r: Obj) => r.ports[0].port === 'ui');
    expect(rule.from).toEqual([{ namespaceSelector: {} }]);
    const narrowed = render({ set: ['coordinator.ui.enabled=true', 'networkPolicy.enabled=true'], values: { networkPolicy: { uiFrom: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } } }] } } });
    expect(one(narrowed, 'NetworkPolicy', names.coordinator).spec.ingress.find((r: Obj) => r.ports[0].port === 'ui').from).toEqual([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } } }]);
    // With coordinator.tls the dashboard is HTTPS: Traefik is told so on the Service.
    const tls = render({ set: ['coordinator.ui.enabled=true', 'coordinator.tls.existingSecret=fedge-tls'] });
    const tlsSvc = one(tls, 'Service', names.coordinator);
    expect(tlsSvc.metadata.annotations).toEqual({ 'traefik.ingress.kubernetes.io/service.serversscheme': 'https' });
    expect(tlsSvc.spec.ports.find((p: Obj) => p.name === 'ui').appProtocol).toBe('https');
    // The dashboard alone (no ingress) adds no Ingress; off by default: no flag, no port, no Ingress.
    expect(find(render({ set: ['coordinator.ui.enabled=true'] }), 'Ingress')).toEqual([]);
    expect(find(render({ set: ['coordinator.ui.ingress.enabled=true'] }), 'Ingress')).toEqual([]);
    const plain = rendered('defaults');
    expect(container(one(plain, 'StatefulSet', names.coordinator), 'coordinator').args).not.toContain('--ui');
    expect(one(plain, 'Service', names.coordinator).spec.ports.map((p: Obj) => p.name)).not.toContain('ui');
    expect(one(plain, 'Service', names.coordinator).metadata.annotations).toBeUndefined();
    expect(find(plain, 'Ingress')).toEqual([]);
  });

  it('rejects wrong types and unknown keys with a schema error', () => {
    const cases: Array<[Overrides, RegExp]> = [
      [{ set: ['coordinator.replicas=two'] }, /\/coordinator\/replicas.*want integer/],
      [{ set: ['coordinator.replicas=2'] }, /\/coordinator\/replicas/],
      [{ set: ['coordinatr.enabled=true'] }, /additional properties 'coordinatr' not allowed/],
      [{ set: ['coordinator.replica=1'] }, /at '\/coordinator'.*additional properties 'replica' not allowed/],
      [{ set: ['agent.serving.enable=true'] }, /at '\/agent\/serving'.*additional properties 'enable' not allowed/],
      [{ set: ['agent.serving.enabled=yes'] }, /\/agent\/serving\/enabled.*want boolean/],
      [{ set: ['serviceMonitor.enabled=true', 'serviceMonitor.intervl=1m'] }, /additional properties 'intervl' not allowed/],
      [{ set: ['agent.dataVolume.type=nfs'] }, /\/agent\/dataVolume\/type/],
      [{ set: ['coordinator.tls.secret=x'] }, /at '\/coordinator\/tls'.*additional properties 'secret' not allowed/],
      [{ set: ['agent.data=s3://bucket/x'] }, /\/agent\/data/],
      [{ set: ['agent.coordinatorAddress=http://coord:7070'] }, /\/agent\/coordinatorAddress/],
      [{ set: ['agent.transport=amqp'] }, /\/agent\/transport/],
      [{ set: ['coordinator.persistence.size=lots'] }, /\/coordinator\/persistence\/size/],
      [{ set: ['coordinator.ui.enabled=yes'] }, /\/coordinator\/ui\/enabled.*want boolean/],
      [{ set: ['coordinator.ui.port=0'] }, /\/coordinator\/ui\/port/],
      [{ set: ['coordinator.ui.ingress.host=https://fedge.example.com'] }, /\/coordinator\/ui\/ingress\/host/],
      [{ set: ['coordinator.ui.ingres.enabled=true'] }, /at '\/coordinator\/ui'.*additional properties 'ingres' not allowed/],
    ];
    for (const [o, message] of cases) {
      const r = template(o);
      expect(r.status, `${JSON.stringify(o)} should fail`).not.toBe(0);
      expect(r.stderr, JSON.stringify(o)).toMatch(/values don't meet the specifications of the schema/);
      expect(r.stderr.replace(/\n/g, ' '), JSON.stringify(o)).toMatch(message);
    }
    // a missing claim name for a PVC data volume is caught by the template
    const pvc = template({ set: ['agent.dataVolume.type=persistentVolumeClaim'] });
    expect(pvc.status).not.toBe(0);
    expect(pvc.stderr).toMatch(/set agent.dataVolume.persistentVolumeClaim.claimName/);
  });
});
