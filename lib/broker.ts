import { randomUUID } from 'node:crypto';
import { BUDGET_DEFAULTS, RequestBudget, TableHealth, atTable, type BudgetOptions } from './budget';
import type { Clock } from './clock';
import type { BrokerConfig, Connection } from './config';
import { MIN_TTL, PREWARM_INTERVAL_SECONDS } from './contract';
import { COOLDOWN_DEFAULTS, Cooldowns, type CooldownOptions, type PrewarmHold } from './cooldowns';
import { DecryptionError, TokenCipher, openToken, sealToken } from './crypto';
import {
  BrokerError,
  ConfigurationError,
  DependencyUnavailableError,
  ForbiddenError,
  InvalidRequestError,
  RateLimitedError,
  StoreUnavailableError,
  VendorRejectedCredentialsError,
  VendorTimeoutError,
} from './errors';
import { mintToken, readCredentials, type ExchangeOptions, type TokenSet } from './exchange';
import { fingerprint } from './fingerprint';
import type { HttpClient } from './http';
import { LEASE_DEFAULTS, Lease, SingleFlight, type HeldLease, type LeaseOptions } from './lease';
import { canUse, isAdmin } from './policy';
import { STATIC_SECRET_MAX_AGE_MS } from './secrets';
import {
  noLogger,
  noMetrics,
  type HeldToken,
  type Logger,
  type Metrics,
  type SecretReadOptions,
  type SecretSource,
  type SecretValue,
  type ConnectionRecord,
  type StoredToken,
  type TokenSource,
  type TokenStore,
} from './ports';

// The broker's use cases. The main one, getToken, reads in the order a request flows:
//   authorize → memory → table → lease → mint → seal → store
// The lease (lease.ts), the cooldowns (cooldowns.ts) and the envelope (crypto.ts) live in their own modules; the
// other use cases (invalidate, refresh, verify, prewarm, rotate, status) follow, then the small helpers.

export type RefreshAhead = 'in-request' | 'background';

/** A pre-warm run's failure holds the connection's callers off until this long after the next run is due. */
export const PREWARM_HOLD_MARGIN_MS = 30_000;

export interface BrokerOptions extends LeaseOptions, CooldownOptions, BudgetOptions {
  /** How long an instance trusts its in-process copy before looking at the table again. */
  memoryTtlMs: number;
  /** Seconds added to every min_ttl, for clock skew and the caller's own latency. */
  safetyMarginSeconds: number;
  /** A token younger than this cannot be invalidated (at most one eviction per connection in this time). */
  invalidateMinAgeMs: number;
  /** A mint a caller forces (a min_ttl the current token cannot meet) happens at most once per this, fleet-wide. */
  forcedMintIntervalMs: number;
  /**
   * Who refreshes a token inside its refreshBefore window. 'in-request' (Lambda: nothing may run after the
   * answer): the request that draws the refresh mints before answering, and connections that are pre-warmed are
   * left to the pre-warm run. 'background' (the local server): a task the answer does not wait for.
   */
  refreshAhead: RefreshAhead;
  /** Retry-After (s) when the table is down and this instance holds no token that will do. */
  storeRetryAfterSeconds: number;
  /** How often the pre-warm run comes (the schedule's rate): a token must stay out of its window until the next. */
  prewarmIntervalMs: number;
  exchange: Partial<Omit<ExchangeOptions, 'http' | 'clock'>>;
}

export const BROKER_DEFAULTS: BrokerOptions = {
  ...LEASE_DEFAULTS,
  ...COOLDOWN_DEFAULTS,
  ...BUDGET_DEFAULTS,
  memoryTtlMs: 30_000,
  safetyMarginSeconds: 10,
  invalidateMinAgeMs: 10_000,
  forcedMintIntervalMs: 10_000,
  refreshAhead: 'in-request',
  storeRetryAfterSeconds: 5,
  prewarmIntervalMs: PREWARM_INTERVAL_SECONDS * 1000,
  exchange: {},
};

export interface BrokerDeps {
  config: BrokerConfig;
  store: TokenStore;
  secrets: SecretSource;
  cipher: TokenCipher;
  clock: Clock;
  http: HttpClient;
  metrics?: Metrics;
  logger?: Logger;
  random?: () => number;
  /** Names this instance in leases and on the tokens it mints. */
  instanceId?: string;
  options?: Partial<BrokerOptions>;
}

/** What a caller receives. */
export interface IssuedToken {
  connection: string;
  accessToken: string;
  tokenType: string;
  /** Seconds handed out: what is left of the token less the safety margin, capped by maxTtl. */
  expiresIn: number;
  /** Epoch ms: now + expiresIn. */
  expiresAt: number;
  fingerprint: string;
  source: TokenSource;
}

export type PrewarmOutcome = 'minted' | 'fresh' | 'busy' | 'cooling-down' | 'static';

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

/** storeDown: served in degraded mode; a caller sharing this outcome makes no table call of its own. */
type Served = { held: HeldToken; source: TokenSource; storeDown?: StoreUnavailableError };
type Want = (t: HeldToken) => boolean;

