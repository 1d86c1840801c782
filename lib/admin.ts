import { RequestBudget, atTable } from './budget';
import type { Connection } from './config';
import { BrokerError, ConfigurationError, ForbiddenError, InvalidRequestError, RateLimitedError, StoreUnavailableError, VendorTimeoutError } from './errors';
import { mintToken, readCredentials, type TokenSet } from './exchange';
import { fingerprint } from './fingerprint';
import { MAX_LIFETIME_SECONDS } from './token-response';
import { mint, retireBefore, unavailable } from './minting';
import type { IssuedToken, Parts, Want } from './parts';
import { canUse, isAdmin } from './policy';
import type { StoredToken } from './ports';
import { exchangeOptions, fromSecret, secretOf } from './secret-exchange';
import { issue, type TokenPath } from './token-path';

// What callers and admins do to a connection besides getting its token: list, invalidate (a caller's report of a
// dead token), refresh, verify and status (an admin's). On the same parts as the token path.

/** A connection's health for an admin: nothing secret. */
export interface ConnectionStatus {
  connection: string;
  dialect: string;
  /** A static credential: derived from the secret, never minted or stored. */
  static: boolean;
  token?: {
    /** Epoch ms. */
    expiresAt: number;
    mintedAt: number;
    mintedBy: string;
    fingerprint: string;
    /** A fingerprint of the secret version it was minted with. */
    secretVersion: string;
  };
  cooldown?: { until: number; code: string };
  lastFailure?: { code: string; at: number; vendorStatus?: number };
  lease?: { holder: string; until: number };
}

/** An epoch-ms time from the table, within [0, latest]. */
function believable(ms: number, latest: number): number {
  return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), latest) : 0;
}

export class Admin {
  /** When this instance last refreshed or verified each connection, keyed by what and which. */
  private readonly lastAsked = new Map<string, number>();

  constructor(
    private readonly parts: Parts,
    private readonly tokens: TokenPath,
  ) {}

  /** The connections a caller may use: ids and dialects, nothing else. */
  listConnections(callerArn: string): { id: string; dialect: string }[] {
    return this.parts.config.connections.filter((c) => canUse(callerArn, c)).map((c) => ({ id: c.id, dialect: c.dialectName }));
  }

  /**
   * A caller reports that the vendor rejected this token early. It is evicted only if it is still the current one,
   * so a hundred callers reporting the same dead token cause one re-mint and an old token evicts nothing; a token
   * younger than `invalidateMinAgeMs` is not evicted (rate_limited), which bounds the re-mints callers can cause.
   */
  async invalidate(callerArn: string, connectionId: string, accessToken: string): Promise<boolean> {
    const connection = await this.tokens.authorize(callerArn, connectionId);
    const { instance } = this.parts;
    const id = connection.id;
    const fp = fingerprint(accessToken);
    const inMemory = instance.recall(id)?.held.fingerprint === fp;
    if (inMemory) instance.drop(id);
    if (connection.dialect.grantType === 'static') return false;
    // Concurrent reports of one token to one instance make one eviction; the others learn it was done.
    const key = `${id}\u0000${fp}`;
    const running = instance.evictions.get(key);
    if (running) return running.then(() => false);
    const own = this.evict(connection, fp, { inMemory }).finally(() => instance.evictions.delete(key));
    instance.evictions.set(key, own);
    return own;
  }

  private async evict(connection: Connection, fp: string, was: { inMemory: boolean }): Promise<boolean> {
    const { parts } = this;
    const id = connection.id;
    // Its table calls share one budget, as a token request's do: a slow read leaves the delete what is left of it.
    const budget = this.budget();
    let current: StoredToken | undefined;
    try {
      current = (await atTable(budget, (call) => parts.store.read(id, call))).token;
    } catch (err) {
      if (err instanceof StoreUnavailableError) return was.inMemory;
      throw err;
    }
    if (!current || current.fingerprint !== fp) return false;
    const now = parts.clock.now();
    const cutoff = now - parts.opts.invalidateMinAgeMs;
    // A mint time beyond the clocks' skew was forged (the token no longer opens with it): evicted at once.
    const forged = current.mintedAt > now + parts.opts.clockSkewMs;
    if (current.mintedAt >= cutoff && !forged) {
      throw new RateLimitedError(`${id}: its token was minted moments ago; it can be invalidated shortly`, {
        retryAfter: Math.max(1, Math.ceil((current.mintedAt - cutoff) / 1000)),
        context: { connection: id },
      });
    }
    let deleted: number | undefined;
    try {
      const match = forged ? { fingerprint: fp } : { fingerprint: fp, mintedBefore: cutoff };
      deleted = await atTable(budget, (call) => parts.store.deleteToken(id, match, call));
    } catch (err) {
      if (err instanceof StoreUnavailableError) throw unavailable(parts, connection, err);
      throw err;
    }
    if (deleted === undefined) return false;
    // Retired fleet-wide: put back into the table, it is not served again, by a fresh instance either.
    await parts.retired.retire(id, deleted);
    parts.metrics.count('Invalidations', 1);
    parts.log.info('token invalidated', { connection: id, fingerprint: fp });
    return true;
  }

