import { DeleteCommand, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, bench, describe } from 'vitest';
import type { Broker } from '../lib/broker';
import { systemClock } from '../lib/clock';
import { secretFor, vendorConnectionInput } from './support/connections';
import { startWorld, type World } from './support/harness';

// npm run bench -- test/broker.bench.ts
// In-process hit, table hit (read + decrypt) beside one raw GetItem on the same dynalite table, and the stampede.

const CALLER = 'arn:aws:iam::111111111111:role/caller';
let world: World;
let warm: Broker;
let tableOnly: Broker;
const stampede = { runs: 0, exchanges: 0 };

beforeAll(async () => {
  world = await startWorld(
    systemClock,
    (v) => [vendorConnectionInput(v, 'jwt', { id: 'jwt' }), vendorConnectionInput(v, 'digitaleo', { id: 'stampede' })],
    { lifetime: 86_400 },
    (v) => ({ 'broker/jwt-test': secretFor(v, 'jwt'), 'broker/digitaleo-test': secretFor(v, 'digitaleo') }),
  );
  warm = world.broker();
  await warm.getToken(CALLER, 'jwt');
  tableOnly = world.broker({ options: { memoryTtlMs: 0 } });
  await tableOnly.getToken(CALLER, 'jwt');
});

afterAll(async () => {
  console.log(`stampede: ${stampede.exchanges} exchanges over ${stampede.runs} runs of 500 cold calls on 20 instances`);
  await world.close();
});

describe('warm hits', () => {
  bench('in-process hit (getToken)', async () => {
    await warm.getToken(CALLER, 'jwt');
  });
  bench('table hit (getToken: GetItem + decrypt)', async () => {
    await tableOnly.getToken(CALLER, 'jwt');
  });
  bench('one raw GetItem on the same table', async () => {
    await world.table.doc.send(new GetCommand({ TableName: world.table.name, Key: { pk: 'token#jwt' }, ConsistentRead: true }));
  });
});

describe('stampede', () => {
  bench(
    '500 cold calls over 20 instances',
    async () => {
      await world.table.doc.send(new DeleteCommand({ TableName: world.table.name, Key: { pk: 'token#stampede' } }));
      const before = world.vendor.exchanges('digitaleo');
      const brokers = Array.from({ length: 20 }, () => world.broker());
      await Promise.all(Array.from({ length: 500 }, (_, i) => brokers[i % 20]!.getToken(CALLER, 'stampede')));
      stampede.runs += 1;
      stampede.exchanges += world.vendor.exchanges('digitaleo') - before;
    },
    { iterations: 10, time: 0 },
  );
});