/** How a mint goes: named, so that a call says what it means. */
interface MintPlan {
  /** Wait for another instance's mint (callers), or give up at once (pre-warm, refresh ahead). */
  wait: boolean;
  /** Past any cooldown (an admin's refresh, a rotation). */
  ignoreCooldown?: boolean;
  /** Read the secret past the cache first. */
  freshSecret?: boolean;
  /** A caller forces it: bounded to one per forcedMintIntervalMs. */
  forced?: { minTtl: number };
  /** The pre-warm run's: a failure keeps callers off until after the run that will probe again. */
  hold?: PrewarmHold;
  /** The caller's request budget: the table work of the mint shares it, and no mint starts once it is mostly spent. */
  budget?: RequestBudget;
}

export class Broker {
  readonly config: BrokerConfig;
  readonly instanceId: string;
  private readonly opts: BrokerOptions;
  private readonly store: TokenStore;
  private readonly clock: Clock;
  private readonly lease: Lease;
  private readonly cooldowns: Cooldowns;
  private readonly tableHealth: TableHealth;
  private readonly memory = new Map<string, { held: HeldToken; cachedAt: number }>();
  /** The latest mint time this instance has seen stored, per connection: an older item is not served. */
  private readonly newest = new Map<string, number>();
  private readonly lookups = new SingleFlight<Served>();
  private readonly mints = new SingleFlight<Served | undefined>();
  private readonly evictions = new Map<string, Promise<boolean>>();
  private readonly background = new Set<Promise<unknown>>();
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly random: () => number;

  constructor(private readonly deps: BrokerDeps) {
    this.config = deps.config;
    this.opts = { ...BROKER_DEFAULTS, ...(deps.options ?? {}) };
    this.instanceId = deps.instanceId ?? randomUUID();
    this.store = deps.store;
    this.clock = deps.clock;
    this.metrics = deps.metrics ?? noMetrics;
    this.log = deps.logger ?? noLogger;
    this.random = deps.random ?? Math.random;
    this.lease = new Lease({
      store: deps.store,
      clock: deps.clock,
      holder: this.instanceId,
      random: this.random,
      options: this.opts,
    });
    this.cooldowns = new Cooldowns(deps.clock, this.opts);
    this.tableHealth = new TableHealth(deps.clock, this.opts);
  }

  // ---- getToken: authorize → memory → table → lease → mint → seal → store ------------------------------------

  /** A token valid for at least `minTtl` seconds, for a caller allowed to have it. */
  async getToken(callerArn: string, connectionId: string, minTtl: number = MIN_TTL.default): Promise<IssuedToken> {
    if (!Number.isInteger(minTtl) || minTtl < MIN_TTL.min || minTtl > MIN_TTL.max) {
      throw new InvalidRequestError(`min_ttl must be an integer from ${MIN_TTL.min} to ${MIN_TTL.max}`);
    }
    const connection = this.authorize(callerArn, connectionId);
    return this.tokenFor(connection, minTtl);
  }

  /** The connection a caller may use; unknown and forbidden look the same. */
  authorize(callerArn: string, connectionId: string): Connection {
    const connection = this.config.byId.get(connectionId);
    if (!connection || !canUse(callerArn, connection)) throw new ForbiddenError({ context: { connection: connectionId } });
    return connection;
  }

  /** getToken without the authorization, for the broker's own triggers. */
  async tokenFor(connection: Connection, minTtl: number = MIN_TTL.default): Promise<IssuedToken> {
    const { held, source } = await this.serve(connection, minTtl);
    this.metrics.count('TokensServed', 1, { source });
    return this.issue(connection, held, source);
  }

  private async serve(connection: Connection, minTtl: number): Promise<Served> {
    // Every table call of this request, from here on, shares one budget (lib/budget.ts).
    const budget = new RequestBudget(this.clock, this.opts, this.tableHealth);
    const now = this.clock.now();
    const needUntil = now + (minTtl + this.opts.safetyMarginSeconds) * 1000;
    const mem = this.memory.get(connection.id);
    if (mem && now - mem.cachedAt < this.opts.memoryTtlMs && mem.held.expiresAt >= needUntil) {
      return this.refreshAhead(connection, { held: mem.held, source: 'memory' }, budget);
    }
    if (connection.dialect.grantType === 'static') return this.fromSecret(connection, {});
    // Within one instance, concurrent callers share one look at the table (and at most one mint).
    const served = await this.lookups.run(
      connection.id,
      (s) => s.storeDown !== undefined || s.held.expiresAt >= needUntil,
      () => this.lookUp(connection, needUntil, minTtl, budget),
    );
    if (served.storeDown && served.held.expiresAt < needUntil) throw this.unavailable(connection, served.storeDown);
    // Each caller draws on its own, after the shared look: none waits on a refresh another one drew.
    return served.source === 'table' ? this.refreshAhead(connection, served, budget) : served;
  }

