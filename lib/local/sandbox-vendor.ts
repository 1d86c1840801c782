import { constants, createPublicKey, generateKeyPairSync, randomBytes, timingSafeEqual, verify, createHmac } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { systemClock, type Clock } from '../clock';
import { LocalCertificateAuthority } from './certificates';

// A sandbox that speaks the five vendors' token endpoints as their documents describe them, strictly: the method,
// path, content type, client authentication and the exact set of parameters are checked, and anything else is
// refused the way that vendor refuses it. The local demo runs against it; the tests use it as their fake vendors.
// Three more endpoints show the stronger client authentication methods: a private_key_jwt and a client_secret_jwt
// endpoint that verify every assertion (signature, iss, sub, aud, exp, a jti used once), and a tls_client_auth
// endpoint over mutual TLS that checks the client certificate against the sandbox's own certificate authority.

export type VendorKind =
  | 'digitaleo'
  | 'docoon'
  | 'digishare'
  | 'usage-engine'
  | 'jwt'
  | 'private-key-jwt'
  | 'client-secret-jwt'
  | 'mtls';

export interface VendorAccount {
  client_id: string;
  client_secret?: string;
  /** docoon's password grant: the user login (sent as msg\login) and password. */
  login?: string;
  password?: string;
  /** usage-engine: the audiences this client may ask for. */
  audiences?: string[];
  /** private-key-jwt: the client's key (the sandbox registers its public half), its kid and alg. */
  private_key?: string;
  kid?: string;
  alg?: string;
  /** mtls: the client's certificate, issued by the sandbox's certificate authority, and its key. */
  client_certificate?: string;
  client_private_key?: string;
}