  /** An admin's "mint a new token now": through the lease, past the cooldown, with the secret read afresh. */
  async refresh(callerArn: string, connectionId: string): Promise<IssuedToken> {
    const { parts } = this;
    const connection = await this.authorizeAdmin(callerArn, connectionId);
    if (connection.dialect.grantType === 'static') {
      const { held, source } = await fromSecret(parts, connection, { freshSecret: true });
      return issue(parts, connection, held, source);
    }
    this.bound('refresh', connection);
    const started = parts.clock.now();
    const budget = this.budget();
    // A token another instance mints meanwhile will do; the one in place when the admin asked will not.
    const previous = (await atTable(budget, (call) => parts.store.read(connection.id, call)).catch(() => ({ token: undefined }))).token;
    // Fleet-wide: a token minted within the interval (another instance's refresh, say) is fresh enough.
    if (previous) this.refuseWithin(connection, 'refreshed', previous.mintedAt);
    const fresh: Want = (t) => t.mintedAt >= started && t.fingerprint !== previous?.fingerprint;
    const served = await mint(parts, connection, fresh, { wait: true, ignoreCooldown: true, freshSecret: true, budget });
    if (!served) throw new VendorTimeoutError(`${connection.id}: no token could be obtained in time`);
    // Every token before the new one is retired: an admin refreshes a token that must not be served again, put back
    // or not, and this holds even when the first read (the previous token) failed.
    await retireBefore(parts, connection, served.held);
    return issue(parts, connection, served.held, served.source);
  }

  /**
   * Exchanges with the secret in the given version stage (the rotation pipeline's test step): nothing is cached,
   * stored or returned but the outcome.
   */
  async verify(callerArn: string, connectionId: string, versionStage: string): Promise<{ expiresIn: number }> {
    const connection = await this.authorizeAdmin(callerArn, connectionId);
    this.bound(`verify ${versionStage}`, connection);
    return this.verifyConnection(connection, versionStage);
  }

  /** verify without the authorization: the rotation function's testSecret step. */
  async verifyConnection(connection: Connection, versionStage: string): Promise<{ expiresIn: number }> {
    const { parts } = this;
    let token: TokenSet;
    try {
      const secret = await secretOf(parts, connection, { versionStage, forceRefresh: true });
      const creds = readCredentials(connection, secret.value, `${connection.secretId} (${versionStage})`);
      token = await mintToken(connection, creds, exchangeOptions(parts));
    } catch (err) {
      parts.metrics.count('Verifications', 1, { outcome: err instanceof BrokerError ? err.code : 'internal_error' });
      // A pending secret that is missing or lacks keys is the pipeline's to fix: say so as a request error.
      if (err instanceof ConfigurationError) {
        throw new InvalidRequestError(err.message, { context: { connection: connection.id }, cause: err });
      }
      throw err;
    }
    parts.metrics.count('Verifications', 1, { outcome: 'ok' });
    return { expiresIn: token.lifetime };
  }

  /** An admin's view of a connection's health, from the table: nothing secret. */
  async status(callerArn: string, connectionId: string): Promise<ConnectionStatus> {
    const { parts } = this;
    const connection = await this.authorizeAdmin(callerArn, connectionId);
    const base = { connection: connection.id, dialect: connection.dialectName };
    if (connection.dialect.grantType === 'static') return { ...base, static: true };
    const record = await parts.store.read(connection.id);
    const status: ConnectionStatus = { ...base, static: false };
    // Times as a broker could have written them: the table's writer may have put anything there (a year 275760,
    // a number no date can hold), and the answer must stay a 200 that makes sense.
    const now = parts.clock.now();
    const skewed = now + parts.opts.clockSkewMs;
    const t = record.token;
    if (t) {
      status.token = {
        expiresAt: believable(t.expiresAt, now + MAX_LIFETIME_SECONDS * 1000),
        mintedAt: believable(t.mintedAt, skewed),
        mintedBy: t.mintedBy,
        fingerprint: t.fingerprint,
        secretVersion: fingerprint(t.secretVersion),
      };
    }
    const cooldown = parts.cooldowns.fromTable(connection.id, record.failure);
    if (cooldown) status.cooldown = { until: cooldown.until, code: cooldown.code };
    const f = record.failure;
    if (f) {
      status.lastFailure = { code: f.code, at: believable(f.at, skewed), ...(f.vendorStatus === undefined ? {} : { vendorStatus: f.vendorStatus }) };
    }
    const l = record.lease;
    // A lease beyond belief is no lease (lib/lease.ts): the next mint takes it over.
    if (l && l.until > now && !parts.lease.beyondBelief(l.until)) status.lease = { holder: l.holder, until: l.until };
    return status;
  }

  /** At most one of these (a refresh, a verify of one version stage) per connection per adminIntervalMs here. */
  private bound(what: string, connection: Connection): void {
    const key = `${what}\u0000${connection.id}`;
    const last = this.lastAsked.get(key);
    if (last !== undefined) this.refuseWithin(connection, what === 'refresh' ? 'refreshed' : 'verified', last);
    this.lastAsked.set(key, this.parts.clock.now());
  }

  private refuseWithin(connection: Connection, what: string, at: number): void {
    const interval = this.parts.opts.adminIntervalMs;
    const wait = Math.min(at + interval - this.parts.clock.now(), interval);
    if (wait <= 0) return;
    throw new RateLimitedError(`${connection.id}: ${what} moments ago; at most once a second`, {
      retryAfter: Math.max(1, Math.ceil(wait / 1000)),
      context: { connection: connection.id },
    });
  }

  private budget(): RequestBudget {
    return new RequestBudget(this.parts.clock, this.parts.opts, this.parts.tableHealth);
  }

  /** The connection an admin names; unknown and forbidden look the same. */
  private async authorizeAdmin(callerArn: string, connectionId: string): Promise<Connection> {
    const connection = await this.parts.connections.find(connectionId);
    if (!connection || !isAdmin(callerArn, this.parts.config)) throw new ForbiddenError({ context: { connection: connectionId } });
    return connection;
  }
}
