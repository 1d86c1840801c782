import type { RequestBudget } from './budget';
import type { Connection } from './config';
import { DecryptionError, openToken, sealToken } from './crypto';
import { BrokerError, ConfigurationError, DependencyUnavailableError, StoreUnavailableError, VendorProtocolError, VendorTimeoutError } from './errors';
import type { HeldLease } from './lease';
import { forcedMintBound, mayStartUnderBudget } from './mint-policy';
import type { MintPlan, Parts, Served, Want } from './parts';
import type { HeldToken, StoredToken } from './ports';
import { exchangeSecret, toHeld, type Minted } from './secret-exchange';

// Minting under the fleet's lease, for every path that mints (callers, refresh ahead, an admin's refresh, pre-warm,
// rotation): one mint at a time per connection in this instance, then the lease, then a LeasedMint, the one object
// that may write under it (store, fail, release: each conditioned on its fencing token, lib/lease.ts).

/** Every mint of this instance goes through here: one at a time per connection, then the fleet's lease. */
export async function mint(parts: Parts, connection: Connection, want: Want, plan: MintPlan): Promise<Served | undefined> {
  const served = await parts.instance.mints.run(
    connection.id,
    (s) => s !== undefined && (s.storeDown !== undefined || want(s.held)),
    () => mintUnderLease(parts, connection, want, plan),
  );
  if (served?.storeDown && !want(served.held)) throw unavailable(parts, connection, served.storeDown);
  return served;
}

/**
 * Takes the connection's lease and mints, or waits for the instance that holds it. Returns undefined only when
 * the plan does not wait and another instance holds the lease.
 */
async function mintUnderLease(parts: Parts, connection: Connection, want: Want, plan: MintPlan): Promise<Served | undefined> {
  const { lease, cooldowns, metrics } = parts;
  const id = connection.id;
  const { budget } = plan;
  const deadline = lease.waitDeadline();
  for (let round = 0; ; round++) {
    let attempt;
    try {
      attempt = await lease.acquire(id, plan.ignoreCooldown ? {} : { cooldownCeiling: cooldowns.ceiling() }, budget);
    } catch (err) {
      if (err instanceof StoreUnavailableError) return degraded(parts, connection, want, err);
      throw err;
    }
    if (attempt.held) {
      const leased = new LeasedMint(parts, connection, attempt.held, plan);
      const refused = budget && mayStartUnderBudget(parts, connection, { ...plan, budget }, 'under the lease');
      if (!refused) return leased.mint(want);
      // Not this request's mint after all (the lease came too late, or was slow): give it back for the next instance.
      await leased.release();
      return (await storedThatWillDo(parts, attempt.record.token, want, budget)) ?? degraded(parts, connection, want, refused);
    }
    const cooldown = plan.ignoreCooldown ? undefined : cooldowns.adopt(id, attempt.record.failure);
    const stored = await storedThatWillDo(parts, attempt.record.token, want, budget);
    if (stored) return stored;
    if (cooldown) throw cooldowns.error(cooldown);
    if (!plan.wait) return undefined;
    if (round === 0) metrics.count('LeaseWaits', 1);
    if (!(await lease.backoff(round, budget ? budget.waitDeadline(deadline) : deadline))) {
      // At a slow table the wait ends with the request's budget: the held token, or 503.
      if (budget?.tableSlow) return degraded(parts, connection, want, budget.spentError('another instance held the lease'));
      break;
    }
  }
  throw new VendorTimeoutError(`${id}: another instance is minting a token and did not finish in time`, {
    retryAfter: 1,
    context: { connection: id },
  });
}

/** The stored token, opened and remembered, when it will do. */
async function storedThatWillDo(parts: Parts, stored: StoredToken | undefined, want: Want, budget?: RequestBudget): Promise<Served | undefined> {
  const current = await openStored(parts, stored, budget);
  if (!current || !want(current)) return undefined;
  parts.instance.remember(current);
  return { held: current, source: 'table' };
}

/** A lease this instance holds, and the only way to write under it: mint, store, fail, release. */
export class LeasedMint {
  constructor(
    private readonly parts: Parts,
    private readonly connection: Connection,
    private readonly lease: HeldLease,
    private readonly plan: MintPlan,
  ) {}

