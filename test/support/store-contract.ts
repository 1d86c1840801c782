import { describe, expect, it } from 'vitest';
import { CLOCK_SKEW_MS } from '../../lib/clock';
import { StoreUnavailableError } from '../../lib/errors';
import type { LeaseClaim, RecordScan, ServedCounts, StoredToken, TokenStore } from '../../lib/ports';

// The contract every TokenStore keeps, run against each of them (test/stores.test.ts): the DynamoDB store on
// dynalite and the in-memory store. A simulation on the memory store is only worth something if both pass.

const NOW = Date.parse('2026-11-23T10:00:00.000Z');

function token(mintedAt: number, extra: Partial<StoredToken> = {}): StoredToken {
  return {
    connection: 'c',
    ciphertext: new Uint8Array([1, 2, 3, mintedAt % 256]),
    tokenType: 'Bearer',
    expiresAt: mintedAt + 300_000,
    mintedAt,
    lifetime: 300,
    secretVersion: 'v1',
    fingerprint: `fp-${mintedAt}`,
    mintedBy: 'instance-a',
    ...extra,
  };
}

function claim(fence: string, now = NOW, extra: Partial<LeaseClaim> = {}): LeaseClaim {
  return { fence, holder: `holder-of-${fence}`, now, until: now + 15_000, ...extra };
}

