import * as z from 'zod/mini';
import type { Clock } from './clock';
import { isLoopbackHost, type ExchangingConnection } from './config';
import { CLIENT_AUTH_METHOD_NAME } from './dialects';
import { ConfigurationError, VendorProtocolError, VendorUnavailableError } from './errors';
import type { HttpClient } from './http';

// Issuer discovery (RFC 8414, else OpenID Connect Discovery): the token endpoint of a connection that names its
// `issuer` instead of a `tokenUrl`, read from the issuer's metadata and kept for a day.

export const METADATA_MAX_AGE_MS = 86_400_000;

export interface IssuerMetadata {
  tokenEndpoint: URL;
  /** RFC 8705 §5: the token endpoint to use with mutual TLS, when the issuer has a separate one. */
  mtlsTokenEndpoint?: URL;
  /** Absent when the issuer does not say. */
  authMethods?: string[];
  signingAlgs?: string[];
}

/** The metadata of the issuers this instance talks to, by issuer URL. Bounded by the configured issuers. */
export class IssuerMetadataCache {
  private readonly entries = new Map<string, { metadata: IssuerMetadata; fetchedAt: number }>();
  constructor(readonly maxAgeMs = METADATA_MAX_AGE_MS) {}

  get(issuer: URL, now: number): IssuerMetadata | undefined {
    const entry = this.entries.get(issuer.href);
    if (!entry) return undefined;
    if (now - entry.fetchedAt >= this.maxAgeMs || now < entry.fetchedAt) {
      this.entries.delete(issuer.href);
      return undefined;
    }
    return entry.metadata;
  }

  set(issuer: URL, metadata: IssuerMetadata, now: number): void {
    this.entries.set(issuer.href, { metadata, fetchedAt: now });
  }
}

/** The cache an instance shares between its exchanges when none is given. */
export const sharedIssuerMetadata = new IssuerMetadataCache();

/** RFC 8414 §3: the well-known segment goes between the host and the issuer's path; OIDC appends it. */
export function metadataUrls(issuer: URL): URL[] {
  const path = issuer.pathname.replace(/\/+$/, '');
  return [
    new URL(`${issuer.origin}/.well-known/oauth-authorization-server${path}`),
    new URL(`${issuer.origin}${path}/.well-known/openid-configuration`),
  ];
}

const Metadata = z.looseObject({
  issuer: z.string(),
  token_endpoint: z.string(),
  token_endpoint_auth_methods_supported: z.optional(z.array(z.string())),
  token_endpoint_auth_signing_alg_values_supported: z.optional(z.array(z.string())),
  mtls_endpoint_aliases: z.optional(z.looseObject({ token_endpoint: z.optional(z.string()) })),
});

const sameIssuer = (a: string, b: string) => a.replace(/\/+$/, '') === b.replace(/\/+$/, '');
// What of the vendor's own words may appear in a message: method and algorithm names, nothing else.
const NAME = /^[A-Za-z0-9_.:-]{1,64}$/;
const names = (list: readonly string[]) => list.filter((n) => NAME.test(n)).slice(0, 12);

export interface DiscoveryOptions {
  http: HttpClient;
  clock: Clock;
  signal: AbortSignal;
  maxResponseBytes: number;
  cache: IssuerMetadataCache;
}

function endpointUrl(connection: ExchangingConnection, issuer: URL, raw: string, field: string): URL {
  const where = `${connection.id}: the issuer's ${field}`;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new VendorProtocolError(`${where} is not a URL`, { context: { connection: connection.id } });
  }
  // Plain http only where the issuer itself is plain http on loopback, which only local mode accepts.
  const loopbackHttp = issuer.protocol === 'http:' && url.protocol === 'http:' && isLoopbackHost(url.hostname);
  if ((url.protocol !== 'https:' && !loopbackHttp) || url.username || url.password) {
    throw new VendorProtocolError(`${where} must be an https URL`, { context: { connection: connection.id } });
  }
  return url;
}

/** Reads the issuer's metadata: the first well-known document that exists, checked against the issuer. */
export async function discoverIssuer(
  connection: ExchangingConnection,
  issuer: URL,
  opts: DiscoveryOptions,
): Promise<IssuerMetadata> {
  const cached = opts.cache.get(issuer, opts.clock.now());
  if (cached) return cached;
  const context = { connection: connection.id };
  for (const url of metadataUrls(issuer)) {
    const res = await opts.http({
      url,
      method: 'GET',
      headers: { accept: 'application/json' },
      signal: opts.signal,
      maxResponseBytes: opts.maxResponseBytes,
    });
    if (res.status === 429 || res.status >= 500) {
      throw new VendorUnavailableError(`${connection.id}: the issuer's metadata is unavailable (HTTP ${res.status})`, {
        context,
      });
    }
    if (res.status !== 200) continue;
    let json: unknown;
    try {
      json = JSON.parse(res.body.toString('utf8'));
    } catch {
      json = undefined;
    }
    const parsed = Metadata.safeParse(json);
    if (!parsed.success) {
      throw new VendorProtocolError(`${connection.id}: the issuer's metadata at ${url.pathname} is not usable`, {
        context,
      });
    }
    const m = parsed.data;
    if (!sameIssuer(m.issuer, issuer.href)) {
      throw new VendorProtocolError(`${connection.id}: the issuer's metadata names another issuer`, { context });
    }
    const alias = m.mtls_endpoint_aliases?.token_endpoint;
    const metadata: IssuerMetadata = {
      tokenEndpoint: endpointUrl(connection, issuer, m.token_endpoint, 'token_endpoint'),
      ...(alias ? { mtlsTokenEndpoint: endpointUrl(connection, issuer, alias, 'mtls token_endpoint') } : {}),
      ...(m.token_endpoint_auth_methods_supported ? { authMethods: m.token_endpoint_auth_methods_supported } : {}),
      ...(m.token_endpoint_auth_signing_alg_values_supported
        ? { signingAlgs: m.token_endpoint_auth_signing_alg_values_supported }
        : {}),
    };
    checkClientAuthSupported(connection, metadata);
    opts.cache.set(issuer, metadata, opts.clock.now());
    return metadata;
  }
  throw new VendorProtocolError(
    `${connection.id}: the issuer publishes no metadata at /.well-known/oauth-authorization-server or /.well-known/openid-configuration`,
    { context },
  );
}

/** The connection's clientAuth must be one the issuer says its token endpoint accepts. */
export function checkClientAuthSupported(connection: ExchangingConnection, metadata: IssuerMetadata): void {
  const method = CLIENT_AUTH_METHOD_NAME[connection.dialect.clientAuth];
  if (metadata.authMethods && !metadata.authMethods.includes(method)) {
    throw new ConfigurationError(
      `${connection.id}: the issuer does not accept ${method} at its token endpoint ` +
        `(it accepts ${names(metadata.authMethods).join(', ') || 'nothing the broker knows'}); change clientAuth`,
      { context: { connection: connection.id } },
    );
  }
}

/** The assertion's algorithm must be one the issuer says it verifies, when it says. */
export function checkSigningAlgSupported(connection: ExchangingConnection, metadata: IssuerMetadata, alg: string): void {
  if (metadata.signingAlgs && !metadata.signingAlgs.includes(alg)) {
    throw new ConfigurationError(
      `${connection.id}: the issuer does not verify ${alg} client assertions ` +
        `(it verifies ${names(metadata.signingAlgs).join(', ') || 'nothing the broker knows'}); set alg in the secret`,
      { context: { connection: connection.id } },
    );
  }
}
