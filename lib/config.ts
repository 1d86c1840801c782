import { readFileSync } from 'node:fs';
import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import {
  CLIENT_AUTHS,
  DIALECTS,
  DIALECT_NAMES,
  RESERVED_PARAMS,
  type DialectName,
  type DialectSpec,
  type ExchangingDialect,
  type StaticDialect,
} from './dialects';
import { ConfigurationError } from './errors';
import { principalPatternProblem } from './policy';

// The connections file, read by the functions at cold start and by the CDK app at synth time: one schema, one
// loader. It fails fast, and its message names the bad field. zod/mini keeps the functions' bundle and cold start
// small; the English messages are loaded so errors read as they would with classic zod.
z.config(en());

export const CONNECTION_ID = /^[A-Za-z0-9._-]{1,128}$/;
// An IAM role or user ARN; `*` may stand for part of one segment. policy.ts says which patterns can match a caller.
const Principal = z.string().check(
  z.superRefine((pattern, ctx) => {
    const problem = principalPatternProblem(pattern);
    if (problem) ctx.addIssue({ code: 'custom', message: problem, input: pattern });
  }),
);
// A secret's name (Secrets Manager's characters: no IAM wildcard can slip into a grant) or its ARN.
const SECRET_ID = /^(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:)?[A-Za-z0-9/_+=.@-]{1,512}$/;
const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]{1,128}$/;

const Seconds = (min: number, max: number) => z.number().check(z.int(), z.minimum(min), z.maximum(max));
const Text = (max: number) => z.string().check(z.minLength(1), z.maxLength(max));

const ConnectionInput = z.strictObject({
  id: z.string().check(z.regex(CONNECTION_ID, 'must be 1-128 characters of A-Z a-z 0-9 . _ -')),
  dialect: z._default(z.enum(DIALECT_NAMES), 'oauth2'),
  tokenUrl: z.optional(z.string()),
  // Instead of tokenUrl: the token endpoint is read from this issuer's RFC 8414 / OIDC metadata.
  issuer: z.optional(z.string()),
  secretId: z.string().check(z.regex(SECRET_ID, "must be a secret's name or ARN (names: A-Z a-z 0-9 / _ + = . @ -)")),
  secretKmsKeyArn: z.optional(z.string().check(z.regex(KMS_KEY_ARN, 'must be a KMS key ARN, arn:aws:kms:REGION:ACCOUNT:key/KEY-ID (not an alias)'))),
  callers: z._default(z.array(Principal), []),
  maxTtl: z._default(Seconds(1, 86_400), 900),
  refreshBefore: z._default(Seconds(0, 86_400), 120),
  prewarm: z._default(z.boolean(), false),
  // Generic engine fields: a preset's own values can be overridden with them.
  grantType: z.optional(z.enum(['client_credentials', 'password', 'static'])),
  clientAuth: z.optional(z.enum(CLIENT_AUTHS)),
  assertionAudience: z.optional(Text(2048)),
  bodyFormat: z.optional(z.enum(['form', 'json'])),
  scope: z.optional(Text(1024)),
  audience: z.optional(Text(1024)),
  params: z.optional(z.record(z.string(), z.string().check(z.maxLength(4096)))),
  usernameTemplate: z.optional(z.string().check(z.includes('{login}', { message: 'must contain {login}' }))),
  defaultLifetime: z.optional(Seconds(1, 31_622_400)),
  staticScheme: z.optional(z.enum(['basic', 'bearer'])),
});

const ConfigInput = z.strictObject({
  connections: z.array(ConnectionInput),
  admins: z._default(z.array(Principal), []),
});

export type ConnectionInput = z.input<typeof ConnectionInput>;
export type BrokerConfigInput = z.input<typeof ConfigInput>;

interface ConnectionCommon {
  id: string;
  dialectName: DialectName;
  secretId: string;
  /** The customer-managed KMS key that encrypts the secret, when it is not Secrets Manager's own key. */
  secretKmsKeyArn?: string;
  callers: string[];
  maxTtl: number;
  refreshBefore: number;
  prewarm: boolean;
}

/** A connection that hands out a credential derived from its secret, never calling a vendor. */
export interface StaticConnection extends ConnectionCommon {
  kind: 'static';
  dialect: StaticDialect;
}

/** Where an exchanging connection's token endpoint is: given, or read from the issuer's metadata. */
export type TokenEndpoint = { tokenUrl: URL } | { issuer: URL };

/** A connection that exchanges its secret for a token at a vendor's token endpoint. */
export interface ExchangingConnection extends ConnectionCommon {
  kind: 'exchanging';
  /** The preset merged with the connection's own fields. */
  dialect: ExchangingDialect;
  endpoint: TokenEndpoint;
}

export type Connection = StaticConnection | ExchangingConnection;

export interface BrokerConfig {
  connections: Connection[];
  byId: ReadonlyMap<string, Connection>;
  admins: string[];
}

export interface ConfigOptions {
  /** Local mode: plain http is accepted for loopback token URLs (the sandbox vendor, test vendors). */
  allowLoopbackHttp?: boolean;
}

export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/** Throws a ConfigurationError naming the problem when a token URL may not be used. */
export function checkTokenUrl(raw: string, opts: ConfigOptions, where: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigurationError(`${where}: is not a URL`);
  }
  if (url.username || url.password) throw new ConfigurationError(`${where}: must not carry credentials`);
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) {
    if (opts.allowLoopbackHttp) return url;
    throw new ConfigurationError(`${where}: plain http is accepted only for loopback addresses in local mode`);
  }
  throw new ConfigurationError(`${where}: must be an https URL`);
}

function formatIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`))
    .join('');
  // zod's messages name types and limits, never the offending value.
  return `${path || '(root)'}: ${issue.message}`;
}

type ParsedConnection = z.output<typeof ConnectionInput>;

// The connection's own values for the engine's fields override the preset's.
const ENGINE_FIELDS = [
  'clientAuth',
  'bodyFormat',
  'scope',
  'audience',
  'usernameTemplate',
  'defaultLifetime',
  'assertionAudience',
] as const;

function resolveConnection(c: ParsedConnection, at: string, opts: ConfigOptions): Connection {
  const where = (field: string) => `${at}${field} (${c.id})`;
  const preset: DialectSpec = DIALECTS[c.dialect];
  const grantType = c.grantType ?? preset.grantType;
  for (const key of Object.keys(c.params ?? {})) {
    if ((RESERVED_PARAMS as readonly string[]).includes(key)) {
      throw new ConfigurationError(`${where(`params.${key}`)}: is written by the engine and cannot be overridden`);
    }
  }
  if (grantType === 'static') {
    const staticScheme = c.staticScheme ?? (preset.grantType === 'static' ? preset.staticScheme : 'bearer');
    return { ...common(c), kind: 'static', dialect: { grantType, staticScheme } };
  }

  // A static preset turned into an exchanging one starts from the generic engine's defaults.
  const base: ExchangingDialect = preset.grantType === 'static' ? { ...DIALECTS.oauth2 } : { ...preset };
  const dialect: ExchangingDialect = { ...base, grantType };
  for (const key of ENGINE_FIELDS) {
    if (c[key] !== undefined) (dialect as unknown as Record<string, unknown>)[key] = c[key];
  }
  if (c.params) dialect.params = { ...(base.params ?? {}), ...c.params };
  for (const required of dialect.requires ?? []) {
    if (!dialect[required]) throw new ConfigurationError(`${where(required)}: the ${c.dialect} dialect requires it`);
  }
  if (c.tokenUrl !== undefined && c.issuer !== undefined) {
    throw new ConfigurationError(`${where('issuer')}: give tokenUrl or issuer, not both`);
  }
  let endpoint: TokenEndpoint;
  if (c.tokenUrl !== undefined) endpoint = { tokenUrl: checkTokenUrl(c.tokenUrl, opts, where('tokenUrl')) };
  else if (c.issuer !== undefined) endpoint = { issuer: checkIssuer(c.issuer, opts, where('issuer')) };
  else throw new ConfigurationError(`${where('tokenUrl')}: is required for the ${c.dialect} dialect (or issuer)`);
  if (dialect.clientAuth === 'tls_client_auth' && 'tokenUrl' in endpoint && endpoint.tokenUrl.protocol !== 'https:') {
    throw new ConfigurationError(`${where('tokenUrl')}: tls_client_auth needs an https token URL`);
  }
  return { ...common(c), kind: 'exchanging', dialect, endpoint };
}

/** An issuer identifier (RFC 8414 §2): a URL like a token URL, with no query or fragment. */
function checkIssuer(raw: string, opts: ConfigOptions, where: string): URL {
  const url = checkTokenUrl(raw, opts, where);
  if (url.search || url.hash) throw new ConfigurationError(`${where}: an issuer has no query or fragment`);
  return url;
}

function common(c: ParsedConnection): ConnectionCommon {
  return {
    id: c.id,
    dialectName: c.dialect,
    secretId: c.secretId,
    ...(c.secretKmsKeyArn ? { secretKmsKeyArn: c.secretKmsKeyArn } : {}),
    callers: c.callers,
    maxTtl: c.maxTtl,
    refreshBefore: c.refreshBefore,
    prewarm: c.prewarm,
  };
}

/** Validates a parsed configuration object. */
export function parseConfig(input: unknown, opts: ConfigOptions = {}): BrokerConfig {
  const parsed = ConfigInput.safeParse(input);
  if (!parsed.success) {
    throw new ConfigurationError(`invalid configuration: ${parsed.error.issues.map(formatIssue).join('; ')}`);
  }
  const connections = parsed.data.connections.map((c, i) => resolveConnection(c, `connections[${i}].`, opts));
  const byId = new Map<string, Connection>();
  for (const c of connections) {
    if (byId.has(c.id)) throw new ConfigurationError(`invalid configuration: connection id ${c.id} appears twice`);
    byId.set(c.id, c);
  }
  return { connections, byId, admins: parsed.data.admins };
}

/**
 * Validates one connection exactly as the file's are (a definition registered through the API): the same schema
 * and rules, each problem naming its field.
 */
export function parseConnection(input: unknown, opts: ConfigOptions = {}): Connection {
  const parsed = ConnectionInput.safeParse(input);
  if (!parsed.success) {
    throw new ConfigurationError(`invalid connection: ${parsed.error.issues.map(formatIssue).join('; ')}`);
  }
  return resolveConnection(parsed.data, '', opts);
}

/** Reads and validates the connections file. */
export function loadConfig(path: string, opts: ConfigOptions = {}): BrokerConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigurationError(`cannot read the configuration file ${path}`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigurationError(`the configuration file ${path} is not valid JSON`, { cause: err });
  }
  return parseConfig(json, opts);
}
