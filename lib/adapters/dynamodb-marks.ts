import { GetItemCommand, UpdateItemCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { TABLE_KEY } from '../contract';
import type { RetiredMarks, StoreCallOptions } from '../ports';
import { DYNAMODB_BUDGET } from './aws';
import { isConditionFailure, tableCall } from './dynamodb';

// The retired marks in their own table (infra: `token-broker-<stage>-marks`, whose resource policy denies item writes
// to every principal but the broker's three roles): one item, `retired`, with one number attribute per connection
// whose token was retired, named by markKey (12 hex digits of the id's SHA-256, so that about 15,000 marks fit in
// DynamoDB's 400 KB item). A mark is only ever raised, by a conditional write, so two instances retiring at once
// leave the higher one; marks that no longer matter are removed only if still as read. Strongly consistent reads:
// a mark raised a moment ago counts.

const KEY = { [TABLE_KEY]: { S: 'retired' } };
/** The item's own attribute, not a mark. */
const isMark = (name: string) => name !== TABLE_KEY;

export class DynamoRetiredMarks implements RetiredMarks {
  constructor(
    private readonly client: Pick<DynamoDBClient, 'send'>,
    private readonly table: string,
    private readonly totalMs = DYNAMODB_BUDGET.totalMs,
  ) {}

  async readAll(call?: StoreCallOptions): Promise<Map<string, number>> {
    const out = await tableCall('read the retired marks', this.totalMs, call, (abortSignal) =>
      this.client.send(new GetItemCommand({ TableName: this.table, Key: KEY, ConsistentRead: true }), { abortSignal }),
    );
    const marks = new Map<string, number>();
    for (const [name, v] of Object.entries(out.Item ?? {})) {
      const n = Number(v.N);
      if (isMark(name) && v.N !== undefined && Number.isFinite(n)) marks.set(name, n);
    }
    return marks;
  }

  async raise(key: string, mintedAt: number, call?: StoreCallOptions): Promise<void> {
    try {
      await tableCall('raise a retired mark', this.totalMs, call, (abortSignal) =>
        this.client.send(
          new UpdateItemCommand({
            TableName: this.table,
            Key: KEY,
            UpdateExpression: 'SET #m = :m',
            ConditionExpression: 'attribute_not_exists(#m) OR #m < :m',
            ExpressionAttributeNames: { '#m': key },
            ExpressionAttributeValues: { ':m': { N: String(mintedAt) } },
          }),
          { abortSignal },
        ),
      );
    } catch (err) {
      // The mark is already as high: nothing to raise.
      if (!isConditionFailure(err)) throw err;
    }
  }

  async prune(marks: ReadonlyMap<string, number>, call?: StoreCallOptions): Promise<void> {
    const entries = [...marks].filter(([key]) => isMark(key));
    if (entries.length === 0) return;
    const names: Record<string, string> = {};
    const values: Record<string, AttributeValue> = {};
    entries.forEach(([key, mark], i) => {
      names[`#m${i}`] = key;
      values[`:m${i}`] = { N: String(mark) };
    });
    try {
      await tableCall('prune the retired marks', this.totalMs, call, (abortSignal) =>
        this.client.send(
          new UpdateItemCommand({
            TableName: this.table,
            Key: KEY,
            UpdateExpression: `REMOVE ${entries.map((_e, i) => `#m${i}`).join(', ')}`,
            ConditionExpression: entries.map((_e, i) => `#m${i} = :m${i}`).join(' AND '),
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: values,
          }),
          { abortSignal },
        ),
      );
    } catch (err) {
      // One of them was raised meanwhile: the next reader prunes what is still stale.
      if (!isConditionFailure(err)) throw err;
    }
  }
}
