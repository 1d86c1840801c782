import { describe, expect, it } from 'vitest';
import { MemoryTokenStore } from '../lib/adapters/memory-store';
import { StoreUnavailableError } from '../lib/errors';
import { SimClock, Tally, readUnits, simulatedTable, type SimEnv } from '../bench/fleet/services';

// The fleet simulation's table keeps the deadline a request's budget gives each call, as the DynamoDB store does:
// otherwise the simulated brownout would measure a broker that does not exist.

function tableOf(draw: number, brownout: boolean) {
  const activity = { n: 0 };
  // The clock jumps to each sleeper's wake-up, as the simulation moves it.
  const clock: SimClock = new SimClock(Date.parse('2026-11-23T11:00:00.000Z'), (until) => setImmediate(() => clock.set(until)));
  const env: SimEnv = { clock, activity, rng: () => draw, tally: new Tally(), brownout: () => brownout };
  return { clock, env, table: simulatedTable(new MemoryTokenStore(), env) };
}

const brownedOutTable = (draw: number) => tableOf(draw, true);

describe('the simulated table during a brownout', () => {
  it('a hung attempt fails the call at the deadline the call was given, not at the table client own 2 s', async () => {
    // 0.35: inside the hung share (after the throttled 20 %, within the next 30 %).
    const { clock, env, table } = brownedOutTable(0.35);
    const started = clock.now();
    await expect(table.read('c', { timeoutMs: 300 })).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(clock.now() - started).toBe(300);
    expect(env.tally.get('dynamodb.failedCalls')).toBe(1);
  });

  it('a call with no time left is not made (nor billed)', async () => {
    const { clock, env, table } = brownedOutTable(0.35);
    const started = clock.now();
    await expect(table.acquireLease('c', { fence: 'f', holder: 'h', now: started, until: started + 15_000 }, { timeoutMs: 0 })).rejects.toBeInstanceOf(
      StoreUnavailableError,
    );
    expect(clock.now()).toBe(started);
    expect(env.tally.get('dynamodb.calls.acquireLease')).toBe(0);
    expect(env.tally.get('dynamodb.noTimeLeft')).toBe(1);
  });
});

describe('the simulated table bills reads as on-demand DynamoDB does', () => {
  it('a strongly consistent read 1 RRU per 4 KB, an eventually consistent one half that', async () => {
    const { env, table } = tableOf(0.5, false);
    await table.read('c');
    expect(env.tally.get('dynamodb.rru')).toBe(1);
    await table.read('c', { consistent: true });
    expect(env.tally.get('dynamodb.rru')).toBe(2);
    await table.read('c', { consistent: false });
    expect(env.tally.get('dynamodb.rru')).toBe(2.5);
    expect(env.tally.get('dynamodb.reads.eventual')).toBe(1);
    expect(env.tally.get('dynamodb.reads.consistent')).toBe(2);
  });

  it('by size: 4 KB is one unit, a byte more two (or one, eventually consistent)', () => {
    expect(readUnits(4096, false)).toBe(1);
    expect(readUnits(4097, false)).toBe(2);
    expect(readUnits(4097, true)).toBe(1);
    expect(readUnits(100, true)).toBe(0.5);
  });
});