  private async lookUp(connection: Connection, needUntil: number, minTtl: number, budget: RequestBudget): Promise<Served> {
    const id = connection.id;
    const want: Want = (t) => t.expiresAt >= needUntil;
    let stored: StoredToken | undefined;
    try {
      stored = (await atTable(budget, (call) => this.store.read(id, call))).token;
    } catch (err) {
      if (err instanceof StoreUnavailableError) return this.degraded(connection, want, err);
      throw err;
    }
    const current = await this.open(stored);
    if (current && current.expiresAt >= needUntil) {
      this.remember(current);
      return { held: current, source: 'table' };
    }
    const now = this.clock.now();
    // A token as fresh as this vendor makes would still be too short: minting again would not help.
    if (current && current.lifetime * 1000 < needUntil - now) throw this.unsatisfiable(connection, current.lifetime, minTtl);
    // A still-valid token that does not cover min_ttl: this caller forces the mint, which is bounded.
    const forced = current !== undefined && current.expiresAt > now ? { minTtl } : undefined;
    if (forced && current) this.checkForcedMint(connection, current, minTtl);
    this.cooldowns.check(id);
    // Nothing left of the budget for the lease, let alone the exchange: too late now for an answer within 3 s.
    if (!budget.hasTimeLeft()) return this.degraded(connection, want, budget.spentError('no time left for a mint'));
    // A table browning out keeps the pre-warm run from replacing this token: it is the run's to mint, not a caller's.
    if (connection.prewarm && (budget.tableSlow || this.tableHealth.troubled())) {
      return this.degraded(connection, want, new StoreUnavailableError('the token table is slow; a pre-warmed connection is minted by the pre-warm run'));
    }
    const served = await this.mint(connection, want, { wait: true, budget, ...(forced ? { forced } : {}) });
    if (!served) throw new VendorTimeoutError(`${id}: no token could be obtained in time`, { context: { connection: id } });
    if (served.held.expiresAt < needUntil) throw this.unsatisfiable(connection, served.held.lifetime, minTtl);
    return served;
  }

  /** Every mint of this instance goes through here: one at a time per connection, then the fleet's lease. */
  private async mint(connection: Connection, want: Want, plan: MintPlan): Promise<Served | undefined> {
    const served = await this.mints.run(
      connection.id,
      (s) => s !== undefined && (s.storeDown !== undefined || want(s.held)),
      () => this.mintUnderLease(connection, want, plan),
    );
    if (served?.storeDown && !want(served.held)) throw this.unavailable(connection, served.storeDown);
    return served;
  }

  /**
   * Takes the connection's lease and mints, or waits for the instance that holds it. Returns undefined only when
   * the plan does not wait and another instance holds the lease.
   */
  private async mintUnderLease(connection: Connection, want: Want, plan: MintPlan): Promise<Served | undefined> {
    const id = connection.id;
    const { budget } = plan;
    const deadline = this.lease.waitDeadline();
    for (let round = 0; ; round++) {
      let attempt;
      try {
        attempt = await this.lease.acquire(id, plan.ignoreCooldown ? {} : { cooldownCeiling: this.cooldowns.ceiling() }, budget);
      } catch (err) {
        if (err instanceof StoreUnavailableError) return this.degraded(connection, want, err);
        throw err;
      }
      if (attempt.held && budget && !budget.mayStartMint()) {
        // The lease came too late for a mint within the answer's time: give it back for the next instance.
        await this.lease.release(attempt.held, budget).catch(() => false);
        const stored = await this.open(attempt.record.token);
        if (stored && want(stored)) {
          this.remember(stored);
          return { held: stored, source: 'table' };
        }
        return this.degraded(connection, want, budget.spentError('the lease came too late for a mint'));
      }
      if (attempt.held) return this.mintAsHolder(connection, attempt.held, want, plan);
      const cooldown = plan.ignoreCooldown ? undefined : this.cooldowns.adopt(id, attempt.record.failure);
      const current = await this.open(attempt.record.token);
      if (current && want(current)) {
        this.remember(current);
        return { held: current, source: 'table' };
      }
      if (cooldown) throw this.cooldowns.error(cooldown);
      if (!plan.wait) return undefined;
      if (round === 0) this.metrics.count('LeaseWaits', 1);
      if (!(await this.lease.backoff(round, budget ? budget.waitDeadline(deadline) : deadline))) {
        // At a slow table the wait ends with the request's budget: the held token, or 503.
        if (budget?.tableSlow) return this.degraded(connection, want, budget.spentError('another instance held the lease'));
        break;
      }
    }
    throw new VendorTimeoutError(`${id}: another instance is minting a token and did not finish in time`, {
      retryAfter: 1,
      context: { connection: id },
    });
  }

