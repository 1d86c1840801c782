import { AsyncLocalStorage } from 'node:async_hooks';
import { ManualClock } from '../../lib/clock';
import { LocalKeyRing } from '../../lib/crypto';
import { StoreUnavailableError } from '../../lib/errors';
import type { KeyRing, ReadOptions, RetiredMarks, SecretRead, SecretReadOptions, SecretSource, SecretValue, StoreCallOptions, TokenStore } from '../../lib/ports';
import { DYNAMODB_BUDGET } from '../../lib/adapters/aws';
import { checkTimeLeft } from '../../lib/budget';
import { secretBatches } from '../../lib/adapters/secrets-manager';
import { BROWNOUT, LATENCY, SDK_BACKOFF_BASE_MS } from './latency';
import { logNormal, type Random } from './random';

// The AWS services around the real broker code, in process: each call takes simulated time drawn from its latency
// profile and is counted the way AWS bills it. Nothing here sleeps for real: the simulation moves the clock.

/** A ManualClock that tells the simulation when each sleeper wants to wake, so it can jump straight there. */
export class SimClock extends ManualClock {
  constructor(
    start: number,
    private readonly onSleep: (until: number) => void,
  ) {
    super(start);
  }

  override sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.onSleep(this.now() + Math.max(0, ms));
    return super.sleep(ms, signal);
  }
}

/** Counters by name. */
export class Tally {
  private readonly counts = new Map<string, number>();
  add(name: string, n = 1): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + n);
  }
  get(name: string): number {
    return this.counts.get(name) ?? 0;
  }
  entries(): [string, number][] {
    return [...this.counts.entries()].sort(([a], [b]) => a.localeCompare(b));
  }
}

/** What one caller's request went through, followed across awaits. */
export interface RequestTrace {
  connection: string;
  /** Set once the answer is given: calls after it belong to no caller (refresh left behind). */
  ended: boolean;
  vendorCalls: number;
  leaseWaits: number;
}

export const requestContext = new AsyncLocalStorage<RequestTrace>();

/** The caller whose request is running now, unless it has been answered. */
export function activeRequest(): RequestTrace | undefined {
  const r = requestContext.getStore();
  return r && !r.ended ? r : undefined;
}

export interface SimEnv {
  clock: SimClock;
  /** Counts every step a simulated call takes, so the simulation knows when all tasks have gone as far as they can. */
  activity: { n: number };
  rng: Random;
  tally: Tally;
  /** True while the table browns out. */
  brownout(t: number): boolean;
}

const sample = {
  read: logNormal(LATENCY.dynamodbRead!),
  write: logNormal(LATENCY.dynamodbWrite!),
  kms: logNormal(LATENCY.kms!),
  secrets: logNormal(LATENCY.secretsManager!),
  brownout: logNormal(LATENCY.brownoutAttempt!),
};

/** Bytes of a stored item besides the ciphertext (key, metadata, TTL), for the capacity units it costs. */
const ITEM_OVERHEAD_BYTES = 220;

/** Bytes of binary data in a value (a token's ciphertext, at any depth a store's record may nest it). */
function bytesOf(value: unknown, depth = 0): number {
  if (value instanceof Uint8Array) return value.byteLength;
  if (!value || typeof value !== 'object' || depth > 3) return 0;
  let n = 0;
  for (const v of Object.values(value)) n += bytesOf(v, depth + 1);
  return n;
}

/** Store methods that only read; every other method is a (conditional) write. */
const isRead = (method: string) => /^(get|read|peek|load|find)/i.test(method);

/** Where each TokenStore and RetiredMarks method takes its call options (the deadline a request's budget gives the call). */
const CALL_OPTIONS_AT: Record<keyof TokenStore | keyof RetiredMarks, number> = {
  read: 1,
  acquireLease: 2,
  putToken: 2,
  recordFailure: 3,
  releaseLease: 2,
  deleteToken: 2,
  readAll: 0,
  raise: 2,
  prune: 1,
};

function callTimeoutOf(method: string, args: unknown[]): number | undefined {
  const at = (CALL_OPTIONS_AT as Record<string, number | undefined>)[method];
  return at === undefined ? undefined : (args[at] as StoreCallOptions | undefined)?.timeoutMs;
}

