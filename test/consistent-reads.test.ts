import { afterEach, describe, expect, it } from 'vitest';
import { MemoryTokenStore } from '../lib/adapters/memory-store';
import { ManualClock } from '../lib/clock';
import type { ReadOptions, TokenStore } from '../lib/ports';
import { NO_SHARED_MARKS } from '../lib/retired';
import { secretFor, vendorConnectionInput } from './support/connections';
import { startWorld, type World } from './support/harness';

// The token path's first look at the table is eventually consistent (half DynamoDB's price); everything that decides
// a mint reads consistently (docs/token-lifecycle.md, "Eventually consistent first looks").

const CALLER = 'arn:aws:iam::111111111111:role/caller';
const INVALIDATOR = 'arn:aws:iam::111111111111:role/invalidator';
const ADMIN = 'arn:aws:iam::111111111111:role/admin';

let world: World | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

async function startJwtWorld(clock: ManualClock, lifetime = 3600) {
  world = await startWorld(
    clock,
    (v) => [vendorConnectionInput(v, 'jwt', { id: 'jwt', callers: [CALLER, INVALIDATOR] })],
    { lifetime },
    (v) => ({ 'broker/jwt-test': secretFor(v, 'jwt') }),
  );
  return world;
}

type Call = { method: string; consistent?: boolean };

/** The store, with every call it gets written down: the method, and for a read whether it was asked consistent. */
function recording(inner: TokenStore): { store: TokenStore; calls: Call[] } {
  const calls: Call[] = [];
  const store = new Proxy(inner, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop, target);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        const method = String(prop);
        calls.push(method === 'read' ? { method, consistent: (args[1] as ReadOptions | undefined)?.consistent ?? true } : { method });
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store, calls };
}

describe('consistency of the token path reads', () => {
  it('a memory miss served from the table reads it once, eventually consistent', async () => {
    const clock = new ManualClock('2026-11-23T10:00:00.000Z', true);
    const w = await startJwtWorld(clock);
    await w.broker().getToken(CALLER, 'jwt');
    const { store, calls } = recording(w.table.store);
    const served = await w.broker({ store }).getToken(CALLER, 'jwt');
    expect(served.source).toBe('table');
    expect(calls).toEqual([{ method: 'read', consistent: false }]);
  });

  it('no token that will do: the lease (which returns the item as it is) follows at once, as many table calls as before', async () => {
    const clock = new ManualClock('2026-11-23T10:00:00.000Z', true);
    const w = await startJwtWorld(clock);
    const { store, calls } = recording(w.table.store);
    const served = await w.broker({ store }).getToken(CALLER, 'jwt');
    expect(served.source).toBe('vendor');
    expect(calls).toEqual([{ method: 'read', consistent: false }, { method: 'acquireLease' }, { method: 'putToken' }]);
    expect(w.vendor.received()).toBe(1);
  });

  it('the other readers (invalidation, status) stay strongly consistent', async () => {
    const clock = new ManualClock('2026-11-23T10:00:00.000Z', true);
    const w = await startJwtWorld(clock);
    const minted = await w.broker().getToken(CALLER, 'jwt');
    clock.advance(60_000);
    const { store, calls } = recording(w.table.store);
    await w.broker({ store }).invalidate(INVALIDATOR, 'jwt', minted.accessToken);
    const reads = calls.filter((c) => c.method === 'read');
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.every((c) => c.consistent)).toBe(true);
  });
});

