import * as z from 'zod/mini';
import type { Clock } from './clock';
import { assertionKeyOf } from './client-auth';
import type { Connection, ExchangingConnection } from './config';
import {
  BrokerError,
  ConfigurationError,
  VendorProtocolError,
  VendorRejectedCredentialsError,
  VendorTimeoutError,
  VendorUnavailableError,
  isTransient,
  type ErrorContext,
} from './errors';
import { oauthErrorCode } from './cooldowns';
import { HttpTransportError, type HttpClient, type HttpResponse } from './http';
import { buildTokenRequest, staticToken, type Credentials } from './token-request';
import { acceptedToken, parseJson } from './token-response';
import { checkSigningAlgSupported, discoverIssuer, sharedIssuerMetadata, type IssuerMetadataCache } from './issuer';
import { loggableDescription } from './vendor-text';

// The generic OAuth 2.0 token-request engine. One function per step, as in oauth4webapi: read the credentials,
// build the request (lib/token-request.ts), send it (deadline, bounded retries), process the answer (a token:
// lib/token-response.ts). The dialect (data) decides every variation; nothing here knows a vendor by name.

export { STATIC_LIFETIME_SECONDS, buildTokenRequest, readCredentials, staticToken } from './token-request';
export type { Credentials, RequestTarget, TokenRequest } from './token-request';
export { MAX_LIFETIME_SECONDS, jwtExpiry } from './token-response';

export interface TokenSet {
  accessToken: string;
  /** Always `Bearer` or `Basic`, spelled with a capital (Digitaleo insists). */
  tokenType: string;
  /** Epoch milliseconds at which the vendor stops accepting the token. */
  expiresAt: number;
  /** Seconds the token was issued for. */
  lifetime: number;
  scope?: string;
  /** A credential derived from the secret, never exchanged with a vendor. */
  static?: boolean;
  /** The vendor's refresh token, to be kept (encrypted) for the next mint. */
  refreshToken?: string;
  /** How a refresh token given to the mint went: `used`, or `refused` and replaced by the connection's own grant. */
  refresh?: 'used' | 'refused';
}

export interface ExchangeOptions {
  http: HttpClient;
  clock: Clock;
  /** [0, 1): the jitter source, injectable for tests. */
  random?: () => number;
  /** The whole exchange, retries included. */
  deadlineMs?: number;
  /** Extra attempts after a transient failure. */
  retries?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  maxResponseBytes?: number;
  /** Where issuer metadata is kept between exchanges (default: one cache per instance). */
  issuerMetadata?: IssuerMetadataCache;
}

export const EXCHANGE_DEFAULTS = {
  deadlineMs: 10_000,
  retries: 2,
  backoffBaseMs: 200,
  backoffCapMs: 2_000,
  maxResponseBytes: 1024 * 1024,
} as const;

const MAX_RETRY_AFTER_SECONDS = 3_600;


type ResolvedOptions = Required<Omit<ExchangeOptions, 'issuerMetadata'>> & { issuerMetadata: IssuerMetadataCache };

/** The token URL: the configured one, or the one the issuer's metadata names (checked against clientAuth). */
async function tokenUrlOf(
  connection: ExchangingConnection,
  creds: Credentials,
  o: ResolvedOptions,
  signal: AbortSignal,
): Promise<URL> {
  const url = await endpointOf(connection, creds, o, signal);
  if (connection.dialect.clientAuth === 'tls_client_auth' && url.protocol !== 'https:') {
    throw new ConfigurationError(`${connection.id}: tls_client_auth needs an https token endpoint`, {
      context: { connection: connection.id },
    });
  }
  return url;
}

