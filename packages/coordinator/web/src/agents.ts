/**
 * The agents page at fleet scale: the fleet's counts, a filter (state, name prefix) and one page of agents paged on
 * the coordinator (next / previous), kept live by GET /api/events with the page's query. URL: #/agents?limit=10&state=online&name=sim.
 */
import type { Agent, AgentsEvent } from './api.js';
import { ago, badge, el, table } from './dom.js';

const STATES = ['online', 'offline', 'busy', 'idle'] as const;
/** The URL parameters the page keeps (the coordinator checks them; a wrong one is shown as its error). */
const FILTER_KEYS = ['limit', 'state', 'name'] as const;

/** Columns of fields only some coordinators report (transport, served version, drift) appear when an agent has them. */
const OPTIONAL_AGENT_COLUMNS: [string, (a: Agent) => string | undefined][] = [
  ['transport', (a) => a.transport],
  ['version served', (a) => (a.servedVersion === undefined ? undefined : String(a.servedVersion))],
  ['drift', (a) => a.drift?.join(', ')],
];

export type Listen = (url: string, handlers: Record<string, (data: string) => void>) => EventSource;

const n = (x: number): string => x.toLocaleString('en-US');
const counts = (m: Record<string, number>): string => Object.entries(m).map(([k, v]) => `${k} ${n(v)}`).join(', ');

function summaryText(ev: AgentsEvent): string {
  const s = ev.summary;
  const parts = [
    `${n(s.fleet)} agents: ${n(s.state.online)} online (${n(s.state.busy)} busy, ${n(s.state.idle)} idle), ${n(s.state.offline)} offline`,
    `transport ${counts(s.transport)}`,
    `serving ${counts(s.serving)}`,
    `backend ${counts(s.backend)}`,
  ];
  if (Object.keys(s.sites).length) parts.push(`sites ${counts(s.sites)}`);
  return parts.join(' · ');
}

function agentsTable(agents: Agent[]): HTMLTableElement {
  const optional = OPTIONAL_AGENT_COLUMNS.filter(([, get]) => agents.some((a) => get(a) !== undefined));
  const rows = agents.map((a) => [
    a.name,
    badge(a.status),
    a.backend,
    a.agentVersion,
    ...optional.map(([, get]) => get(a) ?? ''),
    el('span', { title: a.lastSeen }, ago(a.lastSeen) ?? ''),
    a.currentTask ?? 'idle',
    String(a.tasksCompleted),
    String(a.tasksFailed),
  ]);
  return table(['name', 'status', 'backend', 'agent version', ...optional.map(([name]) => name), 'last seen', 'task', 'done', 'failed'], rows, { id: 'agents' });
}

/**
 * Shows the agents page in `main` for the URL's parameters. Paging is keyset (`after`: the last agent of the page
 * before), which only goes forward: the cursors of the pages already seen are kept here for Previous.
 */
export function showAgents(main: HTMLElement, params: URLSearchParams, listen: Listen): void {
  const filter = new URLSearchParams();
  for (const k of FILTER_KEYS) if (params.get(k)) filter.set(k, params.get(k)!);
  const cursors: (string | undefined)[] = [];
  let after: string | undefined;
  let shown: AgentsEvent | undefined;

  const state = el('select', { name: 'state' }, el('option', { value: '' }, 'any state'), ...STATES.map((s) => el('option', { value: s }, s)));
  state.value = filter.get('state') ?? '';
  const name = el('input', { name: 'name', type: 'search', placeholder: 'name prefix', spellcheck: 'false' });
  name.value = filter.get('name') ?? '';
  const form = el('form', { id: 'agents-filter', class: 'filter' }, el('label', {}, 'state ', state), el('label', {}, 'name ', name), el('button', { type: 'submit' }, 'Filter'));
  const prev = el('button', { type: 'button', id: 'agents-prev' }, '‹ Previous');
  const next = el('button', { type: 'button', id: 'agents-next' }, 'Next ›');
  const range = el('span', { id: 'agents-range' });
  const title = el('h1', {}, 'Agents');
  const summary = el('p', { id: 'agents-summary', class: 'summary' });
  const body = el('div', { id: 'agents-page' });
  main.replaceChildren(title, summary, form, body, el('p', { class: 'pager' }, prev, range, next));

  const buttons = (): void => {
    prev.disabled = !shown || cursors.length === 0;
    next.disabled = !shown?.page.next;
  };
  const render = (ev: AgentsEvent): void => {
    shown = ev;
    const p = ev.page;
    title.textContent = `Agents (${n(ev.summary.fleet)})`;
    summary.textContent = summaryText(ev);
    body.replaceChildren(p.agents.length ? agentsTable(p.agents) : el('p', { id: 'agents-none' }, p.total ? 'No agents on this page: go back a page.' : 'No agent matches the filter.'));
    const filtered = p.total !== p.fleet ? ` matching the filter (of ${n(p.fleet)})` : '';
    range.textContent = p.agents.length ? `${n(p.skipped + 1)}–${n(p.skipped + p.agents.length)} of ${n(p.total)}${filtered}` : `0 of ${n(p.total)}${filtered}`;
    buttons();
  };
  const open = (): void => {
    shown = undefined;
    buttons();
    const q = new URLSearchParams(filter);
    if (after !== undefined) q.set('after', after);
    const url = `/api/events?${q}`;
    const stream = listen(url, { agents: (d) => render(JSON.parse(d) as AgentsEvent) });
    // A query the coordinator refuses (400) closes the stream, and EventSource does not say why: ask once more as
    // JSON, whose error names the parameter and the fix.
    stream.addEventListener('error', () => {
      if (stream.readyState !== EventSource.CLOSED) return;
      void fetch(url, { headers: { accept: 'application/json' } }).then(async (res) => {
        if (res.ok) return void res.body?.cancel();
        const e = ((await res.json()) as { error?: { code: string; message: string } }).error;
        body.replaceChildren(el('p', { class: 'status-error' }, `${e?.code ?? res.status}: ${e?.message ?? res.statusText}`));
      });
    });
  };

  next.addEventListener('click', () => {
    if (!shown?.page.next) return;
    cursors.push(after);
    after = shown.page.next;
    open();
  });
  prev.addEventListener('click', () => {
    if (!cursors.length) return;
    after = cursors.pop();
    open();
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    if (filter.get('limit')) q.set('limit', filter.get('limit')!);
    if (state.value) q.set('state', state.value);
    if (name.value.trim()) q.set('name', name.value.trim());
    const hash = `#/agents${q.toString() ? `?${q}` : ''}`;
    // A new filter starts at its first page; the URL keeps it (reload, share). The same URL fires no hashchange.
    if (location.hash !== hash) location.hash = hash;
    else {
      cursors.length = 0;
      after = undefined;
      open();
    }
  });
  state.addEventListener('change', () => form.requestSubmit());
  open();
}
