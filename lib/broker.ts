import { randomUUID } from 'node:crypto';
import type { Clock } from './clock';
import type { BrokerConfig, Connection } from './config';
import { TokenCipher, DecryptionError } from './crypto';
import {
  BrokerError,
  ConfigurationError,
  ForbiddenError,
  InvalidRequestError,
  RateLimitedError,
  StoreUnavailableError,
  VendorRejectedCredentialsError,
  VendorTimeoutError,
  errorFromCode,
} from './errors';
import { mintToken, readCredentials, type ExchangeOptions, type TokenSet } from './exchange';
import { fingerprint } from './fingerprint';
import type { HttpClient } from './http';
import { canUse, isAdmin } from './policy';
import {
  noLogger,
  noMetrics,
  type Cooldown,
  type Logger,
  type Metrics,
  type SecretReadOptions,
  type SecretSource,
  type SecretValue,
  type StoredToken,
  type TokenSource,
  type TokenStore,
} from './ports';

// The broker's one use case, getToken, and the machinery behind it: an in-process cache, the DynamoDB table, a
// lease so that one instance mints while the others wait, refresh ahead of expiry, cooldowns after failures, and a
// degraded mode when the table cannot be reached.

export interface BrokerOptions {
  /** How long an instance trusts its in-process copy before looking at the table again. */
  memoryTtlMs: number;
  /** Seconds added to every min_ttl, for clock skew and the caller's own latency. */
  safetyMarginSeconds: number;
  /** How long a mint lease lasts: past it, the holder is presumed dead and another instance takes over. */
  leaseMs: number;
  /** How long a caller may wait for another instance's mint before giving up. */
  maxWaitMs: number;
  /** Backoff between looks at the table while another instance mints. */
  waitBackoffBaseMs: number;
  waitBackoffCapMs: number;
  /** After a failed exchange, how long every instance answers with that failure instead of calling again. */
  cooldownMs: number;
  /** A token younger than this cannot be invalidated (at most one eviction per connection in this time). */
  invalidateMinAgeMs: number;
  exchange: Partial<Omit<ExchangeOptions, 'http' | 'clock'>>;
}

export const BROKER_DEFAULTS: BrokerOptions = {
  memoryTtlMs: 30_000,
  safetyMarginSeconds: 10,
  leaseMs: 15_000,
  maxWaitMs: 20_000,
  waitBackoffBaseMs: 25,
  waitBackoffCapMs: 400,
  cooldownMs: 30_000,
  invalidateMinAgeMs: 10_000,
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
  /** Names this instance in leases. */
  instanceId?: string;
  options?: Partial<BrokerOptions>;
}

/** A token in the broker's hands: the stored metadata with the token itself, decrypted. */
export type HeldToken = Omit<StoredToken, 'ciphertext'> & { accessToken: string };

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

type Served = { held: HeldToken; source: TokenSource };
export type PrewarmOutcome = 'minted' | 'fresh' | 'busy' | 'cooling-down' | 'static';
type MintMode = { overrideCooldown?: boolean; freshSecret?: boolean };
type Want = (t: { expiresAt: number; mintedAt: number; secretVersion: string; fingerprint: string }) => boolean;

const MAX_WAIT_ROUNDS = 1_000;

export function aadFor(t: Omit<StoredToken, 'ciphertext'>): string {
  return ['tb1', `token#${t.connection}`, t.tokenType, t.expiresAt, t.mintedAt, t.lifetime, t.secretVersion, t.fingerprint].join('|');
}

export class Broker {
  readonly config: BrokerConfig;
  readonly instanceId: string;
  private readonly opts: BrokerOptions;
  private readonly memory = new Map<string, { held: HeldToken; cachedAt: number }>();
  private readonly inflight = new Map<string, Promise<Served>>();
  private readonly cooldowns = new Map<string, Cooldown>();
  private readonly refreshing = new Set<string>();
  private readonly background = new Set<Promise<unknown>>();
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly random: () => number;

