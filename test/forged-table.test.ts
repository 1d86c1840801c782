import { createCipheriv, randomBytes } from 'node:crypto';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterEach, describe, expect, it } from 'vitest';
import { makeHandler } from '../functions/http';
import { createLogger, createMetrics } from '../lib/adapters/powertools';
import { ManualClock } from '../lib/clock';
import { DATA_KEY_MAX_AGE_MS, DecryptionError, ENVELOPE_MAX_AGE_MS, LocalKeyRing, TokenCipher } from '../lib/crypto';
import { LEASE_DEFAULTS } from '../lib/lease';
import type { KeyRing } from '../lib/ports';
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

describe('a leaked data key and a rewritten birth time', () => {
  /** A key ring that also hands out each new data key to a test that plays the one who leaked it. */
  function leakingKeyRing() {
    const ring = new LocalKeyRing();
    const leaked: Buffer[] = [];
    const keyRing: KeyRing = {
      generateDataKey: async (context) => {
        const key = await ring.generateDataKey(context);
        leaked.push(Buffer.from(key.plaintext));
        return key;
      },
      decryptDataKey: (encrypted, context) => ring.decryptDataKey(encrypted, context),
    };
    return { keyRing, leaked };
  }

  /** An envelope like `genuine` (same wrapped data key) that claims `bornAt`, sealed with the leaked key. */
  function plant(genuine: Uint8Array, dataKey: Buffer, bornAt: number, plaintext: string, aad: string): Uint8Array {
    const buf = Buffer.from(genuine);
    const header = Buffer.from(buf.subarray(0, 9));
    header.writeUIntBE(bornAt, 1, 6);
    const wrapped = buf.subarray(9, 9 + buf.readUInt16BE(7));
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', dataKey, iv).setAAD(Buffer.concat([header, Buffer.from(aad)]));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return Buffer.concat([header, wrapped, iv, cipher.getAuthTag(), body]);
  }

  it('an envelope that re-dates an old data key is refused by a fresh instance, and new tokens get a new key', async () => {
    const clock = new ManualClock(T0);
    const { keyRing, leaked } = leakingKeyRing();
    const genuine = await new TokenCipher(keyRing, clock).encrypt('genuine', 'token#jwt|a');
    expect(leaked).toHaveLength(1);
    // Two days on, the key is past its age; the planter claims it was born just now.
    clock.advance(2 * DATA_KEY_MAX_AGE_MS);
    const planted = plant(genuine, leaked[0]!, clock.now(), 'planted', 'token#jwt|b');
    const fresh = new TokenCipher(keyRing, clock);
    await expect(fresh.decrypt(planted, 'token#jwt|b')).rejects.toBeInstanceOf(DecryptionError);
    // What the fresh instance seals next is under a data key nobody leaked.
    const next = Buffer.from(await fresh.encrypt('next', 'token#jwt|c'));
    expect(leaked).toHaveLength(2);
    expect(next.subarray(9, 9 + next.readUInt16BE(7)).equals(Buffer.from(genuine).subarray(9, 9 + Buffer.from(genuine).readUInt16BE(7)))).toBe(false);
  });

  it('an envelope under a leaked key is served no longer than the key may be read, whatever it claims', async () => {
    const clock = new ManualClock(T0);
    const { keyRing, leaked } = leakingKeyRing();
    const genuine = await new TokenCipher(keyRing, clock).encrypt('genuine', 'token#jwt|a');
    const bornAt = Buffer.from(genuine).readUIntBE(1, 6);
    clock.advance(ENVELOPE_MAX_AGE_MS);
    // The birth time stays the true one (anything else fails at KMS); the planted envelope is still refused.
    const planted = plant(genuine, leaked[0]!, bornAt, 'planted', 'token#jwt|b');
    await expect(new TokenCipher(keyRing, clock).decrypt(planted, 'token#jwt|b')).rejects.toBeInstanceOf(DecryptionError);
  });
});
