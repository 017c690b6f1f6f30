/** Live progress for `--watch` and `fedge demo`: a line per finished round and, on a terminal, a status line. */
import type { RoundRecord } from '../store/store.js';
import type { RunView } from '../coordinator.js';
import { metricsOf } from '../config/task-config.js';
import { duration, metricText, pct } from './format.js';
import { roundTrafficText } from './traffic.js';
import { roundSummary, type RoundSummary } from '../store/round-summary.js';

/** The metrics a run with a task reports (its resolved task, else its config's); undefined for runs without a task (MNIST). */
export function taskMetricNames(run: Pick<RunView, 'data' | 'config'>): readonly string[] | undefined {
  return run.data?.task.metrics ?? (run.config.task ? metricsOf(run.config.task) : undefined);
}

/**
 * A round's task metrics, e.g. "rmse 3.21  r2 0.812": central evaluation, else federated (marked "fed"), else the
 * agents' training batches (marked "train"): without central evaluation the federated one usually arrives after
 * the round's line is printed, and a line with no metric at all says nothing about progress.
 */
export function roundMetricText(r: RoundRecord, names: readonly string[]): string | undefined {
  const central = metricText(r.centralMetrics, names);
  if (central) return central;
  if (r.centralAccuracy !== undefined && names.includes('accuracy')) return `accuracy ${pct(r.centralAccuracy)}`;
  const fed = metricText(r.federatedMetrics, names);
  if (fed) return `fed ${fed}`;
  const train = metricText(r.trainMetrics, names);
  return train ? `train ${train}` : undefined;
}

/** The statistics step's progress ("statistics step: waiting for 3 agents ...", then its summary) while the run has not ended. */
function statisticsStep(run: RunView): string | undefined {
  return !run.endedAt && run.statusMessage?.startsWith('statistics step') ? run.statusMessage : undefined;
}

/** e.g. "2 late, 1 dropped" for the non-completed outcomes of a round. */
function outcomes(s: RoundSummary): string {
  return Object.entries(s.outcomes).filter(([o, n]) => o !== 'completed' && n).map(([o, n]) => `${n} ${o}`).join(', ');
}

/** e.g. "tau 0:2 1:1" — how many versions behind the folded updates were; omitted when all were current. */
function staleness(r: RoundRecord): string | undefined {
  const h = r.stalenessHistogram;
  if (!h || Object.keys(h).every((k) => k === '0')) return undefined;
  return `tau ${Object.entries(h).map(([k, n]) => `${k}:${n}`).join(' ')}`;
}

/** One line per finished round; `metrics`: the task's metric names (runs without a task print accuracy as always). */
export function roundLine(r: RoundRecord, total: number, unit = 'round', metrics?: readonly string[]): string {
  const s = roundSummary(r);
  const done = s.outcomes.completed ?? 0;
  const other = outcomes(s);
  const parts = [
    `${unit} ${String(r.round).padStart(String(total).length)}/${total}`,
    r.status === 'failed' ? 'FAILED' : `v${r.version}`,
    `agents ${done}/${s.participants}${other ? ` (${other})` : ''}`,
    staleness(r),
    r.trainLoss !== undefined ? `loss ${r.trainLoss.toFixed(4)}` : undefined,
    metrics ? roundMetricText(r, metrics) : r.centralAccuracy !== undefined ? `accuracy ${pct(r.centralAccuracy)}` : undefined,
    roundTrafficText(r),
    `${r.seconds.toFixed(1)}s`,
  ];
  const line = parts.filter(Boolean).join('  ');
  return r.status === 'failed' && r.reason ? `${line}  (${r.reason})` : line;
}

/** Elapsed and ETA from the rounds finished so far. */
export function timing(run: RunView): { elapsed: number; eta?: number } {
  // A run that never started rounds (ended in its statistics step) has no elapsed time, not a negative one.
  if (!run.startedAt) return { elapsed: 0 };
  const start = Date.parse(run.startedAt);
  const end = run.endedAt ? Date.parse(run.endedAt) : Date.now();
  const elapsed = (end - start) / 1000;
  const done = run.rounds.length;
  if (done === 0 || run.endedAt) return { elapsed };
  return { elapsed, eta: (elapsed / done) * (run.config.rounds - done) };
}

export function statusLine(run: RunView): string {
  const t = timing(run);
  const live = run.live;
  const states = new Map<string, number>();
  for (const p of live?.participants ?? []) states.set(p.state, (states.get(p.state) ?? 0) + 1);
  const agents = [...states].map(([s, n]) => `${n} ${s}`).join(', ');
  const phase = live ? `${live.phase}${live.round ? ` ${run.config.mode === 'async' ? 'step' : 'round'} ${live.round}/${run.config.rounds}` : ''}` : (statisticsStep(run) ?? run.status);
  const buffer = live?.buffered !== undefined ? `buffer ${live.buffered}/${run.config.async.bufferSize}, ${live.inFlight ?? 0} training` : undefined;
  return [phase, buffer, agents && `[${agents}]`, `elapsed ${duration(t.elapsed)}`, t.eta !== undefined ? `eta ${duration(t.eta)}` : undefined]
    .filter(Boolean)
    .join('  ');
}

/** Prints new rounds as they finish; keeps a status line at the bottom on a TTY. */
export class ProgressPrinter {
  private printed = 0;
  private lastStatus = '';
  private lastStep: string | undefined;
  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {}

  update(run: RunView): void {
    const tty = this.out.isTTY;
    const step = statisticsStep(run);
    if (step !== undefined && step !== this.lastStep) {
      this.lastStep = step;
      // While agents are awaited the message is transient (a status line on a terminal); its summary stays.
      if (tty && run.status === 'waiting' && !run.live) this.status(step);
      else this.line(step);
    }
    const metrics = taskMetricNames(run);
    for (; this.printed < run.rounds.length; this.printed++)
      this.line(roundLine(run.rounds[this.printed]!, run.config.rounds, run.config.mode === 'async' ? 'step' : 'round', metrics));
    if (tty && run.live) this.status(statusLine(run));
  }

  private line(text: string): void {
    if (this.out.isTTY && this.lastStatus) this.out.write('\r\x1b[2K');
    this.out.write(`${text}\n`);
    this.lastStatus = '';
  }

  private status(s: string): void {
    if (s !== this.lastStatus) {
      this.out.write(`\r\x1b[2K${s.slice(0, (this.out.columns ?? 120) - 1)}`);
      this.lastStatus = s;
    }
  }

  finish(run: RunView): void {
    this.update(run);
    if (this.out.isTTY && this.lastStatus) this.out.write('\r\x1b[2K');
    const last = run.rounds.at(-1);
    const acc = last?.centralAccuracy ?? last?.federatedAccuracy;
    const names = taskMetricNames(run);
    // A task run reports its own metrics from its last completed round; runs without a task, accuracy as always.
    const done = run.rounds.filter((x) => x.status === 'completed').at(-1);
    const fed = names ? metricText(done?.federatedMetrics, names, ', ') : '';
    const result = names
      ? metricText(done?.centralMetrics, names, ', ') || (fed && `federated ${fed}`)
      : acc !== undefined ? `accuracy ${pct(acc)}` : '';
    this.out.write(
      `run ${run.id} ${run.status}${run.statusMessage ? ` (${run.statusMessage})` : ''}` +
        `${result ? `, ${result}` : ''}, ${duration(timing(run).elapsed)}\n`,
    );
  }
}
