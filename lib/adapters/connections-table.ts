import {
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  ScanCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { TABLE_KEY } from '../contract';
import type { ConnectionRegistry, RegisteredConnection, RegisteredPage, StoreCallOptions } from '../ports';
import { DYNAMODB_BUDGET } from './aws';
import { isConditionFailure, tableCall } from './dynamodb';

// Registered connections in the token table: one item each, `connection#<id>`, beside the `token#<id>` items the
// token store keeps (the prefixes keep the two apart whatever the id). An item holds the definition as JSON, its
// etag, and who changed it when. Every change is one PutItem or DeleteItem, conditioned on the etag when the admin
// sent If-Match: two racing writes are decided by the table, and a failed write leaves the item as it was.

const PREFIX = 'connection#';
/** One listing reads at most this many scan pages (1 MB each): a page of the API may come back short, with `next`. */
const MAX_SCAN_CALLS = 20;

const S = (v: string): AttributeValue => ({ S: v });
const N = (v: number): AttributeValue => ({ N: String(v) });
const itemKey = (id: string) => ({ [TABLE_KEY]: S(`${PREFIX}${id}`) });

function entryOf(item: Record<string, AttributeValue> | undefined): RegisteredConnection | undefined {
  const pk = item?.[TABLE_KEY]?.S;
  if (!item || !pk?.startsWith(PREFIX) || item.definition?.S === undefined || item.etag?.S === undefined) return undefined;
  return {
    id: pk.slice(PREFIX.length),
    definition: JSON.parse(item.definition.S) as Record<string, unknown>,
    etag: item.etag.S,
    changedAt: Number(item.changedAt?.N ?? 0),
    changedBy: item.changedBy?.S ?? '',
  };
}

export class DynamoConnectionRegistry implements ConnectionRegistry {
  constructor(
    private readonly client: Pick<DynamoDBClient, 'send'>,
    private readonly table: string,
    /** The whole of one call, SDK retries included: past it the table counts as down (503). */
    private readonly totalMs = DYNAMODB_BUDGET.totalMs,
  ) {}

  async get(id: string, call?: StoreCallOptions): Promise<RegisteredConnection | undefined> {
    const out = await tableCall('read a connection', this.totalMs, call, (abortSignal) =>
      this.client.send(new GetItemCommand({ TableName: this.table, Key: itemKey(id), ConsistentRead: true }), { abortSignal }),
    );
    return entryOf(out.Item);
  }

  async put(entry: RegisteredConnection, ifMatch?: string): Promise<{ written: boolean; previous?: RegisteredConnection }> {
    const item = {
      ...itemKey(entry.id),
      kind: S('connection'),
      definition: S(JSON.stringify(entry.definition)),
      etag: S(entry.etag),
      changedAt: N(entry.changedAt),
      changedBy: S(entry.changedBy),
    };
    return this.conditional(entry.id, 'write a connection', ifMatch, (condition, abortSignal) =>
      this.client.send(new PutItemCommand({ TableName: this.table, Item: item, ReturnValues: 'ALL_OLD', ...condition }), { abortSignal }),
    );
  }

  async delete(id: string, ifMatch?: string): Promise<{ written: boolean; previous?: RegisteredConnection }> {
    return this.conditional(id, 'delete a connection', ifMatch, (condition, abortSignal) =>
      this.client.send(new DeleteItemCommand({ TableName: this.table, Key: itemKey(id), ReturnValues: 'ALL_OLD', ...condition }), { abortSignal }),
    );
  }

  /** One write, conditioned on the etag when one is given; a refused write reports what the table holds instead. */
  private async conditional(
    id: string,
    what: string,
    ifMatch: string | undefined,
    send: (
      condition: { ConditionExpression?: string; ExpressionAttributeNames?: Record<string, string>; ExpressionAttributeValues?: Record<string, AttributeValue> },
      abortSignal: AbortSignal,
    ) => Promise<{ Attributes?: Record<string, AttributeValue> }>,
  ): Promise<{ written: boolean; previous?: RegisteredConnection }> {
    const condition =
      ifMatch === undefined
        ? {}
        : { ConditionExpression: '#etag = :etag', ExpressionAttributeNames: { '#etag': 'etag' }, ExpressionAttributeValues: { ':etag': S(ifMatch) } };
    try {
      const out = await tableCall(what, this.totalMs, undefined, (abortSignal) => send(condition, abortSignal));
      const previous = entryOf(out.Attributes);
      return previous ? { written: true, previous } : { written: true };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      const current = await this.get(id);
      return current ? { written: false, previous: current } : { written: false };
    }
  }

  async list(page: { limit: number; after?: string; keep?: (c: RegisteredConnection) => boolean }): Promise<RegisteredPage> {
    const items: RegisteredConnection[] = [];
    let start: Record<string, AttributeValue> | undefined = page.after === undefined ? undefined : { [TABLE_KEY]: S(page.after) };
    for (let calls = 0; calls < MAX_SCAN_CALLS; calls++) {
      const out = await tableCall('list connections', this.totalMs, undefined, (abortSignal) =>
        this.client.send(
          new ScanCommand({
            TableName: this.table,
            FilterExpression: 'begins_with(#pk, :prefix)',
            ExpressionAttributeNames: { '#pk': TABLE_KEY },
            ExpressionAttributeValues: { ':prefix': S(PREFIX) },
            ...(start ? { ExclusiveStartKey: start } : {}),
          }),
          { abortSignal },
        ),
      );
      for (const item of out.Items ?? []) {
        const entry = entryOf(item);
        if (!entry || (page.keep && !page.keep(entry))) continue;
        items.push(entry);
        // Full: the next page starts after this item (a scan resumes from any key of the table).
        if (items.length === page.limit) return { items, next: `${PREFIX}${entry.id}` };
      }
      if (!out.LastEvaluatedKey) return { items };
      start = out.LastEvaluatedKey;
    }
    const resume = start?.[TABLE_KEY]?.S;
    return resume === undefined ? { items } : { items, next: resume };
  }
}
