import { checkTimeLeft } from '../budget';
import { CLOCK_SKEW_MS, type Clock } from '../clock';
import type {
  ConnectionRecord,
  LeaseClaim,
  LeaseOutcome,
  RecordedFailure,
  RecordScan,
  ReadOptions,
  RecordSummary,
  ScanOptions,
  ServedCounts,
  StoreCallOptions,
  StoredToken,
  TokenMatch,
  TokenStore,
} from '../ports';

// The token table in a Map: the same conditions as the DynamoDB store (the shared contract tests hold both to
// them), for tests and simulations that need many brokers and no server. Every call yields first (a microtask),
// so concurrent callers interleave as they would over a network; records are copied in and out, as DynamoDB's
// would be, so no caller holds a live reference to the table. It answers at once, so a call's deadline only
// matters when none is left: then the call is refused, as the DynamoDB store refuses it. Given a lag, an eventually
// consistent read answers the record as it was that long ago (DynamoDB's worst case, about a second).

/** How stale an eventually consistent read may be: a record as it stood up to `ms` before now, by `clock`. */
export interface ReadLag {
  clock: Clock;
  ms: number;
}

const copy = (r: ConnectionRecord): ConnectionRecord => structuredClone(r);

export class MemoryTokenStore implements TokenStore, RecordScan, ServedCounts {
  private readonly records = new Map<string, ConnectionRecord>();
  /** Requests served, by connection and hour, as DynamoDB keeps them: the current hour and the one before. */
  private readonly served = new Map<string, Map<number, number>>();
  /** Per connection, the record before each write of the last `lag.ms`, oldest first (only with a lag). */
  private readonly before = new Map<string, { at: number; record: ConnectionRecord }[]>();

  constructor(private readonly lag?: ReadLag) {}

  private async turn(call: StoreCallOptions | undefined, what: string): Promise<void> {
    checkTimeLeft(call, what);
    await Promise.resolve();
  }

  /** The record a write is about to change (every caller but read is a write, or a conditional one). */
  private get(connection: string): ConnectionRecord {
    let r = this.records.get(connection);
    if (!r) this.records.set(connection, (r = {}));
    if (this.lag) this.keepBefore(connection, r, this.lag);
    return r;
  }

  private keepBefore(connection: string, r: ConnectionRecord, lag: ReadLag): void {
    const now = lag.clock.now();
    const kept = (this.before.get(connection) ?? []).filter((b) => b.at > now - lag.ms);
    kept.push({ at: now, record: copy(r) });
    this.before.set(connection, kept);
  }

  async read(connection: string, call?: ReadOptions): Promise<ConnectionRecord> {
    await this.turn(call, 'read a token');
    const current = this.records.get(connection) ?? {};
    if (!this.lag || call?.consistent !== false) return copy(current);
    // The oldest state still inside the lag: what a replica that missed every write since may answer.
    const since = this.lag.clock.now() - this.lag.ms;
    return copy(this.before.get(connection)?.find((b) => b.at > since)?.record ?? current);
  }

  async acquireLease(connection: string, claim: LeaseClaim, call?: StoreCallOptions): Promise<LeaseOutcome> {
    await this.turn(call, 'take a lease');
    const r = this.get(connection);
    const leaseFree = !r.lease || r.lease.until < claim.now;
    const cool = r.failure?.coolUntil;
    const cooling =
      claim.cooldownCeiling !== undefined && cool !== undefined && cool > claim.now && cool <= claim.cooldownCeiling;
    if (!leaseFree || cooling) return { acquired: false, record: copy(r) };
    r.lease = { fence: claim.fence, holder: claim.holder, until: claim.until };
    return { acquired: true, record: copy(r) };
  }

  async putToken(token: StoredToken, fence: string, call?: StoreCallOptions): Promise<boolean> {
    await this.turn(call, 'write a token');
    const r = this.get(token.connection);
    const older = r.mintedAt !== undefined && r.mintedAt >= token.mintedAt && r.mintedAt <= token.mintedAt + CLOCK_SKEW_MS;
    if (r.lease?.fence !== fence || older) return false;
    r.token = structuredClone(token);
    r.mintedAt = token.mintedAt;
    delete r.lease;
    if (r.failure) delete r.failure.coolUntil;
    return true;
  }

  async recordFailure(connection: string, fence: string, failure: RecordedFailure, call?: StoreCallOptions): Promise<boolean> {
    await this.turn(call, 'record a failure');
    const r = this.get(connection);
    if (r.lease?.fence !== fence) return false;
    r.failure = structuredClone(failure);
    delete r.lease;
    return true;
  }

  async releaseLease(connection: string, fence: string, call?: StoreCallOptions): Promise<boolean> {
    await this.turn(call, 'release a lease');
    const r = this.get(connection);
    if (r.lease?.fence !== fence) return false;
    delete r.lease;
    return true;
  }

  async deleteToken(connection: string, match: TokenMatch, call?: StoreCallOptions): Promise<number | undefined> {
    await this.turn(call, 'delete a token');
    const r = this.get(connection);
    const t = r.token;
    if (!t) return undefined;
    const matches =
      'fingerprint' in match
        ? t.fingerprint === match.fingerprint && (match.mintedBefore === undefined || t.mintedAt < match.mintedBefore)
        : t.secretVersion !== match.notSecretVersion;
    if (!matches) return undefined;
    // The mint time stays: it is the high-water mark no later token may fall below.
    delete r.token;
    return t.mintedAt;
  }

  async scanRecords(opts: ScanOptions = {}): Promise<RecordSummary[]> {
    await this.turn(opts.call, 'scan the records');
    const ids = new Set([...this.records.keys(), ...this.served.keys()]);
    return [...ids].map((connection) => {
      const { token, ...rest } = copy(this.records.get(connection) ?? {});
      const asked = new Set(opts.servedHours ?? []);
      const hours = [...(this.served.get(connection) ?? new Map<number, number>())].filter(([h]) => asked.has(h)).sort(([a], [b]) => a - b);
      const summary: RecordSummary = { connection, ...rest, served: hours.map(([hour, count]) => ({ hour, count })) };
      if (token) {
        const { ciphertext: _sealed, ...clear } = token;
        summary.token = clear;
      }
      return summary;
    });
  }

  async addServed(connection: string, hour: number, count: number, call?: StoreCallOptions): Promise<void> {
    await this.turn(call, 'count requests');
    const hours = this.served.get(connection) ?? new Map<number, number>();
    hours.set(hour, (hours.get(hour) ?? 0) + count);
    for (const h of hours.keys()) if (h < hour - 1 && h >= hour - 24) hours.delete(h);
    this.served.set(connection, hours);
  }
}