/** A read asked eventually consistent (lib/ports.ts ReadOptions): DynamoDB bills it half a read unit per 4 KB. */
const isEventual = (method: string, args: unknown[]) => method === 'read' && (args[CALL_OPTIONS_AT.read] as ReadOptions | undefined)?.consistent === false;

/** Read request units as on-demand DynamoDB bills them: 1 per 4 KB (rounded up) strongly consistent, half that eventually. */
export function readUnits(bytes: number, eventual: boolean): number {
  const units = Math.max(1, Math.ceil(bytes / 4096));
  return eventual ? units / 2 : units;
}

/**
 * Any TokenStore behind DynamoDB's latency, the deadlines and retries lib/adapters/aws.ts gives its client (per
 * attempt and per call, or the shorter deadline a request's budget gives the call), and its billing:
 * a strongly consistent read costs 1 RRU per 4 KB, an eventually consistent one half that, a write 1 WRU per KB,
 * throttled attempts nothing.
 * An attempt abandoned at the deadline may still have reached the table (half of them do).
 */
export function simulatedTable<T extends object>(inner: T, env: SimEnv): T {
  return new Proxy(inner, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop, target);
      if (typeof v !== 'function') return v;
      const method = String(prop);
      return (...args: unknown[]) => callTable(env, method, args, () => (v as (...a: unknown[]) => Promise<unknown>).apply(target, args));
    },
  });
}

async function callTable(env: SimEnv, method: string, args: unknown[], op: () => Promise<unknown>): Promise<unknown> {
  const { clock, rng, tally } = env;
  const read = isRead(method);
  const eventual = isEventual(method, args);
  const budget = DYNAMODB_BUDGET;
  const timeoutMs = callTimeoutOf(method, args);
  if (timeoutMs !== undefined && timeoutMs <= 0) tally.add('dynamodb.noTimeLeft');
  // Refused as both stores refuse it (lib/budget.ts).
  checkTimeLeft({ ...(timeoutMs === undefined ? {} : { timeoutMs }) }, method);
  const totalMs = Math.min(budget.totalMs, timeoutMs ?? Infinity);
  const started = clock.now();
  const left = () => totalMs - (clock.now() - started);
  tally.add(`dynamodb.calls.${method}`);
  const bill = (result: unknown) => {
    if (read) tally.add('dynamodb.rru', readUnits(bytesOf(result) + ITEM_OVERHEAD_BYTES, eventual));
    else tally.add('dynamodb.wru', Math.max(1, Math.ceil((args.reduce<number>((n, a) => n + bytesOf(a), 0) + ITEM_OVERHEAD_BYTES) / 1024)));
  };
  // An attempt abandoned at its deadline may still have reached the table: half of them do, unanswered.
  // The store itself may yield to the event loop (as a network call would): the simulation waits for it.
  const apply = async () => {
    env.activity.n += 1;
    try {
      return await op();
    } finally {
      env.activity.n += 1;
    }
  };
  const maybeLanded = async () => {
    tally.add('dynamodb.attemptTimeouts');
    if (rng() < 0.5) bill(await apply().catch(() => undefined));
  };
  for (let attempt = 0; attempt < budget.maxAttempts; attempt++) {
    if (attempt > 0) {
      const backoff = rng() * SDK_BACKOFF_BASE_MS * 2 ** attempt;
      if (backoff >= left()) break;
      await clock.sleep(backoff);
    }
    let latency = read ? sample.read(rng) : sample.write(rng);
    let throttled = false;
    if (env.brownout(clock.now())) {
      const x = rng();
      throttled = x < BROWNOUT.throttledShare;
      latency = x >= BROWNOUT.throttledShare && x < BROWNOUT.throttledShare + BROWNOUT.hungShare ? Infinity : sample.brownout(rng);
    }
    if (Math.min(latency, budget.attemptMs) >= left()) {
      await clock.sleep(left());
      await maybeLanded();
      break;
    }
    if (latency >= budget.attemptMs) {
      await clock.sleep(budget.attemptMs);
      await maybeLanded();
      continue;
    }
    await clock.sleep(latency);
    if (throttled) {
      tally.add('dynamodb.throttled');
      continue;
    }
    const result = await apply();
    bill(result);
    if (read) tally.add(eventual ? 'dynamodb.reads.eventual' : 'dynamodb.reads.consistent');
    if (read) tally.add('dynamodb.reads');
    else tally.add('dynamodb.writes');
    return result;
  }
  tally.add('dynamodb.failedCalls');
  throw new StoreUnavailableError(`the token table failed to ${method} (simulated brownout)`);
}

