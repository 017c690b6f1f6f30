/** Output helpers shared by CLI commands: aligned tables, JSON, durations, percentages, task metrics. */

export type OutputFormat = 'table' | 'json';

export function parseFormat(v: string): OutputFormat {
  if (v !== 'table' && v !== 'json') throw new Error(`--format: use "table" or "json", got "${v}"`);
  return v;
}

export function table(rows: ReadonlyArray<Record<string, string | number | undefined>>, columns: string[]): string {
  if (rows.length === 0) return '(none)';
  const cells = rows.map((r) => columns.map((c) => (r[c] === undefined ? '-' : String(r[c]))));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (vals: string[]): string => vals.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n');
}

export function pct(x: number | undefined): string | undefined {
  return x === undefined ? undefined : `${(x * 100).toFixed(2)}%`;
}

export function num(x: number | undefined, digits = 4): string | undefined {
  return x === undefined ? undefined : x.toFixed(digits);
}

/** A value to 4 significant digits without exponent noise for everyday magnitudes (3.21, 0.8123, 1235). */
export function sig(x: number | undefined, digits = 4): string | undefined {
  if (x === undefined || !Number.isFinite(x)) return undefined;
  return String(Number(x.toPrecision(digits)));
}

/** A task metric as people read it: accuracy in percent (as fedge always printed it), every other metric as a number. */
export function metricValue(name: string, x: number | undefined): string | undefined {
  return name === 'accuracy' ? pct(x) : sig(x);
}

/** e.g. "rmse 3.21  r2 0.812" for the `names` present in `m`, in that order; '' when none is. */
export function metricText(m: Record<string, number> | undefined, names: readonly string[], sep = '  '): string {
  if (!m) return '';
  return names.flatMap((n) => (m[n] !== undefined && Number.isFinite(m[n]) ? [`${n} ${metricValue(n, m[n])}`] : [])).join(sep);
}

/** Dataset fingerprints are sha256 hex: 12 digits tell datasets apart in a terminal (JSON keeps all 64). */
export function shortHash(h: string | undefined): string | undefined {
  return h === undefined ? undefined : h.slice(0, 12);
}

export function duration(seconds: number | undefined): string | undefined {
  if (seconds === undefined || !Number.isFinite(seconds)) return undefined;
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  if (m < 60) return `${m}m${String(s).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export function printJson(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v)}\n`);
}
