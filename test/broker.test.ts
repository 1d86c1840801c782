import { GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { createLogger, createMetrics } from '../lib/adapters/powertools';
import { makeHandler } from '../functions/http';
import { afterEach, describe, expect, it } from 'vitest';
import { fingerprint } from '../lib/fingerprint';
import { ManualClock, systemClock } from '../lib/clock';
import type { ConnectionInput } from '../lib/config';
import { BrokerError, StoreUnavailableError } from '../lib/errors';
import { expectCode, fp } from './support/expect';
import { lambdaContext, restEvent } from './support/events';
import type { ConnectionCatalog, TokenStore } from '../lib/ports';
import type { SandboxVendor, VendorKind } from '../lib/local/sandbox-vendor';
import { vendorConnectionInput, secretFor } from './support/connections';
import { RecordingMetrics, startWorld, type World } from './support/harness';
import { registerSecret } from './support/secrets-registry';

registerSecret('other-secret', 'rotated-secret-value', 'typo-secret-value', 'y-other', 'static-personal-token-2');

const CALLER = 'arn:aws:iam::111111111111:role/caller';
const ADMIN = 'arn:aws:iam::111111111111:role/admin';
const T0 = '2026-11-23T10:00:00.000Z';

let world: World | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

/** Another instance's claim on a lease, as a test plants it. */
function holding(holder: string, now: number, forMs: number) {
  return { fence: `${holder}-fence`, holder, now, until: now + forMs };
}

function conn(vendor: SandboxVendor, kind: VendorKind, extra: Partial<ConnectionInput> = {}) {
  return vendorConnectionInput(vendor, kind, { id: kind, ...extra });
}

async function worldOf(
  clock: ManualClock | typeof systemClock,
  extra: Partial<ConnectionInput> = {},
  lifetime = 300,
): Promise<World> {
  world = await startWorld(
    clock,
    (v) => [
      conn(v, 'jwt', extra),
      conn(v, 'digitaleo', extra),
      { id: 'pat', dialect: 'digishare-pat', secretId: 'broker/pat', callers: [CALLER] },
    ],
    { lifetime },
    (v) => ({
      'broker/jwt-test': secretFor(v, 'jwt'),
      'broker/digitaleo-test': secretFor(v, 'digitaleo'),
      'broker/pat': { token: 'static-personal-token' },
    }),
  );
  return world;
}


describe('getToken: where a token comes from', () => {
  it('exchanges on a cold connection, then serves from memory, and another instance from the table', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const a = w.broker();
    const first = await a.getToken(CALLER, 'jwt');
    expect(first.source).toBe('vendor');
    expect((await a.getToken(CALLER, 'jwt')).source).toBe('memory');
    const b = w.broker();
    const fromTable = await b.getToken(CALLER, 'jwt');
    expect(fromTable).toMatchObject({ source: 'table', fingerprint: first.fingerprint });
    expect(w.vendor.exchanges('jwt')).toBe(1);
  });

  it('looks at the table again once its in-process copy is 30 s old', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const a = w.broker();
    await a.getToken(CALLER, 'jwt');
    clock.advance(29_000);
    expect((await a.getToken(CALLER, 'jwt')).source).toBe('memory');
    clock.advance(2_000);
    expect((await a.getToken(CALLER, 'jwt')).source).toBe('table');
  });

  it('stores the token only encrypted, with its expiry, TTL, secret version, fingerprint and mint time', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const t = await w.broker().getToken(CALLER, 'digitaleo');
    const item = (await w.table.doc.send(new GetCommand({ TableName: w.table.name, Key: { pk: 'token#digitaleo' } }))).Item;
    expect(item).toMatchObject({
      expiresAt: clock.now() + 300_000,
      ttl: Math.ceil((clock.now() + 300_000) / 1000) + 3600,
      mintedAt: clock.now(),
      lifetime: 300,
      fingerprint: t.fingerprint,
      tokenType: 'Bearer',
    });
    expect(String(item?.secretVersion)).toMatch(/^sha256:/);
    const raw = Buffer.from(item?.ct as Uint8Array).toString('latin1');
    // Whether it holds the token, not what it holds: a failure prints no token.
    expect(raw.includes(t.accessToken.slice(0, 40))).toBe(false);
    expect(JSON.stringify(item).includes(t.accessToken.slice(0, 40))).toBe(false);
  });

  it('hands out what is left less the margin, capped by maxTtl', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, { maxTtl: 120 }, 3600);
    // 100 s left is inside the 120 s refresh window: a draw of 1 would refresh ahead (about 1 in 28 with
    // Math.random); a draw of 0 never does, so the stored token is what is handed out.
    const b = w.broker({ random: () => 0 });
    const t = await b.getToken(CALLER, 'jwt');
    expect(t.expiresIn).toBe(120);
    expect(t.expiresAt).toBe(clock.now() + 120_000);
    clock.advance(3600_000 - 100_000); // 100 s left
    const late = await b.getToken(CALLER, 'jwt', 60);
    expect(late.expiresIn).toBe(90);
    expect(late.source).toBe('table');
  });

  it('mints again when what is left does not cover min_ttl plus the margin', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, { refreshBefore: 0 });
    const b = w.broker();
    const first = await b.getToken(CALLER, 'jwt', 60);
    clock.advance(225_000); // 75 s left: enough for 60 + 10
    expect((await b.getToken(CALLER, 'jwt', 60)).fingerprint).toBe(first.fingerprint);
    clock.advance(10_000); // 65 s left: not enough
    const second = await b.getToken(CALLER, 'jwt', 60);
    expect(second.source).toBe('vendor');
    expect(second.fingerprint).not.toBe(first.fingerprint);
    expect(w.vendor.exchanges('jwt')).toBe(2);
  });

  it('never serves an expired token the table still holds (DynamoDB deletes lazily)', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const first = await w.broker().getToken(CALLER, 'jwt', 0);
    clock.advance(301_000);
    const next = await w.broker().getToken(CALLER, 'jwt', 0);
    expect(next.fingerprint).not.toBe(first.fingerprint);
    expect(next.source).toBe('vendor');
  });

  it('answers invalid_request, without minting again, when min_ttl exceeds what the vendor issues', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const b = w.broker();
    await b.getToken(CALLER, 'jwt', 60);
    const err = await expectCode(b.getToken(CALLER, 'jwt', 600), 'invalid_request');
    expect(err.message).toContain('tokens live 300 s');
    expect(w.vendor.exchanges('jwt')).toBe(1);
    await expectCode(b.getToken(CALLER, 'jwt', 3601), 'invalid_request');
    await expectCode(b.getToken(CALLER, 'jwt', 1.5), 'invalid_request');
  });

  it('hands out static credentials from the secret without calling a vendor', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const t = await w.broker().getToken(CALLER, 'pat');
    expect(t).toMatchObject({ fingerprint: fp('static-personal-token'), tokenType: 'Bearer', source: 'secret', expiresIn: 900 });
    expect(w.vendor.received()).toBe(0);
  });

  it('answers the same forbidden for an unknown connection and one the caller may not use', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const b = w.broker();
    const unknown = await expectCode(b.getToken(CALLER, 'nope'), 'forbidden');
    const notYours = await expectCode(b.getToken('arn:aws:iam::111111111111:role/other', 'jwt'), 'forbidden');
    expect(unknown.message).toBe(notYours.message);
    expect(w.vendor.received()).toBe(0);
  });
});