export interface RecordedRequest {
  kind: VendorKind;
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Takes over one request. Return nothing after answering it (or after deciding never to). */
export type Override = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

export interface SandboxOptions {
  accounts?: Partial<Record<VendorKind, VendorAccount>>;
  /** Seconds a token lives; per vendor kind, or one number for all. */
  lifetime?: number | Partial<Record<VendorKind, number>>;
  /** Length of Digitaleo's tokens (its document says up to 50,000 characters). */
  digitaleoTokenLength?: number;
  clock?: Clock;
  port?: number;
  /** docoon's password grant answers a refresh_token too, and accepts grant_type=refresh_token. */
  refreshTokens?: boolean;
}

export const VENDOR_PATHS: Record<VendorKind, string> = {
  digitaleo: '/digitaleo/token',
  docoon: '/docoon/connect/token',
  digishare: '/digishare/v1/oauth/token',
  'usage-engine': '/usage-engine/authentication/v1/oauth/token',
  jwt: '/jwt/oauth/v2/token',
  'private-key-jwt': '/private-key-jwt/oauth2/token',
  'client-secret-jwt': '/client-secret-jwt/oauth2/token',
  mtls: '/mtls/oauth2/token',
};

const DEFAULT_LIFETIME: Record<VendorKind, number> = {
  digitaleo: 3600,
  docoon: 3600,
  digishare: 31_536_000,
  'usage-engine': 3600,
  jwt: 3600,
  'private-key-jwt': 3600,
  'client-secret-jwt': 3600,
  mtls: 3600,
};

/** The sandbox's certificate authority: it signs the sandbox's TLS certificate and the demo client certificate. */
export const SANDBOX_CA = new LocalCertificateAuthority('token-broker sandbox CA');
const SANDBOX_TLS = SANDBOX_CA.issue({ commonName: '127.0.0.1', altNames: ['127.0.0.1', 'localhost'], usage: 'server' });

/** A client certificate from the sandbox's authority, as the mtls vendor's admin would hand one out. */
export function sandboxClientCertificate(clientId: string): { client_certificate: string; client_private_key: string } {
  const issued = SANDBOX_CA.issue({ commonName: clientId, usage: 'client' });
  return { client_certificate: issued.certificate, client_private_key: issued.privateKey };
}

/** A fresh EC P-256 private key in PKCS#8 PEM, as a private_key_jwt client would generate. */
export function newClientKey(): string {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

export const DEMO_ACCOUNTS: Record<VendorKind, VendorAccount> = {
  digitaleo: { client_id: 'demo-digitaleo-client', client_secret: 'demo-digitaleo-secret' },
  docoon: {
    client_id: 'demo-docoon-client',
    client_secret: 'demo-docoon-secret',
    login: '55XXX.restAPITest',
    password: 'demo-docoon-password',
  },
  digishare: { client_id: 'demo-digishare-client', client_secret: 'demo-digishare-secret' },
  'usage-engine': {
    client_id: 'demo-usage-client',
    client_secret: 'demo-usage-secret',
    audiences: ['https://api.usage-engine.example'],
  },
  jwt: { client_id: 'demo-jwt-client', client_secret: 'demo-jwt-secret' },
  'private-key-jwt': { client_id: 'demo-pkjwt-client', private_key: newClientKey(), kid: 'demo-key-1' },
  'client-secret-jwt': { client_id: 'demo-csjwt-client', client_secret: 'demo-csjwt-secret-of-32-bytes-or-more' },
  mtls: { client_id: 'demo-mtls-client', ...sandboxClientCertificate('demo-mtls-client') },
};

type Verdict = { status: number; body?: unknown; headers?: Record<string, string> };

function decodeBasic(header: string | undefined): [string, string] | undefined {
  const m = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header ?? '');
  if (!m?.[1]) return undefined;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const i = text.indexOf(':');
  return i < 0 ? undefined : [text.slice(0, i), text.slice(i + 1)];
}

function formParams(req: http.IncomingMessage, body: string): Map<string, string> | undefined {
  if (!/^application\/x-www-form-urlencoded\b/.test(req.headers['content-type'] ?? '')) return undefined;
  const out = new Map<string, string>();
  for (const [k, v] of new URLSearchParams(body)) {
    if (out.has(k)) return undefined;
    out.set(k, v);
  }
  return out;
}

function sameKeys(params: Map<string, string>, keys: string[]): boolean {
  return params.size === keys.length && keys.every((k) => params.has(k));
}

export class SandboxVendor {
  /** Told every token any sandbox issues (the tests check that none ever reaches a log line). */
  static onIssue: ((token: string) => void) | undefined;
  readonly requests: RecordedRequest[] = [];
  private readonly counts = new Map<VendorKind, number>();
  private readonly overrides: { kind: VendorKind | undefined; fn: Override }[] = [];
  private readonly faults = new Map<VendorKind, Override>();
  private readonly accounts: Record<VendorKind, VendorAccount>;
  private readonly clock: Clock;
  private issued = 0;
  /** Assertion ids already used, with their expiry (epoch s): a replay is refused. */
  private readonly seenJti = new Map<string, number>();
  /** The refresh tokens docoon issued and will still accept. */
  private readonly refreshTokens = new Set<string>();
  /** The sandbox's certificate authority (PEM): a client talking to `tlsUrl` trusts it. */
  readonly ca = SANDBOX_CA.certificate;

  private constructor(
    private readonly server: http.Server,
    private readonly tlsServer: https.Server,
    readonly url: string,
    /** The same endpoints over TLS, asking for a client certificate (mtls needs it). */
    readonly tlsUrl: string,
    private readonly opts: SandboxOptions,
  ) {
    this.accounts = { ...DEMO_ACCOUNTS, ...(opts.accounts ?? {}) };
    this.clock = opts.clock ?? systemClock;
  }

