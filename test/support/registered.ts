import { createLogger, createMetrics, loggerPort } from '../../lib/adapters/powertools';
import { DynamoConnectionRegistry } from '../../lib/adapters/connections-table';
import { UNHURRIED_BUDGET } from '../../lib/adapters/aws';
import { createDynamoClient } from '../../lib/adapters/dynamodb';
import type { BrokerOptions } from '../../lib/broker';
import type { Clock } from '../../lib/clock';
import type { BrokerConfig } from '../../lib/config';
import { wireConnections, type SecretRule } from '../../lib/connection-changes';
import type { CatalogOptions } from '../../lib/connections';
import type { ConnectionRegistry, Logger, Metrics, TokenStore } from '../../lib/ports';
import { makeHandler } from '../../functions/http';
import { lambdaContext, restEvent } from './events';
import type { World } from './harness';

// One broker instance with both connection sources over a world's table, behind the Lambda HTTP handler: what the
// route tests and the model of two instances send REST proxy events to.

export const TEST_ACCOUNT = '111111111111';
export const ADMIN_ARN = `arn:aws:iam::${TEST_ACCOUNT}:role/platform-admin`;
export const CALLER_ARN = `arn:aws:iam::${TEST_ACCOUNT}:role/caller`;

export function registryOn(world: World): ConnectionRegistry {
  const client = createDynamoClient({ endpoint: world.db.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }, UNHURRIED_BUDGET);
  return new DynamoConnectionRegistry(client, world.table.name, UNHURRIED_BUDGET.totalMs);
}

export interface InstanceOptions {
  clock: Clock;
  rule: SecretRule;
  registry?: ConnectionRegistry;
  store?: TokenStore;
  file?: BrokerConfig;
  catalog?: Partial<Omit<CatalogOptions, 'parse'>>;
  options?: Partial<BrokerOptions>;
  logger?: Logger;
  metrics?: Metrics;
}

export type Answer = { statusCode: number; headers: Record<string, string>; json: Record<string, unknown> };

export function brokerInstance(world: World, o: InstanceOptions) {
  const file = o.file ?? { ...world.config, admins: [ADMIN_ARN] };
  const store = o.store ?? world.table.store;
  const logger = createLogger();
  const wired = wireConnections({
    file,
    registry: o.registry ?? registryOn(world),
    clock: o.clock,
    rule: o.rule,
    parse: { allowLoopbackHttp: true },
    ...(o.catalog ? { catalog: o.catalog } : {}),
    logger: o.logger ?? loggerPort(logger),
    ...(o.metrics ? { metrics: o.metrics } : {}),
  });
  const broker = world.broker({ clock: o.clock, store, config: file, connections: wired.catalog, ...(o.options ? { options: o.options } : {}) });
  const changes = wired.changes(broker);
  const handle = makeHandler({ broker, logger, metrics: createMetrics(), connections: { catalog: wired.catalog, changes } });
  const call = async (opts: Parameters<typeof restEvent>[0]): Promise<Answer> => {
    // The model-based runs send many requests through dynalite on 2 loaded cores: the function's early timeout
    // (proven in test/functions/) must not fire on load here, so the invocation has a minute.
    const res = await handle(restEvent(opts), { ...lambdaContext(), getRemainingTimeInMillis: () => 60_000 });
    return { statusCode: res.statusCode, headers: (res.headers ?? {}) as Record<string, string>, json: res.body ? (JSON.parse(res.body) as Record<string, unknown>) : {} };
  };
  return { broker, catalog: wired.catalog, changes, call };
}
