import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { UNHURRIED_BUDGET } from '../../lib/adapters/aws';
import { UNHURRIED_REQUEST_BUDGET } from '../../lib/budget';
import { DynamoTokenStore, createDynamoClient } from '../../lib/adapters/dynamodb';
import { ensureTable } from '../../lib/adapters/dynamodb-setup';
import { DynamoRetiredMarks } from '../../lib/adapters/dynamodb-marks';
import { FileSecretSource } from '../../lib/adapters/file-secrets';
import type { Broker, BrokerOptions } from '../../lib/broker';
import type { Clock } from '../../lib/clock';
import { parseConfig, type BrokerConfig, type ConnectionInput } from '../../lib/config';
import { createBroker } from '../../lib/compose';
import { LocalKeyRing } from '../../lib/crypto';
import { nodeHttpClient, type HttpClient } from '../../lib/http';
import { startDynalite, type RunningDynalite } from '../../lib/local/dynalite';
import { SandboxVendor, type SandboxOptions } from '../../lib/local/sandbox-vendor';
import type { ConnectionCatalog, KeyRing, Logger, Metrics, RetiredMarks, TokenStore } from '../../lib/ports';
import { registerSecretValue } from './secrets-registry';

/** Metrics that remember what was counted, for assertions. */
export class RecordingMetrics implements Metrics {
  readonly counts = new Map<string, number>();
  readonly timings: { name: string; ms: number }[] = [];
  count(name: string, value = 1, dimensions?: Record<string, string>) {
    const key = dimensions ? `${name}{${Object.entries(dimensions).map(([k, v]) => `${k}=${v}`).join(',')}}` : name;
    this.counts.set(key, (this.counts.get(key) ?? 0) + value);
  }
  timing(name: string, ms: number) {
    this.timings.push({ name, ms });
  }
  get(key: string) {
    return this.counts.get(key) ?? 0;
  }
}

const LOCAL_CREDS = { accessKeyId: 'local', secretAccessKey: 'local' };

/** One dynalite server per test file; each test gets its own table on it. */
export async function startTable(db: RunningDynalite, name = `t${Math.random().toString(36).slice(2, 10)}`) {
  const raw = new DynamoDBClient({ endpoint: db.endpoint, region: 'us-east-1', credentials: LOCAL_CREDS });
  await ensureTable(raw, name);
  raw.destroy();
  // The tests of behaviour share 2 loaded cores with an in-process dynalite: slowness there is not an outage
  // (test/adapters/deadlines.test.ts proves the production deadlines).
  const client = createDynamoClient({ endpoint: db.endpoint, region: 'us-east-1', credentials: LOCAL_CREDS }, UNHURRIED_BUDGET);
  // The tests read and tamper with items through the document client; the broker uses the low-level one.
  return { name, doc: DynamoDBDocumentClient.from(client), store: new DynamoTokenStore(client, name, UNHURRIED_BUDGET.totalMs) };
}

/** The retired marks' table on the same dynalite. */
export async function startMarks(db: RunningDynalite, name: string): Promise<{ name: string; store: RetiredMarks }> {
  const raw = new DynamoDBClient({ endpoint: db.endpoint, region: 'us-east-1', credentials: LOCAL_CREDS });
  await ensureTable(raw, name);
  raw.destroy();
  const client = createDynamoClient({ endpoint: db.endpoint, region: 'us-east-1', credentials: LOCAL_CREDS }, UNHURRIED_BUDGET);
  return { name, store: new DynamoRetiredMarks(client, name, UNHURRIED_BUDGET.totalMs) };
}

export interface World {
  db: RunningDynalite;
  vendor: SandboxVendor;
  table: { name: string; doc: DynamoDBDocumentClient; store: TokenStore };
  /** The retired marks, in a table of their own (as in AWS), shared by every broker of the world. */
  marks: { name: string; store: RetiredMarks };
  config: BrokerConfig;
  secretsPath: string;
  keyRing: LocalKeyRing;
  writeSecrets(secrets: Record<string, unknown>): void;
  broker(opts?: {
    clock?: Clock;
    options?: Partial<BrokerOptions>;
    metrics?: Metrics;
    logger?: Logger;
    random?: () => number;
    store?: TokenStore;
    /** The retired marks (default: the world's table of them). */
    marks?: RetiredMarks;
    config?: BrokerConfig;
    /** Where connections are looked up (default: the config's). */
    connections?: ConnectionCatalog;
    /** The vendor calls' client (default: the real one). */
    http?: HttpClient;
    /** KMS (default: the world's local key ring). */
    keyRing?: KeyRing;
  }): Broker;
  close(): Promise<void>;
}

/**
 * A table on a real dynalite, a sandbox vendor on loopback, a secrets file, and as many brokers as a test wants:
 * separate objects with separate in-process caches, sharing the one table, as Lambda instances would.
 */
export async function startWorld(
  clock: Clock,
  connections: (vendor: SandboxVendor) => ConnectionInput[],
  vendorOptions: SandboxOptions = {},
  secrets?: (vendor: SandboxVendor) => Record<string, unknown>,
): Promise<World> {
  const db = await startDynalite();
  const vendor = await SandboxVendor.start({ clock, ...vendorOptions });
  const table = await startTable(db);
  const marks = await startMarks(db, `${table.name}-marks`);
  const dir = mkdtempSync(join(tmpdir(), 'broker-test-'));
  const secretsPath = join(dir, 'secrets.json');
  const writeSecrets = (s: Record<string, unknown>) => {
    for (const v of Object.values(s)) registerSecretValue(v);
    writeFileSync(secretsPath, JSON.stringify(s));
  };
  const config = parseConfig({ connections: connections(vendor) }, { allowLoopbackHttp: true });
  writeSecrets(secrets ? secrets(vendor) : {});
  const keyRing = new LocalKeyRing();
  return {
    db,
    vendor,
    table,
    marks,
    config,
    secretsPath,
    keyRing,
    writeSecrets,
    broker: (o = {}) =>
      createBroker({
        config: o.config ?? config,
        ...(o.connections ? { connections: o.connections } : {}),
        store: o.store ?? table.store,
        marks: o.marks ?? marks.store,
        secrets: new FileSecretSource(secretsPath),
        keyRing: o.keyRing ?? keyRing,
        clock: o.clock ?? clock,
        http: o.http ?? nodeHttpClient,
        ...(o.metrics ? { metrics: o.metrics } : {}),
        ...(o.logger ? { logger: o.logger } : {}),
        ...(o.random ? { random: o.random } : {}),
        // A slow call on a loaded machine is not a brownout (test/request-budget.test.ts proves the budget).
        options: { ...UNHURRIED_REQUEST_BUDGET, exchange: { backoffBaseMs: 1, backoffCapMs: 5 }, ...(o.options ?? {}) },
      }),
    close: async () => {
      await vendor.close();
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
