/** Bytes on the wire and their ratio to dense float32, per round and per run (issue 14): for run show, --watch and demo. */
import type { RoundRecord } from '../store/store.js';

export interface Traffic {
  uplinkBytes: number;
  downlinkBytes: number;
  /** Sent ÷ what the same updates / downloads weigh as dense float32; null when nothing was counted. */
  uplinkRatio: number | null;
  downlinkRatio: number | null;
}

type Counted = Pick<RoundRecord, 'bytesReceived' | 'bytesSent' | 'bytesReceivedDense' | 'bytesSentDense'>;

export function traffic(rounds: readonly Counted[]): Traffic {
  let up = 0, upDense = 0, down = 0, downDense = 0;
  for (const r of rounds) {
    up += r.bytesReceived;
    down += r.bytesSent;
    // Records from before the dense counters count as uncompressed.
    upDense += r.bytesReceivedDense ?? r.bytesReceived;
    downDense += r.bytesSentDense ?? r.bytesSent;
  }
  return { uplinkBytes: up, downlinkBytes: down, uplinkRatio: upDense > 0 ? up / upDense : null, downlinkRatio: downDense > 0 ? down / downDense : null };
}

const ratio = (x: number | null): string => (x === null ? 'n/a' : x >= 0.1 ? `${x.toFixed(2)}x` : `${x.toPrecision(2)}x (${Math.round(1 / x)}x smaller)`);

export function bytes(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} kB` : `${n} B`;
}

/** "traffic: uplink 1.20 MB (0.0012x float32 ...), downlink 30.1 MB (0.52x)" for run show. */
export function trafficLine(rounds: readonly Counted[]): string | undefined {
  const t = traffic(rounds);
  if (!t.uplinkBytes && !t.downlinkBytes) return undefined;
  return `traffic: uplink ${bytes(t.uplinkBytes)} (${ratio(t.uplinkRatio)} dense float32), downlink ${bytes(t.downlinkBytes)} (${ratio(t.downlinkRatio)})`;
}

/** "up 0.0012x down 0.51x" for a round's progress line, only when the round was compressed in some direction. */
export function roundTrafficText(r: Counted): string | undefined {
  const t = traffic([r]);
  const up = t.uplinkRatio !== null && t.uplinkRatio < 1 ? `up ${t.uplinkRatio.toPrecision(2)}x` : undefined;
  const down = t.downlinkRatio !== null && t.downlinkRatio < 1 ? `down ${t.downlinkRatio.toPrecision(2)}x` : undefined;
  return up || down ? [up, down].filter(Boolean).join(' ') : undefined;
}
