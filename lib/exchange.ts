import * as z from 'zod/mini';
import {
  CLIENT_ASSERTION_TYPE,
  assertionKeyOf,
  checkClientCredentials,
  clientCertificateOf,
  signClientAssertion,
} from './client-auth';
import type { Clock } from './clock';
import type { Connection, ExchangingConnection, StaticConnection } from './config';
import { requiredSecretKeys } from './dialects';
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
import { HttpTransportError, type HttpClient, type HttpRequest, type HttpResponse } from './http';
import { checkSigningAlgSupported, discoverIssuer, sharedIssuerMetadata, type IssuerMetadataCache } from './issuer';
import { loggableDescription } from './vendor-text';

// The generic OAuth 2.0 token-request engine. One function per step, as in oauth4webapi: read the credentials,
// build the request, send it (deadline, bounded retries), process the answer. The dialect (data) decides every
// variation; nothing here knows a vendor by name.

/** The string values of a connection's secret, checked against what its dialect needs. */
export type Credentials = Readonly<Record<string, string>>;

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

/** Longest lifetime believed: past this an `expires_in` is a vendor bug, not a token to keep. */
export const MAX_LIFETIME_SECONDS = 2 * 366 * 86_400;
/** What a static credential is recorded with: it never expires, and callers get at most maxTtl of it anyway. */
export const STATIC_LIFETIME_SECONDS = 366 * 86_400;
const MAX_RETRY_AFTER_SECONDS = 3_600;
const USER_AGENT = 'token-broker/0.1 (+oauth2 client_credentials)';

/**
 * The secret's values, checked against what the connection's dialect needs: the keys it must hold, and for the
 * methods that read more than a string (a private key, a client certificate), that those parse and fit together.
 */
export function readCredentials(connection: Connection, secret: unknown, secretLabel = connection.secretId): Credentials {
  if (typeof secret !== 'object' || secret === null || Array.isArray(secret)) {
    throw new ConfigurationError(`${connection.id}: the secret ${secretLabel} is not a JSON object`, {
      context: { connection: connection.id },
    });
  }
  const values = secret as Record<string, unknown>;
  const needed = requiredSecretKeys(connection.dialect);
  const missing = needed.filter((k) => typeof values[k] !== 'string' || (values[k]).length === 0);
  if (missing.length > 0) {
    throw new ConfigurationError(
      `${connection.id}: the secret ${secretLabel} lacks ${missing.join(', ')} (a non-empty string each), ` +
        `which the ${connection.dialectName} dialect needs`,
      { context: { connection: connection.id } },
    );
  }
  const creds: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) if (typeof v === 'string') creds[k] = v;
  checkClientCredentials(connection, creds);
  return creds;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** The credential a `static` dialect hands out, derived from the secret alone. */
export function staticToken(connection: StaticConnection, creds: Credentials, now: number): TokenSet {
  const basic = connection.dialect.staticScheme === 'basic';
  const accessToken = basic ? b64(`${creds.login}:${creds.password}`) : (creds.token as string);
  if (!/^[\x21-\x7E]+$/.test(accessToken)) {
    throw new ConfigurationError(`${connection.id}: the secret's token has characters an HTTP header cannot carry`, {
      context: { connection: connection.id },
    });
  }
  return {
    accessToken,
    tokenType: basic ? 'Basic' : 'Bearer',
    expiresAt: now + STATIC_LIFETIME_SECONDS * 1000,
    lifetime: STATIC_LIFETIME_SECONDS,
    static: true,
  };
}

export interface TokenRequest {
  url: URL;
  headers: Record<string, string>;
  body: string;
  clientCertificate?: HttpRequest['clientCertificate'];
}

/** Where this attempt sends its request, and when (the assertion's iat). */
export interface RequestTarget {
  tokenUrl: URL;
  now: number;
  /** Ask with this refresh token (RFC 6749 §6) instead of the connection's own grant. */
  refreshToken?: string;
}

/** The request the dialect describes; a client assertion is signed afresh for every attempt (its own jti). */
export function buildTokenRequest(connection: ExchangingConnection, creds: Credentials, target: RequestTarget): TokenRequest {
  const d = connection.dialect;
  const refreshing = target.refreshToken !== undefined;
  const params: [string, string][] = refreshing
    ? [['grant_type', 'refresh_token'], ['refresh_token', target.refreshToken as string]]
    : [['grant_type', d.grantType]];
  const clientId = creds.client_id as string;
  let clientCertificate: TokenRequest['clientCertificate'];
  switch (d.clientAuth) {
    case 'body':
      params.push(['client_id', clientId], ['client_secret', creds.client_secret as string]);
      break;
    case 'private_key_jwt':
    case 'client_secret_jwt': {
      const audience = d.assertionAudience ?? target.tokenUrl.href;
      const assertion = signClientAssertion(assertionKeyOf(connection, creds), { clientId, audience, now: target.now });
      params.push(
        ['client_id', clientId],
        ['client_assertion_type', CLIENT_ASSERTION_TYPE],
        ['client_assertion', assertion],
      );
      break;
    }
    case 'tls_client_auth': {
      const { certificate, privateKey } = clientCertificateOf(connection, creds);
      clientCertificate = { owner: connection.id, certificate, privateKey };
      params.push(['client_id', clientId]);
      break;
    }
    case 'basic':
      break;
  }
  // A refresh carries only the client's authentication: the grant's own parameters were given when it was issued.
  if (!refreshing) {
    if (d.grantType === 'password') {
      const template = d.usernameTemplate ?? '{login}';
      params.push(['username', template.split('{login}').join(creds.login)]);
      params.push(['password', creds.password as string]);
    }
    if (d.scope) params.push(['scope', d.scope]);
    if (d.audience) params.push(['audience', d.audience]);
    for (const [k, v] of Object.entries(d.params ?? {})) params.push([k, v]);
  }

  const headers: Record<string, string> = { accept: 'application/json', 'user-agent': USER_AGENT };
  if (d.clientAuth === 'basic') {
    headers.authorization = `Basic ${b64(`${creds.client_id}:${creds.client_secret}`)}`;
  }
  let body: string;
  if (d.bodyFormat === 'json') {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(Object.fromEntries(params));
  } else {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(params).toString();
  }
  return { url: target.tokenUrl, headers, body, ...(clientCertificate ? { clientCertificate } : {}) };
}

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