  private async mintAsHolder(connection: Connection, lease: HeldLease, want: Want, plan: MintPlan): Promise<Served> {
    const id = connection.id;
    // Another instance may have stored a token between our look and our lease.
    const current = await this.open(lease.record.token);
    if (current && want(current)) {
      await this.lease.release(lease).catch(() => false);
      this.remember(current);
      return { held: current, source: 'table' };
    }
    let token: { set: TokenSet; secretVersion: string };
    try {
      if (plan.forced && current) this.checkForcedMint(connection, current, plan.forced.minTtl);
      token = await this.exchange(connection, { forceRefresh: plan.freshSecret ?? false, storedVersion: lease.record.token?.secretVersion }, current);
    } catch (err) {
      throw await this.failAsHolder(connection, lease, err, plan.hold);
    }
    const now = this.clock.now();
    // The table refuses a token older than its own: with clocks a little apart, stay above its high-water mark.
    const mintedAt = Math.max(now, (lease.record.mintedAt ?? 0) + 1);
    const held = this.toHeld(connection, token.set, token.secretVersion, mintedAt);
    this.cooldowns.end(id);
    // Held in memory when the table took it, and also when KMS or the table could not be reached: this instance's
    // next callers then need no exchange of their own. Not when the table refused it (the lease was lost): the table
    // may hold a newer token (a rotation's, say), which this instance's callers would otherwise not see for 30 s.
    if ((await this.storeAsHolder(lease, held, plan.budget)) !== 'refused') this.remember(held);
    return { held, source: 'vendor' };
  }

  /**
   * Seals the token and stores it under the lease: stored, refused (the lease was lost), or unavailable (KMS could
   * not seal it, or the table could not be reached). The token is good either way: callers get it.
   */
  private async storeAsHolder(lease: HeldLease, held: HeldToken, budget?: RequestBudget): Promise<'stored' | 'refused' | 'unavailable'> {
    let sealed: StoredToken;
    try {
      sealed = await sealToken(this.deps.cipher, held);
    } catch (err) {
      // KMS, not the table: give the lease back, or the fleet would wait it out for a token nobody will store.
      await this.lease.release(lease, budget).catch(() => false);
      if (!(err instanceof DependencyUnavailableError)) throw err;
      this.log.warn('a minted token could not be sealed', { connection: held.connection, reason: err.message });
      return 'unavailable';
    }
    let kept: boolean;
    try {
      kept = await this.lease.store(lease, sealed, budget);
    } catch (err) {
      // The table did not answer: the next mint stores one.
      if (!(err instanceof DependencyUnavailableError)) throw err;
      this.log.warn('a minted token could not be stored', { connection: held.connection, reason: err.message });
      return 'unavailable';
    }
    if (!kept) {
      this.metrics.count('StaleWritesRefused', 1);
      this.log.warn('the lease lapsed during the mint; the table keeps its token', { connection: held.connection });
      return 'refused';
    }
    this.noteNewest(held);
    return 'stored';
  }

  /**
   * After a failed exchange under the lease: a vendor's failure starts a cooldown recorded for every instance
   * (which also gives the lease back); anything else gives the lease back. Returns the error for the caller.
   */
  private async failAsHolder(connection: Connection, lease: HeldLease, err: unknown, hold?: PrewarmHold): Promise<unknown> {
    const cooldown = this.cooldowns.start(connection.id, err, hold);
    if (cooldown) {
      this.metrics.count('Cooldowns', 1);
      this.log.warn('exchange failed; cooling down', {
        connection: connection.id,
        code: cooldown.code,
        vendorStatus: cooldown.vendorStatus,
        vendorError: cooldown.vendorError,
        // Already stripped of every spelling of the secret and cut to 200 characters (exchange.ts).
        vendorDescription: err instanceof BrokerError ? err.context.vendorDescription : undefined,
        until: new Date(cooldown.until).toISOString(),
      });
      await this.lease.fail(lease, this.cooldowns.record(cooldown)).catch(() => false);
      return this.cooldowns.error(cooldown, err);
    }
    if (err instanceof ConfigurationError) {
      // Recorded for the status route; a set-up error starts no cooldown: fixing it must take effect at once.
      await this.lease.fail(lease, { code: err.code, at: this.clock.now() }).catch(() => false);
    } else {
      await this.lease.release(lease).catch(() => false);
    }
    return err;
  }

