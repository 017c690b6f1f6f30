/**
 * The dashboard's entry module: hash routes (#/runs, #/run/ID, #/agents[?limit=&state=&name=], #/models[/RUN]), each
 * fed by a server-sent event stream, so pages change as rounds finish without a reload.
 */
import { showAgents } from './agents.js';
import { get, type ModelEntry, type RunSummary } from './api.js';
import { clearCharts } from './charts.js';
import { el } from './dom.js';
import { renderModels, renderRuns } from './pages.js';
import { renderRun } from './run.js';

const main = document.getElementById('main')!;
const liveDot = document.getElementById('live')!;
const tokenInput = document.getElementById('token') as HTMLInputElement;
const dialog = document.getElementById('confirm') as HTMLDialogElement;

let stream: EventSource | undefined;
let refreshModels: (() => void) | undefined;

function setLive(text: string, ok: boolean): void {
  liveDot.textContent = text;
  liveDot.className = ok ? 'live-on' : 'live-off';
}

function listen(url: string, handlers: Record<string, (data: string) => void>): EventSource {
  stream?.close();
  const s = new EventSource(url);
  stream = s;
  s.onopen = () => setLive('live', true);
  s.onerror = () => setLive(s.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting…', false);
  for (const [event, fn] of Object.entries(handlers)) s.addEventListener(event, (e) => fn((e as MessageEvent<string>).data));
  return s;
}

function showError(err: unknown): void {
  main.replaceChildren(el('p', { class: 'status-error' }, (err as Error).message));
}

function confirmAction(question: string, withFraction: boolean): Promise<{ ok: boolean; fraction?: number }> {
  dialog.querySelector('#confirm-text')!.textContent = question;
  const fraction = dialog.querySelector<HTMLInputElement>('#confirm-fraction')!;
  dialog.querySelector<HTMLElement>('#confirm-fraction-row')!.hidden = !withFraction;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve({ ok: dialog.returnValue === 'ok', ...(withFraction ? { fraction: Number(fraction.value) } : {}) }), { once: true });
  });
}

function route(): void {
  stream?.close();
  stream = undefined;
  refreshModels = undefined;
  delete main.dataset['run'];
  clearCharts();
  const [hashPath = '', hashQuery = ''] = location.hash.split('?');
  const [, page = 'runs', arg] = hashPath.replace(/^#\/?/, '#/').split('/');
  const id = arg ? decodeURIComponent(arg) : undefined;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.getAttribute('href') === `#/${page}`);
  if (page === 'run' && id) {
    listen(`/api/runs/${encodeURIComponent(id)}/events`, {
      run: (d) => renderRun(main, JSON.parse(d) as RunSummary),
      // Closed here: a finished run's stream would otherwise be reopened (and end again) every few seconds.
      end: () => {
        stream?.close();
        setLive('run ended', true);
      },
    });
    // An unknown run ends the stream with a 404: say so instead of waiting.
    get<RunSummary>(`/api/runs/${encodeURIComponent(id)}`).catch(showError);
  } else if (page === 'agents') {
    showAgents(main, new URLSearchParams(hashQuery), listen);
  } else if (page === 'models') {
    const load = (): void => void get<ModelEntry[]>(`/api/models${id ? `?run=${encodeURIComponent(id)}` : ''}`).then(
      (m) => renderModels(main, m, id, { token: () => tokenInput.value, confirm: confirmAction, refresh: load }),
      showError,
    );
    refreshModels = load;
    // New versions appear as runs finish rounds: reload the registry when the runs list changes.
    listen('/api/events', { runs: () => refreshModels?.() });
  } else {
    listen('/api/events', { runs: (d) => renderRuns(main, JSON.parse(d) as RunSummary[]) });
  }
}

window.addEventListener('hashchange', route);
route();