export function describeTokenStoreContract(name: string, open: () => Promise<TokenStore>): void {
  describe(`TokenStore contract: ${name}`, () => {
    it('reads an unknown connection as an empty record', async () => {
      const store = await open();
      expect(await store.read('c')).toEqual({});
    });

    it('gives the lease to one of twenty concurrent claims', async () => {
      const store = await open();
      const outcomes = await Promise.all(Array.from({ length: 20 }, (_, i) => store.acquireLease('c', claim(`f${i}`))));
      const winners = outcomes.filter((o) => o.acquired);
      expect(winners).toHaveLength(1);
      const fence = winners[0]!.record.lease?.fence;
      for (const o of outcomes) expect(o.record.lease?.fence).toBe(fence);
      expect((await store.read('c')).lease).toEqual({ fence, holder: `holder-of-${fence}`, until: NOW + 15_000 });
    });

    it('lets another claim take a lease once it has lapsed, and only then', async () => {
      const store = await open();
      expect((await store.acquireLease('c', claim('old'))).acquired).toBe(true);
      expect((await store.acquireLease('c', claim('new', NOW + 15_000))).acquired).toBe(false);
      const later = await store.acquireLease('c', claim('new', NOW + 15_001));
      expect(later.acquired).toBe(true);
      expect(later.record.lease?.fence).toBe('new');
    });

    it('stores a token only under its own lease, and gives the lease back in the same write', async () => {
      const store = await open();
      await store.acquireLease('c', claim('old'));
      await store.acquireLease('c', claim('new', NOW + 20_000));
      // The holder whose lease lapsed: its token, its failure and its release are all refused.
      expect(await store.putToken(token(NOW + 1), 'old')).toBe(false);
      expect(await store.recordFailure('c', 'old', { code: 'vendor_unavailable', at: NOW, coolUntil: NOW + 3_600_000 })).toBe(false);
      expect(await store.releaseLease('c', 'old')).toBe(false);
      expect(await store.read('c')).toEqual({ lease: { fence: 'new', holder: 'holder-of-new', until: NOW + 35_000 } });

      expect(await store.putToken(token(NOW + 20_001), 'new')).toBe(true);
      const record = await store.read('c');
      expect(record.token).toEqual(token(NOW + 20_001));
      expect(record.mintedAt).toBe(NOW + 20_001);
      expect(record.lease).toBeUndefined();
      // The lease is back: storing again with the same fence is refused.
      expect(await store.putToken(token(NOW + 20_002), 'new')).toBe(false);
    });

    it('never stores a token minted before (or at the same time as) the one it holds', async () => {
      const store = await open();
      await store.acquireLease('c', claim('a'));
      expect(await store.putToken(token(NOW + 5_000), 'a')).toBe(true);
      await store.acquireLease('c', claim('b'));
      expect(await store.putToken(token(NOW + 4_000), 'b')).toBe(false);
      expect(await store.putToken(token(NOW + 5_000), 'b')).toBe(false);
      expect((await store.read('c')).token?.mintedAt).toBe(NOW + 5_000);
      expect(await store.putToken(token(NOW + 5_001), 'b')).toBe(true);
    });

    it('does not count a high-water mark beyond the clocks skew (a forged one) against a token', async () => {
      const store = await open();
      await store.acquireLease('c', claim('a'));
      expect(await store.putToken(token(NOW + CLOCK_SKEW_MS), 'a')).toBe(true);
      await store.acquireLease('c', claim('b'));
      // Within the skew: a genuine mark of a clock ahead of this one, which a token must stay above.
      expect(await store.putToken(token(NOW), 'b')).toBe(false);
      // Beyond it: no broker wrote it.
      expect(await store.putToken(token(NOW - 1), 'b')).toBe(true);
      expect((await store.read('c')).mintedAt).toBe(NOW - 1);
    });

    it('keeps the mint time as a high-water mark when a token is deleted', async () => {
      const store = await open();
      await store.acquireLease('c', claim('a'));
      await store.putToken(token(NOW + 5_000), 'a');
      expect(await store.deleteToken('c', { fingerprint: `fp-${NOW + 5_000}` })).toBe(NOW + 5_000);
      const record = await store.read('c');
      expect(record.token).toBeUndefined();
      expect(record.mintedAt).toBe(NOW + 5_000);
      await store.acquireLease('c', claim('b'));
      expect(await store.putToken(token(NOW + 4_000), 'b')).toBe(false);
    });

    it('deletes a token only when it still matches (fingerprint, age, or another secret version), answering its mint time', async () => {
      const store = await open();
      await store.acquireLease('c', claim('a'));
      await store.putToken(token(NOW, { secretVersion: 'v1' }), 'a');
      expect(await store.deleteToken('c', { fingerprint: 'other' })).toBeUndefined();
      expect(await store.deleteToken('c', { fingerprint: `fp-${NOW}`, mintedBefore: NOW })).toBeUndefined();
      expect(await store.deleteToken('c', { notSecretVersion: 'v1' })).toBeUndefined();
      expect((await store.read('c')).token?.mintedAt).toBe(NOW);
      expect(await store.deleteToken('c', { notSecretVersion: 'v2' })).toBe(NOW);
      expect(await store.deleteToken('c', { notSecretVersion: 'v2' })).toBeUndefined();
      expect(await store.deleteToken('c', { fingerprint: `fp-${NOW}` })).toBeUndefined();
    });

    it('records a failure as codes and numbers, and honours its cooldown within the ceiling only', async () => {
      const store = await open();
      await store.acquireLease('c', claim('a'));
      const failure = { code: 'vendor_rejected_credentials', vendorStatus: 401, vendorError: 'invalid_client', at: NOW, coolUntil: NOW + 30_000 };
      expect(await store.recordFailure('c', 'a', failure)).toBe(true);
      expect(await store.read('c')).toEqual({ failure });
      const ceiling = NOW + 300_000;
      const refused = await store.acquireLease('c', claim('b', NOW + 1_000, { cooldownCeiling: ceiling }));
      expect(refused).toEqual({ acquired: false, record: { failure } });
      // Past the cooldown, or past any cooldown (an admin's refresh), the lease is taken.
      expect((await store.acquireLease('c', claim('b', NOW + 30_000, { cooldownCeiling: ceiling }))).acquired).toBe(true);
      await store.releaseLease('c', 'b');
      expect((await store.acquireLease('c', claim('admin', NOW + 1_000))).acquired).toBe(true);
    });

    it('ignores a cooldown that ends beyond the ceiling (no broker records one that long)', async () => {
      const store = await open();
      await store.acquireLease('c', claim('a'));
      await store.recordFailure('c', 'a', { code: 'vendor_unavailable', at: NOW, coolUntil: NOW + 86_400_000 });
      expect((await store.acquireLease('c', claim('b', NOW + 1_000, { cooldownCeiling: NOW + 301_000 }))).acquired).toBe(true);
    });

    it('records a failure without a cooldown, and clears the cooldown (not the failure) when a token is stored', async () => {
      const store = await open();
      await store.acquireLease('c', claim('a'));
      await store.recordFailure('c', 'a', { code: 'misconfigured', at: NOW });
      expect((await store.read('c')).failure).toEqual({ code: 'misconfigured', at: NOW });
      await store.acquireLease('c', claim('b', NOW, { cooldownCeiling: NOW + 300_000 }));
      await store.recordFailure('c', 'b', { code: 'vendor_unavailable', vendorStatus: 503, at: NOW + 1, coolUntil: NOW + 30_000 });
      await store.acquireLease('c', claim('admin', NOW + 2));
      expect(await store.putToken(token(NOW + 3), 'admin')).toBe(true);
      const record = await store.read('c');
      expect(record.failure).toEqual({ code: 'vendor_unavailable', vendorStatus: 503, at: NOW + 1 });
      expect(record.token?.mintedAt).toBe(NOW + 3);
    });

    it('releases a lease only for its own fence', async () => {
      const store = await open();
      await store.acquireLease('c', claim('a'));
      expect(await store.releaseLease('c', 'b')).toBe(false);
      expect((await store.read('c')).lease?.fence).toBe('a');
      expect(await store.releaseLease('c', 'a')).toBe(true);
      expect(await store.read('c')).toEqual({});
    });

    it('honours a call deadline: with time left the call is made; with none it is refused as unavailable and changes nothing', async () => {
      const store = await open();
      const some = { timeoutMs: 30_000 };
      const none = { timeoutMs: 0 };
      expect((await store.acquireLease('c', claim('a'), some)).acquired).toBe(true);
      expect(await store.putToken(token(NOW), 'a', some)).toBe(true);
      const before = await store.read('c', some);
      await store.acquireLease('c', claim('b', NOW + 1), some);
      const refused = [
        store.read('c', none),
        store.acquireLease('c', claim('x', NOW + 60_000), none),
        store.putToken(token(NOW + 2), 'b', { timeoutMs: -5 }),
        store.recordFailure('c', 'b', { code: 'vendor_unavailable', at: NOW, coolUntil: NOW + 30_000 }, none),
        store.releaseLease('c', 'b', none),
        store.deleteToken('c', { fingerprint: `fp-${NOW}` }, none),
      ];
      for (const call of refused) await expect(call).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(await store.read('c')).toEqual({ ...before, lease: { fence: 'b', holder: 'holder-of-b', until: NOW + 15_001 } });
    });

    it('keeps connections apart', async () => {
      const store = await open();
      await store.acquireLease('c', claim('a'));
      await store.putToken(token(NOW), 'a');
      expect(await store.read('d')).toEqual({});
      expect((await store.acquireLease('d', claim('b'))).acquired).toBe(true);
      expect(await store.putToken(token(NOW, { connection: 'd' }), 'a')).toBe(false);
    });
  });
}

