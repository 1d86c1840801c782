import {
  CLIENT_ASSERTION_TYPE,
  assertionKeyOf,
  checkClientCredentials,
  clientCertificateOf,
  signClientAssertion,
} from './client-auth';
import type { Connection, ExchangingConnection, StaticConnection } from './config';
import { requiredSecretKeys } from './dialects';
import { ConfigurationError } from './errors';
import type { TokenSet } from './exchange';
import type { HttpRequest } from './http';

// The first steps of a token request (lib/exchange.ts sends it): read the credentials from the secret, and build
// the request the connection's dialect describes. A static dialect's credential is derived here too.

/** The string values of a connection's secret, checked against what its dialect needs. */
export type Credentials = Readonly<Record<string, string>>;

/** What a static credential is recorded with: it never expires, and callers get at most maxTtl of it anyway. */
export const STATIC_LIFETIME_SECONDS = 366 * 86_400;
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