// Everything is optional and loosely typed on purpose: the checks below give each defect its own message.
const TokenResponseBody = z.looseObject({
  access_token: z.optional(z.unknown()),
  refresh_token: z.optional(z.unknown()),
  token_type: z.optional(z.unknown()),
  expires_in: z.optional(z.unknown()),
  scope: z.optional(z.unknown()),
});

const optionalText = z.catch(z.optional(z.string()), undefined);
const ErrorBody = z.looseObject({
  error: optionalText,
  error_description: optionalText,
});

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

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** The `exp` claim of a JWT, in epoch seconds, or undefined when the token is not a JWT with a numeric exp. */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    if (typeof payload === 'object' && payload !== null) {
      const exp = (payload as { exp?: unknown }).exp;
      if (typeof exp === 'number' && Number.isFinite(exp)) return exp;
    }
  } catch {
    // not a JWT
  }
  return undefined;
}

function lifetimeOf(connection: Connection, raw: unknown, accessToken: string, now: number): number {
  const id = connection.id;
  const ctx = { context: { connection: id } };
  const jwtExp = jwtExpiry(accessToken);
  const jwtLifetime = jwtExp === undefined ? undefined : Math.floor(jwtExp - now / 1000);
  let lifetime: number | undefined;
  if (raw !== undefined && raw !== null) {
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isFinite(n)) throw new VendorProtocolError(`${id}: the vendor's expires_in is not a number`, ctx);
    lifetime = Math.floor(n);
    // A JWT that says it dies sooner than expires_in is believed.
    if (jwtLifetime !== undefined && jwtLifetime < lifetime) lifetime = jwtLifetime;
  } else if (jwtLifetime !== undefined) {
    lifetime = jwtLifetime;
  } else if (connection.kind === 'exchanging' && connection.dialect.defaultLifetime !== undefined) {
    lifetime = connection.dialect.defaultLifetime;
  } else {
    throw new VendorProtocolError(
      `${id}: the vendor sent no expires_in and the token is not a JWT with exp; set defaultLifetime on the connection`,
      ctx,
    );
  }
  if (lifetime <= 0) throw new VendorProtocolError(`${id}: the vendor issued a token that is already expired`, ctx);
  if (lifetime > MAX_LIFETIME_SECONDS) {
    throw new VendorProtocolError(`${id}: the vendor's token lifetime (${lifetime} s) is beyond belief`, ctx);
  }
  return lifetime;
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

  if (status >= 200 && status < 300) {
    const json = parseJson(res.body);
    const parsed = TokenResponseBody.safeParse(json);
    if (!parsed.success) {
      throw new VendorProtocolError(`${id}: the vendor's answer (HTTP ${status}) is not a JSON object`, { context: ctx });
    }
    const body = parsed.data;
    if (typeof body.access_token !== 'string' || body.access_token.length === 0) {
      throw new VendorProtocolError(`${id}: the vendor's answer has no access_token`, { context: ctx });
    }
    const accessToken = body.access_token;
    if (!/^[\x21-\x7E]+$/.test(accessToken)) {
      throw new VendorProtocolError(`${id}: the access_token has characters an HTTP header cannot carry`, {
        context: ctx,
      });
    }
    const tokenType = 'Bearer';
    if (body.token_type !== undefined && body.token_type !== null) {
      if (typeof body.token_type !== 'string' || body.token_type.toLowerCase() !== 'bearer') {
        throw new VendorProtocolError(`${id}: the vendor's token_type is not supported (only Bearer)`, {
          context: ctx,
        });
      }
    }
    const lifetime = lifetimeOf(connection, body.expires_in, accessToken, now);
    const token: TokenSet = { accessToken, tokenType, expiresAt: now + lifetime * 1000, lifetime };
    if (typeof body.scope === 'string') token.scope = body.scope;
    // Kept only when a header could carry it back; a malformed one is dropped, not fatal: the token is good.
    if (typeof body.refresh_token === 'string' && /^[\x21-\x7E]{1,8192}$/.test(body.refresh_token)) {
      token.refreshToken = body.refresh_token;
    }
    return token;
  }

  // What a caller may read (the problem's detail): the connection, the HTTP status, an RFC 6749 code. The log may
  // read the vendor's error_description too, as `vendorDescription`, only when it holds nothing of a secret.
  const errorBody = ErrorBody.safeParse(parseJson(res.body));
  const fields = errorBody.success ? errorBody.data : {};
  const vendorError = oauthErrorCode(fields.error);
  const vendorDescription = loggableDescription(fields.error_description, secrets);
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
