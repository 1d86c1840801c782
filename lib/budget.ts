import type { Clock } from './clock';
import { StoreUnavailableError } from './errors';
import type { StoreCallOptions } from './ports';

// The request budget: a table that answers, but slowly, must not make a token request slow. Each table call has its
// own deadline (lib/adapters/aws.ts), but one request can make several calls in a row (read, lease, waits for
// another instance's mint, the store after a mint). So all the table work of one request shares one budget,
// measured from the request's start: each call gets what is left of it, a mint starts only while most of it is
// left, and once it is spent the request is answered in degraded mode (the token held in memory, or 503).

export interface BudgetOptions {
  /** All the table work of one token request, lease waits included, ends this long after the request starts. */
  tableBudgetMs: number;
  /**
   * After a slow table call, a mint (a vendor exchange) starts only while the table has taken at most this much of
   * the request; after a prompt one (the table answers again; the slow one was, say, a cold start), while any of the
   * budget is left. Either way the store after it is expected to take about as long as that last call.
   */
  mintStartMs: number;
  /** The store after a mint gets at least this, so that a slow vendor does not cost the fleet its new token... */
  storeAfterMintMs: number;
  /**
   * ...but it ends by this long after the request started, so that a table answering just under slowTableCallMs on
   * every call does not take the answer past 3 s. While every call of the request was prompt it is never cut below
   * slowTableCallMs, though: that table is healthy, and a store it would have taken is worth a moment past the
   * deadline (a token the table did not take is minted again by the fleet, its callers waiting up to a lease on it).
   */
  answerByMs: number;
  /** A table call that takes longer than this (or fails) says the table is browning out. */
  slowTableCallMs: number;
  /** After such a sign, an instance's callers of pre-warmed connections leave mints to the pre-warm run this long. */
  tableTroubleMs: number;
}

export const BUDGET_DEFAULTS: BudgetOptions = {
  tableBudgetMs: 2_000,
  mintStartMs: 1_000,
  storeAfterMintMs: 500,
  answerByMs: 2_800,
  slowTableCallMs: 300,
  tableTroubleMs: 60_000,
};

/**
 * For runs where the table shares a loaded machine with everything else (the tests of other behaviour): a slow
 * answer there is load, not a brownout. The budget itself is proven with BUDGET_DEFAULTS.
 */
export const UNHURRIED_REQUEST_BUDGET: BudgetOptions = {
  tableBudgetMs: 30_000,
  mintStartMs: 15_000,
  storeAfterMintMs: 10_000,
  answerByMs: 60_000,
  slowTableCallMs: 10_000,
  tableTroubleMs: 60_000,
};

/** Refuses a table call that has no time left: it is not made, and the table counts as down for it. */
export function checkTimeLeft(call: StoreCallOptions | undefined, what: string): void {
  if (call?.timeoutMs !== undefined && call.timeoutMs <= 0) {
    throw new StoreUnavailableError(`the token table failed to ${what} (no time left in the request's budget)`);
  }
}

/** What an instance has seen of the table lately, across its requests. */
export class TableHealth {
  private troubleAt = -Infinity;

  constructor(
    private readonly clock: Clock,
    private readonly opts: BudgetOptions,
  ) {}

  noteTrouble(): void {
    this.troubleAt = this.clock.now();
  }

  /** A call of this instance failed or was slow within tableTroubleMs. */
  troubled(): boolean {
    return this.clock.now() - this.troubleAt < this.opts.tableTroubleMs;
  }
}

/**
 * One token request's table budget. While every call answers promptly, the budget is the time spent in table calls
 * (a wait for another instance's mint on a healthy table is a wait on the vendor, bounded by the lease); once a call
 * is slow or fails, it is the time since the request started, sleeps included.
 */
export class RequestBudget {
  private readonly started: number;
  private tableMs = 0;
  private slow = false;
  private lastSlow = false;

  constructor(
    private readonly clock: Clock,
    private readonly opts: BudgetOptions,
    private readonly health: TableHealth,
  ) {
    this.started = clock.now();
  }

  /** How much of the budget the table has taken. */
  spent(): number {
    return this.slow ? this.clock.now() - this.started : this.tableMs;
  }

  /** Whether a call of this request was slow or failed. */
  get tableSlow(): boolean {
    return this.slow;
  }

  /** Some of the budget is left for another table call. */
  hasTimeLeft(): boolean {
    return this.spent() < this.opts.tableBudgetMs;
  }

  /** A mint may start: the table has left room for the exchange, and the store after it, within the answer's time. */
  mayStartMint(): boolean {
    return this.spent() <= (this.lastSlow ? this.opts.mintStartMs : this.opts.tableBudgetMs);
  }

  /** A refresh ahead of expiry (a mint nobody needs yet) starts only this early in the request, whatever took the time. */
  mayStartRefresh(): boolean {
    return this.clock.now() - this.started <= this.opts.mintStartMs;
  }

  /** Past this (the lease's own wait deadline, or sooner at a slow table) a wait for another instance's mint ends. */
  waitDeadline(leaseDeadline: number): number {
    return this.slow ? Math.min(leaseDeadline, this.started + this.opts.tableBudgetMs) : leaseDeadline;
  }

  /** Milliseconds until the answer's deadline (answerByMs from the request's start). */
  untilAnswer(): number {
    return this.started + this.opts.answerByMs - this.clock.now();
  }

  /** Runs one table call with what is left of the budget, noting how the table answered. */
  call<T>(run: (call: StoreCallOptions) => Promise<T>): Promise<T> {
    return this.timed(run, this.opts.tableBudgetMs - this.spent());
  }

  /**
   * The store of a token this request minted: what is left of the budget, at least storeAfterMintMs, but ending by
   * the answer's deadline (answerByMs from the request's start); while every call of this request was prompt, never
   * shorter than slowTableCallMs (a healthy table's store is worth a moment past the deadline). Once a call was slow,
   * the deadline holds: nothing is tried past it.
   */
  storeAfterMint<T>(run: (call: StoreCallOptions) => Promise<T>): Promise<T> {
    const left = Math.max(this.opts.tableBudgetMs - this.spent(), this.opts.storeAfterMintMs);
    const untilAnswer = this.started + this.opts.answerByMs - this.clock.now();
    return this.timed(run, Math.max(Math.min(left, untilAnswer), this.slow ? 0 : this.opts.slowTableCallMs));
  }

  private async timed<T>(run: (call: StoreCallOptions) => Promise<T>, left: number): Promise<T> {
    const began = this.clock.now();
    let failed = false;
    try {
      return await run({ timeoutMs: left });
    } catch (err) {
      failed = err instanceof StoreUnavailableError;
      throw err;
    } finally {
      const took = this.clock.now() - began;
      this.tableMs += took;
      this.lastSlow = failed || took > this.opts.slowTableCallMs;
      if (this.lastSlow) {
        this.slow = true;
        this.health.noteTrouble();
      }
    }
  }

  /** The error a request answers with when its budget is spent: the table counts as down. */
  spentError(what: string): StoreUnavailableError {
    return new StoreUnavailableError(`the token table is too slow: ${what} after ${Math.round(this.spent())} ms of the request's table budget`);
  }
}

/** A table call within a request's budget when there is one; with the store's own deadline otherwise. */
export function atTable<T>(budget: RequestBudget | undefined, run: (call: StoreCallOptions) => Promise<T>): Promise<T> {
  return budget ? budget.call(run) : run({});
}
