import type { Clock } from './clock';
import { SingleFlight } from './lease';
import type { HeldToken } from './ports';
import type { Served } from './parts';

// What one broker instance remembers between requests: the tokens it holds, the newest mint time it has seen
// stored per connection (an older item put back into the table is not served), and the work in flight that
// concurrent requests share. One object, passed to every use case; nothing else in the core keeps state per
// connection but the cooldowns (lib/cooldowns.ts).

export class Instance {
  private readonly memory = new Map<string, { held: HeldToken; cachedAt: number }>();
  /** The latest mint time this instance has seen stored, per connection: an older item is not served. */
  private readonly newest = new Map<string, number>();
  /** Concurrent callers of one connection share one look at the table... */
  readonly lookups = new SingleFlight<Served>();
  /** ...and at most one mint. */
  readonly mints = new SingleFlight<Served | undefined>();
  /** Concurrent reports of one token make one eviction: keyed by connection and fingerprint. */
  readonly evictions = new Map<string, Promise<boolean>>();
  /** Refreshes the answer does not wait for (refreshAhead 'background'). */
  readonly background = new Set<Promise<unknown>>();

  constructor(
    private readonly clock: Clock,
    /** How far apart the fleet's clocks may be: no high-water mark is noted beyond it. */
    private readonly skewMs: number,
  ) {}

  /** The token held for this connection, and when it was put in memory. */
  recall(connection: string): { held: HeldToken; cachedAt: number } | undefined {
    return this.memory.get(connection);
  }

  remember(held: HeldToken): void {
    this.memory.set(held.connection, { held, cachedAt: this.clock.now() });
  }

  /** Drops the token held for this connection when `which` says so (all of it when absent). */
  drop(connection: string, which?: (held: HeldToken) => boolean): void {
    const mem = this.memory.get(connection);
    if (mem && (!which || which(mem.held))) this.memory.delete(connection);
  }

  /** A connection was deleted or changed: nothing held for it is served again. */
  forget(connection: string): void {
    this.memory.delete(connection);
  }

  /** Whether a stored token is older than one this instance has already seen stored. */
  isStale(stored: { connection: string; mintedAt: number }): boolean {
    const newest = this.newest.get(stored.connection);
    return newest !== undefined && stored.mintedAt < newest;
  }

  noteNewest(held: { connection: string; mintedAt: number }): void {
    // A mint time in the future past the clocks' skew would refuse every genuine token until then: noted no later.
    const mintedAt = Math.min(held.mintedAt, this.clock.now() + this.skewMs);
    if ((this.newest.get(held.connection) ?? -Infinity) < mintedAt) this.newest.set(held.connection, mintedAt);
  }

  /** How many tasks are still running: after a Lambda handler answers, this must be 0. */
  pendingWork(): number {
    return this.background.size + this.lookups.size + this.mints.size + this.evictions.size;
  }

  /** Resolves when background refreshes started so far have settled. */
  async drain(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }
}