  /**
   * Reads the secret and exchanges it; when the vendor refuses it, reads it again past the cache, once. The current
   * token's refresh token is used first, if it was earned with this very secret version (a rotation drops it).
   */
  private async exchange(
    connection: Connection,
    read: { forceRefresh?: boolean; storedVersion?: string | undefined },
    current?: HeldToken,
  ): Promise<{ set: TokenSet; secretVersion: string }> {
    const started = performance.now();
    let secret = await this.secretOf(connection, { forceRefresh: read.forceRefresh ?? false });
    // The table's token was minted with another version than this instance's copy: the secret changed meanwhile.
    if (!read.forceRefresh && read.storedVersion !== undefined && read.storedVersion !== secret.versionId) {
      secret = await this.secretOf(connection, { forceRefresh: true });
    }
    const refreshToken = current?.secretVersion === secret.versionId ? current.refreshToken : undefined;
    let set: TokenSet;
    try {
      set = await mintToken(connection, readCredentials(connection, secret.value), this.exchangeOptions(), {
        ...(refreshToken === undefined ? {} : { refreshToken }),
      });
    } catch (err) {
      if (!(err instanceof VendorRejectedCredentialsError)) throw this.countFailure(err);
      const fresh = await this.secretOf(connection, { forceRefresh: true });
      // The same secret again would only be refused again (and brings a vendor lock-out closer).
      if (fresh.versionId === secret.versionId) throw this.countFailure(err);
      secret = fresh;
      try {
        set = await mintToken(connection, readCredentials(connection, secret.value), this.exchangeOptions());
      } catch (retryErr) {
        throw this.countFailure(retryErr);
      }
    }
    this.metrics.count('Exchanges', 1);
    this.metrics.timing('ExchangeLatency', performance.now() - started);
    if (set.refresh) {
      // `refused`: the vendor would not take the refresh token, and the connection's own grant minted instead.
      this.metrics.count('RefreshTokenMints', 1, { outcome: set.refresh });
      if (set.refresh === 'refused') {
        this.log.warn('the vendor refused the refresh token; minted with the connection grant', { connection: connection.id });
      }
    }
    this.log.info('minted a token', {
      connection: connection.id,
      fingerprint: fingerprint(set.accessToken),
      expiresAt: new Date(set.expiresAt).toISOString(),
      secretVersion: secret.versionId,
      grant: set.refresh === 'used' ? 'refresh_token' : connection.kind === 'static' ? 'static' : connection.dialect.grantType,
    });
    return { set, secretVersion: secret.versionId };
  }

  /**
   * Refresh ahead (XFetch): inside the refreshBefore window, a read draws a refresh with a probability that grows
   * as expiry nears, so a fleet spreads its refreshes. In-request, the drawing request mints before it answers and
   * answers the new token (or the current one, if the mint fails or another instance holds the lease); the other
   * callers are served the current token meanwhile, without waiting.
   */
  private async refreshAhead(connection: Connection, served: Served, budget: RequestBudget): Promise<Served> {
    if (!this.drawsRefresh(connection, served.held)) return served;
    const inRequest = this.opts.refreshAhead === 'in-request';
    // In the request, a refresh starts only early in it (it may have shared a slow look); the current token does.
    if (inRequest && !budget.mayStartRefresh()) return served;
    this.metrics.count('RefreshAhead', 1);
    const plan: MintPlan = inRequest ? { wait: false, budget } : { wait: false };
    const mint = this.mint(connection, (t) => t.expiresAt > served.held.expiresAt, plan).catch((err: unknown) => {
      this.log.warn('refresh ahead failed', {
        connection: connection.id,
        code: err instanceof BrokerError ? err.code : 'internal_error',
      });
      return undefined;
    });
    if (!inRequest) {
      const task = mint.finally(() => this.background.delete(task));
      this.background.add(task);
      return served;
    }
    return (await mint) ?? served;
  }

  private drawsRefresh(connection: Connection, held: HeldToken): boolean {
    const window = connection.refreshBefore * 1000;
    const left = held.expiresAt - this.clock.now();
    if (window <= 0 || left > window || this.mints.has(connection.id) || this.cooldowns.active(connection.id)) return false;
    // In Lambda, a pre-warmed connection is the pre-warm run's to refresh.
    if (this.opts.refreshAhead === 'in-request' && connection.prewarm) return false;
    return -Math.log(1 - this.random()) * (window / 4) >= left;
  }

  /**
   * The table is unreachable: serve a token this instance holds if it will do; otherwise 503. No exchange happens
   * without the table, so that an outage of the table never turns into a stampede on the vendor.
   */
  private degraded(connection: Connection, want: Want, err: StoreUnavailableError): Served {
    this.metrics.count('StoreDegraded', 1);
    this.log.warn('the token table is unreachable; serving without it', { connection: connection.id, reason: err.message });
    const mem = this.memory.get(connection.id);
    if (mem && mem.held.expiresAt > this.clock.now() && want(mem.held)) return { held: mem.held, source: 'memory', storeDown: err };
    throw this.unavailable(connection, err);
  }

  private unavailable(connection: Connection, err: StoreUnavailableError): DependencyUnavailableError {
    return new DependencyUnavailableError(`${connection.id}: the token table is unavailable and this instance holds no token that will do`, {
      retryAfter: this.opts.storeRetryAfterSeconds,
      context: { connection: connection.id },
      cause: err,
    });
  }

  /** A forced mint is refused while the current token is younger than forcedMintIntervalMs. */
  private checkForcedMint(connection: Connection, current: HeldToken, minTtl: number): void {
    const wait = current.mintedAt + this.opts.forcedMintIntervalMs - this.clock.now();
    if (wait <= 0) return;
    this.metrics.count('ForcedMintsRefused', 1);
    throw new RateLimitedError(
      `${connection.id}: a token was minted moments ago and does not cover min_ttl ${minTtl}; another can be minted shortly`,
      { retryAfter: Math.max(1, Math.ceil(wait / 1000)), context: { connection: connection.id } },
    );
  }

