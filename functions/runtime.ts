import { DynamoConnectionRegistry } from '../lib/adapters/connections-table';
import { DynamoTokenStore, createDynamoClient } from '../lib/adapters/dynamodb';
import { DynamoRetiredMarks } from '../lib/adapters/dynamodb-marks';
import { KmsKeyRing } from '../lib/adapters/kms';
import { createLogger, createMetrics, loggerPort, metricsPort } from '../lib/adapters/powertools';
import { SecretsManagerSource } from '../lib/adapters/secrets-manager';
import { systemClock } from '../lib/clock';
import { createBroker } from '../lib/compose';
import { loadConfig } from '../lib/config';
import { wireConnections } from '../lib/connection-changes';
import { BUNDLED_CONFIG_FILE, ENV, type MetricName } from '../lib/contract';
import { ConfigurationError } from '../lib/errors';
import { awsGrantFromEnv, awsSecretRule } from '../lib/secret-rules';
import { CachedSecretSource } from '../lib/secrets';

// How the functions are wired in AWS: the config file bundled with the function, the table and key from the
// environment the CDK stack sets, the SDK clients with their timeouts. Built once per Lambda instance.

function required(name: string): string {
  const v = process.env[name];
  if (!v) throw new ConfigurationError(`the environment variable ${name} is not set`);
  return v;
}

export interface RuntimeOptions {
  /** Metrics the stack counts from this function's log lines (a metric filter): the function does not emit them. */
  metricsFromLogs?: readonly MetricName[];
}

export function lambdaRuntime(options: RuntimeOptions = {}) {
  const logger = createLogger();
  const metrics = createMetrics();
  const config = loadConfig(process.env[ENV.config] ?? BUNDLED_CONFIG_FILE);
  const table = required(ENV.table);
  const dynamo = createDynamoClient();
  const store = new DynamoTokenStore(dynamo, table);
  const log = loggerPort(logger);
  const metered = metricsPort(metrics, { countedFromLogs: options.metricsFromLogs ?? [] });
  // Connections come from the bundled file and from the table (registered by admins through the API).
  const wired = wireConnections({
    file: config,
    registry: new DynamoConnectionRegistry(dynamo, table),
    clock: systemClock,
    rule: awsSecretRule(awsGrantFromEnv()),
    logger: log,
    metrics: metered,
  });
  // Secrets Manager and KMS load their SDK modules on first use: only the slow path needs them.
  // Cached once and shared: what the pre-warm run's batch read finds serves the broker's mints that follow.
  const secrets = new CachedSecretSource(new SecretsManagerSource(), systemClock);
  const broker = createBroker({
    config,
    connections: wired.catalog,
    store,
    marks: new DynamoRetiredMarks(dynamo, required(ENV.marksTable)),
    secrets,
    keyRing: new KmsKeyRing(required(ENV.keyId)),
    logger: log,
    metrics: metered,
    // Nothing runs after a Lambda function answers: a refresh happens inside the request that draws it.
    options: { refreshAhead: 'in-request' },
  });
  const connections = { catalog: wired.catalog, changes: wired.changes(broker) };
  return { broker, logger, metrics, config, store, secrets, connections };
}
