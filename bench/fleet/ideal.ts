// What a perfect broker would do on the same day, the yardstick each simulated figure is divided by: the fewest
// tokens that cover every request (or, for a pre-warmed connection, the whole day), the fewest table reads a 30-s
// in-process copy allows, and what each service would do alone behind the Secrets Manager Agent.

export interface TokenNeed {
  /** Milliseconds a token can serve requests after it is minted. */
  usableMs: number;
  dayMs: number;
  /** Mints the day forces (secret rotations), sorted. */
  forcedMs: readonly number[];
}

/** Pre-warmed: a token is held all day, replaced every `usableMs` and at each forced mint. */
export function idealContinuousTokens(need: TokenNeed): number {
  if (need.usableMs <= 0) throw new Error('a token must be usable for some time');
  const bounds = [0, ...need.forcedMs.filter((t) => t > 0 && t < need.dayMs), need.dayMs];
  let tokens = 0;
  for (let i = 0; i + 1 < bounds.length; i++) tokens += Math.max(1, Math.ceil((bounds[i + 1]! - bounds[i]!) / need.usableMs));
  return tokens;
}

/**
 * On demand: the greedy cover (optimal on a line): a token is minted at the first request no held token serves,
 * and serves the requests in the next `usableMs`; a forced mint always happens.
 */
export function idealOnDemandTokens(requestsMs: readonly number[], need: TokenNeed): number {
  if (need.usableMs <= 0) throw new Error('a token must be usable for some time');
  let tokens = 0;
  let coveredUntil = -Infinity;
  let f = 0;
  for (const t of requestsMs) {
    while (f < need.forcedMs.length && need.forcedMs[f]! <= t) {
      tokens += 1;
      coveredUntil = need.forcedMs[f]! + need.usableMs;
      f += 1;
    }
    if (t >= coveredUntil) {
      tokens += 1;
      coveredUntil = t + need.usableMs;
    }
  }
  return tokens + (need.forcedMs.length - f);
}

/**
 * How long a token serves, in two readings of "one per token lifetime":
 * - `strict`: a pre-warmed token serves its whole lifetime; a token on demand serves until the callers' min_ttl
 *   (plus the broker's safety margin) no longer fits.
 * - `ideal`, the goal's yardstick: as strict, except that a pre-warmed token is replaced when it enters the
 *   refreshBefore window the connection configures, so that no caller ever waits (a window as long as the token
 *   means it is replaced only when it expires, as the pre-warm run does).
 */
export function usableSeconds(
  lifetime: number,
  refreshBefore: number,
  minTtlWithMargin: number,
  prewarm: boolean,
): { strict: number; ideal: number } {
  const strict = prewarm ? lifetime : lifetime - minTtlWithMargin;
  if (strict <= 0) throw new Error(`a ${lifetime} s token cannot serve a ${minTtlWithMargin} s need`);
  const ideal = prewarm && lifetime > refreshBefore ? lifetime - refreshBefore : strict;
  return { strict, ideal };
}

/**
 * Counts covers over time per key: a new one starts when an observation comes `spanMs` or more after the
 * current cover began (a 30-s in-process copy, a token a service holds, the Agent's secret cache).
 */
export class Covers {
  private readonly started = new Map<string, number>();
  count = 0;

  observe(key: string, t: number, spanMs: number): boolean {
    const s = this.started.get(key);
    if (s !== undefined && t - s < spanMs) return false;
    this.started.set(key, t);
    this.count += 1;
    return true;
  }
}

/** The Secrets Manager Agent's default cache lifetime (ttl_seconds = 300). */
export const AGENT_SECRET_TTL_MS = 300_000;

/**
 * The alternative on the same trace: each service instance exchanges with the vendor itself, holding its token
 * in-process, and reads the vendor credentials through the Secrets Manager Agent's cache.
 */
export class ServiceAlone {
  readonly exchanges = new Covers();
  readonly secretReads = new Covers();

  observe(instance: string, connection: string, secretId: string, t: number, tokenUsableMs: number): void {
    if (this.exchanges.observe(`${instance}|${connection}`, t, tokenUsableMs)) {
      // Only an exchange needs the secret: a held token does not.
      this.secretReads.observe(`${instance}|${secretId}`, t, AGENT_SECRET_TTL_MS);
    }
  }
}
