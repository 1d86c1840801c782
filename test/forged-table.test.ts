import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../lib/clock';
import { LEASE_DEFAULTS } from '../lib/lease';
import { vendorConnectionInput, secretFor } from './support/connections';
import { RecordingMetrics, startWorld, type World } from './support/harness';

// Issue 22: someone who can write the token table (and nothing else) must not be able to stop the broker for good.
// What they write is bounded by what a broker would write: a lease no longer than a lease, a mint time no later
// than now, give or take the clocks' skew.

const CALLER = 'arn:aws:iam::111111111111:role/caller';
const T0 = '2026-11-23T10:00:00.000Z';
const TEN_YEARS_MS = 10 * 365 * 86_400_000;

let world: World | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

async function worldOf(clock: ManualClock, prewarm = false): Promise<World> {
  world = await startWorld(
    clock,
    (v) => [vendorConnectionInput(v, 'jwt', { id: 'jwt', callers: [CALLER], prewarm })],
    { lifetime: 3600 },
    (v) => ({ 'broker/jwt-test': secretFor(v, 'jwt') }),
  );
  return world;
}

describe('a forged lease', () => {
  it('a lease ten years ahead is no lease: a caller mints at once, without waiting', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    await w.table.store.acquireLease('jwt', { fence: 'forged', holder: 'nobody', now: clock.now(), until: clock.now() + TEN_YEARS_MS });
    const metrics = new RecordingMetrics();
    const t = await w.broker({ metrics }).getToken(CALLER, 'jwt');
    expect(t.source).toBe('vendor');
    expect(metrics.get('LeaseWaits')).toBe(0);
    expect((await w.table.store.read('jwt')).lease).toBeUndefined();
  });

  it('pre-warm does not report busy for good', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, true);
    await w.table.store.acquireLease('jwt', { fence: 'forged', holder: 'nobody', now: clock.now(), until: clock.now() + TEN_YEARS_MS });
    expect(await w.broker().prewarm(w.config.byId.get('jwt')!)).toBe('minted');
  });

  it('a lease just within the length of a lease and the clocks skew is honoured', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, true);
    const until = clock.now() + LEASE_DEFAULTS.leaseMs + LEASE_DEFAULTS.clockSkewMs;
    await w.table.store.acquireLease('jwt', { fence: 'other', holder: 'another-instance', now: clock.now(), until });
    expect(await w.broker().prewarm(w.config.byId.get('jwt')!)).toBe('busy');
  });
});
