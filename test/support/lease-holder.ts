// A broker instance in its own process, to be killed with SIGKILL while it holds the mint lease (faults.test.ts).
import { UNHURRIED_BUDGET } from '../../lib/adapters/aws';
import { UNHURRIED_REQUEST_BUDGET } from '../../lib/budget';
import { DynamoTokenStore, createDynamoClient } from '../../lib/adapters/dynamodb';
import { createBroker } from '../../lib/compose';
import { parseConfig } from '../../lib/config';
import { LocalKeyRing } from '../../lib/crypto';

const env = (name: string) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};

const config = parseConfig(
  { connections: [{ id: 'jwt', dialect: 'oauth2', tokenUrl: env('TOKEN_URL'), secretId: 's', callers: ['arn:aws:iam::111111111111:role/caller'] }] },
  { allowLoopbackHttp: true },
);
const broker = createBroker({
  config,
  store: new DynamoTokenStore(
    // It must hold the lease in the table, however loaded the machine (a timeout would make it degrade instead).
    createDynamoClient({ endpoint: env('DYNAMO_ENDPOINT'), region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }, UNHURRIED_BUDGET),
    env('TABLE'),
    UNHURRIED_BUDGET.totalMs,
  ),
  secrets: { getSecret: () => Promise.resolve({ value: { client_id: env('CLIENT_ID'), client_secret: env('CLIENT_SECRET') }, versionId: 'v1' }) },
  keyRing: new LocalKeyRing(),
  options: { ...UNHURRIED_REQUEST_BUDGET, leaseMs: Number(env('LEASE_MS')), exchange: { deadlineMs: 60_000, retries: 0 } },
});
await broker.getToken('arn:aws:iam::111111111111:role/caller', 'jwt').catch(() => undefined);
