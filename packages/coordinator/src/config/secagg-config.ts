/** The run config's secureAggregation block and the rules for what it composes with (one place: config, CLI, README). */
import { z } from 'zod';
import { ValidationError } from '@fedge/proto';

/**
 * Strategies whose server step needs only the weighted mean of the round's updates: the one thing the coordinator
 * learns under secure aggregation. Robust aggregators (median, trimmed mean, Krum) need every update, norm-bound and
 * SCAFFOLD need each update's norm or its variate half: masking hides exactly that.
 */
export const SECAGG_STRATEGIES = ['fedavg', 'fedavgm', 'fedadam', 'fedyogi', 'fedadagrad', 'fedprox'] as const;

/** Why each refused combination cannot work (the error text and the README's table say the same). */
export const SECAGG_REFUSED = {
  async: 'mode async: pairwise masks cancel only when the same fixed cohort sums its masked inputs, and FedBuff\'s buffer has no cohort (any K updates of agents that never exchanged keys); use mode sync',
  lateResults: 'sync.lateResults next-round: a late masked input carries masks of the round it was trained for and cannot be unmasked in the next; use sync.lateResults discard',
  topk: 'compression.codec topk: a masked input is uniform noise in every coordinate, so it has no sparse top-k to keep; use compression.codec float32 (the masked vector is its own encoding: secureAggregation.quantization "int8" makes it 8-bit levels in the smallest ring)',
  int8: 'compression.codec int8: the masked vector is its own encoding and a per-agent scale cannot be masked; use compression.codec float32 with secureAggregation.quantization "int8" (8-bit levels at a scale fixed by secureAggregation.clip, in the smallest ring that sums the cohort: 12 bits for 10 agents)',
  strategy: 'a robust or per-update strategy: masked inputs hide each update\'s coordinates and norm, so median, trimmed-mean, krum, multi-krum, norm-bound (strategy.normBound) and scaffold cannot run; use fedavg, fedavgm, fedadam, fedyogi, fedadagrad or fedprox',
} as const;

const seconds = (key: string) => z.number().positive(`secureAggregation.${key}: must be > 0 seconds`).max(3600);

export const secureAggregationSchema = z.strictObject({
  /** Survivors needed to unmask; default secaggParams(n).threshold of the round's n agents. */
  threshold: z.number().int('secureAggregation.threshold: a whole number of agents').min(2, 'secureAggregation.threshold: at least 2 (one survivor would reveal its own input)').max(1_000_000).optional(),
  /** Neighbors per agent (SecAgg+ graph); default secaggParams(n).neighbors. */
  neighbors: z.number().int('secureAggregation.neighbors: a whole number of agents').min(1).max(1_000_000).optional(),
  /**
   * "int8": each agent quantizes its clipped update to 256 levels over [-clip, clip] (stochastic rounding, unbiased;
   * one scale for all agents, since masked values cannot carry per-agent scales) and the ring is the smallest that
   * sums the cohort without wrap: bits = ceil(log2(n x 255 + 1)), e.g. 12 for 10 agents (ringBitsFor). Absent: the
   * ring is `bits` and the grid the finest it holds.
   */
  quantization: z.enum(['int8']).optional(),
  /** Ring Z_{2^bits}: 32 (default) or down to 16 for cheaper masked inputs at coarser quantization; derived under quantization int8. */
  bits: z.number().int().min(16, 'secureAggregation.bits: use 16 to 32 (or quantization "int8" for a smaller, derived ring)').max(32, 'secureAggregation.bits: use 16 to 32').optional(),
  /**
   * Every coordinate of an update is clipped to [-clip, clip] before quantization. Under central DP it defaults to
   * privacy.clipNorm (an L2-clipped update has no coordinate beyond it); otherwise 1.
   */
  clip: z.number().positive('secureAggregation.clip: must be > 0').max(1e6).optional(),
  /**
   * Example counts above this are capped (the masked weight and weight × update must fit the ring). Default 100,000;
   * under quantization int8 the cohort's largest registered example count, since an agent of weight w gets
   * 255 x w / maxWeight of the 255 levels.
   */
  maxWeight: z.number().int().min(1).max(1e9).optional(),
  /** Stage deadlines: advertising keys, sharing keys (both while agents train), and unmasking. */
  advertiseSeconds: seconds('advertiseSeconds').default(30),
  shareSeconds: seconds('shareSeconds').default(30),
  unmaskSeconds: seconds('unmaskSeconds').default(30),
});
export type SecureAggregationConfig = z.output<typeof secureAggregationSchema>;

interface RunShape {
  mode: 'sync' | 'async';
  strategy: { name: string; normBound?: number };
  compression: { codec: string; uplink?: string | undefined };
  sync: { lateResults: string };
  secureAggregation?: SecureAggregationConfig | undefined;
}

/** The combination rules; every refusal names both settings and says why. */
export function checkSecureAggregation(c: RunShape): void {
  if (!c.secureAggregation) return;
  const refuse = (why: string): never => {
    throw new ValidationError(`invalid run config: secureAggregation cannot run with ${why}`);
  };
  if (c.mode === 'async') refuse(SECAGG_REFUSED.async);
  if (c.sync.lateResults === 'next-round') refuse(SECAGG_REFUSED.lateResults);
  if (c.compression.codec === 'topk') refuse(SECAGG_REFUSED.topk);
  if (c.compression.codec === 'int8') refuse(SECAGG_REFUSED.int8);
  const uplink = c.compression.uplink;
  if (uplink !== undefined && uplink !== 'float32')
    refuse(`compression.uplink ${uplink}: the masked vector is its own encoding (uniform ring elements: nothing to sparsify, and a per-agent scale cannot be masked); drop compression.uplink${/q8|int8/.test(uplink) && !uplink.includes('topk') ? ' and set secureAggregation.quantization "int8" (8-bit levels in the smallest ring that sums the cohort)' : ''}`);
  if (!(SECAGG_STRATEGIES as readonly string[]).includes(c.strategy.name)) refuse(`strategy.name ${c.strategy.name}, ${SECAGG_REFUSED.strategy}`);
  if (c.strategy.normBound !== undefined) refuse(`strategy.normBound, ${SECAGG_REFUSED.strategy}`);
  const s = c.secureAggregation;
  if (s.quantization === 'int8' && s.bits !== undefined)
    refuse(`secureAggregation.bits ${s.bits} with quantization int8: the ring is derived from the cohort (ceil(log2(n x 255 + 1)) bits); drop bits`);
  if (s.threshold !== undefined && s.neighbors !== undefined && s.neighbors + 1 < s.threshold)
    refuse(`secureAggregation.threshold ${s.threshold} above neighbors + 1 (${s.neighbors + 1}): an agent's secrets are shared among its neighbors only, so at most neighbors + 1 shares exist; lower the threshold or raise neighbors`);
}