async function endpointOf(
  connection: ExchangingConnection,
  creds: Credentials,
  o: ResolvedOptions,
  signal: AbortSignal,
): Promise<URL> {
  if ('tokenUrl' in connection.endpoint) return connection.endpoint.tokenUrl;
  const metadata = await discoverIssuer(connection, connection.endpoint.issuer, {
    http: o.http,
    clock: o.clock,
    signal,
    maxResponseBytes: o.maxResponseBytes,
    cache: o.issuerMetadata,
  });
  const auth = connection.dialect.clientAuth;
  if (auth === 'private_key_jwt' || auth === 'client_secret_jwt') {
    checkSigningAlgSupported(connection, metadata, assertionKeyOf(connection, creds).alg);
  }
  return auth === 'tls_client_auth' ? (metadata.mtlsTokenEndpoint ?? metadata.tokenEndpoint) : metadata.tokenEndpoint;
}

// Each field is read as text only when it is text (below); z.catch would do the same but keeps all of zod's util
// namespace in every function's bundle (about 9 KB).
const ErrorBody = z.looseObject({
  error: z.optional(z.unknown()),
  error_description: z.optional(z.unknown()),
});

function textOf(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Seconds from a Retry-After header (delta-seconds or HTTP-date), bounded; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  let seconds: number;
  if (/^\d+$/.test(trimmed)) seconds = Number(trimmed);
  else {
    const at = Date.parse(trimmed);
    if (Number.isNaN(at)) return undefined;
    seconds = Math.ceil((at - now) / 1000);
  }
  return Math.min(Math.max(seconds, 1), MAX_RETRY_AFTER_SECONDS);
}

/**
 * Turns the vendor's answer into a token or a typed error. Never throws anything but a BrokerError, whatever the
 * vendor sent; `secrets` are the values (as the secret holds them) whose characters withhold the vendor's words.
 */
export function processTokenResponse(
  connection: Connection,
  res: HttpResponse,
  now: number,
  secrets: readonly string[] = [],
): TokenSet {
  const id = connection.id;
  const ctx = { connection: id, vendorStatus: res.status };
  const status = res.status;

  if (status >= 200 && status < 300) return acceptedToken(connection, res, now);

  // What a caller may read (the problem's detail): the connection, the HTTP status, an RFC 6749 code. The log may
  // read the vendor's error_description too, as `vendorDescription`, only when it holds nothing of a secret.
  const errorBody = ErrorBody.safeParse(parseJson(res.body));
  const fields = errorBody.success ? errorBody.data : {};
  const vendorError = oauthErrorCode(fields.error);
  const vendorDescription = loggableDescription(textOf(fields.error_description), secrets);
  const said = `HTTP ${status}${vendorError ? `, ${vendorError}` : ''}`;
  const context = {
    ...ctx,
    ...(vendorError ? { vendorError } : {}),
    ...(vendorDescription ? { vendorDescription } : {}),
  };

  if (status === 400 || status === 401 || status === 403) {
    throw new VendorRejectedCredentialsError(`${id}: the vendor refused the credentials (${said})`, { context });
  }
  if (status === 429 || status >= 500) {
    const retryAfter = parseRetryAfter(header(res, 'retry-after'), now);
    return throwUnavailable(`${id}: the vendor is unavailable (${said})`, context, retryAfter);
  }
  if (status >= 300 && status < 400) {
    throw new VendorProtocolError(`${id}: the vendor redirected (HTTP ${status}); redirects are not followed`, {
      context: ctx,
    });
  }
  throw new VendorProtocolError(`${id}: the vendor answered ${said}`, { context });
}

function throwUnavailable(message: string, context: ErrorContext, retryAfter?: number): never {
  throw new VendorUnavailableError(message, retryAfter === undefined ? { context } : { context, retryAfter });
}

function transportError(connection: Connection, err: unknown): BrokerError {
  const context = { connection: connection.id };
  if (err instanceof HttpTransportError) {
    if (err.kind === 'too_large') {
      return new VendorProtocolError(`${connection.id}: the vendor's answer is larger than the limit`, { context });
    }
    const what = err.kind === 'connect' ? 'could not connect to the vendor' : 'the connection to the vendor failed';
    return new VendorUnavailableError(`${connection.id}: ${what}${err.systemCode ? ` (${err.systemCode})` : ''}`, {
      context,
      cause: err,
    });
  }
  return new VendorUnavailableError(`${connection.id}: the token request failed`, { context });
}

