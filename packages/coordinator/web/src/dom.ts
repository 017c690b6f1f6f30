/** DOM helpers for the dashboard: elements from text only (never HTML strings, so no data can inject markup) and formatting. */

type Child = Node | string | number | undefined | null | false;

/** `el('td', { class: 'x', title: 'y' }, 'text')`: attributes are set one by one, children become text nodes. */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | undefined> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) e.setAttribute(k, v);
  for (const c of children) if (c !== undefined && c !== null && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}

/** A table with a header row; each cell is a node or text ('' shown as a dash). */
export function table(columns: string[], rows: Child[][], attrs: Record<string, string> = {}): HTMLTableElement {
  return el(
    'table',
    attrs,
    el('thead', {}, el('tr', {}, ...columns.map((c) => el('th', {}, c)))),
    el('tbody', {}, ...rows.map((r) => el('tr', {}, ...r.map((c) => el('td', {}, c === undefined || c === '' ? '–' : c))))),
  );
}

export function pct(x: number | undefined | null): string | undefined {
  return x === undefined || x === null ? undefined : `${(x * 100).toFixed(2)}%`;
}

/** 4 significant digits, as `fedge run show` prints task metrics. */
export function sig(x: number | undefined | null): string | undefined {
  return x === undefined || x === null || !Number.isFinite(x) ? undefined : String(Number(x.toPrecision(4)));
}

export function metricText(name: string, x: number | undefined | null): string | undefined {
  return name === 'accuracy' ? pct(x) : sig(x);
}

export function bytes(n: number | undefined): string | undefined {
  if (n === undefined) return undefined;
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/** "3 s ago", "5 min ago" for ISO times. */
export function ago(iso: string | undefined): string | undefined {
  if (!iso) return undefined;
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

export function badge(text: string, kind = text): HTMLSpanElement {
  return el('span', { class: `badge badge-${kind}` }, text);
}

export function link(href: string, text: string): HTMLAnchorElement {
  return el('a', { href }, text);
}