/** What the console (issue 21) adds to a store: every record in one scan, and the requests served by hour. */
export function describeConsoleStoreContract(name: string, open: () => Promise<TokenStore & RecordScan & ServedCounts>): void {
  describe(`console store contract: ${name}`, () => {
    it('scans every record, in any number of segments, without the ciphertext', async () => {
      const store = await open();
      const ids = Array.from({ length: 30 }, (_, i) => `c${i}`);
      for (const id of ids) {
        await store.acquireLease(id, claim(`f-${id}`));
        await store.putToken(token(NOW, { connection: id, fingerprint: `fp-${id}` }), `f-${id}`);
      }
      await store.acquireLease('c0', claim('again', NOW + 20_000));
      await store.recordFailure('c0', 'again', { code: 'vendor_timeout', at: NOW + 20_000, coolUntil: NOW + 50_000 });
      for (const segments of [1, 7]) {
        const scanned = await store.scanRecords({ segments });
        expect(scanned.map((r) => r.connection).sort()).toEqual([...ids].sort());
        const c0 = scanned.find((r) => r.connection === 'c0')!;
        expect(c0.failure).toEqual({ code: 'vendor_timeout', at: NOW + 20_000, coolUntil: NOW + 50_000 });
        expect(c0.token).toEqual({ ...token(NOW, { connection: 'c0', fingerprint: 'fp-c0' }), ciphertext: undefined });
        expect(scanned.every((r) => r.token !== undefined && !('ciphertext' in r.token))).toBe(true);
      }
    });

    it('adds requests served to their hour, keeps the hour before, drops older ones', async () => {
      const store = await open();
      const hour = 493_000;
      await store.addServed('c', hour - 3, 9);
      await store.addServed('c', hour - 1, 4);
      await store.addServed('c', hour, 5);
      await store.addServed('c', hour, 2);
      const [c] = await store.scanRecords({ servedHours: [hour - 3, hour - 1, hour] });
      expect(c!.served).toEqual([
        { hour: hour - 1, count: 4 },
        { hour, count: 7 },
      ]);
      expect(c!.token).toBeUndefined();
      expect((await store.scanRecords({ servedHours: [hour] }))[0]!.served).toEqual([{ hour, count: 7 }]);
      expect((await store.scanRecords())[0]!.served).toEqual([]);
      // A record with counts alone reads as no token, no lease, no failure.
      expect(await store.read('c')).toEqual({});
    });

    it('refuses a scan with no time left', async () => {
      const store = await open();
      await expect(store.scanRecords({ call: { timeoutMs: 0 } })).rejects.toBeInstanceOf(StoreUnavailableError);
    });
  });
}
