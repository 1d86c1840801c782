import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { EmfMetrics } from '../adapters/emf';
import type { JsonLogger } from '../adapters/log';
import { createLogger, createMetrics, loggerPort, metricsPort } from '../adapters/powertools';
import { DynamoConnectionRegistry } from '../adapters/connections-table';
import { UNHURRIED_BUDGET } from '../adapters/aws';
import { DynamoTokenStore, createDynamoClient } from '../adapters/dynamodb';
import { ensureTable } from '../adapters/dynamodb-setup';
import { DynamoRetiredMarks } from '../adapters/dynamodb-marks';
import { FileSecretSource } from '../adapters/file-secrets';
import type { Broker } from '../broker';
import { systemClock, type Clock } from '../clock';
import { createBroker } from '../compose';
import { wireConnections, type ConnectionChanges } from '../connection-changes';
import type { ConnectionCatalog } from '../connections';
import { secretsFileRule } from '../secret-rules';
import { parseConfig, type BrokerConfig } from '../config';
import { LocalKeyRing } from '../crypto';
import { ConfigurationError } from '../errors';
import { readCredentials } from '../exchange';
import { createHttpClient, nodeHttpClient, type HttpClient } from '../http';
import type { RecordScan, ServedCounts, TokenStore } from '../ports';
import { consolePage } from '../console/page';
import { startDynalite, type RunningDynalite } from './dynalite';
import { readJsonFile } from './json-file';
import { DEMO_ACCOUNTS, SandboxVendor } from './sandbox-vendor';
import { startLocalServer, type ProxyHandler, type RunningServer } from './server';
import type { CallerKey } from '../sigv4';

// Local mode: the same handler and broker as in AWS, with embedded parts (dynalite, a secrets file, a local key
// ring, a SigV4-checking server). With nothing configured it is a demo with a sandbox vendor.

export interface LocalEnv {
  PORT?: string;
  BROKER_CONFIG?: string;
  BROKER_SECRETS_FILE?: string;
  BROKER_CALLERS_FILE?: string;
  BROKER_DATA_DIR?: string;
  BROKER_TABLE?: string;
  AWS_ENDPOINT_URL_DYNAMODB?: string;
  AWS_REGION?: string;
}

export interface DemoInfo {
  caller: { accessKeyId: string; secretAccessKey: string; arn: string };
  admin: { accessKeyId: string; secretAccessKey: string; arn: string };
  connections: string[];
}

/** The HTTP handler Lambda runs, made for this broker (functions/http.ts's makeHandler; lib/ does not import it). */
export type HandlerFactory = (deps: {
  broker: Broker;
  logger: JsonLogger;
  metrics: EmfMetrics;
  connections: { catalog: ConnectionCatalog; changes: ConnectionChanges };
  store?: RecordScan & ServedCounts;
  clock?: Clock;
}) => ProxyHandler;

export interface LocalOptions {
  clock?: Clock;
  cwd?: string;
}

export interface LocalBroker {
  url: string;
  /** The operator's console: every connection's health, on the loopback listener, without SigV4. */
  consoleUrl: string;
  region: string;
  broker: Broker;
  demo?: DemoInfo;
  close(): Promise<void>;
}

/** The local console reloads itself this often. */
const CONSOLE_REFRESH_SECONDS = 5;

const DEMO_CALLER_ARN = 'arn:aws:iam::000000000000:role/demo-caller';
const DEMO_ADMIN_ARN = 'arn:aws:iam::000000000000:role/demo-admin';

const CALLER_ARN = /^arn:aws[a-z-]*:(?:iam|sts)::\d{12}:\S+$/;

/** The callers file: access key id → { secretAccessKey, arn }, the identities SigV4 is checked against. */
function readCallers(path: string): Map<string, CallerKey> {
  const raw = readJsonFile(path, 'callers file', 'BROKER_CALLERS_FILE');
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigurationError(`the callers file ${path} must be a JSON object: access key id → { "secretAccessKey", "arn" }`);
  }
  const callers = new Map<string, CallerKey>();
  for (const [akid, v] of Object.entries(raw as Record<string, unknown>)) {
    const entry = (typeof v === 'object' && v !== null ? v : {}) as Partial<CallerKey>;
    if (typeof entry.secretAccessKey !== 'string' || entry.secretAccessKey.length === 0) {
      throw new ConfigurationError(`the callers file ${path}: ${akid} needs a "secretAccessKey" string`);
    }
    if (typeof entry.arn !== 'string' || !CALLER_ARN.test(entry.arn)) {
      throw new ConfigurationError(`the callers file ${path}: ${akid} needs an "arn" such as arn:aws:iam::111111111111:role/name`);
    }
    callers.set(akid, { secretAccessKey: entry.secretAccessKey, arn: entry.arn });
  }
  return callers;
}