  private unsatisfiable(connection: Connection, lifetime: number, minTtl: number): BrokerError {
    return new InvalidRequestError(
      `${connection.id}: its tokens live ${lifetime} s, so min_ttl ${minTtl} (plus a ${this.opts.safetyMarginSeconds} s margin) cannot be met`,
    );
  }

  private issue(connection: Connection, held: HeldToken, source: TokenSource): IssuedToken {
    const now = this.clock.now();
    const left = Math.floor((held.expiresAt - now) / 1000) - this.opts.safetyMarginSeconds;
    const expiresIn = Math.max(0, Math.min(left, connection.maxTtl));
    return {
      connection: connection.id,
      accessToken: held.accessToken,
      tokenType: held.tokenType,
      expiresIn,
      expiresAt: now + expiresIn * 1000,
      fingerprint: held.fingerprint,
      source,
    };
  }

  // ---- the other use cases ------------------------------------------------------------------------------------

  /** The connections a caller may use: ids and dialects, nothing else. */
  listConnections(callerArn: string): { id: string; dialect: string }[] {
    return this.config.connections.filter((c) => canUse(callerArn, c)).map((c) => ({ id: c.id, dialect: c.dialectName }));
  }

  /**
   * A caller reports that the vendor rejected this token early. It is evicted only if it is still the current one,
   * so a hundred callers reporting the same dead token cause one re-mint and an old token evicts nothing; a token
   * younger than `invalidateMinAgeMs` is not evicted (rate_limited), which bounds the re-mints callers can cause.
   */
  async invalidate(callerArn: string, connectionId: string, accessToken: string): Promise<boolean> {
    const connection = this.authorize(callerArn, connectionId);
    const id = connection.id;
    const fp = fingerprint(accessToken);
    const mem = this.memory.get(id);
    if (mem?.held.fingerprint === fp) this.memory.delete(id);
    if (connection.dialect.grantType === 'static') return false;
    // Concurrent reports of one token to one instance make one eviction; the others learn it was done.
    const key = `${id}\u0000${fp}`;
    const running = this.evictions.get(key);
    if (running) return running.then(() => false);
    const own = this.evict(connection, fp, { inMemory: mem?.held.fingerprint === fp }).finally(() => this.evictions.delete(key));
    this.evictions.set(key, own);
    return own;
  }

  private async evict(connection: Connection, fp: string, was: { inMemory: boolean }): Promise<boolean> {
    const id = connection.id;
    let current: StoredToken | undefined;
    try {
      current = (await this.store.read(id)).token;
    } catch (err) {
      if (err instanceof StoreUnavailableError) return was.inMemory;
      throw err;
    }
    if (!current || current.fingerprint !== fp) return false;
    const cutoff = this.clock.now() - this.opts.invalidateMinAgeMs;
    if (current.mintedAt >= cutoff) {
      throw new RateLimitedError(`${id}: its token was minted moments ago; it can be invalidated shortly`, {
        retryAfter: Math.max(1, Math.ceil((current.mintedAt - cutoff) / 1000)),
        context: { connection: id },
      });
    }
    const deleted = await this.store.deleteToken(id, { fingerprint: fp, mintedBefore: cutoff });
    if (deleted) {
      this.metrics.count('Invalidations', 1);
      this.log.info('token invalidated', { connection: id, fingerprint: fp });
    }
    return deleted;
  }

  /** An admin's "mint a new token now": through the lease, past the cooldown, with the secret read afresh. */
  async refresh(callerArn: string, connectionId: string): Promise<IssuedToken> {
    const connection = this.authorizeAdmin(callerArn, connectionId);
    if (connection.dialect.grantType === 'static') {
      const { held, source } = await this.fromSecret(connection, { freshSecret: true });
      return this.issue(connection, held, source);
    }
    const started = this.clock.now();
    // A token another instance mints meanwhile will do; the one in place when the admin asked will not.
    const previous = (await this.store.read(connection.id).catch(() => ({ token: undefined }))).token;
    const fresh: Want = (t) => t.mintedAt >= started && t.fingerprint !== previous?.fingerprint;
    const served = await this.mint(connection, fresh, { wait: true, ignoreCooldown: true, freshSecret: true });
    if (!served) throw new VendorTimeoutError(`${connection.id}: no token could be obtained in time`);
    return this.issue(connection, served.held, served.source);
  }

  /**
   * Exchanges with the secret in the given version stage (the rotation pipeline's test step): nothing is cached,
   * stored or returned but the outcome.
   */
  async verify(callerArn: string, connectionId: string, versionStage: string): Promise<{ expiresIn: number }> {
    return this.verifyConnection(this.authorizeAdmin(callerArn, connectionId), versionStage);
  }

