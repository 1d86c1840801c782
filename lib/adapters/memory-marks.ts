import { checkTimeLeft } from '../budget';
import type { RetiredMarks, StoreCallOptions } from '../ports';

/** The retired marks in a Map, for tests and simulations: raised only, pruned only if unchanged, as the table's writes. */
export class MemoryRetiredMarks implements RetiredMarks {
  private readonly marks = new Map<string, number>();

  async readAll(call?: StoreCallOptions): Promise<Map<string, number>> {
    await this.turn(call, 'read the retired marks');
    return new Map(this.marks);
  }

  async raise(key: string, mintedAt: number, call?: StoreCallOptions): Promise<void> {
    await this.turn(call, 'raise a retired mark');
    if ((this.marks.get(key) ?? -Infinity) < mintedAt) this.marks.set(key, mintedAt);
  }

  async prune(marks: ReadonlyMap<string, number>, call?: StoreCallOptions): Promise<void> {
    await this.turn(call, 'prune the retired marks');
    if ([...marks].every(([key, mark]) => this.marks.get(key) === mark)) for (const key of marks.keys()) this.marks.delete(key);
  }

  private async turn(call: StoreCallOptions | undefined, what: string): Promise<void> {
    checkTimeLeft(call, what);
    await Promise.resolve();
  }
}