  static async start(opts: SandboxOptions = {}): Promise<SandboxVendor> {
    const server = http.createServer();
    // Certificates are checked in the handler, so a refused one gets an OAuth error rather than a broken handshake.
    const tlsServer = https.createServer({
      key: SANDBOX_TLS.privateKey,
      cert: SANDBOX_TLS.certificate,
      ca: [SANDBOX_CA.certificate],
      requestCert: true,
      rejectUnauthorized: false,
    });
    const listen = (s: http.Server, port: number) =>
      new Promise<number>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, '127.0.0.1', () => resolve((s.address() as AddressInfo).port));
      });
    const port = await listen(server, opts.port ?? 0);
    const tlsPort = await listen(tlsServer, 0).catch((err: unknown) => {
      server.close();
      throw err;
    });
    const vendor = new SandboxVendor(server, tlsServer, `http://127.0.0.1:${port}`, `https://127.0.0.1:${tlsPort}`, opts);
    server.on('request', (req, res) => vendor.handle(req, res));
    tlsServer.on('request', (req, res) => vendor.handle(req, res));
    return vendor;
  }

  /** Where a vendor's token endpoint is: over TLS for mtls, plain http (loopback) for the others. */
  tokenUrl(kind: VendorKind): string {
    return `${kind === 'mtls' ? this.tlsUrl : this.url}${VENDOR_PATHS[kind]}`;
  }

  /**
   * RFC 8414 metadata, so a connection can name the sandbox as its `issuer`: the token endpoint is the
   * private_key_jwt one, and mutual TLS has its alias on the TLS port.
   */
  metadata(tls = false): Record<string, unknown> {
    const issuer = tls ? this.tlsUrl : this.url;
    return {
      issuer,
      token_endpoint: `${issuer}${VENDOR_PATHS['private-key-jwt']}`,
      token_endpoint_auth_methods_supported: ['private_key_jwt', 'client_secret_jwt', 'tls_client_auth'],
      token_endpoint_auth_signing_alg_values_supported: ['RS256', 'PS256', 'ES256', 'HS256'],
      grant_types_supported: ['client_credentials'],
      mtls_endpoint_aliases: { token_endpoint: this.tokenUrl('mtls') },
    };
  }

  /** Refresh tokens issued so far stop working, as a vendor revoking them would. */
  revokeRefreshTokens(): void {
    this.refreshTokens.clear();
  }

  account(kind: VendorKind): VendorAccount {
    return this.accounts[kind];
  }

  /** Replaces what a vendor accepts, as a credential rotation at the vendor would. */
  setAccount(kind: VendorKind, account: VendorAccount): void {
    this.accounts[kind] = account;
  }

  /** Tokens issued (successful exchanges), for one vendor or all. */
  exchanges(kind?: VendorKind): number {
    if (kind) return this.counts.get(kind) ?? 0;
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }

  /** Requests received (answered or not), for one vendor or all. */
  received(kind?: VendorKind): number {
    return kind ? this.requests.filter((r) => r.kind === kind).length : this.requests.length;
  }

  /** The next request (to that vendor, or to any) is handled by `fn` instead. Queued in order. */
  override(fn: Override, kind?: VendorKind): void {
    this.overrides.push({ kind, fn });
  }

  /** Every request to that vendor is handled by `fn` until `heal` (an outage, a lock-out). */
  fail(kind: VendorKind, fn: Override): void {
    this.faults.set(kind, fn);
  }

  heal(kind: VendorKind): void {
    this.faults.delete(kind);
  }

  async close(): Promise<void> {
    for (const s of [this.server, this.tlsServer]) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 1 << 20) chunks.push(c);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      const kind = (Object.entries(VENDOR_PATHS).find(([, p]) => p === path)?.[0] ?? undefined) as
        | VendorKind
        | undefined;
      if (path === '/.well-known/oauth-authorization-server' && req.method === 'GET') {
        return this.send(res, { status: 200, body: this.metadata(Boolean((req.socket as Partial<TLSSocket>).encrypted)) });
      }
      if (!kind) return this.send(res, { status: 404, body: { error: 'not_found' } });
      this.requests.push({ kind, method: req.method ?? '', path, headers: req.headers, body });
      const i = this.overrides.findIndex((o) => o.kind === undefined || o.kind === kind);
      if (i >= 0) {
        const [o] = this.overrides.splice(i, 1);
        return o?.fn(req, res, body);
      }
      const fault = this.faults.get(kind);
      if (fault) return fault(req, res, body);
      const verdict = req.method !== 'POST' ? { status: 405, body: { error: 'method_not_allowed' } } : this.judge(kind, req, body);
      if (verdict.status === 200) {
        this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
        const token = (verdict.body as { access_token?: string }).access_token;
        if (token) SandboxVendor.onIssue?.(token);
      }
      this.send(res, verdict);
    });
  }

  private send(res: http.ServerResponse, v: Verdict): void {
    const text = v.body === undefined ? '' : JSON.stringify(v.body);
    res.writeHead(v.status, {
      ...(text ? { 'content-type': 'application/json; charset=utf-8' } : {}),
      'cache-control': 'no-store',
      ...(v.headers ?? {}),
    });
    res.end(text);
  }

  private lifetime(kind: VendorKind): number {
    const l = this.opts.lifetime;
    if (typeof l === 'number') return l;
    return l?.[kind] ?? DEFAULT_LIFETIME[kind];
  }

  private opaque(kind: VendorKind, length = 48): string {
    this.issued += 1;
    const prefix = `${kind}-${this.issued}-`;
    const random = randomBytes(Math.ceil(length * 0.75) + 3).toString('base64url');
    return (prefix + random).slice(0, Math.max(length, prefix.length + 8));
  }

  private docoonToken(): Record<string, unknown> {
    const token: Record<string, unknown> = {
      access_token: this.opaque('docoon', 64),
      expires_in: this.lifetime('docoon'),
      token_type: 'Bearer',
      scope: 'OMS',
    };
    if (this.opts.refreshTokens) {
      const refresh = `docoon-refresh-${randomBytes(24).toString('base64url')}`;
      this.refreshTokens.add(refresh);
      SandboxVendor.onIssue?.(refresh);
      token.refresh_token = refresh;
    }
    return token;
  }

  /** A client assertion (RFC 7523) checked as a strict vendor would; undefined when it is good. */
  private refuseAssertion(kind: VendorKind, acct: VendorAccount, p: Map<string, string>): Verdict | undefined {
    const refused: Verdict = { status: 401, body: { error: 'invalid_client' } };
    if (p.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') return refused;
    const [h = '', c = '', sig = '', extra] = (p.get('client_assertion') ?? '').split('.');
    if (extra !== undefined) return refused;
    let header: Record<string, unknown>;
    let claims: Record<string, unknown>;
    try {
      header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>;
      claims = JSON.parse(Buffer.from(c, 'base64url').toString('utf8')) as Record<string, unknown>;
    } catch {
      return refused;
    }
    const input = Buffer.from(`${h}.${c}`, 'ascii');
    const signature = Buffer.from(sig, 'base64url');
    if (kind === 'client-secret-jwt') {
      const expected = createHmac('sha256', acct.client_secret ?? '').update(input).digest();
      if (header.alg !== 'HS256' || expected.length !== signature.length || !timingSafeEqual(expected, signature)) return refused;
    } else {
      const key = createPublicKey(acct.private_key ?? '');
      const alg = acct.alg ?? (key.asymmetricKeyType === 'ec' ? 'ES256' : 'RS256');
      if (header.alg !== alg || (acct.kid !== undefined && header.kid !== acct.kid)) return refused;
      const options =
        alg === 'ES256'
          ? { key, dsaEncoding: 'ieee-p1363' as const }
          : alg === 'PS256'
            ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }
            : { key };
      if (!verify('sha256', input, options, signature)) return refused;
    }
    const now = Math.floor(this.clock.now() / 1000);
    const { iss, sub, aud, jti, iat, exp } = claims;
    if (iss !== acct.client_id || sub !== acct.client_id || p.get('client_id') !== acct.client_id) return refused;
    if (aud !== this.tokenUrl(kind) || typeof jti !== 'string' || typeof iat !== 'number' || typeof exp !== 'number') {
      return refused;
    }
    if (exp <= now || exp - iat > 300 || iat > now + 60) return refused;
    for (const [id, until] of this.seenJti) if (until < now) this.seenJti.delete(id);
    if (this.seenJti.has(`${kind}:${jti}`)) return refused;
    this.seenJti.set(`${kind}:${jti}`, exp);
    return undefined;
  }

  private judge(kind: VendorKind, req: http.IncomingMessage, body: string): Verdict {
    const acct = this.accounts[kind];
    switch (kind) {
      case 'digitaleo': {
        // client_credentials with the credentials in the form body; 400 + error_description when anything is off.
        const bad: Verdict = {
          status: 400,
          body: { error: 'invalid_client', error_description: 'The client credentials are invalid' },
        };
        const p = formParams(req, body);
        if (!p || !sameKeys(p, ['grant_type', 'client_id', 'client_secret'])) {
          return { status: 400, body: { error: 'invalid_request', error_description: 'The request is invalid' } };
        }
        if (p.get('grant_type') !== 'client_credentials') {
          return { status: 400, body: { error: 'unsupported_grant_type', error_description: 'Unsupported grant' } };
        }
        if (req.headers.authorization) return bad;
        if (p.get('client_id') !== acct.client_id || p.get('client_secret') !== acct.client_secret) return bad;
        return {
          status: 200,
          body: {
            access_token: this.opaque(kind, this.opts.digitaleoTokenLength ?? 2000),
            expires_in: this.lifetime(kind),
            token_type: 'bearer',
            scope: null,
          },
        };
      }
      case 'docoon': {
        // Password grant, the client in HTTP Basic, scope=OMS, username msg\{login}. IdentityServer's errors.
        const client = decodeBasic(req.headers.authorization);
        if (!client || client[0] !== acct.client_id || client[1] !== acct.client_secret) {
          return { status: 401, body: { error: 'invalid_client' } };
        }
        const p = formParams(req, body);
        if (this.opts.refreshTokens && p?.get('grant_type') === 'refresh_token') {
          if (!sameKeys(p, ['grant_type', 'refresh_token'])) return { status: 400, body: { error: 'invalid_request' } };
          // Each refresh token is used once: the answer carries the next one.
          if (!this.refreshTokens.delete(p.get('refresh_token') ?? '')) return { status: 400, body: { error: 'invalid_grant' } };
          return { status: 200, body: this.docoonToken() };
        }
        if (!p || !sameKeys(p, ['grant_type', 'scope', 'username', 'password'])) {
          return { status: 400, body: { error: 'invalid_request' } };
        }
        if (p.get('grant_type') !== 'password') return { status: 400, body: { error: 'unsupported_grant_type' } };
        if (p.get('scope') !== 'OMS') return { status: 400, body: { error: 'invalid_scope' } };
        if (p.get('username') !== `msg\\${acct.login}` || p.get('password') !== acct.password) {
          return { status: 400, body: { error: 'invalid_grant', error_description: 'invalid_username_or_password' } };
        }
        return { status: 200, body: this.docoonToken() };
      }
      case 'digishare': {
        // A JSON body; anything else is refused.
        if (!/^application\/json\b/.test(req.headers['content-type'] ?? '')) {
          return { status: 415, body: { message: 'Unsupported Media Type' } };
        }
        let json: Record<string, unknown>;
        try {
          json = JSON.parse(body) as Record<string, unknown>;
        } catch {
          return { status: 400, body: { message: 'Malformed JSON' } };
        }
        const keys = Object.keys(json ?? {}).sort().join(',');
        if (keys !== 'client_id,client_secret,grant_type' || json.grant_type !== 'client_credentials') {
          return { status: 400, body: { error: 'invalid_request', message: 'The request is invalid' } };
        }
        if (json.client_id !== acct.client_id || json.client_secret !== acct.client_secret) {
          return { status: 401, body: { error: 'invalid_client', message: 'Client authentication failed' } };
        }
        return {
          status: 200,
          body: { token_type: 'Bearer', expires_in: this.lifetime(kind), access_token: this.opaque(kind, 80) },
        };
      }
      case 'usage-engine': {
        const p = formParams(req, body);
        if (!p || !sameKeys(p, ['client_id', 'client_secret', 'grant_type', 'audience'])) {
          return { status: 400, body: { error: 'invalid_request', error_description: 'Missing required parameter' } };
        }
        if (p.get('grant_type') !== 'client_credentials') {
          return { status: 400, body: { error: 'unsupported_grant_type' } };
        }
        if (p.get('client_id') !== acct.client_id || p.get('client_secret') !== acct.client_secret) {
          return { status: 401, body: { error: 'access_denied', error_description: 'Unauthorized' } };
        }
        if (!(acct.audiences ?? []).includes(p.get('audience') ?? '')) {
          return { status: 403, body: { error: 'access_denied', error_description: 'Service not enabled within domain' } };
        }
        return {
          status: 200,
          body: {
            access_token: this.opaque(kind, 120),
            scope: 'read:usage',
            expires_in: this.lifetime(kind),
            token_type: 'Bearer',
          },
        };
      }
      case 'jwt': {
        // Seed 004: Basic client authentication, form body with grant_type only, a JWT back; 401 otherwise.
        const client = decodeBasic(req.headers.authorization);
        const p = formParams(req, body);
        if (!p || !sameKeys(p, ['grant_type']) || p.get('grant_type') !== 'client_credentials') {
          return { status: 400, body: { error: 'invalid_request' } };
        }
        if (!client || client[0] !== acct.client_id || client[1] !== acct.client_secret) return { status: 401 };
        const now = Math.floor(this.clock.now() / 1000);
        const lifetime = this.lifetime(kind);
        const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
        this.issued += 1;
        const jwt = [
          enc({ alg: 'RS256', typ: 'JWT' }),
          enc({ sub: acct.client_id, iat: now, exp: now + lifetime, jti: `${this.issued}-${randomBytes(6).toString('hex')}` }),
          randomBytes(32).toString('base64url'),
        ].join('.');
        return { status: 200, body: { token_type: 'Bearer', expires_in: lifetime, access_token: jwt } };
      }
      case 'private-key-jwt':
      case 'client-secret-jwt': {
        // RFC 7523 §2.2: the client assertion instead of a secret; no Authorization header.
        const p = formParams(req, body);
        const keys = ['grant_type', 'client_id', 'client_assertion_type', 'client_assertion'];
        if (!p || !sameKeys(p, keys) || req.headers.authorization) return { status: 400, body: { error: 'invalid_request' } };
        if (p.get('grant_type') !== 'client_credentials') return { status: 400, body: { error: 'unsupported_grant_type' } };
        const refused = this.refuseAssertion(kind, acct, p);
        if (refused) return refused;
        return { status: 200, body: { access_token: this.opaque(kind, 64), expires_in: this.lifetime(kind), token_type: 'Bearer' } };
      }
      case 'mtls': {
        // RFC 8705 §2.1: the client certificate, chained to the sandbox's authority, names the client.
        const socket = req.socket as Partial<TLSSocket>;
        const p = formParams(req, body);
        if (!p || !sameKeys(p, ['grant_type', 'client_id']) || req.headers.authorization) {
          return { status: 400, body: { error: 'invalid_request' } };
        }
        if (p.get('grant_type') !== 'client_credentials') return { status: 400, body: { error: 'unsupported_grant_type' } };
        const peer = socket.getPeerX509Certificate?.();
        if (!socket.encrypted || !socket.authorized || !peer || p.get('client_id') !== acct.client_id) {
          return { status: 401, body: { error: 'invalid_client' } };
        }
        if (peer.subject !== `CN=${acct.client_id}`) return { status: 401, body: { error: 'invalid_client' } };
        return { status: 200, body: { access_token: this.opaque(kind, 64), expires_in: this.lifetime(kind), token_type: 'Bearer' } };
      }
    }
  }
}
