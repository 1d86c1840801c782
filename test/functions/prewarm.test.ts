import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger, createMetrics } from '../../lib/adapters/powertools';
import { MemoryTokenStore } from '../../lib/adapters/memory-store';
import { makePrewarmHandler } from '../../functions/prewarm';
import { FileSecretSource } from '../../lib/adapters/file-secrets';
import { SecretsManagerSource } from '../../lib/adapters/secrets-manager';
import { createBroker } from '../../lib/compose';
import { BrokerError } from '../../lib/errors';
import { ManualClock } from '../../lib/clock';
import { nodeHttpClient } from '../../lib/http';
import { CachedSecretSource } from '../../lib/secrets';
import type { TokenSource, TokenStore } from '../../lib/ports';
import { ACCOUNT, REGION, roleCredentials, startSecretsManager } from '../support/aws-services';
import { secretFor, vendorConnectionInput } from '../support/connections';
import { lambdaContext } from '../support/events';
import { RecordingMetrics, startWorld, type World } from '../support/harness';
import { registerSecret, registerSecretValue } from '../support/secrets-registry';

const CALLER = 'arn:aws:iam::111111111111:role/caller';
let world: World | undefined;
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await world?.close();
  world = undefined;
  await Promise.all(closers.splice(0).map((close) => close()));
});

/** Secrets Manager's stand-in (AWS JSON over loopback, SigV4-checked) and the adapter on the real SDK client. */
async function secretsManager() {
  const sm = await startSecretsManager();
  closers.push(() => sm.close());
  const credentials = roleCredentials('prewarm-test');
  registerSecret(credentials.secretAccessKey, credentials.sessionToken);
  sm.trust(credentials);
  return { sm, source: new SecretsManagerSource(undefined, { endpoint: sm.endpoint, region: REGION, credentials }) };
}

/**
 * One pre-warmed connection (`jwt`, refreshBefore 120 s) whose vendor issues tokens of `lifetime` seconds, on the
 * in-memory table (it passes the same contract tests as DynamoDB), so that long simulated stretches stay quick.
 */
async function warmJwt(lifetime: number) {
  const clock = new ManualClock('2026-11-23T00:00:00.000Z');
  world = await startWorld(
    clock,
    (v) => [vendorConnectionInput(v, 'jwt', { id: 'jwt', prewarm: true, refreshBefore: 120 })],
    { lifetime },
    (v) => ({ 'broker/jwt-test': secretFor(v, 'jwt') }),
  );
  // The test's own reference (the module's `world` is what afterEach closes).
  return { clock, store: new MemoryTokenStore(), w: world };
}

/** A seeded generator, so the refresh-ahead draws are the same on every run. */
function seeded(seed: number) {
  let x = seed;
  return () => {
    x = (x * 1_103_515_245 + 12_345) % 2 ** 31;
    return x / 2 ** 31;
  };
}

function context(remainingMs = 60_000) {
  return { ...lambdaContext(), getRemainingTimeInMillis: () => remainingMs };
}

