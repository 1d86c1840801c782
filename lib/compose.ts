import { Broker, type BrokerOptions } from './broker';
import { systemClock, type Clock } from './clock';
import type { BrokerConfig } from './config';
import { TokenCipher } from './crypto';
import { nodeHttpClient, type HttpClient } from './http';
import type { ConnectionCatalog, KeyRing, Logger, Metrics, RetiredMarks, SecretSource, TokenStore } from './ports';
import { CachedSecretSource } from './secrets';

// The one place a broker is wired from its parts: the Lambda runtime (functions/runtime.ts), the local server
// (lib/local/app.ts) and the tests (test/support/harness.ts) each name only what differs between them (the
// table, the secrets, the key ring, how refresh ahead runs); the secret cache and the token cipher are built here.

export interface BrokerParts {
  config: BrokerConfig;
  /** Where connections are looked up (authorization, admin routes): the config's file when absent. */
  connections?: ConnectionCatalog;
  store: TokenStore;
  /**
   * The retired marks: a table the token table's writers cannot write (the Lambda runtime's, the local server's).
   * Absent, only this instance remembers what it retired (tests of other behaviour).
   */
  marks?: RetiredMarks;
  /** Where the vendor credentials come from; read through a per-instance cache (lib/secrets.ts: up to four hours). */
  secrets: SecretSource;
  /** KMS in AWS, a local key otherwise: the data keys of the token cipher. */
  keyRing: KeyRing;
  clock?: Clock;
  http?: HttpClient;
  metrics?: Metrics;
  logger?: Logger;
  random?: () => number;
  /** Names this instance in leases and on the tokens it mints. */
  instanceId?: string;
  options?: Partial<BrokerOptions>;
}

export function createBroker(parts: BrokerParts): Broker {
  const clock = parts.clock ?? systemClock;
  return new Broker({
    config: parts.config,
    ...(parts.connections ? { connections: parts.connections } : {}),
    store: parts.store,
    ...(parts.marks ? { marks: parts.marks } : {}),
    // A source already cached (the Lambda runtime shares it with the pre-warm run's batch read) is not cached twice.
    secrets: parts.secrets instanceof CachedSecretSource ? parts.secrets : new CachedSecretSource(parts.secrets, clock),
    cipher: new TokenCipher(parts.keyRing, clock),
    clock,
    http: parts.http ?? nodeHttpClient,
    ...(parts.metrics ? { metrics: parts.metrics } : {}),
    ...(parts.logger ? { logger: parts.logger } : {}),
    ...(parts.random ? { random: parts.random } : {}),
    ...(parts.instanceId ? { instanceId: parts.instanceId } : {}),
    ...(parts.options ? { options: parts.options } : {}),
  });
}
