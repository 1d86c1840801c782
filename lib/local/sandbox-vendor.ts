import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { systemClock, type Clock } from '../clock';

// A sandbox that speaks the five vendors' token endpoints as their documents describe them, strictly: the method,
// path, content type, client authentication and the exact set of parameters are checked, and anything else is
// refused the way that vendor refuses it. The local demo runs against it; the tests use it as their fake vendors.

export type VendorKind = 'digitaleo' | 'docoon' | 'digishare' | 'usage-engine' | 'jwt';

export interface VendorAccount {
  client_id: string;
  client_secret: string;
  /** docoon's password grant: the user login (sent as msg\login) and password. */
  login?: string;
  password?: string;
  /** usage-engine: the audiences this client may ask for. */
  audiences?: string[];
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
}

export const VENDOR_PATHS: Record<VendorKind, string> = {
  digitaleo: '/digitaleo/token',
  docoon: '/docoon/connect/token',
  digishare: '/digishare/v1/oauth/token',
  'usage-engine': '/usage-engine/authentication/v1/oauth/token',
  jwt: '/jwt/oauth/v2/token',
};

const DEFAULT_LIFETIME: Record<VendorKind, number> = {
  digitaleo: 3600,
  docoon: 3600,
  digishare: 31_536_000,
  'usage-engine': 3600,
  jwt: 3600,
};

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

  private constructor(
    private readonly server: http.Server,
    readonly url: string,
    private readonly opts: SandboxOptions,
  ) {
    this.accounts = { ...DEMO_ACCOUNTS, ...(opts.accounts ?? {}) } as Record<VendorKind, VendorAccount>;
    this.clock = opts.clock ?? systemClock;
  }

  static async start(opts: SandboxOptions = {}): Promise<SandboxVendor> {
    const server = http.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const vendor = new SandboxVendor(server, `http://127.0.0.1:${port}`, opts);
    server.on('request', (req, res) => vendor.handle(req, res));
    return vendor;
  }

  tokenUrl(kind: VendorKind): string {
    return `${this.url}${VENDOR_PATHS[kind]}`;
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
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
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
        if (!p || !sameKeys(p, ['grant_type', 'scope', 'username', 'password'])) {
          return { status: 400, body: { error: 'invalid_request' } };
        }
        if (p.get('grant_type') !== 'password') return { status: 400, body: { error: 'unsupported_grant_type' } };
        if (p.get('scope') !== 'OMS') return { status: 400, body: { error: 'invalid_scope' } };
        if (p.get('username') !== `msg\\${acct.login}` || p.get('password') !== acct.password) {
          return { status: 400, body: { error: 'invalid_grant', error_description: 'invalid_username_or_password' } };
        }
        return {
          status: 200,
          body: { access_token: this.opaque(kind, 64), expires_in: this.lifetime(kind), token_type: 'Bearer', scope: 'OMS' },
        };
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
    }
  }
}