describe('pre-warming', () => {
  it('over a simulated day of 5-minute tokens and steady callers, no caller waits on a vendor and each token is minted once', async () => {
    // The in-memory table (it passes the same contract tests as DynamoDB): 8,640 rounds stay quick.
    const { clock, store, w } = await warmJwt(300);
    const metrics = new RecordingMetrics();
    const callers = [1, 2, 3].map((seed) => w.broker({ metrics, random: seeded(seed), store }));
    const prewarm = makePrewarmHandler({ broker: w.broker({ metrics, store }), logger: createLogger(), metrics: createMetrics() });
    const sources = new Map<TokenSource, number>();
    const day = 86_400;
    const step = 10;
    for (let t = 0; t < day; t += step) {
      if (t % 60 === 0) await prewarm({}, context());
      const broker = callers[(t / step) % callers.length]!;
      const token = await broker.getToken(CALLER, 'jwt', 60);
      sources.set(token.source, (sources.get(token.source) ?? 0) + 1);
      expect(broker.pendingWork()).toBe(0);
      clock.advance(step * 1000);
    }
    // A token lives 300 s and is replaced when it would enter its 120 s window before the next run (180 s left):
    // one mint per 120 s of the day.
    expect(w.vendor.exchanges('jwt')).toBe(day / 120);
    expect(w.vendor.received('jwt')).toBe(day / 120);
    expect(sources.get('vendor')).toBeUndefined();
    expect((sources.get('memory') ?? 0) + (sources.get('table') ?? 0)).toBe(day / step);
    expect(metrics.get('LeaseWaits')).toBe(0);
  }, 90_000);

  it('replaces a token that would enter its window before the next run, so callers between runs never wait on a vendor', async () => {
    // 301 s tokens: a run finds 121 s left (outside the 120 s window); 55 s later a caller needs 60 + 10 s.
    const { clock, store, w } = await warmJwt(301);
    const caller = w.broker({ store, random: seeded(4) });
    const prewarm = makePrewarmHandler({ broker: w.broker({ store }), logger: createLogger(), metrics: createMetrics() });
    const fromVendor: number[] = [];
    const hour = 3600;
    for (let t = 0; t < hour; t += 5) {
      if (t % 60 === 0) await prewarm({}, context());
      const token = await caller.getToken(CALLER, 'jwt', 60);
      if (token.source === 'vendor') fromVendor.push(t);
      clock.advance(5_000);
    }
    expect(fromVendor).toEqual([]);
    expect(w.vendor.exchanges('jwt')).toBe(hour / 180);
  });

  it("honours a vendor's Retry-After: the run does not probe before it ends, and its own hold keeps callers off until the run after", async () => {
    const { clock, store, w } = await warmJwt(300);
    const caller = w.broker({ store, options: { exchange: { retries: 0 } } });
    const prewarm = makePrewarmHandler({ broker: w.broker({ store, options: { exchange: { retries: 0 } } }), logger: createLogger(), metrics: createMetrics() });
    const limited = (seconds: number) =>
      w.vendor.fail('jwt', (_q, r) => r.writeHead(429, { 'retry-after': String(seconds), 'content-type': 'application/json' }).end('{"error":"slow_down"}'));
    const codeOf = (p: Promise<unknown>) => p.then(() => 'token', (err: unknown) => (err instanceof BrokerError ? err.code : 'internal_error'));

    // A caller meets a 429 with Retry-After 45 s: 20 s later the run does not ask the vendor.
    limited(45);
    expect(await codeOf(caller.getToken(CALLER, 'jwt', 60))).toBe('vendor_unavailable');
    expect(w.vendor.received('jwt')).toBe(1);
    clock.advance(20_000);
    expect((await prewarm({}, context())).outcomes).toEqual({ jwt: 'cooling-down' });
    expect(w.vendor.received('jwt')).toBe(1);

    // Past it, the run probes; its failure (Retry-After 100 s) is not probed again at the next run, only at the one
    // after; callers are held off until 30 s past that one.
    clock.advance(30_000);
    limited(100);
    expect((await prewarm({}, context())).outcomes).toEqual({ jwt: 'vendor_unavailable' });
    expect(w.vendor.received('jwt')).toBe(2);
    clock.advance(60_000);
    expect((await prewarm({}, context())).outcomes).toEqual({ jwt: 'cooling-down' });
    expect(w.vendor.received('jwt')).toBe(2);
    clock.advance(45_000); // 105 s after the probe: the vendor's 100 s are over, the hold (150 s) is not
    expect(await codeOf(caller.getToken(CALLER, 'jwt', 60))).toBe('vendor_unavailable');
    expect(w.vendor.received('jwt')).toBe(2);
    w.vendor.heal('jwt');
    clock.advance(15_000);
    expect((await prewarm({}, context())).outcomes).toEqual({ jwt: 'minted' });
    expect(w.vendor.received('jwt')).toBe(3);
    expect(await codeOf(caller.getToken(CALLER, 'jwt', 60))).toBe('token');
  });

  it('during a 10-minute vendor outage only the pre-warm run asks the vendor, once a run; callers never wait on it', async () => {
    const { clock, store, w } = await warmJwt(300);
    const callers = [1, 2, 3].map((seed) => w.broker({ store, random: seeded(seed), options: { exchange: { retries: 0 } } }));
    const prewarm = makePrewarmHandler({
      broker: w.broker({ store, options: { exchange: { retries: 0 } } }),
      logger: createLogger(),
      metrics: createMetrics(),
    });
    const outage = { from: 1200, until: 1800 };
    const probes: number[] = [];
    const callerAnswers = new Map<string, number>();
    for (let t = 0; t < 2700; t += 5) {
      if (t === outage.from) w.vendor.fail('jwt', (_q, r) => r.writeHead(503).end());
      if (t === outage.until) w.vendor.heal('jwt');
      if (t % 60 === 0) {
        const before = w.vendor.received('jwt');
        await prewarm({}, context());
        if (t >= outage.from && t < outage.until) probes.push(w.vendor.received('jwt') - before);
      }
      const before = w.vendor.received('jwt');
      const answer = await callers[(t / 5) % 3]!.getToken(CALLER, 'jwt', 60).then(
        (tok) => tok.source,
        (err: unknown) => (err instanceof BrokerError ? err.code : 'internal_error'),
      );
      callerAnswers.set(answer, (callerAnswers.get(answer) ?? 0) + 1);
      // No caller's request reaches the vendor: not before, during or after the outage.
      expect(w.vendor.received('jwt') - before, `t=${t}`).toBe(0);
      clock.advance(5_000);
    }
    // Every run in the outage asked at most once; the held token carried callers until it ran out, then they were
    // told vendor_unavailable at once; the first run after the outage minted.
    expect(probes.every((n) => n <= 1)).toBe(true);
    expect(probes.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(5);
    expect(callerAnswers.get('vendor')).toBeUndefined();
    expect(callerAnswers.get('vendor_unavailable')).toBeGreaterThan(0);
    expect([...callerAnswers.keys()].sort()).toEqual(['memory', 'table', 'vendor_unavailable']);
  });

  it("reads each connection's record once a run: the secret check's read serves the warming too", async () => {
    const clock = new ManualClock('2026-11-23T00:00:00.000Z');
    world = await startWorld(
      clock,
      (v) => [
        vendorConnectionInput(v, 'jwt', { id: 'jwt', prewarm: true }),
        vendorConnectionInput(v, 'digitaleo', { id: 'digitaleo', prewarm: true }),
        vendorConnectionInput(v, 'docoon', { id: 'docoon' }),
      ],
      { lifetime: 3600 },
      (v) => ({ 'broker/jwt-test': secretFor(v, 'jwt'), 'broker/digitaleo-test': secretFor(v, 'digitaleo'), 'broker/docoon-test': secretFor(v, 'docoon') }),
    );
    const inner = new MemoryTokenStore();
    const reads: string[] = [];
    const store: TokenStore = Object.assign(Object.create(inner) as TokenStore, {
      read: (id: string, opts?: Parameters<TokenStore['read']>[1]) => {
        reads.push(id);
        return inner.read(id, opts);
      },
    });
    const secrets = new CachedSecretSource(new FileSecretSource(world.secretsPath), clock);
    const broker = world.broker({ store });
    const prewarm = makePrewarmHandler({ broker, logger: createLogger(), metrics: createMetrics(), secrets, store });
    for (let run = 0; run < 5; run++) {
      reads.length = 0;
      await prewarm({}, context());
      // The first run mints (a mint reads the record again under its lease); the later ones find the tokens fresh.
      if (run > 0) expect(reads.sort()).toEqual(['digitaleo', 'docoon', 'jwt']);
      clock.advance(60_000);
    }
  });

  it('warms connections concurrently; a failing vendor does not stop the others', async () => {
    const clock = new ManualClock('2026-11-23T00:00:00.000Z');
    world = await startWorld(
      clock,
      (v) => [
        vendorConnectionInput(v, 'jwt', { id: 'jwt', prewarm: true }),
        vendorConnectionInput(v, 'digitaleo', { id: 'digitaleo', prewarm: true }),
        vendorConnectionInput(v, 'docoon', { id: 'docoon', prewarm: true }),
        vendorConnectionInput(v, 'digishare', { id: 'cold', prewarm: false }),
        { id: 'pat', dialect: 'digishare-pat', secretId: 'broker/pat', prewarm: true },
      ],
      { lifetime: 3600 },
      (v) => ({
        'broker/jwt-test': secretFor(v, 'jwt'),
        'broker/digitaleo-test': secretFor(v, 'digitaleo'),
        'broker/docoon-test': secretFor(v, 'docoon'),
        'broker/digishare-test': secretFor(v, 'digishare'),
        'broker/pat': { token: 'prewarm-pat-token' },
      }),
    );
    world.vendor.fail('digitaleo', (_q, r) => {
      r.writeHead(503);
      r.end();
    });
    const prewarm = makePrewarmHandler({
      broker: world.broker({ options: { exchange: { retries: 0 } } }),
      logger: createLogger(),
      metrics: createMetrics(),
      concurrency: 2,
    });
    expect((await prewarm({}, context())).outcomes).toEqual({
      jwt: 'minted',
      digitaleo: 'vendor_unavailable',
      docoon: 'minted',
      pat: 'static',
    });
    expect(world.vendor.received('digishare')).toBe(0);
    // Within the cooldown the failing vendor is not asked again.
    clock.advance(10_000);
    expect((await prewarm({}, context())).outcomes).toMatchObject({ jwt: 'fresh', digitaleo: 'cooling-down', docoon: 'fresh' });
    expect(world.vendor.received('digitaleo')).toBe(1);
    world.vendor.heal('digitaleo');
    clock.advance(60_000);
    expect((await prewarm({}, context())).outcomes).toEqual({ jwt: 'fresh', digitaleo: 'minted', docoon: 'fresh', pat: 'static' });
    expect(world.vendor.exchanges()).toBe(3);
  });

  it('starts no connection without time left for its exchange', async () => {
    const clock = new ManualClock('2026-11-23T00:00:00.000Z');
    world = await startWorld(
      clock,
      (v) => [vendorConnectionInput(v, 'jwt', { id: 'jwt', prewarm: true })],
      {},
      (v) => ({ 'broker/jwt-test': secretFor(v, 'jwt') }),
    );
    const prewarm = makePrewarmHandler({ broker: world.broker(), logger: createLogger(), metrics: createMetrics() });
    expect((await prewarm({}, context(5_000))).outcomes).toEqual({ jwt: 'skipped-no-time' });
    expect(world.vendor.received()).toBe(0);
  });
});

describe('a secret changed without any event', () => {
  const ROTATED = { client_id: 'demo-jwt-client', client_secret: 'rotated-jwt-secret-4d1e' };

  it('is picked up by the next pre-warm run (file secrets): the token minted with the old version is replaced', async () => {
    const clock = new ManualClock('2026-11-23T00:00:00.000Z');
    world = await startWorld(
      clock,
      (v) => [vendorConnectionInput(v, 'jwt', { id: 'jwt' }), vendorConnectionInput(v, 'digitaleo', { id: 'warm', prewarm: true })],
      { lifetime: 3600 },
      (v) => ({ 'broker/jwt-test': secretFor(v, 'jwt'), 'broker/digitaleo-test': secretFor(v, 'digitaleo') }),
    );
    const w = world;
    const secrets = new CachedSecretSource(new FileSecretSource(w.secretsPath), clock);
    const prewarm = makePrewarmHandler({ broker: w.broker(), logger: createLogger(), metrics: createMetrics(), secrets, store: w.table.store });
    const before = await w.broker().getToken(CALLER, 'jwt');
    expect((await prewarm({}, context())).outcomes).toEqual({ warm: 'minted' });

    // The secret is changed (at the vendor and in the store of secrets), and no event says so.
    w.vendor.setAccount('jwt', ROTATED);
    w.writeSecrets({ 'broker/jwt-test': ROTATED, 'broker/digitaleo-test': secretFor(w.vendor, 'digitaleo') });
    clock.advance(60_000);
    expect((await prewarm({}, context())).outcomes).toEqual({ jwt: 'rotated', warm: 'fresh' });
    const stored = (await w.table.store.read('jwt')).token;
    expect(stored?.secretVersion).toBe((await secrets.getSecret('broker/jwt-test')).versionId);
    const after = await w.broker().getToken(CALLER, 'jwt');
    expect(after.source).toBe('table');
    expect(after.fingerprint).not.toBe(before.fingerprint);

    // Nothing changed since: the next run replaces nothing.
    const exchanges = w.vendor.exchanges();
    clock.advance(60_000);
    expect((await prewarm({}, context())).outcomes).toEqual({ warm: 'fresh' });
    expect(w.vendor.exchanges()).toBe(exchanges);
  });

  it('in Secrets Manager: one BatchGetSecretValue a run reads the secret, and the mints right after read nothing more', async () => {
    const clock = new ManualClock('2026-11-23T00:00:00.000Z');
    const { sm, source } = await secretsManager();
    world = await startWorld(clock, (v) => [
      vendorConnectionInput(v, 'jwt', { id: 'jwt', prewarm: true }),
      vendorConnectionInput(v, 'jwt', { id: 'jwt-too' }),
    ], { lifetime: 3600 });
    const w = world;
    sm.put('broker/jwt-test', secretFor(w.vendor, 'jwt'), 'v1');
    registerSecretValue(ROTATED);
    const secrets = new CachedSecretSource(source, clock);
    const broker = createBroker({ config: w.config, store: w.table.store, marks: w.marks.store, secrets, keyRing: w.keyRing, clock, http: nodeHttpClient });
    const prewarm = makePrewarmHandler({ broker, logger: createLogger(), metrics: createMetrics(), secrets, store: w.table.store });
    const operations = () => sm.calls.map((c) => c.operation);

    // The run's batch read fills the cache: the pre-warmed connection's mint, and a caller's of the other, read nothing.
    expect((await prewarm({}, context())).outcomes).toEqual({ jwt: 'minted' });
    await broker.getToken(CALLER, 'jwt-too');
    expect(operations()).toEqual(['BatchGetSecretValue']);

    clock.advance(60_000);
    expect((await prewarm({}, context())).outcomes).toEqual({ jwt: 'fresh' });
    // Two connections share the secret: one id in one call.
    expect(operations()).toEqual(['BatchGetSecretValue', 'BatchGetSecretValue']);

    w.vendor.setAccount('jwt', ROTATED);
    sm.put('broker/jwt-test', ROTATED, 'v2');
    clock.advance(60_000);
    expect((await prewarm({}, context())).outcomes).toEqual({ jwt: 'rotated', 'jwt-too': 'rotated' });
    expect(sm.count('BatchGetSecretValue')).toBe(3);
    expect((await w.table.store.read('jwt')).token?.secretVersion).toBe('v2');
    expect((await w.table.store.read('jwt-too')).token?.secretVersion).toBe('v2');
  });

  it('45 connections, their secrets named by name, partial ARN or full ARN: a run reads them in 3 calls, not 45, and finds each change', async () => {
    const clock = new ManualClock('2026-11-23T00:00:00.000Z');
    const { sm, source } = await secretsManager();
    const ids = Array.from({ length: 45 }, (_, i) => `c${String(i).padStart(2, '0')}`);
    const partialArn = (id: string) => `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:broker/${id}`;
    world = await startWorld(clock, (v) => {
      for (const id of ids) sm.put(`broker/${id}`, secretFor(v, 'jwt'));
      // Every third a name, a partial ARN, the full ARN (with its random suffix).
      const spelled = (id: string, i: number) => [`broker/${id}`, partialArn(id), sm.arnOf(`broker/${id}`)][i % 3]!;
      return ids.map((id, i) => vendorConnectionInput(v, 'jwt', { id, secretId: spelled(id, i) }));
    }, { lifetime: 3600 });
    const w = world;
    const secrets = new CachedSecretSource(source, clock);
    const broker = createBroker({ config: w.config, store: w.table.store, marks: w.marks.store, secrets, keyRing: w.keyRing, clock, http: nodeHttpClient });
    const prewarm = makePrewarmHandler({ broker, logger: createLogger(), metrics: createMetrics(), secrets, store: w.table.store });
    // One token of each spelling, then each of those secrets gets a new version (no event).
    for (const id of ['c00', 'c01', 'c02', 'c03']) await broker.getToken(CALLER, id);
    for (const id of ['c00', 'c01', 'c02']) sm.put(`broker/${id}`, secretFor(w.vendor, 'jwt'), `${id}-v2`);

    sm.calls.length = 0;
    clock.advance(60_000);
    expect((await prewarm({}, context())).outcomes).toEqual({ c00: 'rotated', c01: 'rotated', c02: 'rotated' });
    expect(sm.count('BatchGetSecretValue')).toBe(3);
    for (const id of ['c00', 'c01', 'c02']) expect((await w.table.store.read(id)).token?.secretVersion).toBe(`${id}-v2`);

    // Nothing changed since: the run is its 3 calls and nothing else.
    sm.calls.length = 0;
    clock.advance(60_000);
    expect((await prewarm({}, context())).outcomes).toEqual({});
    expect(sm.calls.map((c) => c.operation)).toEqual(['BatchGetSecretValue', 'BatchGetSecretValue', 'BatchGetSecretValue']);
  });

  it("a secret the role may not read is reported for its connection; a batch call that fails counts as no change, with a warning", async () => {
    const clock = new ManualClock('2026-11-23T00:00:00.000Z');
    const { sm, source } = await secretsManager();
    world = await startWorld(clock, (v) => ['a', 'b', 'c'].map((id) => vendorConnectionInput(v, 'jwt', { id, secretId: `broker/${id}` })), { lifetime: 3600 });
    const w = world;
    for (const id of ['a', 'b', 'c']) sm.put(`broker/${id}`, secretFor(w.vendor, 'jwt'), `${id}-v1`);
    const secrets = new CachedSecretSource(source, clock);
    const broker = createBroker({ config: w.config, store: w.table.store, marks: w.marks.store, secrets, keyRing: w.keyRing, clock, http: nodeHttpClient });
    const logger = createLogger();
    const warn = vi.spyOn(logger, 'warn');
    const prewarm = makePrewarmHandler({ broker, logger, metrics: createMetrics(), secrets, store: w.table.store });
    for (const id of ['a', 'b', 'c']) await broker.getToken(CALLER, id);
    const warned = () => warn.mock.calls.filter(([m]) => m === 'could not compare the secret version').map(([, f]) => f);

    // The role loses GetSecretValue on b: BatchGetSecretValue answers b in its Errors, and a's change is still seen.
    const arnOfB = sm.arnOf('broker/b');
    sm.authorize((_key, action, resource) => !(action === 'secretsmanager:GetSecretValue' && resource === arnOfB));
    for (const id of ['a', 'b']) sm.put(`broker/${id}`, secretFor(w.vendor, 'jwt'), `${id}-v2`);
    clock.advance(60_000);
    expect((await prewarm({}, context())).outcomes).toEqual({ a: 'rotated' });
    expect(warned()).toEqual([{ connection: 'b', code: 'misconfigured' }]);
    expect((await w.table.store.read('b')).token?.secretVersion).toBe('b-v1');

    // The role loses BatchGetSecretValue itself: the whole call fails, every connection is "no change" and said so.
    warn.mockClear();
    sm.authorize((_key, action) => action !== 'secretsmanager:BatchGetSecretValue');
    sm.put('broker/c', secretFor(w.vendor, 'jwt'), 'c-v2');
    clock.advance(60_000);
    expect((await prewarm({}, context())).outcomes).toEqual({});
    expect(warned()).toEqual(expect.arrayContaining(['a', 'b', 'c'].map((connection) => ({ connection, code: 'misconfigured' }))));
    expect((await w.table.store.read('c')).token?.secretVersion).toBe('c-v1');
  });
});
