import { RequestBudget, atTable } from './budget';
import type { Connection } from './config';
import { MIN_TTL } from './contract';
import { BrokerError, ForbiddenError, InvalidRequestError, StoreUnavailableError, VendorTimeoutError } from './errors';
import { callerMayMint, drawsRefresh } from './mint-policy';
import { degraded, mint, openStored, unavailable } from './minting';
import type { IssuedToken, MintPlan, Parts, Served, Want } from './parts';
import { canUse } from './policy';
import type { HeldToken, TokenSource } from './ports';
import { fromSecret } from './secret-exchange';

// getToken, in the order a request flows:
//   authorize → memory → table → who may mint now (mint-policy.ts) → mint under the lease (minting.ts) → answer
// Every table call of one request shares one budget (lib/budget.ts); a table that cannot be reached is served
// around in degraded mode (the token this instance holds, or 503), never by an exchange.

export class TokenPath {
  constructor(private readonly parts: Parts) {}

  /** A token valid for at least `minTtl` seconds, for a caller allowed to have it. */
  async getToken(callerArn: string, connectionId: string, minTtl: number = MIN_TTL.default): Promise<IssuedToken> {
    if (!Number.isInteger(minTtl) || minTtl < MIN_TTL.min || minTtl > MIN_TTL.max) {
      throw new InvalidRequestError(`min_ttl must be an integer from ${MIN_TTL.min} to ${MIN_TTL.max}`);
    }
    const connection = await this.authorize(callerArn, connectionId);
    // Handed out for at most maxTtl: a longer min_ttl would be answered 200 with less, and the caller back at once.
    if (minTtl > connection.maxTtl) {
      throw new InvalidRequestError(
        `${connection.id}: tokens are handed out for at most ${connection.maxTtl} s (maxTtl), so min_ttl ${minTtl} cannot be met`,
        { context: { connection: connection.id } },
      );
    }
    return this.tokenFor(connection, minTtl);
  }

  /** The connection a caller may use; unknown and forbidden look the same. */
  async authorize(callerArn: string, connectionId: string): Promise<Connection> {
    const connection = await this.parts.connections.find(connectionId);
    if (!connection || !canUse(callerArn, connection)) throw new ForbiddenError({ context: { connection: connectionId } });
    return connection;
  }

  /** getToken without the authorization, for the broker's own triggers. */
  async tokenFor(connection: Connection, minTtl: number = MIN_TTL.default): Promise<IssuedToken> {
    const { held, source } = await this.serve(connection, minTtl);
    this.parts.metrics.count('TokensServed', 1, { source });
    return issue(this.parts, connection, held, source);
  }

  private async serve(connection: Connection, minTtl: number): Promise<Served> {
    const { parts } = this;
    // Every table call of this request, from here on, shares one budget (lib/budget.ts).
    const budget = new RequestBudget(parts.clock, parts.opts, parts.tableHealth);
    const needUntil = parts.clock.now() + (minTtl + parts.opts.safetyMarginSeconds) * 1000;
    const mem = parts.instance.recall(connection.id);
    if (mem && parts.clock.now() - mem.cachedAt < parts.opts.memoryTtlMs && mem.held.expiresAt >= needUntil) {
      return this.refreshAhead(connection, { held: mem.held, source: 'memory' }, budget);
    }
    if (connection.dialect.grantType === 'static') return fromSecret(parts, connection, {});
    // Within one instance, concurrent callers share one look at the table (and at most one mint).
    const served = await parts.instance.lookups.run(
      connection.id,
      (s) => s.storeDown !== undefined || s.held.expiresAt >= needUntil,
      () => this.lookUp(connection, needUntil, minTtl, budget),
    );
    if (served.storeDown && served.held.expiresAt < needUntil) throw unavailable(parts, connection, served.storeDown);
    // Each caller draws on its own, after the shared look: none waits on a refresh another one drew.
    return served.source === 'table' ? this.refreshAhead(connection, served, budget) : served;
  }

