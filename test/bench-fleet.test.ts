import { describe, expect, it } from 'vitest';
import { Covers, ServiceAlone, idealContinuousTokens, idealOnDemandTokens, usableSeconds } from '../bench/fleet/ideal';
import { logNormal, quantile, seeded } from '../bench/fleet/random';
import { FLEET_DAY, diurnal, makeWorkload, type WorkloadOptions } from '../bench/fleet/workload';

const MIN = 60_000;

describe('the ideal exchange count', () => {
  it('holds a pre-warmed token all day, replaced every usable span', () => {
    expect(idealContinuousTokens({ usableMs: 180_000, dayMs: 86_400_000, forcedMs: [] })).toBe(480);
    // A span that does not divide the day still needs a token for the remainder.
    expect(idealContinuousTokens({ usableMs: 7 * MIN, dayMs: 60 * MIN, forcedMs: [] })).toBe(9);
  });

  it('adds one token per rotation, and starts the cadence again from it', () => {
    // 0–25 min: 3 tokens of 10 min; 25–60: 4 tokens.
    expect(idealContinuousTokens({ usableMs: 10 * MIN, dayMs: 60 * MIN, forcedMs: [25 * MIN] })).toBe(7);
  });

  it('covers on-demand requests greedily: a token at the first request no held token serves', () => {
    const need = { usableMs: 10 * MIN, dayMs: 60 * MIN, forcedMs: [] };
    expect(idealOnDemandTokens([], need)).toBe(0);
    expect(idealOnDemandTokens([0, 1 * MIN, 9 * MIN], need)).toBe(1);
    // 10 min exactly after the mint is no longer served.
    expect(idealOnDemandTokens([0, 10 * MIN], need)).toBe(2);
    expect(idealOnDemandTokens([0, 30 * MIN, 35 * MIN, 41 * MIN], need)).toBe(3);
  });

  it('counts a rotation as a mint that serves the requests after it, even one after the last request', () => {
    const need = { usableMs: 10 * MIN, dayMs: 60 * MIN, forcedMs: [5 * MIN, 50 * MIN] };
    // Request at 0 mints; the rotation at 5 mints and serves 12; the one at 50 comes after every request.
    expect(idealOnDemandTokens([0, 12 * MIN], need)).toBe(3);
  });

  it('reads a token lifetime two ways: the goal replaces pre-warmed tokens at their refresh window', () => {
    expect(usableSeconds(300, 120, 70, true)).toEqual({ strict: 300, ideal: 180 });
    expect(usableSeconds(300, 120, 70, false)).toEqual({ strict: 230, ideal: 230 });
    // A window as long as the token: replaced when it expires.
    expect(usableSeconds(100, 120, 70, true)).toEqual({ strict: 100, ideal: 100 });
    expect(() => usableSeconds(60, 120, 70, false)).toThrow(/cannot serve/);
  });
});

describe('covers (in-process copies, a service holding its own token)', () => {
  it('starts a new cover only once the span has passed, per key', () => {
    const c = new Covers();
    expect([c.observe('a', 0, 30_000), c.observe('a', 29_999, 30_000), c.observe('b', 1, 30_000), c.observe('a', 30_000, 30_000)]).toEqual([true, false, true, true]);
    expect(c.count).toBe(3);
  });

  it('makes a service read its secret through the Agent only when it exchanges, at most once per 300 s', () => {
    const alone = new ServiceAlone();
    alone.observe('i1', 'c1', 's1', 0, 60_000);
    alone.observe('i1', 'c1', 's1', 30_000, 60_000); // token still held
    alone.observe('i1', 'c1', 's1', 60_000, 60_000); // exchange, secret cached
    alone.observe('i2', 'c1', 's1', 60_000, 60_000); // another instance: its own token and its own agent
    alone.observe('i1', 'c1', 's1', 300_000, 60_000); // exchange, secret cache expired
    expect(alone.exchanges.count).toBe(4);
    expect(alone.secretReads.count).toBe(3);
  });
});

