import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoTokenStore } from '../lib/adapters/dynamodb';
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

describe('DynamoDB: how consistent a read is asked', () => {
  it('sends ConsistentRead false only when the read asks for eventual consistency, true otherwise', async () => {
    const { name } = await startTable(db);
    const client = new DynamoDBClient({ endpoint: db.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
    const sent: unknown[] = [];
    // The request as it leaves for dynalite: its JSON body, after the SDK built it.
    client.middlewareStack.add(
      (next) => async (args) => {
        const body = (args.request as { body?: unknown }).body;
        const text = typeof body === 'string' ? body : body instanceof Uint8Array ? Buffer.from(body).toString() : undefined;
        sent.push(text === undefined ? typeof body : (JSON.parse(text) as { ConsistentRead?: unknown }).ConsistentRead);
        return next(args);
      },
      { step: 'finalizeRequest' },
    );
    const store = new DynamoTokenStore(client, name);
    // dynalite answers both kinds (an empty record here), as DynamoDB does.
    expect(await store.read('c', { consistent: false })).toEqual({});
    await store.read('c', { consistent: true });
    await store.read('c');
    client.destroy();
    expect(sent).toEqual([false, true, true]);
  });
});
