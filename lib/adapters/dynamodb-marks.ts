import { GetItemCommand, UpdateItemCommand, type AttributeValue, type DynamoDBClient, type UpdateItemCommandInput } from '@aws-sdk/client-dynamodb';
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
/** How its errors name it. */
const MARKS = 'the retired marks table';
/** The item's own attribute, not a mark. */
const isMark = (name: string) => name !== TABLE_KEY;

export class DynamoRetiredMarks implements RetiredMarks {
  constructor(
    private readonly client: Pick<DynamoDBClient, 'send'>,
    private readonly table: string,
    private readonly totalMs = DYNAMODB_BUDGET.totalMs,
  ) {}

  async readAll(call?: StoreCallOptions): Promise<Map<string, number>> {
    const out = await tableCall(
      'read the retired marks',
      this.totalMs,
      call,
      (abortSignal) => this.client.send(new GetItemCommand({ TableName: this.table, Key: KEY, ConsistentRead: true }), { abortSignal }),
      MARKS,
    );
    const marks = new Map<string, number>();
    for (const [name, v] of Object.entries(out.Item ?? {})) {
      const n = Number(v.N);
      if (isMark(name) && v.N !== undefined && Number.isFinite(n)) marks.set(name, n);
    }
    return marks;
  }

  /** Raises one mark; a mark already as high fails the condition, and stays. */
  async raise(key: string, mintedAt: number, call?: StoreCallOptions): Promise<void> {
    await this.update('raise a retired mark', call, {
      UpdateExpression: 'SET #m = :m',
      ConditionExpression: 'attribute_not_exists(#m) OR #m < :m',
      ExpressionAttributeNames: { '#m': key },
      ExpressionAttributeValues: { ':m': { N: String(mintedAt) } },
    });
  }

  /** Removes the marks given, all or none: if one was raised since it was read, the next reader prunes again. */
  async prune(marks: ReadonlyMap<string, number>, call?: StoreCallOptions): Promise<void> {
    const entries = [...marks].filter(([key]) => isMark(key));
    if (entries.length === 0) return;
    const names: Record<string, string> = {};
    const values: Record<string, AttributeValue> = {};
    entries.forEach(([key, mark], i) => {
      names[`#m${i}`] = key;
      values[`:m${i}`] = { N: String(mark) };
    });
    await this.update('prune the retired marks', call, {
      UpdateExpression: `REMOVE ${entries.map((_e, i) => `#m${i}`).join(', ')}`,
      ConditionExpression: entries.map((_e, i) => `#m${i} = :m${i}`).join(' AND '),
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    });
  }

  /** A conditional UpdateItem of the marks' item: a condition that does not hold leaves it as it is. */
  private async update(what: string, call: StoreCallOptions | undefined, input: Omit<UpdateItemCommandInput, 'TableName' | 'Key'>): Promise<void> {
    try {
      await tableCall(
        what,
        this.totalMs,
        call,
        (abortSignal) => this.client.send(new UpdateItemCommand({ TableName: this.table, Key: KEY, ...input }), { abortSignal }),
        MARKS,
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }
}