  /** A token that will do: the one another instance stored between our look and our lease, or a new one. */
  async mint(want: Want): Promise<Served> {
    const { parts, connection, lease, plan } = this;
    const current = await openStored(parts, lease.record.token, plan.budget);
    if (current && want(current)) {
      await this.release();
      parts.instance.remember(current);
      return { held: current, source: 'table' };
    }
    let minted: Minted;
    try {
      if (plan.forced && current) forcedMintBound(parts, connection, current, plan.forced.minTtl);
      // A token evicted (the item keeps its mint time, not its token) may have gone with its secret: a rotation this
      // instance's copy of the secret has not seen. Read it afresh then, as when the stored token names another version.
      const evicted = lease.record.token === undefined && lease.record.mintedAt !== undefined;
      const read = { forceRefresh: plan.freshSecret ?? false, preferFresh: evicted, storedVersion: lease.record.token?.secretVersion };
      minted = await exchangeSecret(parts, connection, read, current);
    } catch (err) {
      throw await this.fail(err);
    }
    // The table refuses a token older than its own: with clocks a little apart, stay above its high-water mark. A
    // mark beyond the clocks' skew was forged; inherited, it would make every later token look minted in the future.
    const now = parts.clock.now();
    const mark = lease.record.mintedAt ?? 0;
    const mintedAt = Math.max(now, mark <= now + parts.opts.clockSkewMs ? mark + 1 : 0);
    const held = toHeld(parts, connection, minted, mintedAt);
    if (storedSize(held) > MAX_STORED_TOKEN_BYTES) throw await this.fail(tooLarge(connection));
    parts.cooldowns.end(connection.id);
    // Held in memory when the table took it, and also when KMS or the table could not be reached: this instance's
    // next callers then need no exchange of their own. Not when the table refused it (the lease was lost): the table
    // may hold a newer token (a rotation's, say), which this instance's callers would otherwise not see for 30 s.
    if ((await this.store(held)) !== 'refused') parts.instance.remember(held);
    return { held, source: 'vendor' };
  }

  /**
   * Seals the token and stores it under the lease: stored, refused (the lease was lost), or unavailable (KMS could
   * not seal it, or the table could not be reached). The token is good either way: callers get it.
   */
  async store(held: HeldToken): Promise<'stored' | 'refused' | 'unavailable'> {
    const { parts, lease, plan } = this;
    let sealed: StoredToken;
    try {
      sealed = await sealToken(parts.cipher, held);
    } catch (err) {
      // KMS, not the table: give the lease back, or the fleet would wait it out for a token nobody will store.
      await this.release();
      if (!(err instanceof DependencyUnavailableError)) throw err;
      parts.log.warn('a minted token could not be sealed', { connection: held.connection, reason: err.message });
      return 'unavailable';
    }
    let kept: boolean;
    try {
      kept = await parts.lease.store(lease, sealed, plan.budget);
    } catch (err) {
      // An item the table will not take (lib/adapters/dynamodb.ts): this connection's, not the table's trouble.
      if (err instanceof VendorProtocolError) throw await this.fail(tooLarge(this.connection));
      // The table did not answer: the next mint stores one.
      if (!(err instanceof DependencyUnavailableError)) throw err;
      parts.log.warn('a minted token could not be stored', { connection: held.connection, reason: err.message });
      return 'unavailable';
    }
    if (!kept) {
      parts.metrics.count('StaleWritesRefused', 1);
      parts.log.warn('the lease lapsed during the mint; the table keeps its token', { connection: held.connection });
      return 'refused';
    }
    parts.instance.noteNewest(held);
    return 'stored';
  }

  /**
   * After a failed exchange: a vendor's failure starts a cooldown recorded for every instance (which also gives the
   * lease back); anything else gives the lease back. Returns the error for the caller.
   */
  async fail(err: unknown): Promise<unknown> {
    const { parts, connection, lease } = this;
    const cooldown = parts.cooldowns.start(connection.id, err, this.plan.hold);
    if (cooldown) {
      parts.metrics.count('Cooldowns', 1);
      parts.log.warn('exchange failed; cooling down', {
        connection: connection.id,
        code: cooldown.code,
        vendorStatus: cooldown.vendorStatus,
        vendorError: cooldown.vendorError,
        // Already stripped of every spelling of the secret and cut to 200 characters (exchange.ts).
        vendorDescription: err instanceof BrokerError ? err.context.vendorDescription : undefined,
        until: new Date(cooldown.until).toISOString(),
      });
      await parts.lease.fail(lease, parts.cooldowns.record(cooldown), this.plan.budget).catch(() => false);
      return parts.cooldowns.error(cooldown, err);
    }
    if (err instanceof ConfigurationError) {
      // Recorded for the status route; a set-up error starts no cooldown: fixing it must take effect at once.
      await parts.lease.fail(lease, { code: err.code, at: parts.clock.now() }, this.plan.budget).catch(() => false);
    } else {
      await this.release();
    }
    return err;
  }