describe('a replica a second behind (eventually consistent reads answer the record as it was 1 s ago)', () => {
  async function lagging(lifetime = 3600) {
    const clock = new ManualClock('2026-11-23T10:00:00.000Z', true);
    const w = await startJwtWorld(clock, lifetime);
    const table = new MemoryTokenStore({ clock, ms: 1_000 });
    return { clock, w, table };
  }

  it('never makes an extra mint: the stale view (no token) is read again consistently, and the stored token served', async () => {
    const { w, table } = await lagging();
    const first = await w.broker({ store: table }).getToken(CALLER, 'jwt');
    expect(w.vendor.received()).toBe(1);
    // Within the second: the eventually consistent read still shows no token.
    expect((await table.read('jwt', { consistent: false })).token).toBeUndefined();
    const { store, calls } = recording(table);
    const second = await w.broker({ store }).getToken(CALLER, 'jwt');
    expect(second.source).toBe('table');
    expect(second.fingerprint).toBe(first.fingerprint);
    expect(w.vendor.received()).toBe(1);
    // The lease answered the item as it is: the stored token, and the lease given back unused.
    expect(calls.map((c) => c.method)).toEqual(['read', 'acquireLease', 'releaseLease']);
    expect((await table.read('jwt')).lease).toBeUndefined();
  });

  it('an expired token on the stale view, at a prompt table: read again consistently, the token just stored served, no lease taken', async () => {
    const { clock, w, table } = await lagging(300);
    await w.broker({ store: table }).getToken(CALLER, 'jwt');
    clock.advance(300_000);
    const refreshed = await w.broker({ store: table }).getToken(CALLER, 'jwt');
    expect(w.vendor.received()).toBe(2);
    clock.advance(500);
    const { store, calls } = recording(table);
    const served = await w.broker({ store }).getToken(CALLER, 'jwt');
    expect(served).toMatchObject({ source: 'table', fingerprint: refreshed.fingerprint });
    expect(calls).toEqual([{ method: 'read', consistent: false }, { method: 'read', consistent: true }]);
    expect(w.vendor.received()).toBe(2);
  });

  it('never refuses on the stale view: a token too young to replace is looked at again, consistently, and the newer one served', async () => {
    const { clock, w, table } = await lagging(300);
    const config = { ...w.config, admins: [ADMIN] };
    await w.broker({ store: table, config }).getToken(CALLER, 'jwt');
    clock.advance(3_000);
    // An admin's refresh (not bound by the forced-mint interval) replaces it 3 s later; a replica still shows the first.
    await w.broker({ store: table, config }).refresh(ADMIN, 'jwt');
    const newest = (await table.read('jwt')).token!;
    clock.advance(500);
    // 288 s (plus the 10 s margin): the first token does not cover it and is too young to replace; the newer one does.
    // Without the retired marks (which refuse the first token outright, below), the second, consistent read decides.
    const { store, calls } = recording(table);
    const served = await w.broker({ store, config, marks: NO_SHARED_MARKS }).getToken(CALLER, 'jwt', 288);
    expect(served.fingerprint).toBe(newest.fingerprint);
    expect(calls).toEqual([{ method: 'read', consistent: false }, { method: 'read', consistent: true }]);
    expect(w.vendor.received()).toBe(2);
    // With them, the refresh retired the first token: refused on sight, the lease's take returns the newer one.
    const marked = recording(table);
    const again = await w.broker({ store: marked.store, config }).getToken(CALLER, 'jwt', 288);
    expect(again.fingerprint).toBe(newest.fingerprint);
    expect(marked.calls.map((c) => c.method)).toEqual(['read', 'acquireLease', 'releaseLease']);
    expect(w.vendor.received()).toBe(2);
  });

  it('never makes an extra mint when many instances read the stale view at once', async () => {
    const { w, table } = await lagging();
    const first = await w.broker({ store: table }).getToken(CALLER, 'jwt');
    const served = await Promise.all(Array.from({ length: 8 }, () => w.broker({ store: table }).getToken(CALLER, 'jwt')));
    expect(new Set(served.map((s) => s.fingerprint))).toEqual(new Set([first.fingerprint]));
    expect(w.vendor.received()).toBe(1);
  });

  it('may serve a token invalidated less than a second ago (the documented window) where the marks were read before; not once the second has passed', async () => {
    const { clock, w, table } = await lagging();
    const first = await w.broker({ store: table }).getToken(CALLER, 'jwt');
    // An instance that has read the marks (serving the token from the table), and keeps its copy 1 ms only.
    const warm = w.broker({ store: table, options: { memoryTtlMs: 1 } });
    clock.advance(2_000);
    expect((await warm.getToken(CALLER, 'jwt')).source).toBe('table');
    clock.advance(60_000);
    expect(await w.broker({ store: table }).invalidate(INVALIDATOR, 'jwt', first.accessToken)).toBe(true);
    const within = await warm.getToken(CALLER, 'jwt');
    expect(within.fingerprint).toBe(first.fingerprint);
    expect(w.vendor.received()).toBe(1);
    // An instance that reads the marks after the invalidation refuses it at once, stale view or not.
    const fresh = await w.broker({ store: table }).getToken(CALLER, 'jwt');
    expect(fresh.fingerprint).not.toBe(first.fingerprint);
    expect(w.vendor.received()).toBe(2);
    clock.advance(1_001);
    const after = await warm.getToken(CALLER, 'jwt');
    expect(after.fingerprint).toBe(fresh.fingerprint);
    expect(w.vendor.received()).toBe(2);
  });
});
