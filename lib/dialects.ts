// The vendor dialects, as data. A dialect is a preset of the one generic OAuth 2.0 engine in exchange.ts; a new
// vendor is a new connection in the configuration file (dialect `oauth2` plus a few fields), never new code.

export type GrantType = 'client_credentials' | 'password' | 'static';
/** `basic`: Authorization: Basic base64(id:secret) of the raw values; `body`: client_id/client_secret in the body. */
export type ClientAuth = 'basic' | 'body';
export type BodyFormat = 'form' | 'json';
/** What a `static` grant hands out: `basic` = Basic base64(login:password), `bearer` = Bearer <token>. */
export type StaticScheme = 'basic' | 'bearer';

export interface DialectSpec {
  grantType: GrantType;
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
  staticScheme?: StaticScheme;
  /** Connection fields this dialect cannot work without. */
  requires?: readonly ('audience' | 'scope')[];
}

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
  'docoon-basic': { grantType: 'static', clientAuth: 'basic', bodyFormat: 'form', staticScheme: 'basic' },
  digishare: { grantType: 'client_credentials', clientAuth: 'body', bodyFormat: 'json' },
  'digishare-pat': { grantType: 'static', clientAuth: 'basic', bodyFormat: 'form', staticScheme: 'bearer' },
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
  'username',
  'password',
  'scope',
  'audience',
] as const;

/** The keys a connection's secret JSON must hold, derived from how the dialect authenticates. */
export function requiredSecretKeys(spec: DialectSpec): string[] {
  switch (spec.grantType) {
    case 'static':
      return spec.staticScheme === 'bearer' ? ['token'] : ['login', 'password'];
    case 'password':
      return ['client_id', 'client_secret', 'login', 'password'];
    case 'client_credentials':
      return ['client_id', 'client_secret'];
  }
}
