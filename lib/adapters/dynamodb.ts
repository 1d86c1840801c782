import {
  ConditionalCheckFailedException,
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceNotFoundException,
  UpdateTimeToLiveCommand,
  type DynamoDBClientConfig,
} from '@aws-sdk/client-dynamodb';
import { DeleteCommand, DynamoDBDocumentClient, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { NodeHttpHandler } from '@smithy/node-http-handler';
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

const tokenKey = (c: string) => ({ [TABLE_KEY]: `token#${c}` });
const leaseKey = (c: string) => ({ [TABLE_KEY]: `lease#${c}` });

/** A DynamoDB client with the timeouts and bounded retries every call of the broker needs. */
export function createDynamoClient(config: DynamoDBClientConfig = {}): DynamoDBDocumentClient {
  const client = new DynamoDBClient({
    maxAttempts: 3,
    requestHandler: new NodeHttpHandler({ connectionTimeout: 1_000, requestTimeout: 2_000 }),
    ...config,
  });
  return DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
}

function isConditionFailure(err: unknown): boolean {
  return (
    err instanceof ConditionalCheckFailedException ||
    (err as { name?: string }).name === 'ConditionalCheckFailedException'
  );
}

export class DynamoTokenStore implements TokenStore {
  constructor(
    private readonly doc: Pick<DynamoDBDocumentClient, 'send'>,
    private readonly table: string,
  ) {}

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (isConditionFailure(err)) throw err;
      const name = (err as { name?: string }).name ?? 'error';
      throw new StoreUnavailableError(`the token table failed to ${what} (${name})`, { cause: err });
    }
  }

  async getToken(connection: string): Promise<StoredToken | undefined> {
    const out = await this.call('read a token', () =>
      this.doc.send(new GetCommand({ TableName: this.table, Key: tokenKey(connection), ConsistentRead: true })),
    );
    const item = out.Item;
    if (!item || typeof item.expiresAt !== 'number') return undefined;
    return {
      connection,
      ciphertext: item.ct as Uint8Array,
      tokenType: String(item.tokenType),
      expiresAt: item.expiresAt,
      mintedAt: Number(item.mintedAt),
      lifetime: Number(item.lifetime),
      secretVersion: String(item.secretVersion),
      fingerprint: String(item.fingerprint),
    };
  }

  async putToken(t: StoredToken): Promise<void> {
    try {
      await this.call('write a token', () =>
        this.doc.send(
          new PutCommand({
            TableName: this.table,
            Item: {
              ...tokenKey(t.connection),
              connection: t.connection,
              ct: t.ciphertext,
              tokenType: t.tokenType,
              expiresAt: t.expiresAt,
              mintedAt: t.mintedAt,
              lifetime: t.lifetime,
              secretVersion: t.secretVersion,
              fingerprint: t.fingerprint,
              [TTL_ATTRIBUTE]: Math.ceil(t.expiresAt / 1000) + TOKEN_TTL_GRACE_SECONDS,
            },
            // A holder whose lease lapsed must not overwrite a token minted after its own.
            ConditionExpression: 'attribute_not_exists(#pk) OR mintedAt <= :mintedAt',
            ExpressionAttributeNames: { '#pk': TABLE_KEY },
            ExpressionAttributeValues: { ':mintedAt': t.mintedAt },
          }),
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
              ':v': match.fingerprint,
              ...(match.mintedBefore === undefined ? {} : { ':before': match.mintedBefore }),
            },
          }
        : {
            ConditionExpression: 'attribute_exists(#pk) AND secretVersion <> :v',
            ExpressionAttributeNames: { '#pk': TABLE_KEY },
            ExpressionAttributeValues: { ':v': match.notSecretVersion },
          };
    try {
      await this.call('delete a token', () =>
        this.doc.send(new DeleteCommand({ TableName: this.table, Key: tokenKey(connection), ...condition })),
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
      await this.call('take a lease', () =>
        this.doc.send(
          new UpdateCommand({
            TableName: this.table,
            Key: leaseKey(connection),
            UpdateExpression: 'SET #owner = :owner, leaseUntil = :until, #ttl = :ttl REMOVE cooldownUntil, failureCode, failureMessage',
            ConditionExpression: `(attribute_not_exists(leaseUntil) OR leaseUntil < :now OR #owner = :owner)${cooldownClause}`,
            ExpressionAttributeNames: { '#owner': 'owner', '#ttl': TTL_ATTRIBUTE },
            ExpressionAttributeValues: {
              ':owner': owner,
              ':until': until,
              ':now': now,
              ':ttl': Math.ceil(until / 1000) + 3600,
            },
          }),
        ),
      );
      return { acquired: true };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
    const out = await this.call('read a lease', () =>
      this.doc.send(new GetCommand({ TableName: this.table, Key: leaseKey(connection), ConsistentRead: true })),
    );
    const item = out.Item;
    if (item && typeof item.cooldownUntil === 'number' && item.cooldownUntil > now) {
      return {
        acquired: false,
        cooldown: {
          until: item.cooldownUntil,
          code: String(item.failureCode ?? 'vendor_unavailable'),
          message: String(item.failureMessage ?? `${connection}: the vendor failed recently`),
        },
      };
    }
    return { acquired: false };
  }

  async releaseLease(connection: string, owner: string): Promise<void> {
    try {
      await this.call('release a lease', () =>
        this.doc.send(
          new DeleteCommand({
            TableName: this.table,
            Key: leaseKey(connection),
            ConditionExpression: '#owner = :owner',
            ExpressionAttributeNames: { '#owner': 'owner' },
            ExpressionAttributeValues: { ':owner': owner },
          }),
        ),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  async startCooldown(connection: string, owner: string, cooldown: Cooldown): Promise<void> {
    await this.call('record a cooldown', () =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: leaseKey(connection),
          UpdateExpression:
            'SET cooldownUntil = :until, failureCode = :code, failureMessage = :msg, #ttl = :ttl REMOVE #owner, leaseUntil',
          // Only the holder records its failure; a lease taken over since then is left alone.
          ConditionExpression: 'attribute_not_exists(#owner) OR #owner = :owner',
          ExpressionAttributeNames: { '#owner': 'owner', '#ttl': TTL_ATTRIBUTE },
          ExpressionAttributeValues: {
            ':until': cooldown.until,
            ':code': cooldown.code,
            ':msg': cooldown.message,
            ':owner': owner,
            ':ttl': Math.ceil(cooldown.until / 1000) + 3600,
          },
        }),
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