/**
 * Every connection's secret must be in the secrets file with the keys its dialect needs: told at start, naming the
 * connection and the key, rather than as a 500 at the first request.
 */
async function checkSecrets(config: BrokerConfig, path: string): Promise<void> {
  const all = readJsonFile(path, 'secrets file', 'BROKER_SECRETS_FILE');
  if (typeof all !== 'object' || all === null || Array.isArray(all)) {
    throw new ConfigurationError(`the secrets file ${path} must be a JSON object: secret id → the secret's JSON value`);
  }
  const source = new FileSecretSource(path);
  const problems: string[] = [];
  for (const connection of config.connections) {
    try {
      if (!Object.hasOwn(all, connection.secretId)) {
        throw new ConfigurationError(`${connection.id}: its secret ${connection.secretId} is not in the secrets file`);
      }
      readCredentials(connection, (await source.getSecret(connection.secretId)).value);
    } catch (err) {
      if (!(err instanceof ConfigurationError)) throw err;
      problems.push(err.message.startsWith(`${connection.id}:`) ? err.message : `${connection.id}: ${err.message}`);
    }
  }
  if (problems.length > 0) {
    throw new ConfigurationError(`the secrets file ${path} does not hold what the connections need:\n  ${problems.join('\n  ')}`);
  }
}

/**
 * Restarting the local server is how a developer says "try again now": a cooldown the previous run recorded ends
 * (its failure stays on record for the status route). Through the store's own lease, so a server sharing the table
 * and minting right now is left alone.
 */
async function endCooldowns(store: TokenStore, config: BrokerConfig, clock: Clock): Promise<void> {
  for (const connection of config.connections) {
    const now = clock.now();
    const { failure } = await store.read(connection.id);
    if (failure?.coolUntil === undefined || failure.coolUntil <= now) continue;
    const fence = randomUUID();
    const claim = await store.acquireLease(connection.id, { fence, holder: 'local-server-start', now, until: now + 5_000 });
    if (!claim.acquired) continue;
    const { coolUntil: _ended, ...kept } = failure;
    await store.recordFailure(connection.id, fence, kept);
  }
}

/** PORT as a port number; anything else is refused before anything starts. */
export function portOf(value: string | undefined): number {
  if (value === undefined || value === '') return 8080;
  const port = /^\d{1,5}$/.test(value) ? Number(value) : NaN;
  if (!(port >= 0 && port <= 65_535)) {
    throw new ConfigurationError(`PORT must be a port number from 0 to 65535 (0 picks a free one), not ${JSON.stringify(value.slice(0, 20))}`);
  }
  return port;
}

/** The local key ring's master key, kept beside the embedded table so a restart can read what it stored. */
function localMasterKey(dataDir: string): Buffer {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, 'local-master.key');
  if (!existsSync(path)) writeFileSync(path, randomBytes(32), { mode: 0o600 });
  return readFileSync(path);
}

function demoKey(prefix: string) {
  return {
    accessKeyId: `${prefix}${randomBytes(8).toString('hex').toUpperCase()}`,
    secretAccessKey: randomBytes(30).toString('base64url'),
  };
}