/**
 * Exchanges the credentials for a token: the request the dialect describes, a deadline over everything
 * (retries included), at most `retries` more attempts after a transient failure with full-jitter exponential
 * backoff, never a retry after the vendor refused the credentials.
 */
export async function exchangeToken(
  connection: ExchangingConnection,
  creds: Credentials,
  opts: ExchangeOptions,
  refreshToken?: string,
): Promise<TokenSet> {
  const o: ResolvedOptions = { ...EXCHANGE_DEFAULTS, random: Math.random, issuerMetadata: sharedIssuerMetadata, ...opts };
  const secrets = refreshToken === undefined ? Object.values(creds) : [...Object.values(creds), refreshToken];
  const started = performance.now();
  const deadline = new AbortController();
  const timeout = new VendorTimeoutError(
    `${connection.id}: the vendor did not answer within ${Math.round(o.deadlineMs / 100) / 10} s`,
    { context: { connection: connection.id } },
  );
  const timer = setTimeout(() => deadline.abort(timeout), o.deadlineMs);
  try {
    for (let attempt = 0; ; attempt++) {
      let error: BrokerError;
      try {
        const tokenUrl = await tokenUrlOf(connection, creds, o, deadline.signal);
        const request = buildTokenRequest(connection, creds, {
          tokenUrl,
          now: o.clock.now(),
          ...(refreshToken === undefined ? {} : { refreshToken }),
        });
        const res = await o.http({
          url: request.url,
          method: 'POST',
          headers: request.headers,
          body: request.body,
          signal: deadline.signal,
          maxResponseBytes: o.maxResponseBytes,
          ...(request.clientCertificate ? { clientCertificate: request.clientCertificate } : {}),
        });
        return processTokenResponse(connection, res, o.clock.now(), secrets);
      } catch (err) {
        if (deadline.signal.aborted) throw timeout;
        error = err instanceof BrokerError ? err : transportError(connection, err);
      }
      if (!isTransient(error) || attempt >= o.retries) throw error;
      const remaining = o.deadlineMs - (performance.now() - started);
      const jitter = o.random() * Math.min(o.backoffCapMs, o.backoffBaseMs * 2 ** attempt);
      const delay = Math.max(jitter, (error.retryAfter ?? 0) * 1000);
      if (delay >= remaining) throw error;
      try {
        await o.clock.sleep(delay, deadline.signal);
      } catch {
        throw timeout;
      }
    }
  } finally {
    clearTimeout(timer);
  }
}

export interface MintOptions {
  /** The refresh token kept from the last answer under the same secret version: tried first. */
  refreshToken?: string;
}

/**
 * The token for a connection: derived from the secret for static dialects, exchanged with the vendor otherwise.
 * Given a refresh token, it asks with it first; when the vendor refuses it (`invalid_grant`), it falls back to the
 * connection's own grant once, and says so in `refresh`.
 */
export async function mintToken(
  connection: Connection,
  creds: Credentials,
  opts: ExchangeOptions,
  mint: MintOptions = {},
): Promise<TokenSet> {
  if (connection.kind === 'static') return staticToken(connection, creds, opts.clock.now());
  const { refreshToken } = mint;
  if (refreshToken === undefined) return exchangeToken(connection, creds, opts);
  try {
    const token = await exchangeToken(connection, creds, opts, refreshToken);
    // RFC 6749 §6: a vendor that sends no new refresh token lets the client keep the one it has.
    return { ...token, refreshToken: token.refreshToken ?? refreshToken, refresh: 'used' };
  } catch (err) {
    if (!(err instanceof VendorRejectedCredentialsError && err.context.vendorError === 'invalid_grant')) throw err;
  }
  return { ...(await exchangeToken(connection, creds, opts)), refresh: 'refused' };
}
