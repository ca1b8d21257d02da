import { expect } from 'chai';
import { membershipTimings, DEFAULT_LEASE_TTL_SECONDS, ETCD_CALL_TIMEOUT_MAX_MS } from '../../agent/lease-membership';
import { AGENT_CHANNEL_OPTIONS } from '../../agent/coordinator-link';
import { Backoff } from '../../shared/backoff';

describe('agent membership timings', () => {
  const table: { ttlMs: number; ttlSeconds: number; interval: number; call: number; retryInitial: number; retryMax: number }[] = [
    { ttlMs: 2000, ttlSeconds: 2, interval: 667, call: 500, retryInitial: 100, retryMax: 250 },
    { ttlMs: 3000, ttlSeconds: 3, interval: 1000, call: 750, retryInitial: 150, retryMax: 375 },
    { ttlMs: 2500, ttlSeconds: 3, interval: 1000, call: 750, retryInitial: 150, retryMax: 375 },
    { ttlMs: 45_000, ttlSeconds: 45, interval: 15_000, call: 5000, retryInitial: 500, retryMax: 2000 },
    { ttlMs: 600_000, ttlSeconds: 600, interval: 200_000, call: 5000, retryInitial: 500, retryMax: 2000 },
  ];
  for (const t of table) {
    it(`TTL ${t.ttlMs} ms`, () => {
      const m = membershipTimings(t.ttlMs);
      expect(m).to.deep.equal({ ttlSeconds: t.ttlSeconds, keepaliveIntervalMs: t.interval, callTimeoutMs: t.call, retryInitialMs: t.retryInitial, retryMaxMs: t.retryMax });
      // A keepalive that times out still leaves time for a retry before the lease expires.
      expect(m.keepaliveIntervalMs + m.callTimeoutMs).to.be.lessThan(t.ttlSeconds * 1000);
      // Retries come faster than the renewal period: a short partition is ridden out.
      expect(m.callTimeoutMs + m.retryMaxMs).to.be.lessThan(m.keepaliveIntervalMs * 2);
    });
  }

  it('the default TTL exceeds the worst healthy renewal and the gRPC keepalive detection time', () => {
    const ttl = DEFAULT_LEASE_TTL_SECONDS * 1000;
    const m = membershipTimings(ttl);
    const dialMs = 3000; // shared/etcd.ts dialTimeout
    expect(m.keepaliveIntervalMs + 2 * (ETCD_CALL_TIMEOUT_MAX_MS + dialMs) + m.retryMaxMs).to.be.lessThan(ttl);
    const grpcDetect = Number(AGENT_CHANNEL_OPTIONS['grpc.keepalive_time_ms']) + Number(AGENT_CHANNEL_OPTIONS['grpc.keepalive_timeout_ms']);
    expect(grpcDetect).to.be.lessThan(ttl);
  });

  it('retries use jittered backoff within the derived bounds', () => {
    const m = membershipTimings(3000);
    const lows = new Backoff({ initialMs: m.retryInitialMs, maxMs: m.retryMaxMs, random: () => 0 });
    const highs = new Backoff({ initialMs: m.retryInitialMs, maxMs: m.retryMaxMs, random: () => 0.999999 });
    const lo = Array.from({ length: 6 }, () => lows.next());
    const hi = Array.from({ length: 6 }, () => highs.next());
    expect(lo).to.deep.equal([15, 30, 38, 38, 38, 38]);
    expect(hi).to.deep.equal([150, 300, 375, 375, 375, 375]);
  });
});
