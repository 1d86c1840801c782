import { afterAll, beforeAll } from 'vitest';
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
