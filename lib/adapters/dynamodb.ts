import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  ScanCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClientConfig,
} from '@aws-sdk/client-dynamodb';
import { TABLE_KEY, TTL_ATTRIBUTE } from '../contract';
import { DYNAMODB_BUDGET, clientSettings, withinDeadline, type CallBudget } from './aws';
import { checkTimeLeft } from '../budget';
import { CLOCK_SKEW_MS } from '../clock';
import { StoreUnavailableError, VendorProtocolError } from '../errors';
import { consoleProjection, servedOf, servedUpdate } from './dynamodb-console';
import type {
  ConnectionRecord,
  LeaseClaim,
  LeaseOutcome,
  RecordedFailure,
  RecordScan,
  RecordSummary,
  ScanOptions,
  ServedCounts,
  ReadOptions,
  StoreCallOptions,
  StoredToken,
  TokenMatch,
  TokenStore,
} from '../ports';

// The token table. One table, one string hash key `pk`, one item per connection, `token#<connection>`, holding:
//   the current token   ct (ciphertext), tokenType, expiresAt, mintedAt, lifetime, secretVersion, fingerprint, mintedBy
//   its mint lease      fence (one per acquisition), leaseHolder, leaseUntil
//   the last failure    failureCode, failureStatus, failureError, failedAt, coolUntil (the cooldown)
// One item, so that storing a token can be conditioned on the lease in one write (there are no transactions in
// dynalite, and none are needed). `ttl` (epoch seconds) lets DynamoDB delete the item; reads check expiry
// themselves since that deletion may come up to two days late.

/** Expired tokens stay a little (for forensics, and so a late reader sees "expired", not "never minted"). */
const TOKEN_TTL_GRACE_SECONDS = 3600;
/** An item whose lease or failure is written lives at least this long after the write. */
const RECORD_TTL_SECONDS = 86_400;
const TOKEN_ATTRIBUTES = ['ct', 'tokenType', 'expiresAt', 'lifetime', 'secretVersion', 'fingerprint', 'mintedBy'];
const LEASE_ATTRIBUTES = ['fence', 'leaseHolder', 'leaseUntil'];

// The low-level client with hand-written attribute values: the items are small and fixed, and skipping the
// document client's marshalling (and its module) keeps both the hot path and the cold start short.
const S = (v: string): AttributeValue => ({ S: v });
const N = (v: number): AttributeValue => ({ N: String(v) });
const ITEM_PREFIX = 'token#';
const itemKey = (c: string) => ({ [TABLE_KEY]: S(`${ITEM_PREFIX}${c}`) });
const num = (a: AttributeValue | undefined) => (a?.N === undefined ? undefined : Number(a.N));
const str = (a: AttributeValue | undefined) => a?.S ?? '';

/** A DynamoDB client whose attempts abort at their deadline, with retries bounded to fit the call's budget. */
export function createDynamoClient(config: DynamoDBClientConfig = {}, budget: CallBudget = DYNAMODB_BUDGET): DynamoDBClient {
  return new DynamoDBClient({ ...clientSettings(budget), ...config });
}

export function isConditionFailure(err: unknown): boolean {
  return (
    err instanceof ConditionalCheckFailedException ||
    (err as { name?: string }).name === 'ConditionalCheckFailedException'
  );
}

/**
 * An UpdateItem's expressions from plain parts: every attribute is named through `#name` (several of ours, such
 * as `connection` and `ttl`, are DynamoDB reserved words).
 */
