import type { Connection } from './config';
import { BrokerError, ConfigurationError, DependencyUnavailableError, VendorRejectedCredentialsError } from './errors';
import { mintToken, readCredentials, type ExchangeOptions, type TokenSet } from './exchange';
import { fingerprint } from './fingerprint';
import type { Parts, Served } from './parts';
import type { HeldToken, SecretReadOptions, SecretValue } from './ports';
import { STATIC_SECRET_MAX_AGE_MS } from './secrets';

// The vendor exchange with the connection's secret: read the secret (through the instance's cache), exchange it
// (lib/exchange.ts), and when the vendor refuses it, read it again past the cache, once. Counted and logged here,
// by fingerprint; nothing here knows about the table or the lease.

export type Minted = { set: TokenSet; secretVersion: string };

/** The connection's secret; a missing or malformed one is reported with the connection's name. */
export async function secretOf(parts: Parts, connection: Connection, opts: SecretReadOptions): Promise<SecretValue> {
  try {
    return await parts.secrets.getSecret(connection.secretId, opts);
  } catch (err) {
    if (err instanceof ConfigurationError && !err.message.startsWith(`${connection.id}: `)) {
      throw new ConfigurationError(`${connection.id}: ${err.message}`, { context: { connection: connection.id }, cause: err });
    }
    throw err;
  }
}

/**
 * The secret read afresh, or this instance's copy when Secrets Manager cannot answer: after an eviction the fresh
 * read is a precaution (a rotation this copy has not seen), and it must not make the connection depend on Secrets
 * Manager being up where the copy would have served (nor send it a read per request while it struggles).
 */
async function preferFresh(parts: Parts, connection: Connection): Promise<SecretValue> {
  try {
    return await secretOf(parts, connection, { forceRefresh: true });
  } catch (err) {
    if (!(err instanceof DependencyUnavailableError)) throw err;
    parts.log.warn('the secret could not be read afresh after an eviction; using this instance\'s copy', { connection: connection.id });
    return secretOf(parts, connection, {});
  }
}

export function exchangeOptions(parts: Parts): ExchangeOptions {
  return { http: parts.http, clock: parts.clock, random: parts.random, ...parts.opts.exchange };
}

/** A static credential, derived from the secret on each call: never minted, never stored. */
export async function fromSecret(parts: Parts, connection: Connection, read: { freshSecret?: boolean }): Promise<Served> {
  const secret = await secretOf(parts, connection, read.freshSecret ? { forceRefresh: true } : { maxAgeMs: STATIC_SECRET_MAX_AGE_MS });
  const token = await mintToken(connection, readCredentials(connection, secret.value), exchangeOptions(parts));
  return { held: toHeld(parts, connection, { set: token, secretVersion: secret.versionId }, parts.clock.now()), source: 'secret' };
}

export function toHeld(parts: Parts, connection: Connection, minted: Minted, mintedAt: number): HeldToken {
  const { set } = minted;
  return {
    connection: connection.id,
    accessToken: set.accessToken,
    tokenType: set.tokenType,
    expiresAt: set.expiresAt,
    mintedAt,
    lifetime: set.lifetime,
    secretVersion: minted.secretVersion,
    fingerprint: fingerprint(set.accessToken),
    mintedBy: parts.instanceId,
    ...(set.refreshToken === undefined ? {} : { refreshToken: set.refreshToken }),
  };
}

/**
 * Reads the secret and exchanges it; when the vendor refuses it, reads it again past the cache, once. The current
 * token's refresh token is used first, if it was earned with this very secret version (a rotation drops it).
 */
export async function exchangeSecret(
  parts: Parts,
  connection: Connection,
  read: { forceRefresh?: boolean; preferFresh?: boolean; storedVersion?: string | undefined },
  current?: HeldToken,
): Promise<Minted> {
  const started = performance.now();
  let secret = read.preferFresh && !read.forceRefresh ? await preferFresh(parts, connection) : await secretOf(parts, connection, { forceRefresh: read.forceRefresh ?? false });
  // The table's token was minted with another version than this instance's copy: the secret changed meanwhile.
  if (!read.forceRefresh && read.storedVersion !== undefined && read.storedVersion !== secret.versionId) {
    secret = await secretOf(parts, connection, { forceRefresh: true });
  }
  const refreshToken = current?.secretVersion === secret.versionId ? current.refreshToken : undefined;
  let set: TokenSet;
  try {
    set = await mintToken(connection, readCredentials(connection, secret.value), exchangeOptions(parts), {
      ...(refreshToken === undefined ? {} : { refreshToken }),
    });
  } catch (err) {
    if (!(err instanceof VendorRejectedCredentialsError)) throw countFailure(parts, err);
    const fresh = await secretOf(parts, connection, { forceRefresh: true });
    // The same secret again would only be refused again (and brings a vendor lock-out closer).
    if (fresh.versionId === secret.versionId) throw countFailure(parts, err);
    secret = fresh;
    try {
      set = await mintToken(connection, readCredentials(connection, secret.value), exchangeOptions(parts));
    } catch (retryErr) {
      throw countFailure(parts, retryErr);
    }
  }
  noteMinted(parts, connection, started, { set, secretVersion: secret.versionId });
  return { set, secretVersion: secret.versionId };
}

function noteMinted(parts: Parts, connection: Connection, started: number, { set, secretVersion }: Minted): void {
  parts.metrics.count('Exchanges', 1);
  parts.metrics.timing('ExchangeLatency', performance.now() - started);
  if (set.refresh) {
    // `refused`: the vendor would not take the refresh token, and the connection's own grant minted instead.
    parts.metrics.count('RefreshTokenMints', 1, { outcome: set.refresh });
    if (set.refresh === 'refused') {
      parts.log.warn('the vendor refused the refresh token; minted with the connection grant', { connection: connection.id });
    }
  }
  parts.log.info('minted a token', {
    connection: connection.id,
    fingerprint: fingerprint(set.accessToken),
    expiresAt: new Date(set.expiresAt).toISOString(),
    secretVersion,
    grant: set.refresh === 'used' ? 'refresh_token' : connection.kind === 'static' ? 'static' : connection.dialect.grantType,
  });
}

function countFailure(parts: Parts, err: unknown): unknown {
  const code = err instanceof BrokerError ? err.code : 'internal_error';
  // The total feeds the alarm; the per-code series feeds the dashboard.
  parts.metrics.count('ExchangeFailures', 1);
  parts.metrics.count('ExchangeFailures', 1, { code });
  return err;
}