describe('the workload generator', () => {
  const small: WorkloadOptions = {
    ...FLEET_DAY,
    daySeconds: 6 * 3600,
    requestsPerSecond: 2,
    bursts: { perDay: 5, minSize: 10, maxSize: 30, spreadMs: 20 },
    rotations: 4,
  };

  it('makes the connections asked for, with lifetimes from 5 minutes to a day, half pre-warmed', () => {
    const w = makeWorkload(FLEET_DAY);
    expect(w.connections).toHaveLength(200);
    expect(new Set(w.connections.map((c) => c.id)).size).toBe(200);
    const lifetimes = w.connections.map((c) => c.lifetimeSeconds);
    expect(Math.min(...lifetimes)).toBe(300);
    expect(Math.max(...lifetimes)).toBe(86_400);
    expect(w.connections.filter((c) => c.prewarm)).toHaveLength(100);
    // Every lifetime is seen both pre-warmed and not.
    for (const l of new Set(lifetimes)) {
      expect(new Set(w.connections.filter((c) => c.lifetimeSeconds === l).map((c) => c.prewarm))).toEqual(new Set([true, false]));
    }
    expect(w.connections.every((c) => c.vendor >= 0 && c.vendor < FLEET_DAY.vendors)).toBe(true);
  });

  it('keeps every arrival inside the day, in time order, to a known connection, about as many as asked', () => {
    const w = makeWorkload(small);
    let last = -1;
    let count = 0;
    const wrong: unknown[] = [];
    for (const a of w.arrivals()) {
      const ok = a.t >= last && a.t < small.daySeconds * 1000 && Number.isInteger(a.connection) && a.connection >= 0 && a.connection < small.connections;
      if (!ok) wrong.push(a);
      last = a.t;
      count += 1;
    }
    expect(wrong).toEqual([]);
    // Poisson: within 5% of the mean for ~43,000 arrivals (the standard deviation is ~0.5%).
    expect(Math.abs(count - w.expectedArrivals) / w.expectedArrivals).toBeLessThan(0.05);
  });

  it('delivers each burst within its spread, sizes within bounds, every burst arrival in the stream', () => {
    const w = makeWorkload(small);
    expect(w.bursts).toHaveLength(small.bursts.perDay);
    for (const b of w.bursts) {
      expect(b.arrivals.length).toBeGreaterThanOrEqual(small.bursts.minSize);
      expect(b.arrivals.length).toBeLessThanOrEqual(small.bursts.maxSize);
      const times = b.arrivals.map((a) => a.t);
      expect(Math.min(...times)).toBeGreaterThanOrEqual(b.startMs);
      expect(Math.max(...times)).toBeLessThan(b.startMs + small.bursts.spreadMs);
      expect(b.arrivals.every((a) => a.connection === b.connection)).toBe(true);
    }
    const streamed = new Set<object>();
    for (const a of w.arrivals()) streamed.add(a);
    expect(w.bursts.every((b) => b.arrivals.every((a) => streamed.has(a)))).toBe(true);
  });

  it('rotates distinct connections at times inside the day, an hour away from its edges', () => {
    const w = makeWorkload(small);
    expect(w.rotations).toHaveLength(4);
    expect(new Set(w.rotations.map((r) => r.connection)).size).toBe(4);
    for (const r of w.rotations) {
      expect(r.t).toBeGreaterThanOrEqual(3_600_000);
      expect(r.t).toBeLessThan(small.daySeconds * 1000 - 3_600_000);
    }
  });

  it('is the same on every run of the same seed, and differs with another seed', () => {
    const first = (o: WorkloadOptions) => {
      const out = [];
      for (const a of makeWorkload(o).arrivals()) if (out.push(a) >= 50) break;
      return out;
    };
    expect(first(small)).toEqual(first(small));
    expect(first({ ...small, seed: small.seed + 1 })).not.toEqual(first(small));
  });

  it('swings the rate over the day around a mean of 1', () => {
    const points = Array.from({ length: 1440 }, (_, i) => diurnal(FLEET_DAY, i * 60_000));
    expect(points.reduce((a, b) => a + b, 0) / points.length).toBeCloseTo(1, 6);
    expect(Math.max(...points)).toBeCloseTo(1 + FLEET_DAY.diurnalSwing, 3);
  });
});

describe('the latency draws', () => {
  it('have the median and 99th percentile of their profile', () => {
    const draw = logNormal({ medianMs: 4, p99Ms: 12 });
    const rng = seeded(7);
    const xs = Array.from({ length: 20_000 }, () => draw(rng));
    expect(quantile(xs, 0.5)).toBeGreaterThan(3.8);
    expect(quantile(xs, 0.5)).toBeLessThan(4.2);
    expect(quantile(xs, 0.99)).toBeGreaterThan(11);
    expect(quantile(xs, 0.99)).toBeLessThan(13);
    expect(Math.min(...xs)).toBeGreaterThan(0);
  });
});