async function demoSetup(dir: string) {
  const vendor = await SandboxVendor.start();
  const connections = [
    { id: 'demo-digitaleo', dialect: 'digitaleo', tokenUrl: vendor.tokenUrl('digitaleo'), secretId: 'demo/digitaleo' },
    { id: 'demo-docoon', dialect: 'docoon', tokenUrl: vendor.tokenUrl('docoon'), secretId: 'demo/docoon' },
    { id: 'demo-docoon-basic', dialect: 'docoon-basic', secretId: 'demo/docoon-basic' },
    { id: 'demo-digishare', dialect: 'digishare', tokenUrl: vendor.tokenUrl('digishare'), secretId: 'demo/digishare' },
    { id: 'demo-digishare-pat', dialect: 'digishare-pat', secretId: 'demo/digishare-pat' },
    {
      id: 'demo-usage-engine',
      dialect: 'usage-engine',
      tokenUrl: vendor.tokenUrl('usage-engine'),
      audience: DEMO_ACCOUNTS['usage-engine'].audiences?.[0],
      secretId: 'demo/usage-engine',
    },
    { id: 'demo-oauth2-jwt', dialect: 'oauth2', tokenUrl: vendor.tokenUrl('jwt'), secretId: 'demo/oauth2-jwt', prewarm: true },
    {
      // Found through the sandbox's RFC 8414 metadata rather than a token URL.
      id: 'demo-private-key-jwt',
      dialect: 'oauth2',
      clientAuth: 'private_key_jwt',
      issuer: vendor.url,
      secretId: 'demo/private-key-jwt',
    },
    {
      id: 'demo-client-secret-jwt',
      dialect: 'oauth2',
      clientAuth: 'client_secret_jwt',
      tokenUrl: vendor.tokenUrl('client-secret-jwt'),
      secretId: 'demo/client-secret-jwt',
    },
    {
      id: 'demo-mtls',
      dialect: 'oauth2',
      clientAuth: 'tls_client_auth',
      tokenUrl: vendor.tokenUrl('mtls'),
      secretId: 'demo/mtls',
    },
  ].map((c) => ({ ...c, callers: [DEMO_CALLER_ARN] }));
  const { audiences: _a, ...usage } = DEMO_ACCOUNTS['usage-engine'];
  const secrets = {
    'demo/digitaleo': DEMO_ACCOUNTS.digitaleo,
    'demo/docoon': DEMO_ACCOUNTS.docoon,
    'demo/docoon-basic': { login: DEMO_ACCOUNTS.docoon.login, password: DEMO_ACCOUNTS.docoon.password },
    'demo/digishare': DEMO_ACCOUNTS.digishare,
    'demo/digishare-pat': { token: `demo-pat-${randomBytes(12).toString('hex')}` },
    'demo/usage-engine': usage,
    'demo/private-key-jwt': DEMO_ACCOUNTS['private-key-jwt'],
    'demo/client-secret-jwt': DEMO_ACCOUNTS['client-secret-jwt'],
    'demo/mtls': DEMO_ACCOUNTS.mtls,
    'demo/oauth2-jwt': { stages: { AWSCURRENT: DEMO_ACCOUNTS.jwt, AWSPENDING: { ...DEMO_ACCOUNTS.jwt, client_secret: 'not-yet-at-the-vendor' } } },
  };
  const secretsPath = join(dir, 'secrets.json');
  writeFileSync(secretsPath, JSON.stringify(secrets), { mode: 0o600 });
  const caller = { ...demoKey('AKIADEMOCALLER'), arn: DEMO_CALLER_ARN };
  const admin = { ...demoKey('AKIADEMOADMIN'), arn: DEMO_ADMIN_ARN };
  const callers = new Map<string, CallerKey>([
    [caller.accessKeyId, { secretAccessKey: caller.secretAccessKey, arn: caller.arn }],
    [admin.accessKeyId, { secretAccessKey: admin.secretAccessKey, arn: admin.arn }],
  ]);
  const config = parseConfig({ connections, admins: [DEMO_ADMIN_ARN] }, { allowLoopbackHttp: true });
  return { vendor, config, secretsPath, callers, demo: { caller, admin, connections: connections.map((c) => c.id) } };
}

