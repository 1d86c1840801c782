import type { RequestBudget } from './budget';
import type { Clock } from './clock';
import { ENVELOPE_MAX_AGE_MS } from './crypto';
import { fingerprint } from './fingerprint';
import type { Instance } from './instance';
import type { Logger, Metrics, RetiredMarks } from './ports';

// The retired marks as the core uses them (the port: lib/ports.ts RetiredMarks). A token retired for cause raises
// its connection's mark to its mint time, in a table the token table's writers cannot write. Before this instance
// trusts a token from the token table it knows the marks: one read of all of them, then again every 5 minutes, and
// a token minted at or before its connection's mark is refused as an old item put back. Reading the marks is what
// lets a fresh instance, which has never seen the newer token, refuse the retired one too.

/** How long an instance trusts the marks it read: a mark raised by another instance counts here within this. */
export const MARK_RECHECK_MS = 5 * 60_000;
/** After the marks could not be read: the tokens are served meanwhile, and the marks read again after this. */
export const MARK_RETRY_MS = 10_000;
/** The marks' read is one GetItem: it never takes a request longer than this. */
export const MARK_READ_MS = 300;
/** A mark's raise, after an eviction an admin or a rotation waits on. */
export const MARK_RAISE_MS = 2_000;
/**
 * A mark older than this retires nothing a reader would still open: a token minted at or before it has a data key
 * born before it, and an envelope past ENVELOPE_MAX_AGE_MS from its key's birth is refused (lib/crypto.ts).
 */
export const MARK_KEPT_MS = ENVELOPE_MAX_AGE_MS;
/** At most this many marks are pruned by one write (DynamoDB's 4 KB condition expression). */
const PRUNE_AT_MOST = 100;

/** A connection's mark's name in the marks' item: 12 hex digits of its id's SHA-256, so any id fits in a few bytes. */
export function markKey(connection: string): string {
  return fingerprint(connection);
}

/** No table of marks: what an instance retires, only it remembers (tests of other behaviour). */
export const NO_SHARED_MARKS: RetiredMarks = { readAll: () => Promise.resolve(new Map()), raise: () => Promise.resolve(), prune: () => Promise.resolve() };

export class Retirements {
  private marks = new Map<string, number>();
  /** When the marks are next read. */
  private due = -Infinity;
  /** Concurrent requests share one read. */
  private reading: Promise<void> | undefined;

  constructor(
    private readonly port: RetiredMarks,
    private readonly deps: { clock: Clock; instance: Instance; log: Logger; metrics: Metrics; skewMs: number },
  ) {}

  /**
   * Before a token from the table is trusted: its connection's mark is known to this instance (noted in it). Within a
   * request the read is one of its table calls (the marks are DynamoDB too): it counts in the request's budget (a slow
   * one makes the request slow, so no mint starts late), and takes at most MARK_READ_MS, never past the answer's
   * deadline. With no time left it is not made, and counts as a failed read (the token is served; read again soon).
   */
  async check(connection: string, budget?: RequestBudget): Promise<void> {
    if (this.due <= this.deps.clock.now()) {
      const read = (timeoutMs: number) => this.port.readAll({ timeoutMs: Math.min(MARK_READ_MS, timeoutMs) });
      const within = budget ? () => budget.call((call) => read(Math.min(call.timeoutMs ?? Infinity, budget.untilAnswer()))) : () => read(Infinity);
      this.reading ??= this.read(within).finally(() => (this.reading = undefined));
      await this.reading;
    }
    const mark = this.marks.get(markKey(connection));
    if (mark !== undefined) this.deps.instance.noteNewest({ connection, mintedAt: mark + 1 });
  }

  private async read(readAll: () => Promise<Map<string, number>>): Promise<void> {
    const { clock, log, metrics } = this.deps;
    try {
      this.marks = await readAll();
      this.due = clock.now() + MARK_RECHECK_MS;
    } catch (err) {
      // Served meanwhile: a table of marks that is down must not take the tokens down with it (the alarm says so).
      metrics.count('RetiredMarkReadFailures', 1);
      log.warn('the retired marks could not be read; serving without them for now', { reason: (err as Error).message });
      this.due = clock.now() + MARK_RETRY_MS;
      return;
    }
    const stale = new Map([...this.marks].filter(([, mark]) => mark < clock.now() - MARK_KEPT_MS).slice(0, PRUNE_AT_MOST));
    if (stale.size > 0) {
      await this.port.prune(stale, { timeoutMs: MARK_READ_MS }).catch((err: unknown) => {
        log.warn('stale retired marks could not be pruned; the next read tries again', { reason: (err as Error).message });
      });
    }
  }

  /**
   * A token minted at `mintedAt` was retired for cause: no instance serves it, or an older one, again. A mint time
   * beyond the clocks' skew was forged: the mark goes no further than now plus the skew, or it would refuse every
   * genuine token until then. A failed raise is logged and counted (its alarm), not thrown: the eviction it follows
   * is done, and this instance refuses the token either way.
   */
  async retire(connection: string, mintedAt: number): Promise<void> {
    const { clock, instance, log, metrics, skewMs } = this.deps;
    const mark = Math.min(mintedAt, clock.now() + skewMs);
    instance.noteNewest({ connection, mintedAt: mark + 1 });
    try {
      await this.port.raise(markKey(connection), mark, { timeoutMs: MARK_RAISE_MS });
    } catch (err) {
      metrics.count('RetiredMarkWriteFailures', 1);
      log.error("a retired token's mark could not be raised: a fresh instance could serve it if it were put back", {
        connection,
        reason: (err as Error).message,
      });
    }
  }
}
