/** Prometheus text exposition helpers shared by the agent's /metrics sections (metrics.ts, serving stats, drift gauges). */

/** A label value escaped for the text format: backslash, newline and double quote. */
export const escapeLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
