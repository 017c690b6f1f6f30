/**
 * Data drift for people: `fedge agent drift` (which serving agents drift on which features, worst first), the drift
 * line of `fedge run show`, and `fedge run show --data` (how the agents' training data differ: the non-IID picture).
 */
import { PSI_BANDS, psi, psiBand, sumProfiles, type DriftRow, type DataProfileCounts } from '@fedge/proto';
import { sig, table } from './format.js';
import type { AgentRecord, RunRecord } from '../store/store.js';
import { worstPsi } from '../engine/drift-book.js';

export interface DriftListing {
  agent: string;
  agentId: string;
  runId: string;
  version: number;
  window: number;
  at: string;
  /** The largest PSI over features and references, and its band. */
  worstPsi: number;
  band: string;
  features: DriftRow[];
  prediction: DriftRow[];
}

/** Agents that reported drift (optionally only `which`: a name or id), worst PSI first. */
export function driftListings(agents: readonly AgentRecord[], which?: string): DriftListing[] {
  return agents
    .filter((a) => a.drift && (!which || a.name === which || a.id === which))
    .map((a) => {
      const d = a.drift!;
      const worst = worstPsi(d);
      return { agent: a.name, agentId: a.id, runId: d.runId, version: d.version, window: d.window, at: d.at, worstPsi: worst, band: psiBand(worst), features: d.features, prediction: d.prediction };
    })
    .sort((x, y) => y.worstPsi - x.worstPsi || x.agent.localeCompare(y.agent));
}

/** One row per agent, feature and reference (predictions as feature "(prediction)"), worst PSI first. */
export function renderDriftTable(listings: readonly DriftListing[], max = 50): string {
  const rows = listings.flatMap((l) =>
    [...l.features, ...l.prediction.map((r) => ({ ...r, feature: '(prediction)' }))].map((r) => ({
      agent: l.agent, run: l.runId, version: l.version, window: l.window, feature: r.feature, reference: r.reference,
      psi: sig(r.psi, 3), band: psiBand(r.psi), ks: sig(r.ks, 3), 'p-value': sig(r.pValue, 2), _psi: r.psi,
    })),
  ).sort((a, b) => b._psi - a._psi);
  const shown = rows.slice(0, max);
  const out = table(shown, ['agent', 'run', 'version', 'window', 'feature', 'reference', 'psi', 'band', 'ks', 'p-value']);
  const drifting = listings.filter((l) => l.worstPsi > PSI_BANDS.significant).map((l) => l.agent);
  const summary = `${listings.length} serving agent(s) report drift; PSI > ${PSI_BANDS.significant} (significant): ${drifting.length ? drifting.join(', ') : 'none'}`;
  return [out, ...(rows.length > max ? [`... ${rows.length - max} more rows (--format json lists all)`] : []), summary].join('\n');
}

/** The drift line of `fedge run show`: serving agents of this run that report drift, and the worst figure. */
export function driftLine(runId: string, agents: readonly AgentRecord[]): string | undefined {
  const l = driftListings(agents).filter((x) => x.runId === runId);
  if (l.length === 0) return undefined;
  const worst = l[0]!;
  const row = [...worst.features, ...worst.prediction].sort((a, b) => b.psi - a.psi)[0];
  const flagged = l.filter((x) => x.worstPsi > PSI_BANDS.significant).length;
  return `drift: ${l.length} serving agent(s) report, ${flagged} above PSI ${PSI_BANDS.significant}; worst ${worst.agent}${row ? ` ${row.feature || '(prediction)'} PSI ${sig(row.psi, 3)} vs ${row.reference} (${psiBand(row.psi)})` : ''} (fedge agent drift)`;
}

/**
 * `fedge run show RUN --data`: per agent, its examples, label distribution, and how far each of its features sits from
 * the rest of the fleet (PSI of the agent's training histogram vs the fleet reference): a federation's non-IID-ness.
 */
export function renderHeterogeneity(run: Pick<RunRecord, 'id' | 'driftProfiles'>): string[] {
  const entries = Object.entries(run.driftProfiles ?? {}).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return [`no training profiles for ${run.id} yet: agents send theirs after their first training task of the run`];
  const fleet = sumProfiles(entries.map(([, r]) => r.profile)).profile;
  const fleetOf = new Map(fleet.features.map((f) => [f.feature, f.counts]));
  const share = (c: readonly number[] | undefined): string => {
    const n = (c ?? []).reduce((s, x) => s + x, 0);
    return c && n > 0 ? c.map((x) => `${Math.round((100 * x) / n)}`).join('/') : '';
  };
  const vsFleet = (p: DataProfileCounts) =>
    p.features.map((f) => ({ feature: f.feature, psi: fleetOf.get(f.feature)?.length === f.counts.length ? psi(fleetOf.get(f.feature)!, f.counts) : NaN }))
      .filter((x) => Number.isFinite(x.psi))
      .sort((a, b) => b.psi - a.psi);
  const rows = entries.map(([name, r]) => {
    const v = vsFleet(r.profile);
    const top = v.slice(0, 3).map((x) => `${x.feature} ${sig(x.psi, 2)}`).join(', ');
    return { agent: name, round: r.round, examples: r.profile.examples, 'labels %': share(r.profile.labels), 'label psi': r.profile.labels && fleet.labels ? sig(psi(fleet.labels, r.profile.labels), 3) : '', 'features most unlike the fleet (psi)': top };
  });
  return [
    `data heterogeneity of ${run.id}: ${entries.length} agents' training profiles (histograms on the run's shared bins); PSI vs the fleet's sum, ${PSI_BANDS.moderate} moderate, ${PSI_BANDS.significant} significant`,
    `fleet labels %: ${share(fleet.labels) || '(none tracked)'} over ${fleet.examples} examples`,
    table(rows, ['agent', 'round', 'examples', 'labels %', 'label psi', 'features most unlike the fleet (psi)']),
  ];
}
