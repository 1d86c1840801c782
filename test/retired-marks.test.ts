import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../lib/clock';
import { DependencyUnavailableError, StoreUnavailableError } from '../lib/errors';
import { LEASE_DEFAULTS } from '../lib/lease';
import { FileSecretSource } from '../lib/adapters/file-secrets';
import { BUDGET_DEFAULTS, RequestBudget, TableHealth, UNHURRIED_REQUEST_BUDGET } from '../lib/budget';
import { createBroker } from '../lib/compose';
import { nodeHttpClient } from '../lib/http';
import type { KeyRing, ReadOptions, RetiredMarks, SecretSource, TokenStore } from '../lib/ports';
import { MARK_KEPT_MS, MARK_READ_MS, MARK_RECHECK_MS, MARK_RETRY_MS, Retirements, markKey } from '../lib/retired';
import { Instance } from '../lib/instance';
import { MemoryRetiredMarks } from '../lib/adapters/memory-marks';
import { vendorConnectionInput, secretFor } from './support/connections';
import { RecordingMetrics, startWorld, type World } from './support/harness';

// Issue 22, rollback to a fresh instance: whoever can write the token table (or restore it from a backup) puts back
// the item of a token retired for cause. An instance that saw the newer token refuses it by its own high-water mark;
// a fresh one, which saw nothing, must refuse it too: the retired marks, in a table the token table's writers cannot
// write (infra: its resource policy), tell it. Each test copies the item out before the token is retired and puts it
// back after, exactly as it was.

const CALLER = 'arn:aws:iam::111111111111:role/caller';
const ADMIN = 'arn:aws:iam::111111111111:role/admin';
const T0 = '2026-12-08T10:00:00.000Z';

let world: World | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

async function worldOf(clock: ManualClock): Promise<World> {
  world = await startWorld(
    clock,
    (v) => [vendorConnectionInput(v, 'jwt', { id: 'jwt', callers: [CALLER], maxTtl: 3600 })],
    { lifetime: 3600 },
    (v) => ({ 'broker/jwt-test': secretFor(v, 'jwt') }),
  );
  return world;
}

type Item = Record<string, unknown>;

/** A logger that keeps level and message (never a field's value: the tests look at what was said, not at secrets). */
function recordingLogger() {
  const lines: { level: string; message: string }[] = [];
  const at = (level: string) => (message: string) => void lines.push({ level, message });
  return { lines, logger: { info: at('info'), warn: at('warn'), error: at('error') } };
}

async function copyOut(w: World): Promise<Item> {
  const out = await w.table.doc.send(new GetCommand({ TableName: w.table.name, Key: { pk: 'token#jwt' }, ConsistentRead: true }));
  expect(out.Item?.ct).toBeDefined();
  return out.Item!;
}

async function putBack(w: World, item: Item): Promise<void> {
  await w.table.doc.send(new PutCommand({ TableName: w.table.name, Item: item }));
}

/** The world's marks, with some of their calls replaced. */
function marksWith(w: World, over: Partial<RetiredMarks>): RetiredMarks {
  return {
    readAll: (call) => w.marks.store.readAll(call),
    raise: (k, m, call) => w.marks.store.raise(k, m, call),
    prune: (m, call) => w.marks.store.prune(m, call),
    ...over,
  };
}

/** A broker with the admin's ARN in its config: the harness's config names none. */
function adminBroker(w: World, opts: Parameters<World['broker']>[0] = {}) {
  return w.broker({ config: { ...w.config, admins: [ADMIN] }, ...opts });
}

