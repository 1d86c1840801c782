import {
  ConditionalCheckFailedException,
  CreateTableCommand,
  DeleteItemCommand,
  DescribeTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  ResourceNotFoundException,
  UpdateItemCommand,
  UpdateTimeToLiveCommand,
  type AttributeValue,
  type DynamoDBClientConfig,
} from '@aws-sdk/client-dynamodb';
import { DYNAMODB_BUDGET, clientSettings, withinDeadline, type CallBudget } from './aws';
import { StoreUnavailableError } from '../errors';
import type { Cooldown, LeaseResult, StoredToken, TokenMatch, TokenStore } from '../ports';

// The token table. One table, one string hash key `pk`:
//   token#<connection>   the current token: ciphertext + metadata, `ttl` from its expiry
//   lease#<connection>   who is minting (owner, leaseUntil) and any cooldown after a failure
// Every item has a numeric `ttl` (epoch seconds) so DynamoDB deletes it; reads check expiry themselves since
// that deletion may come up to two days late.

export const TABLE_KEY = 'pk';
export const TTL_ATTRIBUTE = 'ttl';
/** Expired tokens stay a little (for forensics, and so a late reader sees "expired", not "never minted"). */
const TOKEN_TTL_GRACE_SECONDS = 3600;

// The low-level client with hand-written attribute values: the items are small and fixed, and skipping the
// document client's marshalling (and its module) keeps both the hot path and the cold start short.
const S = (v: string): AttributeValue => ({ S: v });
const N = (v: number): AttributeValue => ({ N: String(v) });
const tokenKey = (c: string) => ({ [TABLE_KEY]: S(`token#${c}`) });
const leaseKey = (c: string) => ({ [TABLE_KEY]: S(`lease#${c}`) });
const num = (a: AttributeValue | undefined) => (a?.N === undefined ? undefined : Number(a.N));
const str = (a: AttributeValue | undefined) => a?.S ?? '';

/** A DynamoDB client whose attempts abort at their deadline, with retries bounded to fit the call's budget. */
export function createDynamoClient(config: DynamoDBClientConfig = {}, budget: CallBudget = DYNAMODB_BUDGET): DynamoDBClient {
  return new DynamoDBClient({ ...clientSettings(budget), ...config });
}

function isConditionFailure(err: unknown): boolean {
  return (
    err instanceof ConditionalCheckFailedException ||
    (err as { name?: string }).name === 'ConditionalCheckFailedException'
  );
}

export class DynamoTokenStore implements TokenStore {
  constructor(
    private readonly client: Pick<DynamoDBClient, 'send'>,
    private readonly table: string,
    /** The whole of one call, SDK retries included: past it the table counts as down. */
    private readonly totalMs = DYNAMODB_BUDGET.totalMs,
  ) {}

  private async call<T>(what: string, fn: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
    try {
      return await withinDeadline(`DynamoDB (${what})`, this.totalMs, fn);
    } catch (err) {
      if (isConditionFailure(err)) throw err;
      const name = (err as { name?: string }).name ?? 'error';
      throw new StoreUnavailableError(`the token table failed to ${what} (${name})`, { cause: err });
    }
  }

  async getToken(connection: string): Promise<StoredToken | undefined> {
    const out = await this.call('read a token', (abortSignal) =>
      this.client.send(new GetItemCommand({ TableName: this.table, Key: tokenKey(connection), ConsistentRead: true }), { abortSignal }),
    );
    const item = out.Item;
    const expiresAt = num(item?.expiresAt);
    if (!item || expiresAt === undefined || !item.ct?.B) return undefined;
    return {
      connection,
      ciphertext: item.ct.B,
      tokenType: str(item.tokenType),
      expiresAt,
      mintedAt: num(item.mintedAt) ?? 0,
      lifetime: num(item.lifetime) ?? 0,
      secretVersion: str(item.secretVersion),
      fingerprint: str(item.fingerprint),
    };
  }

