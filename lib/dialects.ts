// The vendor dialects, as data. A dialect is a preset of the one generic OAuth 2.0 engine in exchange.ts; a new
// vendor is a new connection in the configuration file (dialect `oauth2` plus a few fields), never new code.

/** The grants that call a vendor's token endpoint. */
export type ExchangingGrant = 'client_credentials' | 'password';
export type GrantType = ExchangingGrant | 'static';
/**
 * How the broker proves who it is to the token endpoint:
 * `basic`: Authorization: Basic base64(id:secret) of the raw values; `body`: client_id/client_secret in the body;
 * `private_key_jwt` / `client_secret_jwt`: a signed client assertion (RFC 7523); `tls_client_auth`: mutual TLS
 * with the client certificate (RFC 8705).
 */
export type ClientAuth = 'basic' | 'body' | 'private_key_jwt' | 'client_secret_jwt' | 'tls_client_auth';
export const CLIENT_AUTHS = ['basic', 'body', 'private_key_jwt', 'client_secret_jwt', 'tls_client_auth'] as const;
export type BodyFormat = 'form' | 'json';
/** What a `static` grant hands out: `basic` = Basic base64(login:password), `bearer` = Bearer <token>. */
export type StaticScheme = 'basic' | 'bearer';
/** The algorithms a private_key_jwt assertion may be signed with. */
export const ASSERTION_ALGS = ['RS256', 'PS256', 'ES256'] as const;
export type AssertionAlg = (typeof ASSERTION_ALGS)[number];

/** A credential derived from the secret alone: no vendor is called, so there is no token URL. */
export interface StaticDialect {
  grantType: 'static';
  staticScheme: StaticScheme;
}

/** A dialect that exchanges the secret for a token at the vendor's token endpoint. */
export interface ExchangingDialect {
  grantType: ExchangingGrant;
  clientAuth: ClientAuth;
  bodyFormat: BodyFormat;
  scope?: string;
  audience?: string;
  /** Extra body parameters, sent as given. */
  params?: Record<string, string>;
  /** For the password grant: how the username is built from the secret's `login` (placeholder `{login}`). */
  usernameTemplate?: string;
  /** Seconds, when the vendor sends no expires_in and the token is not a JWT with `exp`. */
  defaultLifetime?: number;
  /** The `aud` of a client assertion, when the vendor wants another value than the token URL. */
  assertionAudience?: string;
  /** Connection fields this dialect cannot work without. */
  requires?: readonly ('audience' | 'scope')[];
}

export type DialectSpec = StaticDialect | ExchangingDialect;

export const DIALECTS = {
  oauth2: { grantType: 'client_credentials', clientAuth: 'basic', bodyFormat: 'form' },
  digitaleo: { grantType: 'client_credentials', clientAuth: 'body', bodyFormat: 'form' },
  docoon: {
    grantType: 'password',
    clientAuth: 'basic',
    bodyFormat: 'form',
    scope: 'OMS',
    usernameTemplate: 'msg\\{login}',
  },
  'docoon-basic': { grantType: 'static', staticScheme: 'basic' },
  digishare: { grantType: 'client_credentials', clientAuth: 'body', bodyFormat: 'json' },
  'digishare-pat': { grantType: 'static', staticScheme: 'bearer' },
  'usage-engine': {
    grantType: 'client_credentials',
    clientAuth: 'body',
    bodyFormat: 'form',
    requires: ['audience'],
  },
} as const satisfies Record<string, DialectSpec>;

export type DialectName = keyof typeof DIALECTS;
export const DIALECT_NAMES = Object.keys(DIALECTS) as [DialectName, ...DialectName[]];

/** Body parameters the engine writes itself; `params` may not set them. */
export const RESERVED_PARAMS = [
  'grant_type',
  'client_id',
  'client_secret',
  'client_assertion',
  'client_assertion_type',
  'username',
  'password',
  'refresh_token',
  'scope',
  'audience',
] as const;

/** The keys of a client authentication method's secret JSON: those it needs, and those it reads when present. */
export const CLIENT_AUTH_SECRET_KEYS: Record<ClientAuth, { required: readonly string[]; optional: readonly string[] }> = {
  basic: { required: ['client_id', 'client_secret'], optional: [] },
  body: { required: ['client_id', 'client_secret'], optional: [] },
  client_secret_jwt: { required: ['client_id', 'client_secret'], optional: [] },
  private_key_jwt: { required: ['client_id', 'private_key'], optional: ['kid', 'alg'] },
  tls_client_auth: { required: ['client_id', 'client_certificate', 'client_private_key'], optional: [] },
};

/** The keys a connection's secret JSON must hold, derived from how the dialect authenticates. */
export function requiredSecretKeys(spec: DialectSpec): string[] {
  if (spec.grantType === 'static') return spec.staticScheme === 'bearer' ? ['token'] : ['login', 'password'];
  const client = CLIENT_AUTH_SECRET_KEYS[spec.clientAuth].required;
  return spec.grantType === 'password' ? [...client, 'login', 'password'] : [...client];
}

/** The keys a connection's secret JSON may hold beyond the required ones (read when present). */
export function optionalSecretKeys(spec: DialectSpec): string[] {
  return spec.grantType === 'static' ? [] : [...CLIENT_AUTH_SECRET_KEYS[spec.clientAuth].optional];
}

/** The name RFC 8414 metadata (`token_endpoint_auth_methods_supported`) gives a client authentication method. */
export const CLIENT_AUTH_METHOD_NAME: Record<ClientAuth, string> = {
  basic: 'client_secret_basic',
  body: 'client_secret_post',
  private_key_jwt: 'private_key_jwt',
  client_secret_jwt: 'client_secret_jwt',
  tls_client_auth: 'tls_client_auth',
};