describe('a token retired for cause and put back into the table', () => {
  it('after an invalidation, is not served by a fresh instance', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const first = await w.broker().getToken(CALLER, 'jwt');
    const item = await copyOut(w);
    clock.advance(60_000);
    expect(await w.broker().invalidate(CALLER, 'jwt', first.accessToken)).toBe(true);
    await putBack(w, item);
    const metrics = new RecordingMetrics();
    const fresh = await w.broker({ metrics }).getToken(CALLER, 'jwt');
    expect(fresh.fingerprint).not.toBe(first.fingerprint);
    expect(fresh.source).toBe('vendor');
    expect(metrics.get('StaleTokensRefused')).toBeGreaterThan(0);
  });

  it('after a rotation evicted it, is not served by a fresh instance', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const first = await w.broker().getToken(CALLER, 'jwt');
    const item = await copyOut(w);
    const rotated = { ...secretFor(w.vendor, 'jwt') };
    w.writeSecrets({ 'broker/jwt-test': { ...rotated, unused: 'a new version' } });
    clock.advance(60_000);
    const rotation = w.broker();
    const outcome = await rotation.rotate(rotation.config.byId.get('jwt')!);
    expect(outcome.evicted).toBe(true);
    await putBack(w, item);
    const fresh = await w.broker().getToken(CALLER, 'jwt');
    expect(fresh.fingerprint).not.toBe(first.fingerprint);
  });

  it('after its connection changed (its tokens evicted), is not served by a fresh instance', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const first = await w.broker().getToken(CALLER, 'jwt');
    const item = await copyOut(w);
    clock.advance(1_000);
    expect(await w.broker().evictTokens('jwt')).toBe(true);
    await putBack(w, item);
    const fresh = await w.broker().getToken(CALLER, 'jwt');
    expect(fresh.fingerprint).not.toBe(first.fingerprint);
  });

  it("after an admin's refresh replaced it, is not served by a fresh instance", async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const first = await w.broker().getToken(CALLER, 'jwt');
    const item = await copyOut(w);
    clock.advance(5_000);
    const refreshed = await adminBroker(w).refresh(ADMIN, 'jwt');
    expect(refreshed.fingerprint).not.toBe(first.fingerprint);
    await putBack(w, item);
    const fresh = await w.broker().getToken(CALLER, 'jwt');
    expect(fresh.fingerprint).not.toBe(first.fingerprint);
  });

  it('is refused by a warm instance that had served it, once it reads the marks again (within 5 minutes)', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const warm = w.broker();
    const first = await warm.getToken(CALLER, 'jwt');
    const item = await copyOut(w);
    clock.advance(60_000);
    expect(await w.broker().invalidate(CALLER, 'jwt', first.accessToken)).toBe(true);
    await putBack(w, item);
    clock.advance(MARK_RECHECK_MS);
    const again = await warm.getToken(CALLER, 'jwt');
    expect(again.fingerprint).not.toBe(first.fingerprint);
  });

  it('a token replaced as usual (not retired) stays servable: the marks move only for cause', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    await w.broker().getToken(CALLER, 'jwt');
    expect(await w.marks.store.readAll()).toEqual(new Map());
  });
  it("after a rotation that found the new secret's token already in place (the ordinary path replaced it first), is not served", async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const first = await w.broker().getToken(CALLER, 'jwt');
    const item = await copyOut(w);
    w.writeSecrets({ 'broker/jwt-test': { ...secretFor(w.vendor, 'jwt'), unused: 'a new version' } });
    clock.advance(11_000);
    // A cold instance reads the new secret and replaces the token on its own (a min_ttl the first cannot cover).
    const replaced = await w.broker().getToken(CALLER, 'jwt', 3585);
    expect(replaced.fingerprint).not.toBe(first.fingerprint);
    const rotation = w.broker();
    expect(await rotation.rotate(rotation.config.byId.get('jwt')!)).toMatchObject({ evicted: false, minted: false });
    await putBack(w, item);
    const fresh = await w.broker().getToken(CALLER, 'jwt');
    expect(fresh.fingerprint).not.toBe(first.fingerprint);
  });

  it("after an admin's refresh whose first look at the table failed, is not served", async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const first = await w.broker().getToken(CALLER, 'jwt');
    const item = await copyOut(w);
    clock.advance(5_000);
    let failed = false;
    const table = w.table.store;
    const flaky: TokenStore = Object.assign(Object.create(table) as TokenStore, {
      read: (c: string, call?: ReadOptions) => {
        if (failed) return table.read(c, call);
        failed = true;
        return Promise.reject(new StoreUnavailableError('the token table failed to read a token (simulated)'));
      },
    });
    const refreshed = await adminBroker(w, { store: flaky }).refresh(ADMIN, 'jwt');
    expect(failed).toBe(true);
    expect(refreshed.fingerprint).not.toBe(first.fingerprint);
    await putBack(w, item);
    expect((await w.broker().getToken(CALLER, 'jwt')).fingerprint).not.toBe(first.fingerprint);
  });
});