describe('single-flight', () => {
  it('20 instances and 500 concurrent calls on a cold connection cause exactly one exchange', async () => {
    const w = await worldOf(systemClock, {}, 3600);
    const brokers = Array.from({ length: 20 }, () => w.broker());
    const results = await Promise.all(
      Array.from({ length: 500 }, (_, i) => brokers[i % 20]!.getToken(CALLER, 'digitaleo')),
    );
    expect(w.vendor.exchanges('digitaleo')).toBe(1);
    expect(w.vendor.received('digitaleo')).toBe(1);
    expect(new Set(results.map((r) => r.fingerprint)).size).toBe(1);
    const sources = new Set(results.map((r) => r.source));
    expect(sources.has('vendor')).toBe(true);
    expect([...sources].every((s) => ['vendor', 'table', 'memory'].includes(s))).toBe(true);
  });

  it('takes the lease over when its holder died mid-exchange, once the lease has expired', async () => {
    const clock = new ManualClock(T0, true);
    const w = await worldOf(clock);
    const held = await w.table.store.acquireLease('jwt', holding('dead-instance', clock.now(), 15_000));
    expect(held.acquired).toBe(true);
    const metrics = new RecordingMetrics();
    const start = clock.now();
    const t = await w.broker({ metrics }).getToken(CALLER, 'jwt');
    expect(t.source).toBe('vendor');
    expect(clock.now() - start).toBeGreaterThanOrEqual(15_000);
    expect(w.vendor.exchanges('jwt')).toBe(1);
    expect(metrics.get('LeaseWaits')).toBe(1);
  });

  it('serves the previous token while another instance holds the lease, if it still covers min_ttl', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, { refreshBefore: 0 });
    const first = await w.broker().getToken(CALLER, 'jwt', 0);
    await w.table.store.acquireLease('jwt', holding('busy-instance', clock.now(), 15_000));
    clock.advance(200_000);
    const t = await w.broker().getToken(CALLER, 'jwt', 60);
    expect(t).toMatchObject({ source: 'table', fingerprint: first.fingerprint });
    expect(w.vendor.exchanges('jwt')).toBe(1);
  });

  it('gives up with vendor_timeout when the lease holder neither finishes nor lets its lease lapse in time', async () => {
    const clock = new ManualClock(T0, true);
    const w = await worldOf(clock);
    // A lease as long as a broker writes (a longer one is no lease: test/forged-table.test.ts), a wait shorter.
    await w.table.store.acquireLease('jwt', holding('slow-instance', clock.now(), 15_000));
    await expectCode(w.broker({ options: { maxWaitMs: 5_000 } }).getToken(CALLER, 'jwt'), 'vendor_timeout');
    expect(w.vendor.received()).toBe(0);
  });
});

