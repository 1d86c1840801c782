import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreUnavailableError, VendorProtocolError } from '../lib/errors';
import { MemoryTokenStore } from '../lib/adapters/memory-store';
import { startDynalite, type RunningDynalite } from '../lib/local/dynalite';
import { startTable } from './support/harness';
import { describeConsoleStoreContract, describeTokenStoreContract } from './support/store-contract';

let db: RunningDynalite;
beforeAll(async () => {
  db = await startDynalite();
});
afterAll(async () => {
  await db?.close();
});

describeTokenStoreContract('DynamoDB (dynalite)', async () => (await startTable(db)).store);
describeTokenStoreContract('in memory', () => Promise.resolve(new MemoryTokenStore()));
describeConsoleStoreContract('DynamoDB (dynalite)', async () => (await startTable(db)).store);
describeConsoleStoreContract('in memory', () => Promise.resolve(new MemoryTokenStore()));

describe('DynamoDB: an item over 400 KB', () => {
  it("is refused as the token's fault (vendor_protocol_error), not as a table that is down", async () => {
    const { store } = await startTable(db);
    const now = Date.parse('2026-11-23T10:00:00.000Z');
    await store.acquireLease('c', { fence: 'f', holder: 'h', now, until: now + 15_000 });
    const token = {
      connection: 'c', ciphertext: new Uint8Array(450_000), tokenType: 'Bearer', expiresAt: now + 300_000, mintedAt: now,
      lifetime: 300, secretVersion: 'v1', fingerprint: 'fp', mintedBy: 'i',
    };
    const err = await store.putToken(token, 'f').then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(VendorProtocolError);
    expect(err).not.toBeInstanceOf(StoreUnavailableError);
  });
});
