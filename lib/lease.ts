import { randomUUID } from 'node:crypto';
import { atTable, type RequestBudget } from './budget';
import { CLOCK_SKEW_MS, type Clock } from './clock';
import type { ConnectionRecord, RecordedFailure, StoreCallOptions, StoredToken, TokenStore } from './ports';

// The mint lease: so that one instance of the fleet exchanges with a vendor while the others wait for its token.
// Each acquisition gets its own fencing token; storing the token, recording a failure and releasing are all
// conditioned on it, so a holder whose lease lapsed (a Lambda frozen mid-exchange that resumes later) changes
// nothing. Within one instance, every mint path goes through one SingleFlight per connection first.

export interface LeaseOptions {
  /** How long a lease lasts: past it, the holder is presumed dead and another instance may take over. */
  leaseMs: number;
  /** How long a caller may wait for another instance's mint before giving up. */
  maxWaitMs: number;
  /** Backoff between looks at the table while another instance mints (full jitter over [cap/2, cap]). */
  waitBackoffBaseMs: number;
  waitBackoffCapMs: number;
  /** How far apart the fleet's clocks may be: a lease ending later than now + leaseMs + this no broker wrote. */
  clockSkewMs: number;
}

export const LEASE_DEFAULTS: LeaseOptions = {
  leaseMs: 15_000,
  maxWaitMs: 20_000,
  waitBackoffBaseMs: 25,
  waitBackoffCapMs: 400,
  clockSkewMs: CLOCK_SKEW_MS,
};

/** The most looks at the table one wait makes, whatever the clock does. */
const MAX_WAIT_ROUNDS = 1_000;

/** A lease this instance holds: `fence` names it in every write that depends on it. */
export interface HeldLease {
  connection: string;
  fence: string;
  /** The connection's record as it was when the lease was taken. */
  record: ConnectionRecord;
}

export type Acquisition = { held: HeldLease; record: ConnectionRecord } | { held: undefined; record: ConnectionRecord };

export class Lease {
  constructor(
    private readonly parts: {
      store: TokenStore;
      clock: Clock;
      /** This instance's id, recorded beside the lease (and on the tokens it mints). */
      holder: string;
      random: () => number;
      options: LeaseOptions;
    },
  ) {}

  get options(): LeaseOptions {
    return this.parts.options;
  }

  /**
   * Takes the connection's lease, unless another instance holds a live one or a cooldown recorded in the table
   * runs. `cooldownCeiling`: a recorded cooldown ending later than this is ignored (no broker writes one that
   * long); absent, the lease is taken whatever the cooldown. `budget`: the request's, when a caller is waiting.
   */
  async acquire(connection: string, opts: { cooldownCeiling?: number }, budget?: RequestBudget): Promise<Acquisition> {
    const first = await this.claim(connection, opts, budget);
    const forged = first.held ? undefined : first.record.lease;
    if (!forged || !this.beyondBelief(forged.until)) return first;
    // No broker writes a lease that long (a table writer did): it is given back by its own fence, and taken once more.
    await atTable(budget, (call) => this.parts.store.releaseLease(connection, forged.fence, call));
    return this.claim(connection, opts, budget);
  }

  /** A lease ending later than a lease taken now could, even on a clock clockSkewMs ahead. */
  beyondBelief(until: number): boolean {
    const { clock, options } = this.parts;
    return until > clock.now() + options.leaseMs + options.clockSkewMs;
  }

  private async claim(connection: string, opts: { cooldownCeiling?: number }, budget?: RequestBudget): Promise<Acquisition> {
    const { store, clock, holder, options } = this.parts;
    const now = clock.now();
    const fence = randomUUID();
    const claim = {
      fence,
      holder,
      now,
      until: now + options.leaseMs,
      ...(opts.cooldownCeiling === undefined ? {} : { cooldownCeiling: opts.cooldownCeiling }),
    };
    const outcome = await atTable(budget, (call) => store.acquireLease(connection, claim, call));
    if (!outcome.acquired) return { held: undefined, record: outcome.record };
    return { held: { connection, fence, record: outcome.record }, record: outcome.record };
  }

  /**
   * Stores the token and gives the lease back; false when the lease was lost or the token is older than the table's.
   * Within a request's budget as a write after a mint (RequestBudget.storeAfterMint); with the store's own deadline
   * otherwise. So are the other writes under the lease: they end by the request's answer deadline.
   */
  store(lease: HeldLease, token: StoredToken, budget?: RequestBudget): Promise<boolean> {
    return afterMint(budget, (call) => this.parts.store.putToken(token, lease.fence, call));
  }

  /** Records a failed exchange (and its cooldown) and gives the lease back, if it is still held. */
  fail(lease: HeldLease, failure: RecordedFailure, budget?: RequestBudget): Promise<boolean> {
    return afterMint(budget, (call) => this.parts.store.recordFailure(lease.connection, lease.fence, failure, call));
  }

  release(lease: HeldLease, budget?: RequestBudget): Promise<boolean> {
    return afterMint(budget, (call) => this.parts.store.releaseLease(lease.connection, lease.fence, call));
  }

  /** The deadline of a wait that starts now. */
  waitDeadline(): number {
    return this.parts.clock.now() + this.parts.options.maxWaitMs;
  }

  /** Sleeps before the next look at the table: exponential, jittered, capped; false once the wait is over. */
  async backoff(round: number, deadline: number): Promise<boolean> {
    const { clock, random, options } = this.parts;
    if (round >= MAX_WAIT_ROUNDS || clock.now() >= deadline) return false;
    const cap = Math.min(options.waitBackoffCapMs, options.waitBackoffBaseMs * 2 ** Math.min(round, 10));
    await clock.sleep(Math.min(cap / 2 + (random() * cap) / 2, Math.max(0, deadline - clock.now())));
    // A sleep that ended past the deadline (a stalled process): the wait is over, whatever the table says now.
    return clock.now() <= deadline;
  }
}

/** A write under the lease: within the request's answer deadline when there is a request; the store's own otherwise. */
function afterMint<T>(budget: RequestBudget | undefined, run: (call: StoreCallOptions) => Promise<T>): Promise<T> {
  return budget ? budget.storeAfterMint(run) : run({});
}

/**
 * At most one task per key at a time in this process. A caller arriving while one runs waits for it and takes its
 * outcome when `accept` says it will do (its error, if it failed); otherwise it runs its own task next.
 */
export class SingleFlight<T> {
  private readonly running = new Map<string, Promise<T>>();

  get size(): number {
    return this.running.size;
  }

  has(key: string): boolean {
    return this.running.has(key);
  }

  async run(key: string, accept: (value: T) => boolean, task: () => Promise<T>): Promise<T> {
    // Bounded: each round waits for a task to finish, and only tasks started meanwhile can make another round.
    for (let round = 0; round < 100; round++) {
      const current = this.running.get(key);
      if (!current) break;
      const value = await current;
      if (accept(value)) return value;
    }
    const own = task().finally(() => {
      if (this.running.get(key) === own) this.running.delete(key);
    });
    this.running.set(key, own);
    return own;
  }
}
