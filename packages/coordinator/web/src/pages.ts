/** The runs list and the model registry with its promote, canary and rollback actions (the agents page: agents.ts). */
import { ApiError, post, type ModelEntry, type RunSummary } from './api.js';
import { badge, el, link, metricText, pct, sig, table } from './dom.js';
import { bestMetric } from './run.js';

export function renderRuns(main: HTMLElement, runs: RunSummary[]): void {
  const rows = [...runs].reverse().map((r) => {
    const best = bestMetric(r);
    const eps = r.roundsDetail.at(-1)?.epsilon;
    return [
      link(`#/run/${encodeURIComponent(r.id)}`, r.id),
      badge(r.status),
      r.config.mode ?? 'sync',
      r.config.strategy.name,
      `${r.round}/${r.rounds} · v${r.modelVersion}`,
      best.value === undefined ? '' : `${best.name} ${metricText(best.name, best.value)}`,
      eps === undefined ? '' : `${sig(eps)}${r.config.privacy?.maxEpsilon !== undefined ? ` / ${r.config.privacy.maxEpsilon}` : ''}`,
    ];
  });
  main.replaceChildren(el('h1', {}, 'Runs'), runs.length ? table(['run', 'status', 'mode', 'strategy', 'round / version', 'best metric', 'epsilon'], rows, { id: 'runs' }) : el('p', {}, 'No runs yet: start one with fedge run start.'));
}

export interface ModelActions {
  token(): string;
  /** Resolves true when the user confirmed `question` (and, for a canary, with the fraction typed). */
  confirm(question: string, withFraction: boolean): Promise<{ ok: boolean; fraction?: number }>;
  refresh(): void;
}

/** The outcome of the latest action: kept across the re-render that follows it (the registry reloads). */
let lastStatus: { text: string; kind: 'ok' | 'error' } | undefined;

function statusLine(): HTMLElement {
  return el('div', { id: 'action-status' }, lastStatus ? el('span', { class: `status-${lastStatus.kind}` }, lastStatus.text) : undefined);
}

function status(main: HTMLElement, text: string, kind: 'ok' | 'error'): void {
  lastStatus = { text, kind };
  main.querySelector('#action-status')?.replaceWith(statusLine());
}

async function act(main: HTMLElement, actions: ModelActions, path: string, body: unknown, done: string): Promise<void> {
  try {
    await post(path, body, actions.token());
    status(main, done, 'ok');
    actions.refresh();
  } catch (err) {
    const e = err as ApiError;
    status(main, `${e.code ?? 'error'}: ${e.message}`, 'error');
  }
}

export function renderModels(main: HTMLElement, models: ModelEntry[], runId: string | undefined, actions: ModelActions): void {
  const runPath = (id: string): string => `/api/runs/${encodeURIComponent(id)}`;
  const rows = [...models].reverse().map((m) => {
    const promote = el('button', { type: 'button', 'data-action': 'promote', 'data-version': String(m.version) }, 'Promote');
    promote.addEventListener('click', () => void (async () => {
      const c = await actions.confirm(`Promote version ${m.version} of ${m.runId}? Serving agents switch to it (the accuracy gate applies).`, false);
      if (c.ok) await act(main, actions, `${runPath(m.runId)}/promote`, { version: m.version }, `version ${m.version} of ${m.runId} promoted`);
    })());
    const canary = el('button', { type: 'button', 'data-action': 'canary', 'data-version': String(m.version) }, 'Canary…');
    canary.addEventListener('click', () => void (async () => {
      const c = await actions.confirm(`Start a canary of version ${m.version} of ${m.runId}: which fraction of the online agents gets it first?`, true);
      if (c.ok) await act(main, actions, `${runPath(m.runId)}/promote`, { version: m.version, canary: c.fraction }, `version ${m.version} of ${m.runId} is a canary`);
    })());
    return [
      link(`#/run/${encodeURIComponent(m.runId)}`, m.runId),
      `${m.version}${m.latest ? ' (latest)' : ''}`,
      String(m.round),
      el('code', { title: m.sha256 }, m.sha256.slice(0, 12)),
      pct(m.centralAccuracy) ?? '',
      pct(m.federatedAccuracy) ?? '',
      m.serving ? badge(m.serving) : '',
      el('span', { class: 'actions' }, promote, canary),
    ];
  });
  const runIds = [...new Set(models.map((m) => m.runId))];
  const rollbacks = runIds.map((id) => {
    const b = el('button', { type: 'button', 'data-action': 'rollback', 'data-run': id }, `Roll back ${id}`);
    b.disabled = !models.some((m) => m.runId === id && m.serving);
    b.addEventListener('click', () => void (async () => {
      const c = await actions.confirm(`Roll back ${id}? Serving agents return to the previously promoted version (or an open canary is withdrawn).`, false);
      if (c.ok) await act(main, actions, `${runPath(id)}/rollback`, {}, `${id} rolled back`);
    })());
    return b;
  });
  main.replaceChildren(
    el('h1', {}, runId ? `Model versions of ${runId}` : 'Model versions'),
    el('p', { class: 'hint' }, 'Actions need the admin token (top right); each asks for confirmation.'),
    statusLine(),
    table(['run', 'version', 'round', 'sha256', 'central accuracy', 'federated accuracy', 'serving', ''], rows, { id: 'models' }),
    el('p', {}, ...rollbacks),
  );
}
