import { describe, expect, it } from 'vitest';
import { roundTrafficText, traffic, trafficLine } from './traffic.js';

describe('traffic ratios', () => {
  it('sums bytes and divides by their dense float32 size; old records count as uncompressed', () => {
    const rounds = [
      { bytesReceived: 100, bytesReceivedDense: 100_000, bytesSent: 2_000, bytesSentDense: 4_000 },
      { bytesReceived: 300, bytesReceivedDense: 300_000, bytesSent: 6_000, bytesSentDense: 12_000 },
      { bytesReceived: 0, bytesSent: 0 },
    ];
    expect(traffic(rounds)).toEqual({ uplinkBytes: 400, downlinkBytes: 8_000, uplinkRatio: 0.001, downlinkRatio: 0.5 });
    expect(trafficLine(rounds)).toBe('traffic: uplink 400 B (0.0010x (1000x smaller) dense float32), downlink 8.0 kB (0.50x)');
    expect(roundTrafficText(rounds[0]!)).toBe('up 0.0010x down 0.50x');
    expect(roundTrafficText({ bytesReceived: 40, bytesSent: 40 })).toBeUndefined();
    expect(traffic([{ bytesReceived: 0, bytesSent: 0 }]).uplinkRatio).toBeNull();
    expect(trafficLine([{ bytesReceived: 0, bytesSent: 0 }])).toBeUndefined();
  });
});
