// Seeded randomness and the distributions the fleet simulation draws from, so a run is the same on every machine.

export type Random = () => number;

/** mulberry32: small, fast, and good enough to drive a simulation (not for anything secret). */
export function seeded(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** An exponential draw with the given mean (the gap between Poisson arrivals). */
export function exponential(rng: Random, mean: number): number {
  return -Math.log(1 - rng()) * mean;
}

function standardNormal(rng: Random): number {
  // Box-Muller; 1 - u keeps log away from 0.
  const u = 1 - rng();
  const v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** z of the 99th percentile of a standard normal. */
const Z99 = 2.326_347_874;

export interface LatencyProfile {
  /** Milliseconds. */
  medianMs: number;
  p99Ms: number;
}

/** A log-normal latency with the given median and 99th percentile: long-tailed, never negative. */
export function logNormal(profile: LatencyProfile): (rng: Random) => number {
  const mu = Math.log(profile.medianMs);
  const sigma = Math.log(profile.p99Ms / profile.medianMs) / Z99;
  return (rng) => Math.exp(mu + sigma * standardNormal(rng));
}

/** An integer in [min, max]. */
export function between(rng: Random, min: number, max: number): number {
  return min + Math.floor(rng() * (max - min + 1));
}

/** Picks an index with probability proportional to its weight (weights given as a cumulative array). */
export function pickWeighted(rng: Random, cumulative: Float64Array): number {
  const total = cumulative[cumulative.length - 1]!;
  const x = rng() * total;
  let lo = 0;
  let hi = cumulative.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cumulative[mid]! > x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** The q-quantile (0..1) of the values, by nearest rank; 0 for none. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}