  private async lookUp(connection: Connection, needUntil: number, minTtl: number, budget: RequestBudget): Promise<Served> {
    const { parts } = this;
    const want: Want = (t) => t.expiresAt >= needUntil;
    let current: HeldToken | undefined;
    try {
      let look = await this.look(connection, budget, false);
      // A token that does not do is decided on the item as it is, not as a replica a second behind may show it:
      // around a token's expiry, when the instances that miss it meet one that just refreshed it, by a second,
      // consistent read (sparing the lease that crowd). At a slow table a mint goes straight to the lease, whose take
      // returns the item as it is, and only a refusal waits for the second read. No token at all (a connection's
      // first mint, or one just evicted) goes to the lease.
      const stale = !look.consistent && look.current !== undefined && !want(look.current);
      if (stale && (!budget.tableSlow || this.refuses(look.current!, needUntil))) look = await this.look(connection, budget, true);
      current = look.current;
    } catch (err) {
      if (err instanceof StoreUnavailableError) return degraded(parts, connection, want, err);
      throw err;
    }
    if (current && want(current)) {
      parts.instance.remember(current);
      return { held: current, source: 'table' };
    }
    const now = parts.clock.now();
    // A token as fresh as this vendor makes would still be too short: minting again would not help.
    if (current && current.lifetime * 1000 < needUntil - now) throw this.unsatisfiable(connection, current.lifetime, minTtl);
    // A still-valid token that does not cover min_ttl: this caller forces the mint, which is bounded.
    const forced = current !== undefined && current.expiresAt > now;
    const refused = callerMayMint(parts, connection, { current, minTtl, forced }, budget);
    if (refused) return degraded(parts, connection, want, refused);
    const served = await mint(parts, connection, want, { wait: true, budget, ...(forced ? { forced: { minTtl } } : {}) });
    if (!served) throw new VendorTimeoutError(`${connection.id}: no token could be obtained in time`, { context: { connection: connection.id } });
    if (served.held.expiresAt < needUntil) throw this.unsatisfiable(connection, served.held.lifetime, minTtl);
    return served;
  }

  /**
   * The table's token for this request, from an eventually consistent read unless `consistent` (half DynamoDB's
   * price: a token replaced or evicted within about a second may be served, see docs/token-lifecycle.md).
   */
  private async look(connection: Connection, budget: RequestBudget, consistent: boolean): Promise<{ current?: HeldToken; consistent: boolean }> {
    const { parts } = this;
    const read = (c: boolean) => atTable(budget, (call) => parts.store.read(connection.id, { ...call, consistent: c }));
    const seen = (await read(consistent)).token;
    // Older than one this instance has seen: from a replica, more likely one behind than a token put back; the
    // item as it is decides (openStored refuses a token put back).
    if (!consistent && seen && parts.instance.isStale(seen)) return { current: await openStored(parts, (await read(true)).token, budget), consistent: true };
    return { current: await openStored(parts, seen, budget), consistent };
  }

  /** Whether a token that does not do would get this request refused: too short-lived, or too young to replace. */
  private refuses(current: HeldToken, needUntil: number): boolean {
    const now = this.parts.clock.now();
    if (current.lifetime * 1000 < needUntil - now) return true;
    return current.expiresAt > now && current.mintedAt + this.parts.opts.forcedMintIntervalMs > now;
  }

  /**
   * Refresh ahead: in-request, the drawing request mints before it answers and answers the new token (or the
   * current one, if the mint fails or another instance holds the lease); the other callers are served the current
   * token meanwhile, without waiting. In the background, the answer does not wait for it.
   */
  private async refreshAhead(connection: Connection, served: Served, budget: RequestBudget): Promise<Served> {
    const { parts } = this;
    if (!drawsRefresh(parts, connection, served.held)) return served;
    const inRequest = parts.opts.refreshAhead === 'in-request';
    // In the request, a refresh starts only early in it (it may have shared a slow look); the current token does.
    if (inRequest && !budget.mayStartRefresh()) return served;
    parts.metrics.count('RefreshAhead', 1);
    const plan: MintPlan = inRequest ? { wait: false, budget } : { wait: false };
    const refreshed = mint(parts, connection, (t) => t.expiresAt > served.held.expiresAt, plan).catch((err: unknown) => {
      parts.log.warn('refresh ahead failed', { connection: connection.id, code: err instanceof BrokerError ? err.code : 'internal_error' });
      return undefined;
    });
    if (!inRequest) {
      const task = refreshed.finally(() => parts.instance.background.delete(task));
      parts.instance.background.add(task);
      return served;
    }
    return (await refreshed) ?? served;
  }

  private unsatisfiable(connection: Connection, lifetime: number, minTtl: number): BrokerError {
    return new InvalidRequestError(
      `${connection.id}: its tokens live ${lifetime} s, so min_ttl ${minTtl} (plus a ${this.parts.opts.safetyMarginSeconds} s margin) cannot be met`,
    );
  }
}

/** What the caller is handed: what is left of the token less the safety margin, capped by the connection's maxTtl. */
export function issue(parts: Parts, connection: Connection, held: HeldToken, source: TokenSource): IssuedToken {
  const now = parts.clock.now();
  const left = Math.floor((held.expiresAt - now) / 1000) - parts.opts.safetyMarginSeconds;
  const expiresIn = Math.max(0, Math.min(left, connection.maxTtl));
  return {
    connection: connection.id,
    accessToken: held.accessToken,
    tokenType: held.tokenType,
    expiresIn,
    expiresAt: now + expiresIn * 1000,
    tokenExpiresAt: held.expiresAt,
    maxTtl: connection.maxTtl,
    fingerprint: held.fingerprint,
    source,
  };
}
