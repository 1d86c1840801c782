import type { RequestBudget } from './budget';
import type { Connection } from './config';
import { RateLimitedError, StoreUnavailableError } from './errors';
import type { Parts } from './parts';
import type { HeldToken } from './ports';

// Who may mint now. A mint is a vendor exchange the whole fleet pays for, so every path that could start one asks
// here first, and the rules are in one place:
//   - a caller whose token is still valid but too short forces a mint: at most one per forcedMintIntervalMs;
//   - nobody but the pre-warm run, an admin or a rotation mints during a cooldown;
//   - a caller mints only while its request budget leaves room for the exchange (lib/budget.ts);
//   - a pre-warmed connection's token is the pre-warm run's to replace while the table browns out;
//   - refresh ahead draws only inside the refreshBefore window, never during a mint or a cooldown, never for a
//     pre-warmed connection in Lambda, never for a token that lives no longer than the window, and at most once
//     per connection per forcedMintIntervalMs, as a forced mint.
// A refusal is either an error the caller is answered with (rate_limited, the cooldown's), or a reason to serve
// in degraded mode (the token held in memory, or 503).

/**
 * A caller's mint, before it takes the lease: throws a refusal (the forced-mint bound, a cooldown); returns the
 * reason to serve in degraded mode instead (see mayStartUnderBudget); undefined: go ahead.
 */
export function callerMayMint(
  parts: Parts,
  connection: Connection,
  need: { current: HeldToken | undefined; minTtl: number; forced: boolean },
  budget: RequestBudget,
): StoreUnavailableError | undefined {
  if (need.forced && need.current) forcedMintBound(parts, connection, need.current, need.minTtl);
  parts.cooldowns.check(connection.id);
  return mayStartUnderBudget(parts, connection, { budget }, 'before the lease');
}

/**
 * A mint within a request's budget, asked before the lease and again once it is held (the lease itself may have
 * been the slow call): the reason to serve in degraded mode instead, or undefined.
 */
export function mayStartUnderBudget(
  parts: Parts,
  connection: Connection,
  plan: { budget: RequestBudget; ignoreCooldown?: boolean },
  stage: 'before the lease' | 'under the lease',
): StoreUnavailableError | undefined {
  const { budget } = plan;
  // Before the lease: nothing left of the budget for it, let alone the exchange. Under it: too late for an
  // exchange and the store after it within the answer's time.
  const late = stage === 'before the lease' ? !budget.hasTimeLeft() : !budget.mayStartMint();
  if (late) return budget.spentError(stage === 'before the lease' ? 'no time left for a mint' : 'the lease came too late for a mint');
  // A table browning out keeps the pre-warm run from replacing this token: it is the run's to mint, not a caller's
  // (an admin's refresh, which passes the cooldown too, is not left to the run).
  if (!plan.ignoreCooldown && connection.prewarm && (budget.tableSlow || parts.tableHealth.troubled())) {
    return new StoreUnavailableError('the token table is slow; a pre-warmed connection is minted by the pre-warm run');
  }
  return undefined;
}

/** A forced mint is refused while the current token is younger than forcedMintIntervalMs. */
export function forcedMintBound(parts: Parts, connection: Connection, current: HeldToken, minTtl: number): void {
  // Never longer than the interval, whatever mint time the token carries.
  const interval = parts.opts.forcedMintIntervalMs;
  const wait = Math.min(current.mintedAt + interval - parts.clock.now(), interval);
  if (wait <= 0) return;
  parts.metrics.count('ForcedMintsRefused', 1);
  throw new RateLimitedError(
    `${connection.id}: a token was minted moments ago and does not cover min_ttl ${minTtl}; another can be minted shortly`,
    { retryAfter: Math.max(1, Math.ceil(wait / 1000)), context: { connection: connection.id } },
  );
}

/**
 * Refresh ahead (XFetch): inside the refreshBefore window, a read draws a refresh with a probability that grows as
 * expiry nears, so a fleet spreads its refreshes.
 */
export function drawsRefresh(parts: Parts, connection: Connection, held: HeldToken): boolean {
  const window = connection.refreshBefore * 1000;
  const now = parts.clock.now();
  const left = held.expiresAt - now;
  if (window <= 0 || left > window || parts.instance.mints.has(connection.id) || parts.cooldowns.active(connection.id)) return false;
  // A token that lives no longer than the window is inside it from birth: refreshing it ahead would mint on every read.
  if (held.lifetime * 1000 <= window) return false;
  // The same bound as a forced mint: at most one per connection per forcedMintIntervalMs.
  if (now - held.mintedAt < parts.opts.forcedMintIntervalMs) return false;
  // In Lambda, a pre-warmed connection is the pre-warm run's to refresh.
  if (parts.opts.refreshAhead === 'in-request' && connection.prewarm) return false;
  return -Math.log(1 - parts.random()) * (window / 4) >= left;
}
