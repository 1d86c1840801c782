// The one clock. Everything that reasons about expiry, leases, cooldowns or backoff asks it, so tests can move
// time exactly instead of waiting for it.

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms` of this clock's time (or rejects when the signal aborts). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Why a signal aborted, as an Error to reject with: ours abort with one, the platform's reasons are DOMExceptions. */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(`aborted: ${String(reason)}`);
}

/**
 * How far apart the fleet's clocks may be. A time a broker wrote (a lease's end, a mint time) later than this past
 * the reader's clock was not written by a broker: the table's writer forged it, and it is not believed.
 */
export const CLOCK_SKEW_MS = 5_000;

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(abortReason(signal));
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, Math.max(0, ms));
      const onAbort = () => {
        clearTimeout(timer);
        if (signal) reject(abortReason(signal));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

/**
 * A clock that moves only when told. `sleep` resolves once `advance` has moved time past its deadline; with
 * `autoAdvance`, a sleep moves time forward by itself (handy for code that backs off in a loop).
 */
export class ManualClock implements Clock {
  private current: number;
  private sleepers: { until: number; resolve: () => void }[] = [];

  constructor(start: number | string = '2026-11-23T10:00:00.000Z', private readonly autoAdvance = false) {
    this.current = typeof start === 'number' ? start : Date.parse(start);
  }

  now(): number {
    return this.current;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    const until = this.current + Math.max(0, ms);
    if (this.autoAdvance) {
      // Let other tasks run first, as a real sleep would, then jump.
      return new Promise((resolve) =>
        setImmediate(() => {
          if (this.current < until) this.set(until);
          resolve();
        }),
      );
    }
    return new Promise((resolve) => this.sleepers.push({ until, resolve }));
  }

  advance(ms: number): void {
    this.set(this.current + ms);
  }

  set(t: number): void {
    this.current = t;
    const due = this.sleepers.filter((s) => s.until <= t);
    this.sleepers = this.sleepers.filter((s) => s.until > t);
    for (const s of due) s.resolve();
  }
}
