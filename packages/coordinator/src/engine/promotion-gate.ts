/**
 * The run config's promotion gate, decided when the run ends: the best version by the run's task metric (federated
 * evaluation first, as the accuracy gate reads it, else central) must reach promotion.minMetric from the side the
 * metric implies. Pure: the coordinator records the result (fedge run show, fedge_promotion_gate_failed) and starts
 * the self-healing canary when it passes.
 */
import { LOWER_IS_BETTER } from '@fedge/proto';
import type { ModelVersionRecord, PromotionGateRecord, RunRecord } from '../store/store.js';
import { canaryAutoOptions, type CanaryAutoOptions } from './canary.js';

/** The metric the gate reads: promotion.metric, else stopAt's, else the task's first, else accuracy. */
export function gateMetric(run: Pick<RunRecord, 'config' | 'data'>): string {
  return run.config.promotion?.metric ?? run.config.stopAt?.metric ?? run.data?.task.metrics[0] ?? 'accuracy';
}

/** A version's value of `metric`: federated evaluation first, then central (accuracy also from the legacy fields). */
export function versionMetric(v: ModelVersionRecord, metric: string): number | undefined {
  const x = v.federatedMetrics?.[metric] ?? v.centralMetrics?.[metric] ?? (metric === 'accuracy' ? v.federatedAccuracy ?? v.centralAccuracy : undefined);
  return x !== undefined && Number.isFinite(x) ? x : undefined;
}

const fmt = (x: number): string => (Math.abs(x) >= 1000 || Math.abs(x) < 0.001 ? x.toPrecision(4) : x.toFixed(4).replace(/0+$/, '').replace(/\.$/, ''));

/** The gate's verdict for a finished run with config.promotion (trained versions only: version 0 is never promoted). */
export function judgePromotionGate(run: Pick<RunRecord, 'id' | 'config' | 'data' | 'versions'>, at = new Date().toISOString()): PromotionGateRecord {
  const p = run.config.promotion;
  if (!p) throw new Error(`run ${run.id} has no promotion config`);
  const metric = gateMetric(run);
  const lower = LOWER_IS_BETTER.has(metric);
  let best: { version: number; value: number } | undefined;
  for (const v of run.versions) {
    const x = v.version > 0 ? versionMetric(v, metric) : undefined;
    if (x === undefined) continue;
    if (!best || (lower ? x < best.value : x > best.value)) best = { version: v.version, value: x };
  }
  const base = { at, metric, min: p.minMetric };
  if (!best) return { ...base, passed: false, message: `promotion gate failed: no trained version has a ${metric} (evaluate with agents' holdouts or config.evaluation)` };
  const passed = lower ? best.value <= p.minMetric : best.value >= p.minMetric;
  return {
    ...base, passed, version: best.version, value: best.value,
    message: passed
      ? `version ${best.version} passed the promotion gate: ${metric} ${fmt(best.value)} ${lower ? '<=' : '>='} ${fmt(p.minMetric)}`
      : `promotion gate failed: the best version (${best.version}) has ${metric} ${fmt(best.value)}, ${lower ? 'above the maximum' : 'below promotion.minMetric'} ${fmt(p.minMetric)}`,
  };
}

/** The canary options of the run's promotion config. */
export function gateCanaryOptions(run: Pick<RunRecord, 'config'>): CanaryAutoOptions {
  return canaryAutoOptions(run.config.promotion!, 'promotion.window');
}