describe('a mint after an eviction', () => {
  it("reads the secret afresh: an instance's copy from before a rotation never mints again once the token was evicted", async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    // This instance keeps its copy of the secret (hours), and its token only 1 ms.
    const old = w.broker({ options: { memoryTtlMs: 1 } });
    await old.getToken(CALLER, 'jwt');
    w.writeSecrets({ 'broker/jwt-test': { ...secretFor(w.vendor, 'jwt'), unused: 'a new version' } });
    clock.advance(11_000);
    const rotation = w.broker();
    expect(await rotation.rotate(rotation.config.byId.get('jwt')!)).toMatchObject({ evicted: true, minted: true });
    const rotated = (await w.table.store.read('jwt')).token!;
    clock.advance(11_000);
    expect(await w.broker().evictTokens('jwt')).toBe(true);
    const minted = await old.getToken(CALLER, 'jwt');
    expect(minted.source).toBe('vendor');
    expect((await w.table.store.read('jwt')).token?.secretVersion).toBe(rotated.secretVersion);
  });
  it('reads the secret afresh, and when Secrets Manager cannot answer that read, mints with the copy it holds', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const file = new FileSecretSource(w.secretsPath);
    let down = false;
    let reads = 0;
    const flaky: SecretSource = {
      getSecret: (id, o) => {
        reads++;
        return down ? Promise.reject(new DependencyUnavailableError('Secrets Manager is throttling (simulated)')) : file.getSecret(id, o);
      },
    };
    const b = createBroker({ config: w.config, store: w.table.store, marks: w.marks.store, secrets: flaky, keyRing: w.keyRing, clock, http: nodeHttpClient, options: { ...UNHURRIED_REQUEST_BUDGET, memoryTtlMs: 1 } });
    const first = await b.getToken(CALLER, 'jwt');
    clock.advance(11_000);
    expect(await w.broker().invalidate(CALLER, 'jwt', first.accessToken)).toBe(true);
    down = true;
    const before = reads;
    const minted = await b.getToken(CALLER, 'jwt');
    expect(minted.source).toBe('vendor');
    expect(minted.fingerprint).not.toBe(first.fingerprint);
    // One fresh read tried; the copy served.
    expect(reads).toBe(before + 1);
  });
});

describe('a rotation or refresh whose new token the table did not take', () => {
  it('retires no further than the table keeps: a later genuine token from an instance whose clock lags is served', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const first = await w.broker().getToken(CALLER, 'jwt');
    w.writeSecrets({ 'broker/jwt-test': { ...secretFor(w.vendor, 'jwt'), unused: 'a new version' } });
    clock.advance(60_000);
    // KMS cannot make a data key for the rotation's instance: its new token is handed out, not stored.
    const noKeys: KeyRing = {
      generateDataKey: () => Promise.reject(new DependencyUnavailableError('KMS is throttling (simulated)')),
      decryptDataKey: (e, c) => w.keyRing.decryptDataKey(e, c),
    };
    const rotation = w.broker({ keyRing: noKeys });
    expect(await rotation.rotate(rotation.config.byId.get('jwt')!)).toMatchObject({ evicted: true, minted: true });
    expect((await w.table.store.read('jwt')).token).toBeUndefined();
    const mark = (await w.marks.store.readAll()).get(markKey('jwt'))!;
    expect(mark).toBeLessThan(clock.now() - 1);
    // An instance whose clock is 2 s behind mints the next token and stores it; a fresh instance serves it.
    const lagging = new ManualClock(clock.now() - 2_000);
    const next = await w.broker({ clock: lagging }).getToken(CALLER, 'jwt');
    expect(next.fingerprint).not.toBe(first.fingerprint);
    const metrics = new RecordingMetrics();
    const served = await w.broker({ metrics }).getToken(CALLER, 'jwt');
    expect(served).toMatchObject({ source: 'table', fingerprint: next.fingerprint });
    expect(metrics.get('StaleTokensRefused')).toBe(0);
  });
});