  constructor(private readonly deps: BrokerDeps) {
    this.config = deps.config;
    this.opts = { ...BROKER_DEFAULTS, ...(deps.options ?? {}) };
    this.instanceId = deps.instanceId ?? randomUUID();
    this.metrics = deps.metrics ?? noMetrics;
    this.log = deps.logger ?? noLogger;
    this.random = deps.random ?? Math.random;
  }

  /** The connection a caller may use; unknown and forbidden look the same. */
  authorize(callerArn: string, connectionId: string): Connection {
    const connection = this.config.byId.get(connectionId);
    if (!connection || !canUse(callerArn, connection)) throw new ForbiddenError({ context: { connection: connectionId } });
    return connection;
  }

  /** A token valid for at least `minTtl` seconds, for a caller allowed to have it. */
  async getToken(callerArn: string, connectionId: string, minTtl = 60): Promise<IssuedToken> {
    if (!Number.isInteger(minTtl) || minTtl < 0 || minTtl > 3600) {
      throw new InvalidRequestError('min_ttl must be an integer from 0 to 3600');
    }
    const connection = this.authorize(callerArn, connectionId);
    return this.tokenFor(connection, minTtl);
  }

  /** getToken without the authorization, for the broker's own triggers. */
  async tokenFor(connection: Connection, minTtl = 60): Promise<IssuedToken> {
    const { held, source } = await this.serve(connection, minTtl);
    this.metrics.count('TokensServed', 1, { source });
    return this.issue(connection, held, source);
  }

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
    const { store, clock } = this.deps;
    let current: StoredToken | undefined;
    try {
      current = await store.getToken(id);
    } catch (err) {
      if (err instanceof StoreUnavailableError) return mem?.held.fingerprint === fp;
      throw err;
    }
    if (!current || current.fingerprint !== fp) return false;
    const cutoff = clock.now() - this.opts.invalidateMinAgeMs;
    if (current.mintedAt >= cutoff) throw this.tooSoon(connection, current);
    const deleted = await store.deleteToken(id, { fingerprint: fp, mintedBefore: cutoff });
    if (deleted) {
      this.metrics.count('Invalidations', 1);
      this.log.info('token invalidated', { connection: id, fingerprint: fp });
    }
    return deleted;
  }

  private tooSoon(connection: Connection, current: StoredToken): BrokerError {
    const wait = current.mintedAt + this.opts.invalidateMinAgeMs - this.deps.clock.now();
    return new RateLimitedError(`${connection.id}: its token was minted moments ago; it can be invalidated shortly`, {
      retryAfter: Math.max(1, Math.ceil(wait / 1000)),
      context: { connection: connection.id },
    });
  }

  /** An admin's "mint a new token now": through the lease, past the cooldown, with the secret read afresh. */
  async refresh(callerArn: string, connectionId: string): Promise<IssuedToken> {
    const connection = this.authorizeAdmin(callerArn, connectionId);
    if (connection.dialect.grantType === 'static') {
      const { held, source } = await this.staticToken(connection, true);
      return this.issue(connection, held, source);
    }
    const started = this.deps.clock.now();
    // A token another instance mints meanwhile will do; the one in place when the admin asked will not.
    const previous = await this.deps.store.getToken(connection.id).catch(() => undefined);
    const fresh: Want = (t) => t.mintedAt >= started && t.fingerprint !== previous?.fingerprint;
    const served = await this.mintUnderLease(connection, fresh, true, {
      overrideCooldown: true,
      freshSecret: true,
    });
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
      if (err instanceof ConfigurationError) throw new InvalidRequestError(err.message, { context: { connection: connection.id } });
      throw err;
    }
    this.metrics.count('Verifications', 1, { outcome: 'ok' });
    return { expiresIn: token.lifetime };
  }

  private authorizeAdmin(callerArn: string, connectionId: string): Connection {
    const connection = this.config.byId.get(connectionId);
    if (!connection || !isAdmin(callerArn, this.config)) throw new ForbiddenError({ context: { connection: connectionId } });
    return connection;
  }

  /**
   * Pre-warming: mints when the stored token is missing or inside its refreshBefore window, through the same lease
   * as every other path (never waiting on it), so it never adds an exchange a caller would not have caused.
   */
  async prewarm(connection: Connection): Promise<PrewarmOutcome> {
    if (connection.dialect.grantType === 'static') return 'static';
    const { store, clock } = this.deps;
    const window = connection.refreshBefore * 1000;
    const stored = await store.getToken(connection.id);
    const left = stored ? stored.expiresAt - clock.now() : 0;
    if (stored && left > window) return 'fresh';
    // A token the vendor issues for no longer than the window is replaced only when it expires.
    if (stored && left > 0 && stored.lifetime * 1000 <= window) return 'fresh';
    if (this.activeCooldown(connection)) return 'cooling-down';
    const served = await this.mintUnderLease(connection, (t) => t.expiresAt - clock.now() > window, false);
    if (!served) return 'busy';
    return served.source === 'vendor' ? 'minted' : 'fresh';
  }

  /**
   * A connection's secret changed: evict tokens minted with another version of it (everywhere: the table, and this
   * instance's memory; other instances' memory lapses within 30 s) and mint one with the new version. Idempotent.
   */
  async rotate(connection: Connection): Promise<{ evicted: boolean; minted: boolean; secretVersion: string }> {
    const { store } = this.deps;
    const secret = await this.secretOf(connection, { forceRefresh: true });
    const id = connection.id;
    const mem = this.memory.get(id);
    if (mem && mem.held.secretVersion !== secret.versionId) this.memory.delete(id);
    if (connection.dialect.grantType === 'static') return { evicted: false, minted: false, secretVersion: secret.versionId };
    const evicted = await store.deleteToken(id, { notSecretVersion: secret.versionId });
    const current = await store.getToken(id);
    if (current?.secretVersion === secret.versionId && current.expiresAt > this.deps.clock.now()) {
      return { evicted, minted: false, secretVersion: secret.versionId };
    }
    this.cooldowns.delete(id);
    const served = await this.mintUnderLease(connection, (t) => t.secretVersion === secret.versionId, true, {
      overrideCooldown: true,
    });
    return { evicted, minted: served?.source === 'vendor', secretVersion: secret.versionId };
  }

  /** Resolves when background refreshes started so far have settled (tests, graceful shutdown). */
  async drain(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  private issue(connection: Connection, held: HeldToken, source: TokenSource): IssuedToken {
    const now = this.deps.clock.now();
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

  private async serve(connection: Connection, minTtl: number): Promise<Served> {
    const id = connection.id;
    const now = this.deps.clock.now();
    const needUntil = now + (minTtl + this.opts.safetyMarginSeconds) * 1000;
    const mem = this.memory.get(id);
    if (mem && now - mem.cachedAt < this.opts.memoryTtlMs && mem.held.expiresAt >= needUntil) {
      this.considerRefresh(connection, mem.held);
      return { held: mem.held, source: 'memory' };
    }
    if (connection.dialect.grantType === 'static') return this.staticToken(connection);

    // Within one instance, concurrent callers share one look-up (and at most one mint).
    const shared = this.inflight.get(id);
    if (shared) {
      const got = await shared;
      if (got.held.expiresAt >= needUntil) return got;
    }
    const own = this.lookUp(connection, needUntil, minTtl).finally(() => {
      if (this.inflight.get(id) === own) this.inflight.delete(id);
    });
    if (!this.inflight.has(id)) this.inflight.set(id, own);
    return own;
  }

  private async staticToken(connection: Connection, fresh = false): Promise<Served> {
    const secret = await this.secretOf(connection, fresh ? { forceRefresh: true } : {});
    const token = await mintToken(connection, readCredentials(connection, secret.value), this.exchangeOptions());
    const held = this.toHeld(connection, token, secret.versionId, this.deps.clock.now());
    return { held, source: 'secret' };
  }

  private async lookUp(connection: Connection, needUntil: number, minTtl: number): Promise<Served> {
    const id = connection.id;
    let stored: StoredToken | undefined;
    try {
      stored = await this.deps.store.getToken(id);
    } catch (err) {
      if (err instanceof StoreUnavailableError) return this.degraded(connection, (t) => t.expiresAt >= needUntil, err);
      throw err;
    }
    const now = this.deps.clock.now();
    if (stored && stored.expiresAt >= needUntil) {
      const held = await this.open(stored);
      if (held) {
        this.remember(held);
        this.considerRefresh(connection, held);
        return { held, source: 'table' };
      }
    }
    // A token as fresh as this vendor makes would still be too short: minting again would not help.
    if (stored && stored.lifetime * 1000 < needUntil - now) throw this.unsatisfiable(connection, stored.lifetime, minTtl);
    this.checkCooldown(connection);
    const served = await this.mintUnderLease(connection, (t) => t.expiresAt >= needUntil, true);
    if (!served) throw new VendorTimeoutError(`${id}: no token could be obtained in time`);
    if (served.held.expiresAt < needUntil) throw this.unsatisfiable(connection, served.held.lifetime, minTtl);
    return served;
  }

  private unsatisfiable(connection: Connection, lifetime: number, minTtl: number): BrokerError {
    return new InvalidRequestError(
      `${connection.id}: its tokens live ${lifetime} s, so min_ttl ${minTtl} (plus a ${this.opts.safetyMarginSeconds} s margin) cannot be met`,
    );
  }

  /** This instance's record of the connection's cooldown, while it lasts. */
  private activeCooldown(connection: Connection): Cooldown | undefined {
    const c = this.cooldowns.get(connection.id);
    if (c && c.until <= this.deps.clock.now()) this.cooldowns.delete(connection.id);
    return c && c.until > this.deps.clock.now() ? c : undefined;
  }

  private checkCooldown(connection: Connection): void {
    const c = this.activeCooldown(connection);
    if (c) throw this.cooldownError(connection, c);
  }

  private cooldownError(connection: Connection, c: Cooldown): BrokerError {
    const retryAfter = Math.max(1, Math.ceil((c.until - this.deps.clock.now()) / 1000));
    return errorFromCode(c.code, c.message, retryAfter, { connection: connection.id });
  }

  /**
   * Takes the connection's lease and mints, or waits for the instance that holds it. Returns undefined only when
   * `wait` is false and another instance holds the lease.
   */
  private async mintUnderLease(
    connection: Connection,
    want: Want,
    wait: boolean,
    mode: MintMode = {},
  ): Promise<Served | undefined> {
    const id = connection.id;
    const { clock, store } = this.deps;
    const deadline = clock.now() + this.opts.maxWaitMs;
    for (let round = 0; round < MAX_WAIT_ROUNDS; round++) {
      const now = clock.now();
      let lease;
      try {
        lease = await store.acquireLease(id, this.instanceId, now, now + this.opts.leaseMs, {
          overrideCooldown: mode.overrideCooldown ?? false,
        });
      } catch (err) {
        if (err instanceof StoreUnavailableError) return this.degraded(connection, want, err);
        throw err;
      }
      if (lease.acquired) return this.mintAsHolder(connection, want, mode);
      if (lease.cooldown) {
        this.cooldowns.set(id, lease.cooldown);
        throw this.cooldownError(connection, lease.cooldown);
      }
      if (!wait) return undefined;
      if (round === 0) this.metrics.count('LeaseWaits', 1);
      if (clock.now() >= deadline) break;
      const cap = Math.min(this.opts.waitBackoffCapMs, this.opts.waitBackoffBaseMs * 2 ** Math.min(round, 10));
      await clock.sleep(cap / 2 + (this.random() * cap) / 2);
      const stored = await store.getToken(id).catch(() => undefined);
      if (stored && want(stored)) {
        const held = await this.open(stored);
        if (held) {
          this.remember(held);
          return { held, source: 'table' };
        }
      }
    }
    throw new VendorTimeoutError(`${id}: another instance is minting a token and did not finish in time`, {
      retryAfter: 1,
      context: { connection: id },
    });
  }

  private async mintAsHolder(connection: Connection, want: Want, mode: MintMode): Promise<Served> {
    const id = connection.id;
    const { store } = this.deps;
    try {
      // Another instance may have stored a token between our look and our lease.
      const again = await store.getToken(id);
      if (again && want(again)) {
        const held = await this.open(again);
        if (held) {
          await store.releaseLease(id, this.instanceId);
          this.remember(held);
          return { held, source: 'table' };
        }
      }
      const held = await this.exchange(connection, { forceRefresh: mode.freshSecret ?? false });
      await store.putToken(await this.seal(held));
      await store.releaseLease(id, this.instanceId);
      this.cooldowns.delete(id);
      this.remember(held);
      return { held, source: 'vendor' };
    } catch (err) {
      const cooldown = this.coolDown(connection, err);
      if (!cooldown) {
        await store.releaseLease(id, this.instanceId).catch(() => undefined);
        throw err;
      }
      // Recorded on the lease item (which also gives the lease back) so every instance honours it.
      await store.startCooldown(id, this.instanceId, cooldown).catch(() => undefined);
      throw this.cooldownError(connection, cooldown);
    }
  }

  /** Reads the secret and exchanges it; when the vendor refuses it, reads it again past the cache, once. */
  private async exchange(connection: Connection, read: { forceRefresh?: boolean } = {}): Promise<HeldToken> {
    const { clock } = this.deps;
    const started = performance.now();
    let secret = await this.secretOf(connection, read);
    let token: TokenSet;
    try {
      token = await mintToken(connection, readCredentials(connection, secret.value), this.exchangeOptions());
    } catch (err) {
      if (!(err instanceof VendorRejectedCredentialsError)) throw this.countFailure(err);
      const fresh = await this.secretOf(connection, { forceRefresh: true });
      // The same secret again would only be refused again (and brings a vendor lock-out closer).
      if (fresh.versionId === secret.versionId) throw this.countFailure(err);
      secret = fresh;
      try {
        token = await mintToken(connection, readCredentials(connection, secret.value), this.exchangeOptions());
      } catch (retryErr) {
        throw this.countFailure(retryErr);
      }
    }
    this.metrics.count('Exchanges', 1);
    this.metrics.timing('ExchangeLatency', performance.now() - started);
    const held = this.toHeld(connection, token, secret.versionId, clock.now());
    this.log.info('minted a token', {
      connection: connection.id,
      fingerprint: held.fingerprint,
      expiresAt: new Date(held.expiresAt).toISOString(),
      secretVersion: held.secretVersion,
    });
    return held;
  }

  /** The connection's secret; a missing or malformed one is reported with the connection's name. */
  private async secretOf(connection: Connection, opts: SecretReadOptions): Promise<SecretValue> {
    try {
      return await this.deps.secrets.getSecret(connection.secretId, opts);
    } catch (err) {
      if (err instanceof ConfigurationError && !err.message.startsWith(`${connection.id}: `)) {
        throw new ConfigurationError(`${connection.id}: ${err.message}`, { context: { connection: connection.id } });
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

  private toHeld(connection: Connection, token: TokenSet, secretVersion: string, now: number): HeldToken {
    return {
      connection: connection.id,
      accessToken: token.accessToken,
      tokenType: token.tokenType,
      expiresAt: token.expiresAt,
      mintedAt: now,
      lifetime: token.lifetime,
      secretVersion,
      fingerprint: fingerprint(token.accessToken),
    };
  }

  private async seal(held: HeldToken): Promise<StoredToken> {
    const { accessToken, ...meta } = held;
    return { ...meta, ciphertext: await this.deps.cipher.encrypt(accessToken, aadFor(meta)) };
  }

  /** Decrypts a stored token; a ciphertext that does not belong to its item is refused and treated as absent. */
  private async open(stored: StoredToken): Promise<HeldToken | undefined> {
    const { ciphertext, ...meta } = stored;
    try {
      return { ...meta, accessToken: await this.deps.cipher.decrypt(ciphertext, aadFor(meta)) };
    } catch (err) {
      if (!(err instanceof DecryptionError)) throw err;
      this.metrics.count('DecryptionFailures', 1);
      this.log.error('a stored token failed to decrypt; ignoring it', { connection: stored.connection });
      return undefined;
    }
  }

  private remember(held: HeldToken): void {
    this.memory.set(held.connection, { held, cachedAt: this.deps.clock.now() });
  }

  /**
   * Refresh ahead (XFetch): inside the refreshBefore window, a read starts a background refresh with a probability
   * that grows as expiry nears, so a fleet spreads its refreshes instead of all going at the same instant.
   */
  private considerRefresh(connection: Connection, held: HeldToken): void {
    const window = connection.refreshBefore * 1000;
    const left = held.expiresAt - this.deps.clock.now();
    if (window <= 0 || left > window || this.refreshing.has(connection.id)) return;
    if (-Math.log(1 - this.random()) * (window / 4) < left) return;
    this.refreshing.add(connection.id);
    const task = this.refreshAhead(connection, held)
      .catch((err: unknown) =>
        this.log.warn('refresh ahead failed', {
          connection: connection.id,
          code: err instanceof BrokerError ? err.code : 'internal_error',
        }),
      )
      .finally(() => {
        this.refreshing.delete(connection.id);
        this.background.delete(task);
      });
    this.background.add(task);
  }

  private async refreshAhead(connection: Connection, current: HeldToken): Promise<void> {
    if (this.activeCooldown(connection)) return;
    this.metrics.count('RefreshAhead', 1);
    await this.mintUnderLease(connection, (t) => t.expiresAt > current.expiresAt, false);
  }

  /** The table is unreachable: serve what this instance has, else exchange directly (in-process single-flight). */
  private async degraded(connection: Connection, want: Want, err: StoreUnavailableError): Promise<Served> {
    this.metrics.count('StoreDegraded', 1);
    this.log.warn('the token table is unreachable; serving without it', { connection: connection.id, reason: err.message });
    const mem = this.memory.get(connection.id);
    if (mem && want(mem.held)) return { held: mem.held, source: 'memory' };
    this.checkCooldown(connection);
    try {
      const held = await this.exchange(connection);
      this.remember(held);
      return { held, source: 'vendor' };
    } catch (e) {
      const cooldown = this.coolDown(connection, e);
      throw cooldown ? this.cooldownError(connection, cooldown) : e;
    }
  }

  /**
   * After a failed exchange (or a secret the dialect cannot use), the connection cools down for 30 s or the
   * vendor's Retry-After when longer. Returns undefined for failures that are not the vendor's or the setup's.
   */
  private coolDown(connection: Connection, err: unknown): Cooldown | undefined {
    if (!(err instanceof BrokerError) || !(err.code.startsWith('vendor_') || err.code === 'misconfigured')) return undefined;
    const cooldown: Cooldown = {
      until: this.deps.clock.now() + Math.max(this.opts.cooldownMs, (err.retryAfter ?? 0) * 1000),
      code: err.code,
      message: err.message,
    };
    this.cooldowns.set(connection.id, cooldown);
    this.metrics.count('Cooldowns', 1);
    this.log.warn('exchange failed; cooling down', {
      connection: connection.id,
      code: err.code,
      until: new Date(cooldown.until).toISOString(),
    });
    return cooldown;
  }

  private exchangeOptions(): ExchangeOptions {
    return { http: this.deps.http, clock: this.deps.clock, random: this.random, ...this.opts.exchange };
  }
}
