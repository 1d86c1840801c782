import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, bench, describe } from 'vitest';
import { makeHandler } from '../functions/http';
import { createLogger, createMetrics } from '../lib/adapters/powertools';
import { createDynamoClient } from '../lib/adapters/dynamodb';
import type { Broker } from '../lib/broker';
import { systemClock } from '../lib/clock';
import { secretFor, vendorConnectionInput } from './support/connections';
import { lambdaContext, restEvent } from './support/events';
import { startWorld, type World } from './support/harness';

// The hot paths, each beside its yardstick (their distributions; npm run bench judges the DynamoDB pair again
// from interleaved rounds and writes the verdicts to BENCHMARKS.md):
//   warm hit in memory through the whole handler  vs  a bare handler answering JSON, without middleware
//   warm hit from DynamoDB (GetItem + decrypt)    vs  one raw GetItem of the same item on the same table

const CALLER = 'arn:aws:iam::111111111111:role/caller';
let world: World;
let handle: ReturnType<typeof makeHandler>;
let tableOnly: Broker;
let rawClient: ReturnType<typeof createDynamoClient>;
const event = restEvent({ method: 'GET', path: '/v1/connections/jwt/token', userArn: CALLER });
const context = lambdaContext();

beforeAll(async () => {
  process.env.POWERTOOLS_LOG_LEVEL = 'WARN';
  world = await startWorld(
    systemClock,
    (v) => [vendorConnectionInput(v, 'jwt', { id: 'jwt' })],
    { lifetime: 86_400 },
    (v) => ({ 'broker/jwt-test': secretFor(v, 'jwt') }),
  );
  handle = makeHandler({ broker: world.broker(), logger: createLogger(), metrics: createMetrics() });
  await handle(event, context);
  tableOnly = world.broker({ options: { memoryTtlMs: 0 } });
  await tableOnly.getToken(CALLER, 'jwt');
  rawClient = createDynamoClient({ endpoint: world.db.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
});

afterAll(() => world.close());

const bare = () => Promise.resolve({ statusCode: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ok: true }) });

describe('warm hit in memory', () => {
  bench('handler: token from memory', async () => {
    await handle(event, context);
  });
  bench('bare handler', async () => {
    await bare();
  });
});

// dynalite shares this process, so each side gets a warm-up and a few seconds to even out its pauses.
const steady = { time: 3_000, warmupTime: 1_000 };

describe('warm hit from DynamoDB', () => {
  bench(
    'one raw GetItem (eventually consistent, as the token path\'s first look)',
    async () => {
      await rawClient.send(new GetItemCommand({ TableName: world.table.name, Key: { pk: { S: 'token#jwt' } }, ConsistentRead: false }));
    },
    steady,
  );
  bench(
    'broker: token from the table (GetItem + decrypt)',
    async () => {
      await tableOnly.getToken(CALLER, 'jwt');
    },
    steady,
  );
});