describe('the retired marks themselves', () => {
  it('are raised to the retired token\'s mint time, and never lowered', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const first = await w.broker().getToken(CALLER, 'jwt');
    const mintedAt = (await w.table.store.read('jwt')).token!.mintedAt;
    clock.advance(60_000);
    await w.broker().invalidate(CALLER, 'jwt', first.accessToken);
    expect(await w.marks.store.readAll()).toEqual(new Map([[markKey('jwt'), mintedAt]]));
    await w.marks.store.raise(markKey('jwt'), mintedAt - 5_000);
    expect((await w.marks.store.readAll()).get(markKey('jwt'))).toBe(mintedAt);
  });

  it('a forged mint time far in the future raises the mark no further than now plus the clocks\' skew', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const first = await w.broker().getToken(CALLER, 'jwt');
    await w.table.doc.send(
      new PutCommand({ TableName: w.table.name, Item: { ...(await copyOut(w)), mintedAt: 9e15 } }),
    );
    const broker = w.broker();
    expect(await broker.invalidate(CALLER, 'jwt', first.accessToken)).toBe(true);
    const mark = (await w.marks.store.readAll()).get(markKey('jwt'))!;
    expect(mark).toBeLessThanOrEqual(clock.now() + LEASE_DEFAULTS.clockSkewMs);
    expect(mark).toBeGreaterThan(clock.now());
    // The next genuine tokens are served, by a fresh instance too, once the clocks' skew has passed.
    clock.advance(LEASE_DEFAULTS.clockSkewMs + 1);
    const next = await w.broker().getToken(CALLER, 'jwt');
    expect(next.fingerprint).not.toBe(first.fingerprint);
    const again = await w.broker().getToken(CALLER, 'jwt');
    expect(again.source).toBe('table');
    expect(again.fingerprint).toBe(next.fingerprint);
  });

  it('that cannot be read do not take the tokens down: served, counted, logged, read again after 10 s', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const first = await w.broker().getToken(CALLER, 'jwt');
    let reads = 0;
    let down = true;
    const failing = marksWith(w, {
      readAll: async (call) => {
        reads++;
        if (down) throw new StoreUnavailableError('the retired marks failed to read (ServiceUnavailable)');
        return w.marks.store.readAll(call);
      },
    });
    const metrics = new RecordingMetrics();
    const { lines, logger } = recordingLogger();
    // Memory kept for 1 ms only: every request below looks at the table, and so at the marks when they are due.
    const b = w.broker({ marks: failing, metrics, logger, options: { memoryTtlMs: 1 } });
    const served = await b.getToken(CALLER, 'jwt');
    expect(served.fingerprint).toBe(first.fingerprint);
    expect(served.source).toBe('table');
    expect(metrics.get('RetiredMarkReadFailures')).toBe(1);
    expect(lines).toContainEqual({ level: 'warn', message: 'the retired marks could not be read; serving without them for now' });
    // Within the retry interval, no read; after it, one, which succeeds and holds for 5 minutes.
    clock.advance(MARK_RETRY_MS - 1);
    await b.getToken(CALLER, 'jwt');
    expect(reads).toBe(1);
    down = false;
    clock.advance(1);
    await b.getToken(CALLER, 'jwt');
    expect(reads).toBe(2);
    clock.advance(MARK_RECHECK_MS - 1);
    await b.getToken(CALLER, 'jwt');
    expect(reads).toBe(2);
    expect(metrics.get('RetiredMarkReadFailures')).toBe(1);
  });

  it('that cannot be raised leave the invalidation done: counted and logged as an error', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const first = await w.broker().getToken(CALLER, 'jwt');
    clock.advance(60_000);
    const metrics = new RecordingMetrics();
    const { lines, logger } = recordingLogger();
    const failing = marksWith(w, {
      raise: () => Promise.reject(new StoreUnavailableError('the retired marks failed to raise (ServiceUnavailable)')),
    });
    expect(await w.broker({ marks: failing, metrics, logger }).invalidate(CALLER, 'jwt', first.accessToken)).toBe(true);
    expect((await w.table.store.read('jwt')).token).toBeUndefined();
    expect(metrics.get('RetiredMarkWriteFailures')).toBe(1);
    expect(lines.some((l) => l.level === 'error' && l.message.includes('mark could not be raised'))).toBe(true);
  });

  it('are read once for every connection: one read per instance every 5 minutes, shared by concurrent requests', async () => {
    const clock = new ManualClock(T0);
    world = await startWorld(
      clock,
      (v) => [
        vendorConnectionInput(v, 'jwt', { id: 'jwt', callers: [CALLER], maxTtl: 3600 }),
        vendorConnectionInput(v, 'digitaleo', { id: 'digitaleo', callers: [CALLER], maxTtl: 3600 }),
      ],
      { lifetime: 3600 },
      (v) => ({ 'broker/jwt-test': secretFor(v, 'jwt'), 'broker/digitaleo-test': secretFor(v, 'digitaleo') }),
    );
    const w = world;
    await Promise.all([w.broker().getToken(CALLER, 'jwt'), w.broker().getToken(CALLER, 'digitaleo')]);
    let reads = 0;
    const counting = marksWith(w, { readAll: (call) => (reads++, w.marks.store.readAll(call)) });
    const b = w.broker({ marks: counting, options: { memoryTtlMs: 1 } });
    await Promise.all([b.getToken(CALLER, 'jwt'), b.getToken(CALLER, 'digitaleo'), b.getToken(CALLER, 'jwt')]);
    expect(reads).toBe(1);
    clock.advance(MARK_RECHECK_MS - 1);
    await Promise.all([b.getToken(CALLER, 'jwt'), b.getToken(CALLER, 'digitaleo')]);
    expect(reads).toBe(1);
    clock.advance(1);
    await b.getToken(CALLER, 'digitaleo');
    expect(reads).toBe(2);
  });

  it('older than a data key may be opened are pruned by the next reader, unless raised meanwhile', async () => {
    const clock = new ManualClock(T0);
    const w = await worldOf(clock);
    const old = clock.now() - MARK_KEPT_MS - 1;
    await w.marks.store.raise(markKey('gone'), old);
    await w.marks.store.raise(markKey('kept'), clock.now() - 1_000);
    // The marks are read before a token from the table is trusted (a first mint trusts none).
    await w.broker().getToken(CALLER, 'jwt');
    expect((await w.marks.store.readAll()).size).toBe(2);
    await w.broker().getToken(CALLER, 'jwt');
    const left = await w.marks.store.readAll();
    expect([...left.keys()]).toEqual([markKey('kept')]);
    // A prune that finds a mark raised since it was read leaves it.
    await w.marks.store.raise(markKey('gone'), old);
    await w.marks.store.prune(new Map([[markKey('gone'), old - 1]]));
    expect((await w.marks.store.readAll()).get(markKey('gone'))).toBe(old);
  });
});