describe('the fenced lease', () => {
  /** Waits (in real time, bounded) for something another task does. */
  async function until(done: () => boolean): Promise<void> {
    for (let i = 0; i < 500 && !done(); i++) await new Promise((r) => setTimeout(r, 5));
    expect(done()).toBe(true);
  }

  function answerLater(w: World) {
    let answer: ((status: number, body: unknown) => void) | undefined;
    w.vendor.override((_req, res) => {
      answer = (status, body) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
    }, 'digitaleo');
    return (status: number, body: unknown) => answer?.(status, body);
  }

  it('a waiter whose process stalled past its wait deadline gives up instead of starting an exchange', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    await w.table.store.acquireLease('jwt', holding('busy-instance', clock.now(), 15_000));
    const metrics = new RecordingMetrics();
    const answer = w.broker({ metrics }).getToken(CALLER, 'jwt').then(
      () => 'token',
      (err: unknown) => (err instanceof BrokerError ? err.code : 'internal_error'),
    );
    await until(() => metrics.get('LeaseWaits') === 1);
    // The event loop (or the whole process) stalls: the waiter's backoff ends 40 s later, past its 20 s wait and
    // past the other lease. Minting now would keep its caller waiting on a vendor long after its deadline.
    clock.advance(40_000);
    expect(await answer).toBe('vendor_timeout');
    expect(w.vendor.received()).toBe(0);
  });

  it('a holder whose lease lapsed mid-exchange (a frozen Lambda) stores nothing when it resumes', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const answer = answerLater(w);
    const resumed = w.broker();
    const frozen = resumed.getToken(CALLER, 'digitaleo');
    await until(() => w.vendor.received('digitaleo') === 1);
    clock.advance(16_000); // its lease lapses while it is frozen
    const fresh = await w.broker().getToken(CALLER, 'digitaleo');
    expect(fresh.source).toBe('vendor');
    answer(200, { access_token: 'late-token-from-a-frozen-instance', token_type: 'Bearer', expires_in: 300 });
    expect((await frozen).fingerprint).toBe(fp('late-token-from-a-frozen-instance'));
    const record = await w.table.store.read('digitaleo');
    expect(record.token?.fingerprint).toBe(fresh.fingerprint);
    expect(record.lease).toBeUndefined();
    expect((await w.broker().getToken(CALLER, 'digitaleo')).fingerprint).toBe(fresh.fingerprint);
    // The resumed instance does not keep its late token for its next callers: the table's is the fleet's (a
    // rotation's, say, which an invalidation of the late one would never reach).
    expect((await resumed.getToken(CALLER, 'digitaleo')).fingerprint).toBe(fresh.fingerprint);
  });

  it('a holder whose lease lapsed records no cooldown for the fleet when its late exchange fails', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, { refreshBefore: 0 });
    const answer = answerLater(w);
    const frozen = w.broker({ options: { exchange: { retries: 0 } } }).getToken(CALLER, 'digitaleo');
    await until(() => w.vendor.received('digitaleo') === 1);
    clock.advance(16_000);
    const fresh = await w.broker().getToken(CALLER, 'digitaleo', 0);
    answer(503, { error: 'temporarily_unavailable' });
    await expectCode(frozen, 'vendor_unavailable');
    expect((await w.table.store.read('digitaleo')).failure).toBeUndefined();
    // Another instance needing a new token mints one: no cooldown stands in its way.
    clock.advance(240_000);
    const next = await w.broker().getToken(CALLER, 'digitaleo', 120);
    expect(next).toMatchObject({ source: 'vendor' });
    expect(next.fingerprint).not.toBe(fresh.fingerprint);
  });

  it("one instance's background refresh and foreground mint share one exchange (the lease is not re-entrant)", async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, { refreshBefore: 120 });
    const b = w.broker({ random: () => 0.999, options: { refreshAhead: 'background' } });
    await b.getToken(CALLER, 'jwt', 0);
    clock.advance(200_000); // 100 s left: inside the window
    await b.getToken(CALLER, 'jwt', 0); // starts the refresh
    const forced = await b.getToken(CALLER, 'jwt', 150); // needs more than what is left
    await b.drain();
    expect(forced.source).toBe('vendor');
    expect(w.vendor.exchanges('jwt')).toBe(2);
    expect((await w.table.store.read('jwt')).token?.fingerprint).toBe(forced.fingerprint);
  });
});

describe('forced mints', () => {
  it('50 requests with min_ttl=3590 on 3600 s tokens cause one forced exchange per 10 s, the rest 429 with Retry-After', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, { maxTtl: 3600 }, 3600);
    const brokers = [w.broker(), w.broker(), w.broker()];
    await brokers[0]!.getToken(CALLER, 'digitaleo');
    const outcomes: (string | number)[] = [];
    for (let i = 0; i < 50; i++) {
      clock.advance(200);
      try {
        outcomes.push((await brokers[i % 3]!.getToken(CALLER, 'digitaleo', 3590)).source);
      } catch (err) {
        const e = err as BrokerError;
        expect(e.code).toBe('rate_limited');
        expect(e.retryAfter).toBeGreaterThanOrEqual(1);
        expect(e.retryAfter).toBeLessThanOrEqual(10);
        outcomes.push(e.status);
      }
    }
    // 10 s of requests: the first token, then one forced mint once it is 10 s old.
    expect(w.vendor.exchanges('digitaleo')).toBe(2);
    expect(outcomes.filter((o) => o === 429).length).toBe(49);
    expect(outcomes.filter((o) => o === 'vendor')).toHaveLength(1);
  });

  it('serves the token minted moments ago when it satisfies the request', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, { refreshBefore: 0 }, 300);
    const a = w.broker();
    await a.getToken(CALLER, 'jwt', 0);
    clock.advance(250_000); // 50 s left
    const forced = await w.broker().getToken(CALLER, 'jwt', 200);
    expect(forced.source).toBe('vendor');
    clock.advance(1_000);
    const next = await w.broker().getToken(CALLER, 'jwt', 200);
    expect(next).toMatchObject({ source: 'table', fingerprint: forced.fingerprint });
    await expectCode(w.broker().getToken(CALLER, 'jwt', 290), 'rate_limited');
    expect(w.vendor.exchanges('jwt')).toBe(2);
  });

  it("an admin's refresh is not held to the forced-mint bound, only to one a second", async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, {}, 3600);
    const admin = 'arn:aws:iam::111111111111:role/admin';
    const b = w.broker({ config: { ...w.config, admins: [admin] } });
    await b.getToken(CALLER, 'jwt');
    for (let i = 0; i < 3; i++) {
      clock.advance(1_000);
      await b.refresh(admin, 'jwt');
    }
    expect(w.vendor.exchanges('jwt')).toBe(4);
  });
});