/** KMS: data keys from a local key ring, after KMS's latency; every call counted. */
export class SimKeyRing implements KeyRing {
  private readonly inner = new LocalKeyRing();
  constructor(private readonly env: SimEnv) {}

  async generateDataKey(context: Record<string, string>) {
    this.env.tally.add('kms.GenerateDataKey');
    if (activeRequest()) this.env.tally.add('kms.GenerateDataKey.inRequest');
    await this.env.clock.sleep(sample.kms(this.env.rng));
    return this.inner.generateDataKey(context);
  }

  async decryptDataKey(encrypted: Uint8Array, context: Record<string, string>) {
    this.env.tally.add('kms.Decrypt');
    if (activeRequest()) this.env.tally.add('kms.Decrypt.inRequest');
    await this.env.clock.sleep(sample.kms(this.env.rng));
    return this.inner.decryptDataKey(encrypted, context);
  }
}

interface SecretVersion {
  versionId: string;
  value: Record<string, string>;
}

/**
 * Secrets Manager: one secret per connection with AWSCURRENT and, after a rotation, AWSPREVIOUS. GetSecretValue
 * and BatchGetSecretValue take their latency and are counted; the vendors learn of each client secret through `onIssue`.
 */
export class SimSecretsManager implements SecretSource {
  private readonly secrets = new Map<string, { current: SecretVersion; previous?: SecretVersion }>();
  private versions = 0;

  constructor(
    private readonly env: SimEnv,
    private readonly onIssue: (clientId: string, clientSecret: string) => void,
  ) {}

  create(secretId: string, clientId: string): void {
    this.secrets.set(secretId, { current: this.newVersion(clientId) });
  }

  /** A new client secret becomes AWSCURRENT; the old one stays AWSPREVIOUS. */
  rotate(secretId: string): string {
    const s = this.secrets.get(secretId);
    if (!s) throw new Error(`no secret ${secretId}`);
    const next = this.newVersion(s.current.value.client_id!);
    this.secrets.set(secretId, { current: next, previous: s.current });
    return next.versionId;
  }

  async getSecret(secretId: string, opts: SecretReadOptions = {}): Promise<SecretValue> {
    this.env.tally.add('secretsmanager.GetSecretValue');
    if (activeRequest()) this.env.tally.add('secretsmanager.GetSecretValue.inRequest');
    await this.env.clock.sleep(sample.secrets(this.env.rng));
    const s = this.secrets.get(secretId);
    const stage = opts.versionStage ?? 'AWSCURRENT';
    const v = stage === 'AWSPREVIOUS' ? s?.previous : stage === 'AWSCURRENT' ? s?.current : undefined;
    if (!v) throw new Error(`no version ${stage} of ${secretId}`);
    return { value: { ...v.value }, versionId: v.versionId };
  }

  /** BatchGetSecretValue: 20 ids a call, the calls made together, each counted and taking GetSecretValue's latency. */
  async getCurrentSecrets(secretIds: readonly string[]): Promise<Map<string, SecretRead>> {
    const batches = secretBatches(secretIds);
    const read = new Map<string, SecretRead>();
    await Promise.all(
      batches.map(async (batch) => {
        this.env.tally.add('secretsmanager.BatchGetSecretValue');
        await this.env.clock.sleep(sample.secrets(this.env.rng));
        for (const id of batch) {
          const v = this.secrets.get(id)?.current;
          read.set(id, v ? { value: { ...v.value }, versionId: v.versionId } : new Error(`no secret ${id}`));
        }
      }),
    );
    return read;
  }

  private newVersion(clientId: string): SecretVersion {
    this.versions += 1;
    const clientSecret = `sim-secret-${this.versions}-${Math.floor(this.env.rng() * 1e9).toString(36)}`;
    this.onIssue(clientId, clientSecret);
    return { versionId: `v${this.versions}`, value: { client_id: clientId, client_secret: clientSecret } };
  }
}