  async putToken(t: StoredToken): Promise<void> {
    try {
      await this.call('write a token', (abortSignal) =>
        this.client.send(
          new PutItemCommand({
            TableName: this.table,
            Item: {
              ...tokenKey(t.connection),
              connection: S(t.connection),
              ct: { B: t.ciphertext },
              tokenType: S(t.tokenType),
              expiresAt: N(t.expiresAt),
              mintedAt: N(t.mintedAt),
              lifetime: N(t.lifetime),
              secretVersion: S(t.secretVersion),
              fingerprint: S(t.fingerprint),
              [TTL_ATTRIBUTE]: N(Math.ceil(t.expiresAt / 1000) + TOKEN_TTL_GRACE_SECONDS),
            },
            // A holder whose lease lapsed must not overwrite a token minted after its own.
            ConditionExpression: 'attribute_not_exists(#pk) OR mintedAt <= :mintedAt',
            ExpressionAttributeNames: { '#pk': TABLE_KEY },
            ExpressionAttributeValues: { ':mintedAt': N(t.mintedAt) },
          }),
          { abortSignal },
        ),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  async deleteToken(connection: string, match: TokenMatch): Promise<boolean> {
    const condition =
      'fingerprint' in match
        ? {
            ConditionExpression: `fingerprint = :v${match.mintedBefore === undefined ? '' : ' AND mintedAt < :before'}`,
            ExpressionAttributeValues: {
              ':v': S(match.fingerprint),
              ...(match.mintedBefore === undefined ? {} : { ':before': N(match.mintedBefore) }),
            },
          }
        : {
            ConditionExpression: 'attribute_exists(#pk) AND secretVersion <> :v',
            ExpressionAttributeNames: { '#pk': TABLE_KEY },
            ExpressionAttributeValues: { ':v': S(match.notSecretVersion) },
          };
    try {
      await this.call('delete a token', (abortSignal) =>
        this.client.send(new DeleteItemCommand({ TableName: this.table, Key: tokenKey(connection), ...condition }), { abortSignal }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  async acquireLease(
    connection: string,
    owner: string,
    now: number,
    until: number,
    opts: { overrideCooldown?: boolean } = {},
  ): Promise<LeaseResult> {
    const cooldownClause = opts.overrideCooldown ? '' : ' AND (attribute_not_exists(cooldownUntil) OR cooldownUntil <= :now)';
    try {
      await this.call('take a lease', (abortSignal) =>
        this.client.send(
          new UpdateItemCommand({
            TableName: this.table,
            Key: leaseKey(connection),
            UpdateExpression: 'SET #owner = :owner, leaseUntil = :until, #ttl = :ttl REMOVE cooldownUntil, failureCode, failureMessage',
            ConditionExpression: `(attribute_not_exists(leaseUntil) OR leaseUntil < :now OR #owner = :owner)${cooldownClause}`,
            ExpressionAttributeNames: { '#owner': 'owner', '#ttl': TTL_ATTRIBUTE },
            ExpressionAttributeValues: {
              ':owner': S(owner),
              ':until': N(until),
              ':now': N(now),
              ':ttl': N(Math.ceil(until / 1000) + 3600),
            },
          }),
          { abortSignal },
        ),
      );
      return { acquired: true };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
    const out = await this.call('read a lease', (abortSignal) =>
      this.client.send(new GetItemCommand({ TableName: this.table, Key: leaseKey(connection), ConsistentRead: true }), { abortSignal }),
    );
    const item = out.Item;
    const cooldownUntil = num(item?.cooldownUntil);
    if (item && cooldownUntil !== undefined && cooldownUntil > now) {
      return {
        acquired: false,
        cooldown: {
          until: cooldownUntil,
          code: item.failureCode?.S ?? 'vendor_unavailable',
          message: item.failureMessage?.S ?? `${connection}: the vendor failed recently`,
        },
      };
    }
    return { acquired: false };
  }

  async releaseLease(connection: string, owner: string): Promise<void> {
    try {
      await this.call('release a lease', (abortSignal) =>
        this.client.send(
          new DeleteItemCommand({
            TableName: this.table,
            Key: leaseKey(connection),
            ConditionExpression: '#owner = :owner',
            ExpressionAttributeNames: { '#owner': 'owner' },
            ExpressionAttributeValues: { ':owner': S(owner) },
          }),
          { abortSignal },
        ),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  async startCooldown(connection: string, owner: string, cooldown: Cooldown): Promise<void> {
    await this.call('record a cooldown', (abortSignal) =>
      this.client.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: leaseKey(connection),
          UpdateExpression:
            'SET cooldownUntil = :until, failureCode = :code, failureMessage = :msg, #ttl = :ttl REMOVE #owner, leaseUntil',
          // Only the holder records its failure; a lease taken over since then is left alone.
          ConditionExpression: 'attribute_not_exists(#owner) OR #owner = :owner',
          ExpressionAttributeNames: { '#owner': 'owner', '#ttl': TTL_ATTRIBUTE },
          ExpressionAttributeValues: {
            ':until': N(cooldown.until),
            ':code': S(cooldown.code),
            ':msg': S(cooldown.message),
            ':owner': S(owner),
            ':ttl': N(Math.ceil(cooldown.until / 1000) + 3600),
          },
        }),
        { abortSignal },
      ),
    ).catch((err: unknown) => {
      if (!isConditionFailure(err)) throw err;
    });
  }
}

/** Creates the table (and its TTL) if it is missing: local mode and tests; in AWS the CDK stack owns it. */
export async function ensureTable(client: DynamoDBClient, table: string): Promise<void> {
  try {
    await client.send(new DescribeTableCommand({ TableName: table }));
    return;
  } catch (err) {
    if (!(err instanceof ResourceNotFoundException) && (err as { name?: string }).name !== 'ResourceNotFoundException') {
      throw err;
    }
  }
  try {
    await client.send(
      new CreateTableCommand({
        TableName: table,
        AttributeDefinitions: [{ AttributeName: TABLE_KEY, AttributeType: 'S' }],
        KeySchema: [{ AttributeName: TABLE_KEY, KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
  } catch (err) {
    // Another local server created it first.
    if ((err as { name?: string }).name !== 'ResourceInUseException') throw err;
  }
  for (let i = 0; i < 100; i++) {
    const d = await client.send(new DescribeTableCommand({ TableName: table }));
    if (d.Table?.TableStatus === 'ACTIVE') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: table,
        TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
      }),
    );
  } catch {
    // dynalite does not implement TTL; DynamoDB Local and AWS do. Reads check expiry themselves either way.
  }
}