describe('cooldown', () => {
  it('a failing vendor sees one exchange per cooldown, whatever the load, and the callers its error with Retry-After', async () => {
    // Waiting instances sleep on this clock, so it moves forward by itself while they wait.
    const clock = new ManualClock(T0, true);
    const w = await worldOf(clock);
    w.vendor.fail('jwt', (_req, res) => {
      res.writeHead(503, { 'retry-after': '1' });
      res.end();
    });
    const brokers = Array.from({ length: 10 }, () => w.broker({ options: { exchange: { retries: 0 } } }));
    const outcomes = await Promise.allSettled(
      Array.from({ length: 200 }, (_, i) => brokers[i % 10]!.getToken(CALLER, 'jwt')),
    );
    expect(outcomes.every((o) => o.status === 'rejected')).toBe(true);
    const errors = outcomes.map((o) => (o as PromiseRejectedResult).reason as BrokerError);
    expect(new Set(errors.map((e) => e.code))).toEqual(new Set(['vendor_unavailable']));
    expect(errors.every((e) => e.retryAfter !== undefined && e.retryAfter >= 1 && e.retryAfter <= 30)).toBe(true);
    expect(w.vendor.received('jwt')).toBe(1);

    const again = await expectCode(w.broker().getToken(CALLER, 'jwt'), 'vendor_unavailable');
    expect(w.vendor.received('jwt')).toBe(1);

    clock.advance((again.retryAfter ?? 30) * 1000);
    w.vendor.heal('jwt');
    expect((await brokers[3]!.getToken(CALLER, 'jwt')).source).toBe('vendor');
    expect(w.vendor.received('jwt')).toBe(2);
  });

  it("cools down for the vendor's Retry-After when it is longer than 30 s", async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    w.vendor.fail('jwt', (_req, res) => {
      res.writeHead(429, { 'retry-after': '90' });
      res.end();
    });
    const b = w.broker({ options: { exchange: { retries: 0 } } });
    const err = await expectCode(b.getToken(CALLER, 'jwt'), 'vendor_unavailable');
    expect(err.retryAfter).toBe(90);
    clock.advance(60_000);
    const later = await expectCode(w.broker().getToken(CALLER, 'jwt'), 'vendor_unavailable');
    expect(later.retryAfter).toBe(30);
    expect(w.vendor.received('jwt')).toBe(1);
  });

  it('keeps serving a still-valid token during a cooldown', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, { refreshBefore: 0 });
    const b = w.broker({ options: { exchange: { retries: 0 } } });
    const good = await b.getToken(CALLER, 'jwt', 0);
    w.vendor.fail('jwt', (_req, res) => {
      res.writeHead(500);
      res.end();
    });
    clock.advance(230_000); // 70 s left
    await expectCode(b.getToken(CALLER, 'jwt', 120), 'vendor_unavailable');
    const served = await b.getToken(CALLER, 'jwt', 30);
    expect(served.fingerprint).toBe(good.fingerprint);
    expect(w.vendor.received('jwt')).toBe(2);
  });

  it('shares vendor_rejected_credentials across instances for the cooldown', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    w.vendor.setAccount('digitaleo', { client_id: 'other', client_secret: 'other-secret' });
    await expectCode(w.broker().getToken(CALLER, 'digitaleo'), 'vendor_rejected_credentials');
    const err = await expectCode(w.broker().getToken(CALLER, 'digitaleo'), 'vendor_rejected_credentials');
    expect(err.retryAfter).toBe(30);
    expect(w.vendor.received('digitaleo')).toBe(1);
  });
});

