/** Live progress for `--watch` and `fedge demo`: a line per finished round and, on a terminal, a status line. */
import type { RoundRecord } from '../store/store.js';
import type { RunView } from '../coordinator.js';
import { duration, pct } from './format.js';

/** e.g. "2 late, 1 dropped" for the non-completed outcomes of a round. */
function outcomes(r: RoundRecord): string {
  const counts = new Map<string, number>();
  for (const p of r.participants) if (p.outcome !== 'completed') counts.set(p.outcome, (counts.get(p.outcome) ?? 0) + 1);
  return [...counts].map(([o, n]) => `${n} ${o}`).join(', ');
}

/** e.g. "tau 0:2 1:1" — how many versions behind the folded updates were; omitted when all were current. */
function staleness(r: RoundRecord): string | undefined {
  const h = r.stalenessHistogram;
  if (!h || Object.keys(h).every((k) => k === '0')) return undefined;
  return `tau ${Object.entries(h).map(([k, n]) => `${k}:${n}`).join(' ')}`;
}

export function roundLine(r: RoundRecord, total: number, unit = 'round'): string {
  const done = r.participants.filter((p) => p.outcome === 'completed').length;
  const other = outcomes(r);
  const parts = [
    `${unit} ${String(r.round).padStart(String(total).length)}/${total}`,
    r.status === 'failed' ? 'FAILED' : `v${r.version}`,
    `agents ${done}/${r.participants.length}${other ? ` (${other})` : ''}`,
    staleness(r),
    r.trainLoss !== undefined ? `loss ${r.trainLoss.toFixed(4)}` : undefined,
    r.centralAccuracy !== undefined ? `accuracy ${pct(r.centralAccuracy)}` : undefined,
    `${r.seconds.toFixed(1)}s`,
  ];
  const line = parts.filter(Boolean).join('  ');
  return r.status === 'failed' && r.reason ? `${line}  (${r.reason})` : line;
}

/** Elapsed and ETA from the rounds finished so far. */
export function timing(run: RunView): { elapsed: number; eta?: number } {
  const start = run.startedAt ? Date.parse(run.startedAt) : Date.now();
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
  const phase = live ? `${live.phase}${live.round ? ` ${run.config.mode === 'async' ? 'step' : 'round'} ${live.round}/${run.config.rounds}` : ''}` : run.status;
  const buffer = live?.buffered !== undefined ? `buffer ${live.buffered}/${run.config.async.bufferSize}, ${live.inFlight ?? 0} training` : undefined;
  return [phase, buffer, agents && `[${agents}]`, `elapsed ${duration(t.elapsed)}`, t.eta !== undefined ? `eta ${duration(t.eta)}` : undefined]
    .filter(Boolean)
    .join('  ');
}

/** Prints new rounds as they finish; keeps a status line at the bottom on a TTY. */
export class ProgressPrinter {
  private printed = 0;
  private lastStatus = '';
  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {}

  update(run: RunView): void {
    const tty = this.out.isTTY;
    for (; this.printed < run.rounds.length; this.printed++) {
      if (tty && this.lastStatus) this.out.write('\r\x1b[2K');
      this.out.write(`${roundLine(run.rounds[this.printed]!, run.config.rounds, run.config.mode === 'async' ? 'step' : 'round')}\n`);
      this.lastStatus = '';
    }
    if (tty && run.live) {
      const s = statusLine(run);
      if (s !== this.lastStatus) {
        this.out.write(`\r\x1b[2K${s.slice(0, (this.out.columns ?? 120) - 1)}`);
        this.lastStatus = s;
      }
    }
  }

  finish(run: RunView): void {
    this.update(run);
    if (this.out.isTTY && this.lastStatus) this.out.write('\r\x1b[2K');
    const last = run.rounds.at(-1);
    const acc = last?.centralAccuracy ?? last?.federatedAccuracy;
    this.out.write(
      `run ${run.id} ${run.status}${run.statusMessage ? ` (${run.statusMessage})` : ''}` +
        `${acc !== undefined ? `, accuracy ${pct(acc)}` : ''}, ${duration(timing(run).elapsed)}\n`,
    );
  }
}