export async function startLocalMode(env: LocalEnv, makeHandler: HandlerFactory, opts: LocalOptions = {}): Promise<LocalBroker> {
  const clock = opts.clock ?? systemClock;
  const cwd = opts.cwd ?? process.cwd();
  const port = portOf(env.PORT);
  const region = env.AWS_REGION || 'us-east-1';
  const tableName = env.BROKER_TABLE || 'token-broker';
  const dataDir = resolve(cwd, env.BROKER_DATA_DIR || '.data');
  const configPath = env.BROKER_CONFIG ? resolve(cwd, env.BROKER_CONFIG) : resolve(cwd, 'broker.config.json');
  const configured = Boolean(env.BROKER_CONFIG) || existsSync(configPath);

  const closers: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  };
  try {
    let config: BrokerConfig;
    let secretsPath: string;
    let callers: Map<string, CallerKey>;
    let demo: DemoInfo | undefined;
    let http: HttpClient = nodeHttpClient;
    if (configured) {
      if (!env.BROKER_SECRETS_FILE) throw new ConfigurationError('BROKER_SECRETS_FILE must name the secrets file');
      if (!env.BROKER_CALLERS_FILE) throw new ConfigurationError('BROKER_CALLERS_FILE must name the callers file');
      config = parseConfig(readJsonFile(configPath, 'connections file', 'BROKER_CONFIG'), { allowLoopbackHttp: true });
      secretsPath = resolve(cwd, env.BROKER_SECRETS_FILE);
      callers = readCallers(resolve(cwd, env.BROKER_CALLERS_FILE));
      await checkSecrets(config, secretsPath);
    } else {
      const dir = mkdtempSync(join(tmpdir(), 'token-broker-demo-'));
      closers.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
      const d = await demoSetup(dir);
      closers.push(() => d.vendor.close());
      ({ config, secretsPath, callers, demo } = d);
      // The sandbox's TLS endpoint (mutual TLS) has a certificate from its own authority.
      http = createHttpClient({ extraCa: [d.vendor.ca] });
    }

    let endpoint = env.AWS_ENDPOINT_URL_DYNAMODB;
    if (!endpoint) {
      mkdirSync(dataDir, { recursive: true });
      const db: RunningDynalite = await startDynalite({ path: join(dataDir, 'table') });
      closers.push(() => db.close());
      endpoint = db.endpoint;
    }
    const dynamoConfig = {
      endpoint,
      region,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    };
    const raw = new DynamoDBClient(dynamoConfig);
    await ensureTable(raw, tableName);
    // The retired marks live apart from the tokens, as in AWS (where only the broker's roles may write them).
    const marksTable = `${tableName}-marks`;
    await ensureTable(raw, marksTable);
    raw.destroy();

    const logger = createLogger();
    const metrics = createMetrics();
    const dynamo = createDynamoClient(dynamoConfig);
    const store = new DynamoTokenStore(dynamo, tableName);
    await endCooldowns(store, config, clock);
    const secrets = new FileSecretSource(secretsPath);
    // Registered connections live in the same table; their secrets must be in the secrets file (AWS's prefix rule
    // has no local equivalent).
    const wired = wireConnections({
      file: config,
      registry: new DynamoConnectionRegistry(dynamo, tableName),
      clock,
      rule: secretsFileRule(secrets, secretsPath),
      parse: { allowLoopbackHttp: true },
      logger: loggerPort(logger),
      metrics: metricsPort(metrics),
    });
    const broker = createBroker({
      config,
      connections: wired.catalog,
      store,
      marks: new DynamoRetiredMarks(dynamo, marksTable),
      secrets,
      keyRing: new LocalKeyRing(localMasterKey(dataDir)),
      clock,
      http,
      logger: loggerPort(logger),
      metrics: metricsPort(metrics),
      // A long-running server may refresh after answering (Lambda may not: see BrokerOptions.refreshAhead).
      options: { refreshAhead: 'background' },
    });
    const connections = { catalog: wired.catalog, changes: wired.changes(broker) };
    const handler = makeHandler({ broker, logger, metrics, connections, store, clock });
    // The console reads the whole table in one scan: on the embedded table, on a busy machine, that is load, not an outage.
    const scanner = new DynamoTokenStore(createDynamoClient(dynamoConfig, UNHURRIED_BUDGET), tableName, UNHURRIED_BUDGET.totalMs);
    const consoleSource = { connections: async () => [...config.connections, ...(await wired.catalog.allRegistered())], records: scanner };
    const server: RunningServer = await startLocalServer({
      handler: (event, context) => handler(event, context),
      callers,
      region,
      clock,
      port,
      onRefused: (reason) => logger.info('signature refused', { reason }),
      console: (query) =>
        consolePage(consoleSource, {
          query: Object.fromEntries(query),
          now: clock.now(),
          nav: { kind: 'page', path: '/console' },
          render: { document: true, refreshSeconds: CONSOLE_REFRESH_SECONDS },
          read: { segments: 1, timeoutMs: UNHURRIED_BUDGET.totalMs },
        }),
    }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') {
        throw new ConfigurationError(`port ${port} is already in use: set PORT to a free port (PORT=0 picks one)`);
      }
      if (err.code === 'EACCES') throw new ConfigurationError(`port ${port} needs privileges this process lacks: set PORT above 1023`);
      throw err;
    });
    closers.push(() => server.close());
    closers.push(() => broker.drain());
    return { url: server.url, consoleUrl: `${server.url}/console`, region, broker, ...(demo ? { demo } : {}), close: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