describe('secrets', () => {
  it('re-reads a refused secret past the cache and mints with the new version', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, { refreshBefore: 0 });
    const b = w.broker();
    await b.getToken(CALLER, 'digitaleo', 0);
    const before = (await w.table.store.read('digitaleo')).token?.secretVersion;
    // The central rotation changes the secret and the vendor at once; this instance's cache still has the old one.
    const rotated = { client_id: 'demo-digitaleo-client', client_secret: 'rotated-secret-value' };
    w.vendor.setAccount('digitaleo', rotated);
    w.writeSecrets({ 'broker/digitaleo-test': rotated, 'broker/jwt-test': secretFor(w.vendor, 'jwt') });
    clock.advance(250_000); // 50 s left: a new token is due, while the cached secret (kept up to an hour) is still the old one
    const t = await b.getToken(CALLER, 'digitaleo', 60);
    expect(t.source).toBe('vendor');
    const after = (await w.table.store.read('digitaleo')).token?.secretVersion;
    expect(after).not.toBe(before);
    expect(w.vendor.received('digitaleo')).toBe(3); // ok, refused (old secret), ok (new secret)
  });

  it("mints with a rotated secret at once when the table's token names another version than this instance's copy", async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, { refreshBefore: 0 });
    const a = w.broker();
    await a.getToken(CALLER, 'digitaleo', 0);
    // The rotation function (another instance) reads the new secret and re-mints; this instance still holds the old copy.
    const rotated = { client_id: 'demo-digitaleo-client', client_secret: 'rotated-secret-value' };
    w.vendor.setAccount('digitaleo', rotated);
    w.writeSecrets({ 'broker/digitaleo-test': rotated, 'broker/jwt-test': secretFor(w.vendor, 'jwt'), 'broker/pat': { token: 'static-personal-token' } });
    clock.advance(40_000);
    const rotation = w.broker();
    await rotation.rotate(rotation.config.byId.get('digitaleo')!);
    const newVersion = (await w.table.store.read('digitaleo')).token?.secretVersion;
    clock.advance(240_000); // the rotated token is due: this instance mints the next one
    expect((await a.getToken(CALLER, 'digitaleo', 60)).source).toBe('vendor');
    expect((await w.table.store.read('digitaleo')).token?.secretVersion).toBe(newVersion);
    // ok (old secret), ok (rotation), ok (this mint): not one refusal of the old copy on the way.
    expect(w.vendor.received('digitaleo')).toBe(3);
  });

  it('serves a changed static credential within a minute', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const a = w.broker();
    expect((await a.getToken(CALLER, 'pat')).fingerprint).toBe(fingerprint('static-personal-token'));
    w.writeSecrets({ 'broker/digitaleo-test': secretFor(w.vendor, 'digitaleo'), 'broker/jwt-test': secretFor(w.vendor, 'jwt'), 'broker/pat': { token: 'static-personal-token-2' } });
    clock.advance(59_000);
    expect((await a.getToken(CALLER, 'pat')).fingerprint).toBe(fingerprint('static-personal-token'));
    clock.advance(1_000);
    expect((await a.getToken(CALLER, 'pat')).fingerprint).toBe(fingerprint('static-personal-token-2'));
  });

  it('does not retry a refused secret that has not changed', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    w.vendor.setAccount('jwt', { client_id: 'x', client_secret: 'y-other' });
    await expectCode(w.broker().getToken(CALLER, 'jwt'), 'vendor_rejected_credentials');
    expect(w.vendor.received('jwt')).toBe(1);
  });

  it('names the connection and the missing key of a malformed secret, never its value', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    w.writeSecrets({ 'broker/jwt-test': { client_id: 'id', clientSecret: 'typo-secret-value' } });
    const err = await expectCode(w.broker().getToken(CALLER, 'jwt'), 'misconfigured');
    expect(err.message).toContain('jwt: the secret broker/jwt-test lacks client_secret');
    expect(err.message).not.toContain('typo-secret-value');
    expect(w.vendor.received()).toBe(0);
  });
});

describe('encryption at rest', () => {
  it('refuses a ciphertext copied from another item, and mints anew instead of serving it', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const a = await w.broker().getToken(CALLER, 'jwt');
    const d = await w.broker().getToken(CALLER, 'digitaleo');
    const other = (await w.table.doc.send(new GetCommand({ TableName: w.table.name, Key: { pk: 'token#digitaleo' } }))).Item as { ct?: Uint8Array } | undefined;
    await w.table.doc.send(
      new UpdateCommand({
        TableName: w.table.name,
        Key: { pk: 'token#jwt' },
        UpdateExpression: 'SET ct = :ct',
        ExpressionAttributeValues: { ':ct': other?.ct },
      }),
    );
    const metrics = new RecordingMetrics();
    const t = await w.broker({ metrics }).getToken(CALLER, 'jwt');
    expect(t.fingerprint).not.toBe(d.fingerprint);
    expect(t.fingerprint).not.toBe(a.fingerprint);
    expect(t.source).toBe('vendor');
    expect(metrics.get('DecryptionFailures')).toBeGreaterThanOrEqual(1);
  });

  it('refuses metadata edited in the table (a longer expiry)', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const a = await w.broker().getToken(CALLER, 'jwt');
    await w.table.doc.send(
      new UpdateCommand({
        TableName: w.table.name,
        Key: { pk: 'token#jwt' },
        UpdateExpression: 'SET expiresAt = :e',
        ExpressionAttributeValues: { ':e': clock.now() + 86_400_000 },
      }),
    );
    const t = await w.broker().getToken(CALLER, 'jwt');
    expect(t.fingerprint).not.toBe(a.fingerprint);
    expect(t.source).toBe('vendor');
  });
});

