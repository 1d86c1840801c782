import { DynamoTokenStore, createDynamoClient } from '../lib/adapters/dynamodb';
import { KmsKeyRing } from '../lib/adapters/kms';
import { SecretsManagerSource } from '../lib/adapters/secrets-manager';
import { Broker } from '../lib/broker';
import { systemClock } from '../lib/clock';
import { loadConfig } from '../lib/config';
import { TokenCipher } from '../lib/crypto';
import { ConfigurationError } from '../lib/errors';
import { nodeHttpClient } from '../lib/http';
import { CachedSecretSource } from '../lib/secrets';
import { createLogger, createMetrics, loggerPort, metricsPort } from './observability';

// How the functions are wired in AWS: the config file bundled with the function, the table and key from the
// environment the CDK stack sets, the SDK clients with their timeouts. Built once per Lambda instance.

function required(name: string): string {
  const v = process.env[name];
  if (!v) throw new ConfigurationError(`the environment variable ${name} is not set`);
  return v;
}

export function lambdaRuntime() {
  const logger = createLogger();
  const metrics = createMetrics();
  const config = loadConfig(process.env.BROKER_CONFIG ?? 'broker.config.json');
  const broker = new Broker({
    config,
    store: new DynamoTokenStore(createDynamoClient(), required('BROKER_TABLE')),
    // Secrets Manager and KMS load their SDK modules on first use: only the slow path needs them.
    secrets: new CachedSecretSource(new SecretsManagerSource(), systemClock),
    cipher: new TokenCipher(new KmsKeyRing(required('BROKER_KEY_ID')), systemClock),
    clock: systemClock,
    http: nodeHttpClient,
    logger: loggerPort(logger),
    metrics: metricsPort(metrics),
  });
  return { broker, logger, metrics, config };
}