/** The core's use of the marks alone, on a port, with the clocks' usual 5 s skew. */
function retirementsOn(port: RetiredMarks, clock: ManualClock, metrics: RecordingMetrics): Retirements {
  const noop = () => undefined;
  return new Retirements(port, { clock, instance: new Instance(clock, 5_000), log: { info: noop, warn: noop, error: noop }, metrics, skewMs: 5_000 });
}

describe("the marks' read within a request", () => {
  it("takes no longer than what is left until the request's answer is due, and with nothing left is refused", async () => {
    const clock = new ManualClock(T0);
    const asked: (number | undefined)[] = [];
    const inner = new MemoryRetiredMarks();
    const port: RetiredMarks = {
      readAll: (call) => (asked.push(call?.timeoutMs), inner.readAll(call)),
      raise: (k, m, call) => inner.raise(k, m, call),
      prune: (m, call) => inner.prune(m, call),
    };
    const metrics = new RecordingMetrics();
    const retired = retirementsOn(port, clock, metrics);
    const health = new TableHealth(clock, BUDGET_DEFAULTS);
    const request = () => new RequestBudget(clock, BUDGET_DEFAULTS, health);
    // 120 ms before the answer is due: the read gets those 120 ms.
    const late = request();
    clock.advance(BUDGET_DEFAULTS.answerByMs - 120);
    await retired.check('jwt', late);
    expect(asked).toEqual([120]);
    clock.advance(MARK_RECHECK_MS);
    await retired.check('jwt', request());
    expect(asked).toEqual([120, MARK_READ_MS]);
    // Past the deadline: asked with no time, which the adapters refuse without a call (checkTimeLeft), a failed read.
    clock.advance(MARK_RECHECK_MS);
    const over = request();
    clock.advance(BUDGET_DEFAULTS.answerByMs);
    await retired.check('jwt', over);
    expect(asked).toEqual([120, MARK_READ_MS, 0]);
    expect(metrics.get('RetiredMarkReadFailures')).toBe(1);
  });

  it('counts in the request budget: a slow read of the marks makes the request slow, as a slow table call does', async () => {
    const clock = new ManualClock(T0);
    const inner = new MemoryRetiredMarks();
    const slow: RetiredMarks = {
      readAll: async (call) => {
        clock.advance(BUDGET_DEFAULTS.slowTableCallMs + 50);
        return inner.readAll(call);
      },
      raise: (k, m, call) => inner.raise(k, m, call),
      prune: (m, call) => inner.prune(m, call),
    };
    const retired = retirementsOn(slow, clock, new RecordingMetrics());
    const budget = new RequestBudget(clock, BUDGET_DEFAULTS, new TableHealth(clock, BUDGET_DEFAULTS));
    await retired.check('jwt', budget);
    expect(budget.tableSlow).toBe(true);
  });
});
