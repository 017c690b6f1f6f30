/**
 * Renders the K3s chart with the pinned helm (.tools/bin/helm) and turns the YAML into objects with helm's own fromYaml
 * (no YAML dependency): a throwaway chart whose template parses a file of documents and prints a v1 List as JSON.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const HELM = path.join(ROOT, '.tools/bin/helm');
export const CHART = path.join(ROOT, 'deploy/k3s/fedge');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Obj = Record<string, any>;

export class Helm {
  readonly work = mkdtempSync(path.join(tmpdir(), 'fedge-helm-'));
  private readonly converter = path.join(this.work, 'y2j');
  private files = 0;

  constructor() {
    mkdirSync(path.join(this.converter, 'templates'), { recursive: true });
    writeFileSync(path.join(this.converter, 'Chart.yaml'), 'apiVersion: v2\nname: y2j\nversion: 0.0.0\n');
    writeFileSync(
      path.join(this.converter, 'templates', 'out.yaml'),
      [
        '{{- $items := list }}',
        '{{- range $doc := regexSplit "(?m)^---[ \\t]*$" (.Files.Get "input.yaml") -1 }}',
        '{{- $o := fromYaml $doc }}',
        '{{- if hasKey $o "Error" }}{{ fail (printf "YAML parse error: %s in:\\n%s" $o.Error $doc) }}{{ end }}',
        '{{- if $o }}{{ $items = append $items $o }}{{ end }}',
        '{{- end }}',
        '{{ dict "apiVersion" "v1" "kind" "List" "items" $items | toJson }}',
        '',
      ].join('\n'),
    );
  }

  run(args: string[]): { status: number; stdout: string; stderr: string } {
    if (!existsSync(HELM)) throw new Error(`helm not found at ${path.relative(ROOT, HELM)}: run scripts/install-helm.sh`);
    const env = { ...process.env, HELM_CACHE_HOME: path.join(this.work, 'cache'), HELM_CONFIG_HOME: path.join(this.work, 'config'), HELM_DATA_HOME: path.join(this.work, 'data') };
    const r = spawnSync(HELM, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20, env });
    if (r.error) throw r.error;
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  /** `helm template` of the chart with a values object (written as JSON, which is YAML). */
  template(values: Obj = {}, release = 'fedge', namespace = 'edge-ml'): { status: number; stdout: string; stderr: string } {
    const file = path.join(this.work, `values-${this.files++}.json`);
    writeFileSync(file, JSON.stringify(values));
    return this.run(['template', release, CHART, '--namespace', namespace, '-f', file]);
  }

  /** The rendered objects; throws with helm's message when the render fails. */
  render(values: Obj = {}): Obj[] {
    const r = this.template(values);
    if (r.status !== 0) throw new Error(`helm template failed (${JSON.stringify(values)}):\n${r.stderr}`);
    return this.parse(r.stdout);
  }

  /** Multi-document YAML -> objects, parsed by helm's fromYaml. */
  parse(yamlText: string): Obj[] {
    writeFileSync(path.join(this.converter, 'input.yaml'), yamlText);
    const r = this.run(['template', 'y2j', this.converter]);
    if (r.status !== 0) throw new Error(`yaml->json conversion failed: ${r.stderr}`);
    const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
    if (!line) throw new Error(`yaml->json conversion printed no JSON:\n${r.stdout}`);
    return (JSON.parse(line) as { items: Obj[] }).items;
  }

  close(): void {
    rmSync(this.work, { recursive: true, force: true });
  }
}
