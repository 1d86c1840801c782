import type { Clock } from '../clock';
import type { Logger, ServedCounts } from '../ports';
import { HOUR_MS } from './health';

// Requests served, counted for the console at almost no cost: each instance adds up its own in memory and writes a
// connection's count with one UpdateItem ADD at most once per flush interval (and when the hour turns), during a
// request for that connection it is serving anyway: nothing runs after a Lambda function answers, and no request
// pays a write of its own. What an instance counted since its last flush is lost when it goes away, and the table
// lags by up to one interval: docs/operations.md says how far the figure can be off.

export const SERVED_FLUSH_MS = 300_000;
/** The flush shares the request: it gives up quickly rather than hold the answer. */
const FLUSH_TIMEOUT_MS = 250;

interface Pending {
  hour: number;
  count: number;
  /** When this instance last wrote (or began counting) this connection. */
  since: number;
}

export class ServedCounter {
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly store: ServedCounts,
    private readonly clock: Clock,
    private readonly flushEveryMs = SERVED_FLUSH_MS,
    private readonly log?: Logger,
  ) {}

  /** One request served on this connection; writes its count first when its interval is up or the hour turned. */
  async served(connection: string): Promise<void> {
    const now = this.clock.now();
    const hour = Math.floor(now / HOUR_MS);
    const p = this.pending.get(connection) ?? { hour, count: 0, since: now };
    if (p.hour !== hour || now - p.since >= this.flushEveryMs) {
      await this.flush(connection, p);
      p.hour = hour;
      p.count = 0;
      p.since = now;
    }
    p.count++;
    this.pending.set(connection, p);
  }

  private async flush(connection: string, p: Pending): Promise<void> {
    if (p.count === 0) return;
    try {
      await this.store.addServed(connection, p.hour, p.count, { timeoutMs: FLUSH_TIMEOUT_MS });
    } catch (err) {
      // Dropped, not retried: a write that timed out may have counted, and a count is better low than double.
      this.log?.warn('requests served not counted', { connection, count: p.count, errorName: err instanceof Error ? err.name : typeof err });
    }
  }
}