function updateOf(parts: {
  set?: Record<string, AttributeValue>;
  remove?: string[];
  condition: string;
  values?: Record<string, AttributeValue>;
}) {
  const set = Object.entries(parts.set ?? {});
  const clauses = [
    ...(set.length ? [`SET ${set.map(([k]) => `#${k} = :set_${k}`).join(', ')}`] : []),
    ...(parts.remove?.length ? [`REMOVE ${parts.remove.map((k) => `#${k}`).join(', ')}`] : []),
  ];
  const names = new Set([...set.map(([k]) => k), ...(parts.remove ?? [])]);
  for (const m of parts.condition.matchAll(/#(\w+)/g)) names.add(m[1]!);
  return {
    UpdateExpression: clauses.join(' '),
    ConditionExpression: parts.condition,
    ExpressionAttributeNames: Object.fromEntries([...names].map((n) => [`#${n}`, n])),
    ExpressionAttributeValues: {
      ...Object.fromEntries(set.map(([k, v]) => [`:set_${k}`, v])),
      ...(parts.values ?? {}),
    },
  };
}

function recordOf(connection: string, item: Record<string, AttributeValue> | undefined): ConnectionRecord {
  if (!item) return {};
  const record: ConnectionRecord = {};
  const mintedAt = num(item.mintedAt);
  if (mintedAt !== undefined) record.mintedAt = mintedAt;
  const expiresAt = num(item.expiresAt);
  if (expiresAt !== undefined && item.ct?.B) {
    record.token = {
      connection,
      ciphertext: item.ct.B,
      tokenType: str(item.tokenType),
      expiresAt,
      mintedAt: mintedAt ?? 0,
      lifetime: num(item.lifetime) ?? 0,
      secretVersion: str(item.secretVersion),
      fingerprint: str(item.fingerprint),
      mintedBy: str(item.mintedBy),
    };
  }
  const leaseUntil = num(item.leaseUntil);
  if (item.fence?.S && leaseUntil !== undefined) {
    record.lease = { fence: item.fence.S, holder: str(item.leaseHolder), until: leaseUntil };
  }
  const failedAt = num(item.failedAt);
  if (item.failureCode?.S && failedAt !== undefined) {
    const failure: RecordedFailure = { code: item.failureCode.S, at: failedAt };
    const status = num(item.failureStatus);
    if (status !== undefined) failure.vendorStatus = status;
    if (item.failureError?.S) failure.vendorError = item.failureError.S;
    const coolUntil = num(item.coolUntil);
    if (coolUntil !== undefined) failure.coolUntil = coolUntil;
    record.failure = failure;
  }
  return record;
}

/**
 * One table call within `totalMs` (the adapter's own budget) or the caller's (what is left of a request's),
 * whichever is shorter. A failed condition passes through; anything else is a table that is down.
 */
export async function tableCall<T>(
  what: string,
  totalMs: number,
  call: StoreCallOptions | undefined,
  fn: (abortSignal: AbortSignal) => Promise<T>,
  table = 'the token table',
): Promise<T> {
  checkTimeLeft(call, what);
  try {
    return await withinDeadline(`DynamoDB (${what})`, Math.min(totalMs, call?.timeoutMs ?? Infinity), fn);
  } catch (err) {
    if (isConditionFailure(err)) throw err;
    const name = (err as { name?: string }).name ?? 'error';
    throw new StoreUnavailableError(`${table} failed to ${what} (${name})`, { cause: err });
  }
}

/** Every attribute recordOf reads but the ciphertext: what a console scan projects. */
const CLEAR_ATTRIBUTES = [TABLE_KEY, 'mintedAt', ...TOKEN_ATTRIBUTES.filter((a) => a !== 'ct'), ...LEASE_ATTRIBUTES, 'failureCode', 'failureStatus', 'failureError', 'failedAt', 'coolUntil'];
const NOT_READ = new Uint8Array();

/** A scanned item as the console sees it, without the ciphertext; undefined for an item that is not a token item. */
function summaryOf(item: Record<string, AttributeValue>): RecordSummary | undefined {
  const key = item[TABLE_KEY]?.S;
  if (!key?.startsWith(ITEM_PREFIX)) return undefined;
  const connection = key.slice(ITEM_PREFIX.length);
  // The scan left the ciphertext out: a stand-in lets recordOf read the token's clear metadata as it always does.
  const { token, ...rest } = recordOf(connection, item.expiresAt ? { ...item, ct: { B: NOT_READ } } : item);
  const summary: RecordSummary = { connection, ...rest, served: servedOf(item) };
  if (token) {
    const { ciphertext: _sealed, ...clear } = token;
    summary.token = clear;
  }
  return summary;
}

export class DynamoTokenStore implements TokenStore, RecordScan, ServedCounts {
  constructor(
    private readonly client: Pick<DynamoDBClient, 'send'>,
    private readonly table: string,
    /** The whole of one call, SDK retries included: past it the table counts as down. */
    private readonly totalMs = DYNAMODB_BUDGET.totalMs,
  ) {}

  /** One call within the store's own budget, or the caller's (what is left of a request's), whichever is shorter. */
  private async call<T>(what: string, call: StoreCallOptions | undefined, fn: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
    try {
      return await tableCall(what, this.totalMs, call, fn);
    } catch (err) {
      // The only request of ours DynamoDB can find invalid is an item over its 400 KB: the token's fault, not the table's.
      if (err instanceof StoreUnavailableError && (err.cause as { name?: string } | undefined)?.name === 'ValidationException') {
        throw new VendorProtocolError('the token table refused the item (ValidationException): it is too large', { cause: err.cause });
      }
      throw err;
    }
  }

  /** An UpdateItem that answers false when its condition does not hold. */
  private async conditional(
    what: string,
    connection: string,
    parts: Parameters<typeof updateOf>[0],
    call: StoreCallOptions | undefined,
  ): Promise<boolean> {
    try {
      await this.call(what, call, (abortSignal) =>
        this.client.send(new UpdateItemCommand({ TableName: this.table, Key: itemKey(connection), ...updateOf(parts) }), { abortSignal }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  async read(connection: string, call?: ReadOptions): Promise<ConnectionRecord> {
    const ConsistentRead = call?.consistent ?? true;
    const out = await this.call('read a token', call, (abortSignal) =>
      this.client.send(new GetItemCommand({ TableName: this.table, Key: itemKey(connection), ConsistentRead }), { abortSignal }),
    );
    return recordOf(connection, out.Item);
  }

  async acquireLease(connection: string, claim: LeaseClaim, call?: StoreCallOptions): Promise<LeaseOutcome> {
    const started = performance.now();
    const honoured = claim.cooldownCeiling === undefined ? '' : ' AND (attribute_not_exists(#coolUntil) OR #coolUntil <= :now OR #coolUntil > :ceiling)';
    try {
      const out = await this.call('take a lease', call, (abortSignal) =>
        this.client.send(
          new UpdateItemCommand({
            TableName: this.table,
            Key: itemKey(connection),
            ReturnValues: 'ALL_NEW',
            ...updateOf({
              set: {
                fence: S(claim.fence),
                leaseHolder: S(claim.holder),
                leaseUntil: N(claim.until),
                [TTL_ATTRIBUTE]: N(Math.ceil(claim.now / 1000) + RECORD_TTL_SECONDS),
              },
              condition: `(attribute_not_exists(#leaseUntil) OR #leaseUntil < :now)${honoured}`,
              values: {
                ':now': N(claim.now),
                ...(claim.cooldownCeiling === undefined ? {} : { ':ceiling': N(claim.cooldownCeiling) }),
              },
            }),
          }),
          { abortSignal },
        ),
      );
      return { acquired: true, record: recordOf(connection, out.Attributes) };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
    // The read that tells who holds the lease shares the call's deadline.
    const left = call?.timeoutMs === undefined ? undefined : call.timeoutMs - (performance.now() - started);
    return { acquired: false, record: await this.read(connection, left === undefined ? undefined : { timeoutMs: left }) };
  }

  async putToken(t: StoredToken, fence: string, call?: StoreCallOptions): Promise<boolean> {
    return this.conditional('write a token', t.connection, {
      set: {
        connection: S(t.connection),
        ct: { B: t.ciphertext },
        tokenType: S(t.tokenType),
        expiresAt: N(t.expiresAt),
        mintedAt: N(t.mintedAt),
        lifetime: N(t.lifetime),
        secretVersion: S(t.secretVersion),
        fingerprint: S(t.fingerprint),
        mintedBy: S(t.mintedBy),
        [TTL_ATTRIBUTE]: N(Math.ceil(t.expiresAt / 1000) + TOKEN_TTL_GRACE_SECONDS),
      },
      remove: [...LEASE_ATTRIBUTES, 'coolUntil'],
      // Only the lease's holder stores, and never a token older than the one stored (a mint time beyond the clocks'
      // skew was forged, not stored by a broker: it does not count).
      condition: '#fence = :fence AND (attribute_not_exists(#mintedAt) OR #mintedAt < :mintedAt OR #mintedAt > :forged)',
      values: { ':fence': S(fence), ':mintedAt': N(t.mintedAt), ':forged': N(t.mintedAt + CLOCK_SKEW_MS) },
    }, call);
  }

  async recordFailure(connection: string, fence: string, f: RecordedFailure, call?: StoreCallOptions): Promise<boolean> {
    const optional = { failureStatus: f.vendorStatus, failureError: f.vendorError, coolUntil: f.coolUntil };
    const set: Record<string, AttributeValue> = { failureCode: S(f.code), failedAt: N(f.at) };
    const remove = [...LEASE_ATTRIBUTES];
    for (const [k, v] of Object.entries(optional)) {
      if (v === undefined) remove.push(k);
      else set[k] = typeof v === 'number' ? N(v) : S(v);
    }
    return this.conditional('record a failure', connection, {
      set,
      remove,
      condition: '#fence = :fence',
      values: { ':fence': S(fence) },
    }, call);
  }

  async releaseLease(connection: string, fence: string, call?: StoreCallOptions): Promise<boolean> {
    return this.conditional('release a lease', connection, {
      remove: LEASE_ATTRIBUTES,
      condition: '#fence = :fence',
      values: { ':fence': S(fence) },
    }, call);
  }

  async deleteToken(connection: string, match: TokenMatch, call?: StoreCallOptions): Promise<number | undefined> {
    const condition =
      'fingerprint' in match
        ? {
            condition: `#fingerprint = :v${match.mintedBefore === undefined ? '' : ' AND #mintedAt < :before'}`,
            values: {
              ':v': S(match.fingerprint),
              ...(match.mintedBefore === undefined ? {} : { ':before': N(match.mintedBefore) }),
            },
          }
        : {
            condition: 'attribute_exists(#ct) AND #secretVersion <> :v',
            values: { ':v': S(match.notSecretVersion) },
          };
    // The mint time stays: it is the high-water mark no later token may fall below (and, as it was, the answer).
    try {
      const out = await this.call('delete a token', call, (abortSignal) =>
        this.client.send(
          new UpdateItemCommand({
            TableName: this.table,
            Key: itemKey(connection),
            ...updateOf({ remove: TOKEN_ATTRIBUTES, ...condition }),
            ReturnValues: 'ALL_OLD',
          }),
          { abortSignal },
        ),
      );
      return num(out.Attributes?.mintedAt) ?? 0;
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  }

  /** Every token item, by parallel scan: each segment pages on by itself (console.ts reads 10,000 in one call). */
  async scanRecords(opts: ScanOptions = {}): Promise<RecordSummary[]> {
    const total = Math.min(64, Math.max(1, Math.floor(opts.segments ?? 8)));
    const segment = async (n: number) => {
      const found: RecordSummary[] = [];
      let start: Record<string, AttributeValue> | undefined;
      // Bounded: 1 MB a page, so 1,000 pages a segment is far past any table of connections.
      for (let page = 0; page < 1000; page++) {
        const out = await this.call('scan the records', opts.call, (abortSignal) =>
          this.client.send(
            new ScanCommand({
              TableName: this.table,
              Segment: n,
              TotalSegments: total,
              ...consoleProjection(CLEAR_ATTRIBUTES, opts.servedHours ?? []),
              ...(start ? { ExclusiveStartKey: start } : {}),
            }),
            { abortSignal },
          ),
        );
        for (const item of out.Items ?? []) {
          const summary = summaryOf(item);
          if (summary) found.push(summary);
        }
        start = out.LastEvaluatedKey;
        if (!start) break;
      }
      return found;
    };
    return (await Promise.all(Array.from({ length: total }, (_, n) => segment(n)))).flat();
  }

  async addServed(connection: string, hour: number, count: number, call?: StoreCallOptions): Promise<void> {
    await this.call('count requests', call, (abortSignal) =>
      this.client.send(new UpdateItemCommand({ TableName: this.table, Key: itemKey(connection), ...servedUpdate(hour, count) }), { abortSignal }),
    );
  }
}
