import { describe, expect, it } from 'vitest';
import { fleetFigures, seedFigures } from '../bench/fleet/figures';
import { simulateFleet, type FleetResult } from '../bench/fleet/simulate';
import { FLEET_DAY, type WorkloadOptions } from '../bench/fleet/workload';

// The fleet goals of BENCHMARKS.md, held in CI on three hours of the simulated fleet (the whole day is
// `npm run bench`): 200 connections, half pre-warmed, bursts, rotations, a 10-minute vendor outage at the first hour
// and a 5-minute table brownout at the second. The clock is simulated, so these are counts, not timings. Three seeds:
// the bench's; one that found a 3.3 s answer in the brownout (it fails here without lib/budget.ts's answer
// deadline); one that found a 3.04 s one when the store after a slow call still got 300 ms. KMS and Secrets Manager calls per instance-hour are not held here: three hours are mostly cold starts,
// so that ratio means something only over the bench's whole day. A pre-warmed connection's callers may get 503 in
// the minute after the brownout: an instance that saw the table brown out leaves the mints to the pre-warm run for
// 60 s (lib/budget.ts tableTroubleMs).

const SLICE: WorkloadOptions = {
  ...FLEET_DAY,
  daySeconds: 3 * 3600,
  rotations: 3,
  bursts: { ...FLEET_DAY.bursts, perDay: 3 },
  outage: { ...FLEET_DAY.outage, startSecond: 3600 },
  brownout: { ...FLEET_DAY.brownout, startSecond: 2 * 3600 },
};

/** When a request may be answered with an error: the vendor is down, or the table is (or just was). */
const EXCUSED = ['outage, vendor_unavailable', 'brownout, service_unavailable', 'the minute after the brownout, service_unavailable'];

/** Each seed's slice, for the rows the bench sets the seeds side by side in. */
const slices: FleetResult[] = [];

describe.each([FLEET_DAY.seed, 1, 33])('three hours of the fleet, seed %i', (seed) => {
  let r: FleetResult;

  it('runs the slice', async () => {
    r = await simulateFleet({ workload: { ...SLICE, seed } });
    slices.push(r);
    expect(r.requests).toBeGreaterThan(60_000);
    expect(r.errors.internal_error ?? 0).toBe(0);
  }, 120_000);

  it('mints within 2% of the ideal number of tokens', () => {
    expect(r.exchanges.tokens).toBeGreaterThan(0);
    expect(r.exchanges.tokens / r.exchanges.ideal).toBeLessThanOrEqual(1.02);
  });

  it('never makes a caller of a pre-warmed connection wait on a vendor, nor errs except when the vendor or the table is down', () => {
    expect(r.waits.prewarmed.requests).toBeGreaterThan(20_000);
    expect(r.waits.prewarmed.waits).toBe(0);
    expect(Object.keys(r.waits.prewarmed.errors).filter((k) => !EXCUSED.includes(k))).toEqual([]);
    expect(Object.keys(r.waits.cold.errors).filter((k) => !EXCUSED.includes(k))).toEqual([]);
  });

  it('answers every request of the table brownout within 3 s, serving a held token to most that one could serve', () => {
    expect(r.brownout.requests).toBeGreaterThan(1_000);
    expect(r.brownout.over3s).toBe(0);
    expect(r.brownout.maxLatencyMs).toBeLessThanOrEqual(3_000);
    expect(r.brownout.fromHeldToken / r.brownout.servable).toBeGreaterThan(0.75);
  });

  it('serves a held token in the vendor outage to every request one could serve', () => {
    expect(r.outage.requests).toBeGreaterThan(50);
    expect(r.outage.fromHeldToken).toBe(r.outage.servable);
  });
});

describe("the bench's rows over several seeds", () => {
  it('hold a goal met only when every seed meets it, and show each seed', () => {
    expect(slices).toHaveLength(3);
    const rows = seedFigures(slices);
    const perSeed = slices.map((x) => fleetFigures(x).filter((f) => f.ok !== undefined));
    expect(rows).toHaveLength(perSeed[0]!.length);
    rows.forEach((row, i) => {
      expect(row.ok).toBe(perSeed.every((figures) => figures[i]!.ok === true));
      for (const x of slices) expect(row.value).toContain(`seed ${x.options.seed}:`);
    });
  });

  it('a goal one seed misses is missed, whichever seed it is', () => {
    const brownoutRow = (rows: ReturnType<typeof seedFigures>) => rows.find((row) => row.what.includes('brownout: slowest answer'))!;
    const good = slices[0]!;
    const bad: FleetResult = { ...structuredClone(good), options: { ...good.options, seed: 999 }, brownout: { ...good.brownout, over3s: 1, maxLatencyMs: 3_100 } };
    expect(brownoutRow(seedFigures([good])).ok).toBe(true);
    expect(brownoutRow(seedFigures([good, bad])).ok).toBe(false);
    expect(brownoutRow(seedFigures([bad, good])).ok).toBe(false);
    expect(brownoutRow(seedFigures([good, bad])).value).toContain('seed 999: max 3.10 s; 1 over 3 s');
  });
});