  /** Gives the lease back (by the request's answer deadline); a table that does not answer lets it lapse. */
  async release(): Promise<void> {
    await this.parts.lease.release(this.lease, this.plan.budget).catch(() => false);
  }
}

/**
 * The most a token (with its refresh token) may take, in bytes: its sealed item must fit DynamoDB's 400 KB item
 * limit with its envelope and attributes. A larger one is the vendor's protocol error, documented in docs/api.md.
 */
export const MAX_STORED_TOKEN_BYTES = 350_000;

function storedSize(held: HeldToken): number {
  return Buffer.byteLength(held.accessToken) + Buffer.byteLength(held.refreshToken ?? '');
}

function tooLarge(connection: Connection): VendorProtocolError {
  return new VendorProtocolError(
    `${connection.id}: the vendor's token is larger than the broker stores (${MAX_STORED_TOKEN_BYTES} bytes with its refresh token)`,
    { context: { connection: connection.id } },
  );
}

/**
 * Decrypts a stored token. Treated as absent: a ciphertext that does not belong to its item, and an authentic
 * item older than one this instance has already seen or retired for cause fleet-wide (an old item put back).
 */
export async function openStored(parts: Parts, stored: StoredToken | undefined, budget?: RequestBudget): Promise<HeldToken | undefined> {
  if (!stored) return undefined;
  // A fresh instance has seen no newer token: the connection's retired mark tells it which ones not to serve (read
  // within the request's answer deadline, like the table's own calls).
  await parts.retired.check(stored.connection, budget);
  if (parts.instance.isStale(stored)) {
    parts.metrics.count('StaleTokensRefused', 1);
    parts.log.warn('the table holds a token older than one already seen; ignoring it', { connection: stored.connection });
    return undefined;
  }
  let held: HeldToken;
  try {
    held = await openToken(parts.cipher, stored);
  } catch (err) {
    if (!(err instanceof DecryptionError)) throw err;
    parts.metrics.count('DecryptionFailures', 1);
    parts.log.error('a stored token failed to decrypt; ignoring it', { connection: stored.connection });
    return undefined;
  }
  parts.instance.noteNewest(held);
  return held;
}

/**
 * After a rotation's or an admin's refresh's mint: every token minted before the new one is retired. Up to just
 * before the new token when the table holds it; when it does not (KMS or the table could not take it, or the lease
 * was lost), no further than the table's own high-water mark, which every later mint stays above, so that no genuine
 * later token from an instance whose clock lags a little falls under the mark.
 */
export async function retireBefore(parts: Parts, connection: Connection, held: HeldToken): Promise<void> {
  const highWater = await parts.store.read(connection.id).then(
    (r) => r.mintedAt,
    () => undefined,
  );
  await parts.retired.retire(connection.id, Math.min(held.mintedAt - 1, highWater ?? held.mintedAt - 1));
}

/**
 * The table is unreachable: serve a token this instance holds if it will do; otherwise 503. No exchange happens
 * without the table, so that an outage of the table never turns into a stampede on the vendor.
 */
export function degraded(parts: Parts, connection: Connection, want: Want, err: StoreUnavailableError): Served {
  parts.metrics.count('StoreDegraded', 1);
  parts.log.warn('the token table is unreachable; serving without it', { connection: connection.id, reason: err.message });
  const mem = parts.instance.recall(connection.id);
  if (mem && mem.held.expiresAt > parts.clock.now() && want(mem.held)) return { held: mem.held, source: 'memory', storeDown: err };
  throw unavailable(parts, connection, err);
}

export function unavailable(parts: Parts, connection: Connection, err: StoreUnavailableError): DependencyUnavailableError {
  return new DependencyUnavailableError(`${connection.id}: the token table is unavailable and this instance holds no token that will do`, {
    retryAfter: parts.opts.storeRetryAfterSeconds,
    context: { connection: connection.id },
    cause: err,
  });
}