  /** verify without the authorization: the rotation function's testSecret step. */
  async verifyConnection(connection: Connection, versionStage: string): Promise<{ expiresIn: number }> {
    let token: TokenSet;
    try {
      const secret = await this.secretOf(connection, { versionStage, forceRefresh: true });
      const creds = readCredentials(connection, secret.value, `${connection.secretId} (${versionStage})`);
      token = await mintToken(connection, creds, this.exchangeOptions());
    } catch (err) {
      this.metrics.count('Verifications', 1, { outcome: err instanceof BrokerError ? err.code : 'internal_error' });
      // A pending secret that is missing or lacks keys is the pipeline's to fix: say so as a request error.
      if (err instanceof ConfigurationError) {
        throw new InvalidRequestError(err.message, { context: { connection: connection.id }, cause: err });
      }
      throw err;
    }
    this.metrics.count('Verifications', 1, { outcome: 'ok' });
    return { expiresIn: token.lifetime };
  }

  /**
   * Pre-warming: mints when the stored token is missing or would enter its refreshBefore window before the next run,
   * through the same lease as every other path (never waiting on it), so it never adds an exchange a caller would not
   * have caused. While the vendor fails, the run is the connection's only probe: it tries once per run, past a
   * cooldown that would end before the next run, and a failure cools the connection down until after the next run,
   * so that callers of a pre-warmed connection never wait on a failing vendor (they are served the held token, or
   * the failure at once). A longer cooldown (a vendor's Retry-After) is honoured to within one run.
   */
  async prewarm(connection: Connection, known?: ConnectionRecord): Promise<PrewarmOutcome> {
    if (connection.dialect.grantType === 'static') return 'static';
    const record = known ?? (await this.store.read(connection.id));
    const stored = record.token;
    if (stored && !this.prewarmDue(connection, stored)) return 'fresh';
    const interval = this.opts.prewarmIntervalMs;
    // The run probes once the vendor may be asked again: its own hold ends later, for callers only; a cooldown
    // another instance recorded (a vendor's Retry-After) is honoured to its end.
    const own = this.cooldowns.active(connection.id);
    const recorded = this.cooldowns.fromTable(connection.id, record.failure);
    const probeAfter = Math.max(
      own ? (own.probeAfter ?? own.until) : 0,
      recorded && !(own && recorded.until <= own.until) ? recorded.until : 0,
    );
    if (this.clock.now() < probeAfter) return 'cooling-down';
    const served = await this.mint(connection, (t) => !this.prewarmDue(connection, t), {
      wait: false,
      ignoreCooldown: true,
      hold: { intervalMs: interval, marginMs: PREWARM_HOLD_MARGIN_MS },
    });
    if (!served) return 'busy';
    return served.source === 'vendor' ? 'minted' : 'fresh';
  }

  /**
   * A token the pre-warm run replaces now: one that would be inside its refreshBefore window by the next run. A
   * token the vendor issues for no longer than that would be due as soon as minted: it is replaced when it would
   * expire before the next run (at most one mint per run).
   */
  private prewarmDue(connection: Connection, token: { expiresAt: number; lifetime: number }): boolean {
    const interval = this.opts.prewarmIntervalMs;
    const due = connection.refreshBefore * 1000 + interval;
    const left = token.expiresAt - this.clock.now();
    return token.lifetime * 1000 <= due ? left <= interval : left <= due;
  }

  /**
   * A connection's secret changed: evict tokens minted with another version of it (everywhere: the table, and this
   * instance's memory; other instances' memory lapses within 30 s) and mint one with the new version. Idempotent.
   */
  async rotate(connection: Connection): Promise<{ evicted: boolean; minted: boolean; secretVersion: string }> {
    const secret = await this.secretOf(connection, { forceRefresh: true });
    const id = connection.id;
    const mem = this.memory.get(id);
    if (mem && mem.held.secretVersion !== secret.versionId) this.memory.delete(id);
    if (connection.dialect.grantType === 'static') return { evicted: false, minted: false, secretVersion: secret.versionId };
    const evicted = await this.store.deleteToken(id, { notSecretVersion: secret.versionId });
    const current = (await this.store.read(id)).token;
    if (current?.secretVersion === secret.versionId && current.expiresAt > this.clock.now()) {
      return { evicted, minted: false, secretVersion: secret.versionId };
    }
    this.cooldowns.end(id);
    const served = await this.mint(connection, (t) => t.secretVersion === secret.versionId, {
      wait: true,
      ignoreCooldown: true,
    });
    return { evicted, minted: served?.source === 'vendor', secretVersion: secret.versionId };
  }

