import { describe, expect, it } from 'vitest';
import { simulateFleet } from '../bench/fleet/simulate';
import { FLEET_DAY } from '../bench/fleet/workload';

describe('the fleet simulation counts the pre-warm run\'s secret check', () => {
  it('one BatchGetSecretValue per 20 connections per run: 45 connections are 3 calls a minute', async () => {
    const r = await simulateFleet({
      workload: {
        ...FLEET_DAY,
        daySeconds: 1_800,
        connections: 45,
        requestsPerSecond: 0.5,
        bursts: { ...FLEET_DAY.bursts, perDay: 0 },
        rotations: 0,
        // Neither falls inside this half hour.
        outage: { ...FLEET_DAY.outage, startSecond: 3_600 },
        brownout: { ...FLEET_DAY.brownout, startSecond: 3_600 },
      },
    });
    expect(r.lambda.prewarmInvocations).toBeGreaterThanOrEqual(29);
    expect(r.secretsManager.batchGetSecretValue).toBe(3 * r.lambda.prewarmInvocations);
    expect(r.tally['secretsmanager.DescribeSecret'] ?? 0).toBe(0);
  }, 60_000);
});