describe('refresh ahead', () => {
  it('in a request (Lambda): the drawing request mints before it answers; a concurrent caller is served the current token', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, { refreshBefore: 120 });
    const metrics = new RecordingMetrics();
    const b = w.broker({ metrics, random: () => 0.999 });
    const first = await b.getToken(CALLER, 'jwt', 0);
    clock.advance(100_000); // 200 s left: outside the window
    await b.getToken(CALLER, 'jwt', 0);
    expect(w.vendor.exchanges('jwt')).toBe(1);
    clock.advance(100_000); // 100 s left: inside
    const both = await Promise.all([b.getToken(CALLER, 'jwt', 0), b.getToken(CALLER, 'jwt', 0)]);
    const drawing = both.find((t) => t.source === 'vendor');
    const concurrent = both.find((t) => t !== drawing);
    expect(drawing?.fingerprint).not.toBe(first.fingerprint);
    expect(concurrent?.fingerprint).toBe(first.fingerprint);
    expect(b.pendingWork()).toBe(0);
    expect(w.vendor.exchanges('jwt')).toBe(2);
    expect(metrics.get('RefreshAhead')).toBe(1);
  });

  it('in a request, a failed refresh still answers the current token', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, { refreshBefore: 120 });
    const b = w.broker({ random: () => 0.999, options: { exchange: { retries: 0 } } });
    const first = await b.getToken(CALLER, 'jwt', 0);
    w.vendor.fail('jwt', (_req, res) => {
      res.writeHead(503);
      res.end();
    });
    clock.advance(200_000);
    expect((await b.getToken(CALLER, 'jwt', 0)).fingerprint).toBe(first.fingerprint);
    expect(w.vendor.received('jwt')).toBe(2);
  });

  it('leaves a pre-warmed connection to the pre-warm run in Lambda, and refreshes it in the background locally', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, { refreshBefore: 120, prewarm: true });
    const lambda = w.broker({ random: () => 0.999 });
    await lambda.getToken(CALLER, 'jwt', 0);
    clock.advance(200_000);
    await lambda.getToken(CALLER, 'jwt', 0);
    expect(w.vendor.exchanges('jwt')).toBe(1);
    const local = w.broker({ random: () => 0.999, options: { refreshAhead: 'background' } });
    const during = await local.getToken(CALLER, 'jwt', 0);
    expect(during.source).toBe('table');
    expect(local.pendingWork()).toBeGreaterThan(0);
    await local.drain();
    expect(w.vendor.exchanges('jwt')).toBe(2);
    expect((await local.getToken(CALLER, 'jwt', 0)).fingerprint).not.toBe(during.fingerprint);
  });

  it('in the background (local server): the caller gets the valid token while the refresh runs', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, { refreshBefore: 120 });
    const b = w.broker({ random: () => 0.999, options: { refreshAhead: 'background' } });
    const first = await b.getToken(CALLER, 'jwt', 0);
    clock.advance(200_000); // 100 s left: inside
    const during = await b.getToken(CALLER, 'jwt', 0);
    expect(during.fingerprint).toBe(first.fingerprint);
    await b.drain();
    expect(w.vendor.exchanges('jwt')).toBe(2);
    expect((await b.getToken(CALLER, 'jwt', 0)).fingerprint).not.toBe(first.fingerprint);
  });

  it('spreads refreshes: early in the window a read rarely refreshes', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, { refreshBefore: 120 });
    const b = w.broker({ random: () => 0.5 });
    await b.getToken(CALLER, 'jwt', 0);
    clock.advance(190_000); // 110 s left: -ln(0.5) * 30 s = 20.8 s < 110 s, no refresh
    await b.getToken(CALLER, 'jwt', 0);
    await b.drain();
    expect(w.vendor.exchanges('jwt')).toBe(1);
    clock.advance(95_000); // 15 s left: now it refreshes
    await b.getToken(CALLER, 'jwt', 0);
    await b.drain();
    expect(w.vendor.exchanges('jwt')).toBe(2);
  });

  it('another instance adopts a refreshed token from the table instead of exchanging', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, { refreshBefore: 120 });
    const a = w.broker({ random: () => 0.999 });
    const b = w.broker({ random: () => 0.999 });
    await a.getToken(CALLER, 'jwt', 0);
    await b.getToken(CALLER, 'jwt', 0);
    clock.advance(200_000);
    await a.getToken(CALLER, 'jwt', 0);
    await a.drain();
    await b.getToken(CALLER, 'jwt', 0);
    await b.drain();
    expect(w.vendor.exchanges('jwt')).toBe(2);
  });
});

describe('degraded mode', () => {
  it('serves a valid token from memory when the table is gone; without one, 503 service_unavailable and no exchange', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const metrics = new RecordingMetrics();
    const a = w.broker({ metrics });
    const first = await a.getToken(CALLER, 'jwt');
    await w.db.close();
    clock.advance(31_000); // the in-process copy is due for a look at the table
    const fromMemory = await a.getToken(CALLER, 'jwt');
    expect(fromMemory).toMatchObject({ source: 'memory', fingerprint: first.fingerprint });
    expect(metrics.get('StoreDegraded')).toBe(1);

    const b = w.broker({ metrics });
    const outcomes = await Promise.allSettled(Array.from({ length: 20 }, () => b.getToken(CALLER, 'jwt')));
    for (const o of outcomes) {
      const err = (o as PromiseRejectedResult).reason as BrokerError;
      expect(err.code).toBe('service_unavailable');
      expect(err.retryAfter).toBe(5);
    }
    expect(w.vendor.exchanges('jwt')).toBe(1);
  });
});

/** The table in a brownout: every call fails as unavailable, and is counted. */
function brownout(store: TokenStore) {
  const calls: string[] = [];
  const fail = (name: string) => () => {
    calls.push(name);
    return Promise.reject(new StoreUnavailableError('the token table did not answer in time'));
  };
  const failing: TokenStore = {
    read: fail('read'),
    acquireLease: fail('acquireLease'),
    putToken: fail('putToken'),
    recordFailure: fail('recordFailure'),
    releaseLease: fail('releaseLease'),
    deleteToken: fail('deleteToken'),
  };
  let down = false;
  const wrapped = new Proxy(store, {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- failing's methods are arrow functions; the store's are bound here
    get: (target, prop: keyof TokenStore) => (down ? failing[prop] : target[prop].bind(target)),
  });
  return { store: wrapped, calls, fail: () => (down = true) };
}

describe('degraded mode: one failing table call per request', () => {
  it('a caller that joined a look at the table which failed goes degraded without a table call of its own', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const table = brownout(w.table.store);
    const a = w.broker({ store: table.store });
    const first = await a.getToken(CALLER, 'jwt');
    table.fail();
    clock.advance(31_000); // 269 s left; the in-process copy is due for a look at the table
    const [short, long] = await Promise.allSettled([a.getToken(CALLER, 'jwt', 60), a.getToken(CALLER, 'jwt', 265)]);
    expect(short).toMatchObject({ status: 'fulfilled', value: { source: 'memory', fingerprint: first.fingerprint } });
    expect(((long as PromiseRejectedResult).reason as BrokerError).code).toBe('service_unavailable');
    expect(table.calls).toEqual(['read']);
    expect(w.vendor.exchanges('jwt')).toBe(1);
  });
});

