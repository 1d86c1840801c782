import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterEach, describe, expect, it } from 'vitest';
import { makeHandler } from '../functions/http';
import { createLogger, createMetrics } from '../lib/adapters/powertools';
import { ManualClock } from '../lib/clock';
import { LEASE_DEFAULTS } from '../lib/lease';
import { vendorConnectionInput, secretFor } from './support/connections';
import { lambdaContext, restEvent } from './support/events';
import { expectCode } from './support/expect';
import { RecordingMetrics, startWorld, type World } from './support/harness';

// Issue 22: someone who can write the token table (and nothing else) must not be able to stop the broker for good.
// What they write is bounded by what a broker would write: a lease no longer than a lease, a mint time no later
// than now, give or take the clocks' skew.

const CALLER = 'arn:aws:iam::111111111111:role/caller';
const ADMIN = 'arn:aws:iam::111111111111:role/admin';
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
    (v) => [vendorConnectionInput(v, 'jwt', { id: 'jwt', callers: [CALLER], prewarm, maxTtl: 3600 })],
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


/** Sets attributes of the connection's item, as someone who can write the table would. */
async function forge(w: World, values: Record<string, number>): Promise<void> {
  const names = Object.keys(values);
  await w.table.doc.send(
    new UpdateCommand({
      TableName: w.table.name,
      Key: { pk: 'token#jwt' },
      UpdateExpression: `SET ${names.map((n) => `#${n} = :${n}`).join(', ')}`,
      ExpressionAttributeNames: Object.fromEntries(names.map((n) => [`#${n}`, n])),
      ExpressionAttributeValues: Object.fromEntries(names.map((n) => [`:${n}`, values[n]])),
    }),
  );
}

describe('a forged future mintedAt', () => {
  it('is not inherited by the next token: invalidate and min_ttl answer in seconds, not years', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const a = w.broker({ config: { ...w.config, admins: [ADMIN] } });
    await forge(w, { mintedAt: clock.now() + TEN_YEARS_MS });
    const first = await a.getToken(CALLER, 'jwt', 60);
    expect(first.source).toBe('vendor');
    const status = await a.status(ADMIN, 'jwt');
    expect(status.token?.mintedAt).toBeLessThanOrEqual(clock.now() + LEASE_DEFAULTS.clockSkewMs);
    // 5 s later, a min_ttl the token cannot cover forces a mint: refused for seconds, as after any mint.
    clock.advance(5_000);
    const forced = await expectCode(a.getToken(CALLER, 'jwt', 3_590), 'rate_limited');
    expect(forced.retryAfter).toBeLessThanOrEqual(10);
    clock.advance(60_000);
    expect(await w.broker().invalidate(CALLER, 'jwt', first.accessToken)).toBe(true);
  });

  it('a token item whose mintedAt was pushed ahead is invalidated at once, never answered with a Retry-After of years', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const first = await w.broker().getToken(CALLER, 'jwt');
    clock.advance(60_000);
    await forge(w, { mintedAt: clock.now() + TEN_YEARS_MS });
    expect(await w.broker().invalidate(CALLER, 'jwt', first.accessToken)).toBe(true);
  });

  it('a warm instance does not keep a poisoned high-water mark once the item is cleaned', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const a = w.broker({ config: { ...w.config, admins: [ADMIN] } });
    await a.getToken(CALLER, 'jwt');
    clock.advance(60_000);
    // A forged mint time on the stored token: the instance reads it (the token no longer opens) and notes it.
    await forge(w, { mintedAt: clock.now() + TEN_YEARS_MS });
    clock.advance(31_000);
    await a.getToken(CALLER, 'jwt');
    // An admin cleans the item: the next genuine token is served from the table, not refused as stale.
    await forge(w, { mintedAt: clock.now() });
    clock.advance(LEASE_DEFAULTS.clockSkewMs + 1_000);
    const fresh = await w.broker({ config: { ...w.config, admins: [ADMIN] } }).refresh(ADMIN, 'jwt');
    const metrics = new RecordingMetrics();
    clock.advance(31_000);
    const b = w.broker({ metrics });
    expect(await a.getToken(CALLER, 'jwt')).toMatchObject({ fingerprint: fresh.fingerprint });
    expect(await b.getToken(CALLER, 'jwt')).toMatchObject({ source: 'table', fingerprint: fresh.fingerprint });
  });
});

describe('bad dates in the table never make a 500', () => {
  it.each([
    ['the year 275760', 8.64e15],
    ['past what a date can hold', 9e15],
  ])('the status route answers 200 with dates a broker could have written: %s', async (_what, at) => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const b = w.broker({ config: { ...w.config, admins: [ADMIN] } });
    await b.getToken(CALLER, 'jwt');
    await forge(w, { mintedAt: at, expiresAt: at, leaseUntil: at, failedAt: at, coolUntil: at });
    await w.table.doc.send(
      new UpdateCommand({
        TableName: w.table.name,
        Key: { pk: 'token#jwt' },
        UpdateExpression: 'SET failureCode = :c, fence = :f',
        ExpressionAttributeValues: { ':c': 'vendor_unavailable', ':f': 'forged' },
      }),
    );
    const handle = makeHandler({ broker: b, logger: createLogger(), metrics: createMetrics() });
    const res = await handle(restEvent({ method: 'GET', path: '/v1/connections/jwt/status', userArn: ADMIN }), lambdaContext());
    expect(res.statusCode).toBe(200);
    const latest = new Date(clock.now() + 3 * 366 * 86_400_000).toISOString();
    for (const date of res.body.match(/\d{4,}-\d\d-\d\dT[^"]*/g) ?? []) expect(date <= latest).toBe(true);
    expect(res.body).not.toContain('275760');
  });
});