  /** An admin's view of a connection's health, from the table: nothing secret. */
  async status(callerArn: string, connectionId: string): Promise<ConnectionStatus> {
    const connection = this.authorizeAdmin(callerArn, connectionId);
    const base = { connection: connection.id, dialect: connection.dialectName };
    if (connection.dialect.grantType === 'static') return { ...base, static: true };
    const record = await this.store.read(connection.id);
    const status: ConnectionStatus = { ...base, static: false };
    const t = record.token;
    if (t) {
      status.token = {
        expiresAt: t.expiresAt,
        mintedAt: t.mintedAt,
        mintedBy: t.mintedBy,
        fingerprint: t.fingerprint,
        secretVersion: fingerprint(t.secretVersion),
      };
    }
    const cooldown = this.cooldowns.fromTable(connection.id, record.failure);
    if (cooldown) status.cooldown = { until: cooldown.until, code: cooldown.code };
    const f = record.failure;
    if (f) status.lastFailure = { code: f.code, at: f.at, ...(f.vendorStatus === undefined ? {} : { vendorStatus: f.vendorStatus }) };
    const l = record.lease;
    if (l && l.until > this.clock.now()) status.lease = { holder: l.holder, until: l.until };
    return status;
  }

  /** Drops this instance's copy of a connection's token: the connection changed or went away (issue 19). */
  forget(connectionId: string): void {
    this.memory.delete(connectionId);
  }

  /** Resolves when background refreshes started so far have settled (the local server's shutdown, tests). */
  async drain(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  /** How many tasks of this broker are still running: after a Lambda handler answers, this must be 0. */
  pendingWork(): number {
    return this.background.size + this.lookups.size + this.mints.size + this.evictions.size;
  }

  // ---- helpers --------------------------------------------------------------------------------------------------

  private authorizeAdmin(callerArn: string, connectionId: string): Connection {
    const connection = this.config.byId.get(connectionId);
    if (!connection || !isAdmin(callerArn, this.config)) throw new ForbiddenError({ context: { connection: connectionId } });
    return connection;
  }

  /** A static credential, derived from the secret on each call: never minted, never stored. */
  private async fromSecret(connection: Connection, read: { freshSecret?: boolean }): Promise<Served> {
    const secret = await this.secretOf(connection, read.freshSecret ? { forceRefresh: true } : { maxAgeMs: STATIC_SECRET_MAX_AGE_MS });
    const token = await mintToken(connection, readCredentials(connection, secret.value), this.exchangeOptions());
    const now = this.clock.now();
    return { held: this.toHeld(connection, token, secret.versionId, now), source: 'secret' };
  }

  /** The connection's secret; a missing or malformed one is reported with the connection's name. */
  private async secretOf(connection: Connection, opts: SecretReadOptions): Promise<SecretValue> {
    try {
      return await this.deps.secrets.getSecret(connection.secretId, opts);
    } catch (err) {
      if (err instanceof ConfigurationError && !err.message.startsWith(`${connection.id}: `)) {
        throw new ConfigurationError(`${connection.id}: ${err.message}`, { context: { connection: connection.id }, cause: err });
      }
      throw err;
    }
  }

  private countFailure(err: unknown): unknown {
    const code = err instanceof BrokerError ? err.code : 'internal_error';
    // The total feeds the alarm; the per-code series feeds the dashboard.
    this.metrics.count('ExchangeFailures', 1);
    this.metrics.count('ExchangeFailures', 1, { code });
    return err;
  }

  private toHeld(connection: Connection, token: TokenSet, secretVersion: string, mintedAt: number): HeldToken {
    return {
      connection: connection.id,
      accessToken: token.accessToken,
      tokenType: token.tokenType,
      expiresAt: token.expiresAt,
      mintedAt,
      lifetime: token.lifetime,
      secretVersion,
      fingerprint: fingerprint(token.accessToken),
      mintedBy: this.instanceId,
      ...(token.refreshToken === undefined ? {} : { refreshToken: token.refreshToken }),
    };
  }

  /**
   * Decrypts a stored token. Treated as absent: a ciphertext that does not belong to its item, and an authentic
   * item older than one this instance has already seen (an old item put back into the table).
   */
  private async open(stored: StoredToken | undefined): Promise<HeldToken | undefined> {
    if (!stored) return undefined;
    const newest = this.newest.get(stored.connection);
    if (newest !== undefined && stored.mintedAt < newest) {
      this.metrics.count('StaleTokensRefused', 1);
      this.log.warn('the table holds a token older than one already seen; ignoring it', { connection: stored.connection });
      return undefined;
    }
    let held: HeldToken;
    try {
      held = await openToken(this.deps.cipher, stored);
    } catch (err) {
      if (!(err instanceof DecryptionError)) throw err;
      this.metrics.count('DecryptionFailures', 1);
      this.log.error('a stored token failed to decrypt; ignoring it', { connection: stored.connection });
      return undefined;
    }
    this.noteNewest(held);
    return held;
  }

  private noteNewest(held: HeldToken): void {
    if ((this.newest.get(held.connection) ?? -Infinity) < held.mintedAt) this.newest.set(held.connection, held.mintedAt);
  }

  private remember(held: HeldToken): void {
    this.memory.set(held.connection, { held, cachedAt: this.clock.now() });
  }

  private exchangeOptions(): ExchangeOptions {
    return { http: this.deps.http, clock: this.clock, random: this.random, ...this.opts.exchange };
  }
}