describe('nothing after the answer (Lambda)', () => {
  /** A table that counts the calls made to it. */
  function counting(store: TokenStore): { store: TokenStore; calls: () => number } {
    let n = 0;
    const proxy = new Proxy(store, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          n++;
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    return { store: proxy, calls: () => n };
  }

  it('when the handler resolves, the broker has nothing pending, and neither the table nor the vendor hears from it again', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, { refreshBefore: 120 });
    const run = async (refreshAhead: 'in-request' | 'background') => {
      const table = counting(w.table.store);
      const broker = w.broker({ store: table.store, random: () => 0.999, options: { refreshAhead, memoryTtlMs: 0 } });
      const handle = makeHandler({ broker, logger: createLogger(), metrics: createMetrics() });
      const event = restEvent({ method: 'GET', path: '/v1/connections/jwt/token', userArn: CALLER, query: { min_ttl: '0' } });
      const res = await handle(event, lambdaContext());
      expect(res.statusCode).toBe(200);
      const pending = broker.pendingWork();
      const seen = { calls: table.calls(), vendor: w.vendor.received('jwt') };
      // Whatever was left behind would run now (in Lambda: frozen, then resumed at some later invocation).
      for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 5));
      await broker.drain();
      return { pending, quiet: table.calls() === seen.calls && w.vendor.received('jwt') === seen.vendor };
    };
    await w.broker().getToken(CALLER, 'jwt', 0);
    clock.advance(200_000); // inside the window: the request draws a refresh
    expect(await run('in-request')).toEqual({ pending: 0, quiet: true });
    expect(w.vendor.exchanges('jwt')).toBe(2);
    clock.advance(200_000);
    // The local server's mode leaves work behind: what this test would catch in Lambda.
    expect(await run('background')).toMatchObject({ quiet: false });
  });
});

describe('nothing trusted from the table that was not sealed', () => {
  it('an older, authentic item put back is not served by an instance that has seen a newer one', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, { refreshBefore: 0 });
    const metrics = new RecordingMetrics();
    const a = w.broker({ metrics });
    const first = await a.getToken(CALLER, 'jwt', 0);
    const old = (await w.table.doc.send(new GetCommand({ TableName: w.table.name, Key: { pk: 'token#jwt' } }))).Item;
    clock.advance(11_000);
    expect(await a.invalidate(CALLER, 'jwt', first.accessToken)).toBe(true);
    const second = await a.getToken(CALLER, 'jwt', 0);
    expect(second.fingerprint).not.toBe(first.fingerprint);
    await w.table.doc.send(new PutCommand({ TableName: w.table.name, Item: old }));
    clock.advance(31_000); // past the in-process copy: it reads the table
    const served = await a.getToken(CALLER, 'jwt', 0);
    expect(served.fingerprint).not.toBe(first.fingerprint);
    expect(metrics.get('StaleTokensRefused')).toBeGreaterThanOrEqual(1);
  });

  it('a forged failure cannot impose a long cooldown, nor its own words', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const forge = (connection: string, coolForMs: number, code: string) =>
      w.table.doc.send(
        new PutCommand({
          TableName: w.table.name,
          Item: {
            pk: `token#${connection}`,
            coolUntil: clock.now() + coolForMs,
            failureCode: code,
            failureStatus: 418,
            failureError: 'call +1-555-0100 to restore service',
            failedAt: clock.now(),
            failureMessage: 'Service suspended: call +1-555-0100',
          },
        }),
      );
    // An hour: no broker writes one that long, so it is ignored.
    await forge('jwt', 3_600_000, 'vendor_rejected_credentials');
    expect((await w.broker().getToken(CALLER, 'jwt')).source).toBe('vendor');
    // Shorter, with a code no broker writes: honoured as vendor_unavailable, told in the broker's own words.
    await forge('digitaleo', 200_000, 'account_suspended');
    const err = await expectCode(w.broker().getToken(CALLER, 'digitaleo'), 'vendor_unavailable');
    expect(err.retryAfter).toBeLessThanOrEqual(200);
    expect(err.message).toBe('digitaleo: the vendor is unavailable (HTTP 418); cooling down');
    expect(w.vendor.received('digitaleo')).toBe(0);
  });
});

describe('status (admins)', () => {
  it("reports a connection's health from the table, nothing secret", async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const b = w.broker({ config: { ...w.config, admins: [ADMIN] }, options: { exchange: { retries: 0 } } });
    const t = await b.getToken(CALLER, 'jwt');
    const jwt = await b.status(ADMIN, 'jwt');
    expect(jwt).toEqual({
      connection: 'jwt',
      dialect: 'oauth2',
      static: false,
      token: {
        expiresAt: clock.now() + 300_000,
        mintedAt: clock.now(),
        mintedBy: b.instanceId,
        fingerprint: t.fingerprint,
        secretVersion: expect.stringMatching(/^[0-9a-f]{12}$/) as unknown,
      },
    });
    expect(JSON.stringify(jwt).includes(t.accessToken)).toBe(false);

    w.vendor.fail('digitaleo', (_req, res) => {
      res.writeHead(503);
      res.end();
    });
    await expectCode(b.getToken(CALLER, 'digitaleo'), 'vendor_unavailable');
    clock.advance(1_000);
    expect(await b.status(ADMIN, 'digitaleo')).toEqual({
      connection: 'digitaleo',
      dialect: 'digitaleo',
      static: false,
      cooldown: { until: clock.now() + 29_000, code: 'vendor_unavailable' },
      lastFailure: { code: 'vendor_unavailable', at: clock.now() - 1_000, vendorStatus: 503 },
    });
    expect(await b.status(ADMIN, 'pat')).toEqual({ connection: 'pat', dialect: 'digishare-pat', static: true });
    await expectCode(b.status(CALLER, 'jwt'), 'forbidden');
    await expectCode(b.status(ADMIN, 'nope'), 'forbidden');
  });
});

