import { between, exponential, pickWeighted, seeded, type Random } from './random';

// The simulated day's workload, generated from a seed: the connections (vendor, token lifetime, pre-warmed or not,
// popularity), the callers' requests (Poisson with a day-night swing, plus bursts), secret rotations, one vendor
// outage and one table brownout. Pure: the simulator replays it; the tests check its bounds.

export interface WorkloadOptions {
  seed: number;
  daySeconds: number;
  connections: number;
  vendors: number;
  /** Token lifetimes the vendors issue, assigned to connections in turn (5 minutes to a day). */
  lifetimesSeconds: readonly number[];
  /** The share of connections pre-warmed (one in round(1 / share)). */
  prewarmShare: number;
  refreshBeforeSeconds: number;
  minTtlSeconds: number;
  /** Mean rate of the steady callers over the day (requests per second, all connections). */
  requestsPerSecond: number;
  /** Peak-to-mean swing of the day-night curve, 0 for a flat day. */
  diurnalSwing: number;
  /** Popularity of connections: weight of the k-th most popular is 1 / k^zipf. */
  zipf: number;
  bursts: { perDay: number; minSize: number; maxSize: number; spreadMs: number };
  rotations: number;
  outage: { vendor: number; startSecond: number; durationSeconds: number };
  brownout: { startSecond: number; durationSeconds: number };
}

export const FLEET_DAY: WorkloadOptions = {
  seed: 20261123,
  daySeconds: 86_400,
  connections: 200,
  vendors: 20,
  lifetimesSeconds: [300, 900, 1800, 3600, 3600, 7200, 43_200, 86_400],
  prewarmShare: 0.5,
  refreshBeforeSeconds: 120,
  minTtlSeconds: 60,
  requestsPerSecond: 6,
  diurnalSwing: 0.6,
  zipf: 1,
  bursts: { perDay: 14, minSize: 20, maxSize: 200, spreadMs: 20 },
  rotations: 6,
  outage: { vendor: 0, startSecond: 15 * 3600, durationSeconds: 600 },
  brownout: { startSecond: 11 * 3600, durationSeconds: 300 },
};

export interface ConnectionSpec {
  index: number;
  id: string;
  vendor: number;
  lifetimeSeconds: number;
  prewarm: boolean;
  refreshBeforeSeconds: number;
  /** Relative share of the steady callers' requests. */
  weight: number;
}

export interface Arrival {
  /** Milliseconds from the start of the day. */
  t: number;
  connection: number;
}

export interface Burst {
  startMs: number;
  connection: number;
  arrivals: Arrival[];
}

export interface Rotation {
  t: number;
  connection: number;
}

export interface Workload {
  options: WorkloadOptions;
  connections: ConnectionSpec[];
  rotations: Rotation[];
  bursts: Burst[];
  /** Arrivals of the whole day in time order (steady callers and bursts merged), generated lazily. */
  arrivals(): Generator<Arrival>;
  /** The mean number of arrivals the options ask for. */
  expectedArrivals: number;
}

export function connectionId(index: number): string {
  return `conn-${String(index).padStart(3, '0')}`;
}

export function makeConnections(o: WorkloadOptions, rng: Random): ConnectionSpec[] {
  const ranks = Array.from({ length: o.connections }, (_, i) => i + 1);
  for (let i = ranks.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [ranks[i], ranks[j]] = [ranks[j]!, ranks[i]!];
  }
  const prewarmEvery = o.prewarmShare > 0 ? Math.round(1 / o.prewarmShare) : 0;
  const lifetimes = o.lifetimesSeconds.length;
  return ranks.map((rank, index) => ({
    index,
    id: connectionId(index),
    vendor: index % o.vendors,
    lifetimeSeconds: o.lifetimesSeconds[index % lifetimes]!,
    // Shifted by one each round of the lifetimes, so every lifetime is seen pre-warmed and not, in the share asked.
    prewarm: prewarmEvery > 0 && (index + Math.floor(index / lifetimes)) % prewarmEvery === 0,
    refreshBeforeSeconds: o.refreshBeforeSeconds,
    weight: 1 / rank ** o.zipf,
  }));
}

/** The day-night curve: 1 on average over the day, 1 + swing at its peak (mid-afternoon). */
export function diurnal(o: WorkloadOptions, tMs: number): number {
  const phase = tMs / (o.daySeconds * 1000);
  return 1 + o.diurnalSwing * Math.sin(2 * Math.PI * (phase - 0.375));
}

export function makeWorkload(o: WorkloadOptions = FLEET_DAY): Workload {
  const rng = seeded(o.seed);
  const connections = makeConnections(o, rng);
  const dayMs = o.daySeconds * 1000;
  const cumulative = new Float64Array(connections.length);
  connections.reduce((sum, c, i) => (cumulative[i] = sum + c.weight), 0);

  const bursts: Burst[] = [];
  for (let b = 0; b < o.bursts.perDay; b++) {
    const startMs = Math.floor(rng() * (dayMs - o.bursts.spreadMs));
    const connection = pickWeighted(rng, cumulative);
    const size = between(rng, o.bursts.minSize, o.bursts.maxSize);
    const arrivals = Array.from({ length: size }, () => ({ t: Math.floor(startMs + rng() * o.bursts.spreadMs), connection }));
    bursts.push({ startMs, connection, arrivals });
  }
  const burstArrivals = bursts.flatMap((b) => b.arrivals).sort((a, b) => a.t - b.t);

  const rotations: Rotation[] = [];
  const rotated = new Set<number>();
  for (let r = 0; r < o.rotations && rotated.size < connections.length; r++) {
    let c = Math.floor(rng() * connections.length);
    while (rotated.has(c)) c = (c + 1) % connections.length;
    rotated.add(c);
    // Away from the edges of the day, so each rotation has a before and an after.
    rotations.push({ t: Math.floor(3_600_000 + rng() * (dayMs - 7_200_000)), connection: c });
  }
  rotations.sort((a, b) => a.t - b.t);

  const arrivalSeed = Math.floor(rng() * 2 ** 31);
  const expectedBursts = burstArrivals.length;
  function* arrivals(): Generator<Arrival> {
    const r = seeded(arrivalSeed);
    const peak = o.requestsPerSecond * (1 + Math.abs(o.diurnalSwing));
    const meanGapMs = 1000 / peak;
    let t = 0;
    let b = 0;
    for (;;) {
      t += exponential(r, meanGapMs);
      if (t >= dayMs) break;
      // Thinning: a Poisson process at the peak rate, each arrival kept with the curve's share of the peak.
      if (r() * (1 + Math.abs(o.diurnalSwing)) > diurnal(o, t)) continue;
      const at = Math.floor(t);
      while (b < burstArrivals.length && burstArrivals[b]!.t <= at) yield burstArrivals[b++]!;
      yield { t: at, connection: pickWeighted(r, cumulative) };
    }
    while (b < burstArrivals.length) yield burstArrivals[b++]!;
  }

  return {
    options: o,
    connections,
    rotations,
    bursts,
    arrivals,
    expectedArrivals: o.requestsPerSecond * o.daySeconds + expectedBursts,
  };
}