describe('connections come from the catalog', () => {
  it('a connection the catalog no longer has is refused to callers and admins alike, and forget drops what the instance held', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const known = new Set(['jwt', 'digitaleo', 'pat']);
    const looked: string[] = [];
    const catalog: ConnectionCatalog = {
      find: (id) => {
        looked.push(id);
        return Promise.resolve(known.has(id) ? w.config.byId.get(id) : undefined);
      },
    };
    const b = w.broker({ config: { ...w.config, admins: [ADMIN] }, connections: catalog });
    const first = await b.getToken(CALLER, 'jwt');
    expect((await b.status(ADMIN, 'jwt')).token?.fingerprint).toBe(first.fingerprint);
    expect(looked).toEqual(['jwt', 'jwt']);
    // Deleted (issue 19): the file's config still names it, the catalog does not.
    known.delete('jwt');
    b.forget('jwt');
    await expectCode(b.getToken(CALLER, 'jwt'), 'forbidden');
    await expectCode(b.status(ADMIN, 'jwt'), 'forbidden');
    await expectCode(b.refresh(ADMIN, 'jwt'), 'forbidden');
    await expectCode(b.invalidate(CALLER, 'jwt', first.accessToken), 'forbidden');
    // Back again: the instance held nothing for it, so it looks at the table.
    known.add('jwt');
    expect(await b.getToken(CALLER, 'jwt')).toMatchObject({ source: 'table', fingerprint: first.fingerprint });
  });
});

describe('refresh ahead is bounded (issue 22)', () => {
  it('a token that lives no longer than refreshBefore draws no refresh: plain reads do not mint', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, { refreshBefore: 600 }, 300);
    const b = w.broker({ random: () => 0.999 });
    await b.getToken(CALLER, 'jwt', 0);
    for (let i = 0; i < 100; i++) {
      clock.advance(100);
      await b.getToken(CALLER, 'jwt', 0);
    }
    expect(w.vendor.exchanges('jwt')).toBe(1);
  });

  it('inside the window, refreshes obey the forced-mint bound: reads every 100 ms for 10 s mint at most once more', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, { refreshBefore: 125 }, 130);
    const b = w.broker({ random: () => 0.999 });
    await b.getToken(CALLER, 'jwt', 0);
    for (let i = 0; i < 100; i++) {
      clock.advance(100);
      await b.getToken(CALLER, 'jwt', 0);
    }
    expect(w.vendor.exchanges('jwt')).toBeLessThanOrEqual(2);
  });
});

describe('admin refresh and verify are bounded (issue 22)', () => {
  it('at most one refresh per connection per second, across instances, and one verify per connection per second', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const config = { ...w.config, admins: [ADMIN] };
    const [a, b] = [w.broker({ config }), w.broker({ config })];
    await a.refresh(ADMIN, 'jwt');
    expect((await expectCode(a.refresh(ADMIN, 'jwt'), 'rate_limited')).retryAfter).toBe(1);
    expect((await expectCode(b.refresh(ADMIN, 'jwt'), 'rate_limited')).retryAfter).toBe(1);
    await a.verify(ADMIN, 'jwt', 'AWSCURRENT');
    expect((await expectCode(a.verify(ADMIN, 'jwt', 'AWSCURRENT'), 'rate_limited')).retryAfter).toBe(1);
    expect(w.vendor.exchanges('jwt')).toBe(2);
    clock.advance(1_000);
    await b.refresh(ADMIN, 'jwt');
    await a.verify(ADMIN, 'jwt', 'AWSCURRENT');
    expect(w.vendor.exchanges('jwt')).toBe(4);
  });
});

describe('min_ttl above the connection maxTtl (issue 22)', () => {
  it('answers 400 invalid_request saying the cap, as a min_ttl above the vendor lifetime is answered', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, { maxTtl: 900 }, 3600);
    const b = w.broker();
    const err = await expectCode(b.getToken(CALLER, 'jwt', 901), 'invalid_request');
    expect(err.message).toMatch(/jwt: tokens are handed out for at most 900 s \(maxTtl\), so min_ttl 901 cannot be met/);
    expect(w.vendor.received()).toBe(0);
    expect((await b.getToken(CALLER, 'jwt', 900)).expiresIn).toBe(900);
    // Unknown and forbidden still look the same.
    await expectCode(b.getToken('arn:aws:iam::111111111111:role/stranger', 'jwt', 901), 'forbidden');
  });
});

describe('a token too large for the table (issue 22)', () => {
  it("a 450 KB vendor token is that connection's vendor_protocol_error, not table trouble for the others", async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock, { prewarm: true });
    const b = w.broker();
    w.vendor.fail('digitaleo', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: 'x'.repeat(450_000), token_type: 'Bearer', expires_in: 300 }));
    });
    const err = await expectCode(b.getToken(CALLER, 'digitaleo'), 'vendor_protocol_error');
    expect(err.message).toMatch(/^digitaleo: the vendor's answer was not a usable token/);
    // The other connections of this instance are served as ever: the table is not taken for down.
    expect((await b.getToken(CALLER, 'jwt')).source).toBe('vendor');
    expect((await w.table.store.read('digitaleo')).lease).toBeUndefined();
  });
});
