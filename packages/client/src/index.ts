import { Sha256 } from '@aws-crypto/sha256-js';
import { defaultRegion, isWrongRegion } from './region';
import { SignatureV4 } from '@smithy/signature-v4';

// The token broker's client for internal services: SigV4-signed calls (service execute-api) with the default AWS
// credential chain, a token reused in-process while it still covers minTtl, one request in flight per connection
// however many callers wait, a refresh started ahead of expiry, Retry-After honoured on 429 and 503, and a fetch
// wrapper that reports a token the vendor rejected with 401 and retries once. Its only runtime dependencies are
// SigV4 signing and the credential chain.

/** AWS credentials as the SDK's credential providers return them. */
export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

export type CredentialsProvider = () => Promise<Credentials>;

/** What the client asks for the time; `sleep` waits between retries (both injectable for tests). */
export interface ClientClock {
  now(): number;
  sleep?(ms: number): Promise<void>;
}

export interface TokenBrokerClientOptions {
  /** The API's base URL, e.g. https://abc123.execute-api.eu-west-1.amazonaws.com/prod. Default: $TOKEN_BROKER_URL. */
  baseUrl?: string;
  /**
   * The region requests are signed for. Default: the one in an `execute-api` host name, else the AWS profile's
   * (AWS_PROFILE, else default), else $AWS_REGION, else us-east-1.
   */
  region?: string;
  /** Default: the AWS SDK's default credential chain (environment, profile, SSO, web identity, container, EC2). */
  credentials?: Credentials | CredentialsProvider;
  /** Deadline of each call to the broker, in ms (default 15,000). */
  timeoutMs?: number;
  /** Retries after a 429 or 503 answer, waiting what Retry-After says (default 2). */
  maxRetries?: number;
  /** The longest the client waits in all for retries, in ms (default 30,000): a longer Retry-After is thrown at once. */
  maxRetryWaitMs?: number;
  /**
   * Seconds before a cached token stops covering minTtl at which a refresh starts in the background while callers
   * keep getting the cached token (default 30; 0 turns it off).
   */
  refreshAhead?: number;
  fetch?: typeof fetch;
  clock?: ClientClock;
  /** Returns a number in [0, 1) for the retry jitter (default Math.random). */
  random?: () => number;
}

export interface BrokerToken {
  connection: string;
  accessToken: string;
  /** `Bearer`, or `Basic` for a static Basic credential. */
  tokenType: string;
  /** Seconds handed out by the broker. */
  expiresIn: number;
  /** Epoch ms on this machine's clock, counted from when the request left. */
  expiresAt: number;
  /** `tokenType accessToken`, ready for an Authorization header. */
  authorization: string;
}

export interface ConnectionSummary {
  id: string;
  dialect: string;
}

export interface RefreshResult {
  connection: string;
  /** ISO 8601: when the new token itself expires. */
  expires_at: string;
  /** Seconds: the most callers are handed it for at a time (the connection's maxTtl); absent from older brokers. */
  max_ttl?: number;
}

export interface VerifyResult {
  connection: string;
  versionStage: string;
  expires_in: number;
}

/** One page of GET /v1/connections: `next` is present when more follow. */
export interface ConnectionPage {
  connections: ConnectionSummary[];
  next?: string;
}

/** A connection as in the connections file (its `id` may be left out: the path gives it). */
export type ConnectionDefinition = { secretId: string } & Record<string, unknown>;

/** What a PUT or DELETE of a connection is based on: the etag it was read with (or `*`: whatever is there). */
export interface ChangeOptions {
  ifMatch?: string;
}

export interface ConnectionChange {
  connection: string;
  etag: string;
  /** True when the id was new (201), false when a definition was replaced (200). */
  created: boolean;
}

export interface ConnectionDescription {
  connection: string;
  source: 'file' | 'api';
  etag: string;
  definition: ConnectionDefinition;
}

/** An admin's view of one connection's health (GET /v1/connections/{id}/status): nothing secret. */
export type ConnectionStatus = { connection: string } & Record<string, unknown>;

/** One page of every connection's health (GET /v1/status), unhealthy first: nothing secret. */
export interface StatusPage {
  connections: ({ connection: string; state: string } & Record<string, unknown>)[];
  total: number;
  /** Pass it back for the following page; absent on the last. */
  next?: string;
}

/** The problem codes the broker and its API Gateway answer with, and the client's own. */
export type ProblemCode =
  | 'invalid_request'
  | 'not_found'
  | 'unauthenticated'
  | 'forbidden'
  | 'conflict'
  | 'precondition_failed'
  | 'vendor_rejected_credentials'
  | 'vendor_protocol_error'
  | 'rate_limited'
  | 'vendor_unavailable'
  | 'vendor_timeout'
  | 'misconfigured'
  | 'service_unavailable'
  | 'internal_error'
  /** The client could not find AWS credentials. */
  | 'no_credentials'
  /** The broker could not be reached. */
  | 'unreachable'
  /** The broker did not answer within timeoutMs. */
  | 'timeout';

/** What the broker (or API Gateway in front of it) answered when it was not a success, or why there was no answer. */
export class TokenBrokerError extends Error {
  override readonly name = 'TokenBrokerError';
  /** The HTTP status; 0 when there was no answer. */
  readonly status: number;
  readonly code: ProblemCode | (string & {});
  readonly title: string | undefined;
  readonly detail: string | undefined;
  /** Seconds the broker asked to wait (Retry-After). */
  readonly retryAfter: number | undefined;
  /** The broker's request id (the problem's `instance`), for its operators' logs. */
  readonly requestId: string | undefined;

  constructor(
    init: { status: number; code: string; title?: string; detail?: string; retryAfter?: number; requestId?: string },
    options?: { cause?: unknown },
  ) {
    const text = init.detail ?? init.title;
    super(`token broker: ${init.code}${text ? `: ${text}` : ''}`, options);
    this.status = init.status;
    this.code = init.code;
    this.title = init.title;
    this.detail = init.detail;
    this.retryAfter = init.retryAfter;
    this.requestId = init.requestId;
  }

  /** True for answers after which the same call may succeed later without anyone changing anything. */
  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }
}

const RETRYABLE = new Set<string>(['rate_limited', 'vendor_unavailable', 'vendor_timeout', 'service_unavailable', 'unreachable', 'timeout']);

/** The code a refusal without a problem body stands for (API Gateway's own answers when left unconfigured). */
function codeForStatus(status: number): ProblemCode {
  if (status === 400 || status === 413 || status === 415) return 'invalid_request';
  if (status === 401) return 'unauthenticated';
  if (status === 403) return 'forbidden';
  if (status === 404 || status === 405) return 'not_found';
  if (status === 409) return 'conflict';
  if (status === 412) return 'precondition_failed';
  if (status === 429) return 'rate_limited';
  if (status === 504) return 'vendor_timeout';
  if (status === 502 || status === 503) return 'service_unavailable';
  return 'internal_error';
}

function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

/** Builds the typed error for a broker answer that is not a success. */
export function errorFromResponse(status: number, headers: Headers, text: string, now = Date.now()): TokenBrokerError {
  let body: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
  } catch {
    // Not JSON: the status alone says what happened.
  }
  const str = (v: unknown) => (typeof v === 'string' && v.length > 0 ? v.slice(0, 500) : undefined);
  const retryAfter = parseRetryAfter(headers.get('retry-after'), now);
  const title = str(body.title) ?? str(body.message) ?? str(body.Message);
  const detail = str(body.detail);
  const requestId = str(body.instance) ?? headers.get('x-amzn-requestid') ?? undefined;
  return new TokenBrokerError({
    status,
    code: str(body.code) ?? codeForStatus(status),
    ...(title ? { title } : {}),
    ...(detail ? { detail } : {}),
    ...(retryAfter !== undefined ? { retryAfter } : {}),
    ...(requestId ? { requestId } : {}),
  });
}

/** Signs a request for an AWS_IAM API Gateway route (service execute-api); returns the headers to send. */
export async function signRequest(opts: {
  url: URL;
  method: string;
  body?: string;
  headers?: Record<string, string>;
  credentials: Credentials;
  region: string;
  signingDate?: Date;
}): Promise<Record<string, string>> {
  const query: Record<string, string | string[]> = {};
  for (const [k, v] of opts.url.searchParams) {
    const prev = query[k];
    query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  const signer = new SignatureV4({ credentials: opts.credentials, region: opts.region, service: 'execute-api', sha256: Sha256 });
  const signed = await signer.sign(
    {
      method: opts.method,
      protocol: opts.url.protocol,
      hostname: opts.url.hostname,
      ...(opts.url.port ? { port: Number(opts.url.port) } : {}),
      // API Gateway signs the decoded path; the signer encodes each segment itself.
      path: decodeSegments(opts.url.pathname),
      query,
      headers: { host: opts.url.host, ...(opts.headers ?? {}) },
      ...(opts.body !== undefined ? { body: opts.body } : {}),
    },
    opts.signingDate ? { signingDate: opts.signingDate } : {},
  );
  return signed.headers;
}

/** Each path segment percent-decoded (a segment that is not valid percent-encoding is kept as it is). */
export function decodeSegments(path: string): string {
  return path
    .split('/')
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    })
    .join('/');
}

const systemSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

export class TokenBrokerClient {
  readonly baseUrl: string;
  readonly region: string;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly maxRetryWaitMs: number;
  private readonly refreshAheadMs: number;
  private readonly fetchImpl: typeof fetch;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly cache = new Map<string, BrokerToken>();
  private readonly inflight = new Map<string, Promise<BrokerToken>>();
  private defaultChain: CredentialsProvider | undefined;

  constructor(private readonly opts: TokenBrokerClientOptions = {}) {
    const baseUrl = opts.baseUrl ?? process.env.TOKEN_BROKER_URL;
    if (!baseUrl) throw new TypeError('token broker: no endpoint: pass baseUrl or set TOKEN_BROKER_URL');
    let parsed: URL;
    try {
      parsed = new URL(baseUrl);
    } catch {
      throw new TypeError('token broker: the endpoint is not a URL (baseUrl or TOKEN_BROKER_URL)');
    }
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
      throw new TypeError('token broker: the endpoint must be an http(s) URL');
    }
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.region = opts.region ?? defaultRegion(baseUrl);
    this.timeoutMs = opts.timeoutMs ?? 15_000;
    this.maxRetries = Math.max(0, Math.min(opts.maxRetries ?? 2, 10));
    this.maxRetryWaitMs = opts.maxRetryWaitMs ?? 30_000;
    this.refreshAheadMs = Math.max(0, opts.refreshAhead ?? 30) * 1000;
    this.fetchImpl = opts.fetch ?? ((input, init) => fetch(input, init));
    this.now = opts.clock ? () => opts.clock!.now() : Date.now;
    this.sleep = opts.clock?.sleep ? (ms) => opts.clock!.sleep!(ms) : systemSleep;
    this.random = opts.random ?? Math.random;
  }

  /**
   * A token valid for at least `minTtl` seconds (default 60). From this process's cache while it covers minTtl;
   * inside the refresh-ahead window the cached token is returned and one refresh starts behind it.
   */
  async getToken(connection: string, opts: { minTtl?: number } = {}): Promise<BrokerToken> {
    const minTtl = opts.minTtl ?? 60;
    if (!Number.isInteger(minTtl) || minTtl < 0 || minTtl > 3600) {
      throw new RangeError('token broker: minTtl must be an integer from 0 to 3600');
    }
    const cached = this.cache.get(connection);
    const left = cached ? cached.expiresAt - this.now() : -1;
    if (cached && left >= minTtl * 1000) {
      if (left < minTtl * 1000 + this.refreshAheadMs && !this.inflight.has(connection)) {
        // The caller is served now; a failed background refresh leaves the cached token in place.
        this.mint(connection, minTtl).catch(() => undefined);
      }
      return cached;
    }
    const shared = this.inflight.get(connection);
    if (shared) {
      const t = await shared;
      if (t.expiresAt - this.now() >= minTtl * 1000) return t;
    }
    return this.mint(connection, minTtl);
  }

  /** The value for an Authorization header (`Bearer …`, or `Basic …` for a static Basic credential). */
  async authorization(connection: string, opts: { minTtl?: number } = {}): Promise<string> {
    return (await this.getToken(connection, opts)).authorization;
  }

  /** Reports a token the vendor rejected before its expiry; true if the broker evicted it (it was still current). */
  async invalidate(connection: string, accessToken: string): Promise<boolean> {
    if (this.cache.get(connection)?.accessToken === accessToken) this.cache.delete(connection);
    // Not retried: a 429 here means the token was minted moments ago, and the caller should not wait on it.
    const body = await this.call('POST', `${connectionPath(connection)}/token/invalidate`, { access_token: accessToken }, { retries: 0 });
    return (body as { invalidated?: unknown }).invalidated === true;
  }

  /**
   * Calls `send` with the connection's Authorization header value. When the answer is the vendor's 401
   * (`isRejected`, by default `answer.status === 401`), the token is reported to the broker and `send` is called once
   * more with a new one. Works with any HTTP client.
   */
  async withAuthorization<T>(
    connection: string,
    send: (authorization: string) => Promise<T>,
    opts: { minTtl?: number; isRejected?: (answer: T) => boolean } = {},
  ): Promise<T> {
    const isRejected = opts.isRejected ?? ((a: T) => (a as { status?: unknown } | null)?.status === 401);
    const token = await this.getToken(connection, opts);
    const first = await send(token.authorization);
    if (!isRejected(first)) return first;
    await this.invalidate(connection, token.accessToken).catch(() => false);
    this.cache.delete(connection);
    return send((await this.getToken(connection, opts)).authorization);
  }

  /**
   * fetch() with the connection's Authorization header, retried once with a new token when the vendor answers 401.
   * A body must be replayable (a string, a Buffer, URLSearchParams), since it may be sent twice.
   */
  async fetch(connection: string, input: string | URL, init: RequestInit = {}, opts: { minTtl?: number } = {}): Promise<Response> {
    let rejected: Response | undefined;
    return this.withAuthorization(
      connection,
      async (authorization) => {
        if (rejected) await rejected.body?.cancel().catch(() => undefined);
        const headers = new Headers(init.headers);
        headers.set('authorization', authorization);
        const res = await this.fetchImpl(input, { ...init, headers });
        rejected = res;
        return res;
      },
      opts,
    );
  }

  /**
   * The connections this caller may use: ids and dialects; `admin: true`: every connection an admin administers.
   * Every page, followed up to `maxPages` (100 pages of 1,000).
   */
  async listConnections(opts: { admin?: boolean; maxPages?: number } = {}): Promise<ConnectionSummary[]> {
    const all: ConnectionSummary[] = [];
    let next: string | undefined;
    for (let page = 0; page < (opts.maxPages ?? 100); page++) {
      const read = await this.listConnectionsPage({ ...(opts.admin ? { admin: true } : {}), limit: 1000, ...(next ? { next } : {}) });
      all.push(...read.connections);
      if (!read.next) break;
      next = read.next;
    }
    return all;
  }

  /** One page of the list: up to `limit` (1-1000, default 100), after the page whose `next` is given. */
  async listConnectionsPage(opts: { admin?: boolean; limit?: number; next?: string } = {}): Promise<ConnectionPage> {
    const query = new URLSearchParams({
      ...(opts.admin ? { role: 'admin' } : {}),
      ...(opts.limit !== undefined ? { limit: String(opts.limit) } : {}),
      ...(opts.next !== undefined ? { next: opts.next } : {}),
    }).toString();
    const body = (await this.call('GET', `/v1/connections${query ? `?${query}` : ''}`)) as { connections?: ConnectionSummary[]; next?: string };
    return { connections: body.connections ?? [], ...(typeof body.next === 'string' ? { next: body.next } : {}) };
  }

  /** Admins: register a connection, or replace one registered before (never one the file defines: 409 conflict). */
  async putConnection(connection: string, definition: ConnectionDefinition, opts: ChangeOptions = {}): Promise<ConnectionChange> {
    const answer = await this.answer('PUT', connectionPath(connection), definition, ifMatchHeader(opts));
    const body = answer.body as { connection: string; etag: string };
    return { connection: body.connection, etag: body.etag, created: answer.status === 201 };
  }

  /** Admins: a connection's definition, its source (file or api) and etag. Nothing secret. */
  async getConnection(connection: string): Promise<ConnectionDescription> {
    return (await this.call('GET', connectionPath(connection))) as ConnectionDescription;
  }

  /** Admins: delete a registered connection; its cached tokens are evicted. */
  async deleteConnection(connection: string, opts: ChangeOptions = {}): Promise<void> {
    await this.answer('DELETE', connectionPath(connection), undefined, ifMatchHeader(opts));
  }

  /** Admins: mint a new token now. */
  async refresh(connection: string): Promise<RefreshResult> {
    return (await this.call('POST', `${connectionPath(connection)}/refresh`)) as RefreshResult;
  }

  /** Admins: exchange with a secret version stage (default AWSPENDING), cache nothing, report the outcome. */
  async verify(connection: string, versionStage = 'AWSPENDING'): Promise<VerifyResult> {
    return (await this.call('POST', `${connectionPath(connection)}/verify`, { versionStage })) as VerifyResult;
  }

  /** Admins: the connection's health, nothing secret. */
  async status(connection: string): Promise<ConnectionStatus> {
    return (await this.call('GET', `${connectionPath(connection)}/status`)) as ConnectionStatus;
  }

  /** Admins: every connection's health, unhealthy first, a page at a time (`next` from the previous page). */
  async statusPage(opts: { limit?: number; next?: string } = {}): Promise<StatusPage> {
    const query = new URLSearchParams();
    if (opts.limit !== undefined) query.set('limit', String(opts.limit));
    if (opts.next !== undefined) query.set('next', opts.next);
    const qs = query.toString();
    return (await this.call('GET', `/v1/status${qs ? `?${qs}` : ''}`)) as StatusPage;
  }

  private mint(connection: string, minTtl: number): Promise<BrokerToken> {
    const own = this.fetchToken(connection, minTtl).finally(() => {
      if (this.inflight.get(connection) === own) this.inflight.delete(connection);
    });
    if (!this.inflight.has(connection)) this.inflight.set(connection, own);
    return own;
  }

  private async fetchToken(connection: string, minTtl: number): Promise<BrokerToken> {
    let started = this.now();
    const body = (await this.call('GET', `${connectionPath(connection)}/token?min_ttl=${minTtl}`, undefined, {
      onAttempt: (at) => {
        started = at;
      },
    })) as { access_token?: unknown; token_type?: unknown; expires_in?: unknown; authorization?: unknown };
    if (typeof body.access_token !== 'string' || typeof body.expires_in !== 'number' || typeof body.token_type !== 'string') {
      throw new TokenBrokerError({ status: 200, code: 'internal_error', title: 'the broker answered something that is not a token' });
    }
    const token: BrokerToken = {
      connection,
      accessToken: body.access_token,
      tokenType: body.token_type,
      expiresIn: body.expires_in,
      // Counted from when the request left, so network time is not added to the token's life.
      expiresAt: started + body.expires_in * 1000,
      authorization: typeof body.authorization === 'string' ? body.authorization : `${body.token_type} ${body.access_token}`,
    };
    const current = this.cache.get(connection);
    if (!current || current.expiresAt <= token.expiresAt) this.cache.set(connection, token);
    return token;
  }

  private async credentials(): Promise<Credentials> {
    const c = this.opts.credentials;
    if (typeof c === 'function') return c();
    if (c) return c;
    if (!this.defaultChain) {
      // Loaded only when needed: callers that pass credentials never pay for the chain.
      const { defaultProvider } = await import('@aws-sdk/credential-provider-node');
      this.defaultChain = defaultProvider();
    }
    try {
      return await this.defaultChain();
    } catch (err) {
      this.defaultChain = undefined;
      throw new TokenBrokerError(
        {
          status: 0,
          code: 'no_credentials',
          title:
            'no AWS credentials found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), ' +
            'log in with `aws sso login`, or run where a role is attached',
        },
        { cause: err },
      );
    }
  }

  private async call(
    method: Method,
    path: string,
    payload?: unknown,
    opts: { retries?: number; onAttempt?: (at: number) => void; headers?: Record<string, string> } = {},
  ): Promise<unknown> {
    return (await this.answer(method, path, payload, opts.headers ?? {}, opts)).body;
  }

  /** One signed call, retried on 429 and 503 as Retry-After says (with jitter), within maxRetries and maxRetryWaitMs. */
  private async answer(
    method: Method,
    path: string,
    payload: unknown,
    extraHeaders: Record<string, string>,
    opts: { retries?: number; onAttempt?: (at: number) => void } = {},
  ): Promise<{ status: number; body: unknown }> {
    const retries = opts.retries ?? this.maxRetries;
    let waited = 0;
    for (let attempt = 0; ; attempt++) {
      opts.onAttempt?.(this.now());
      try {
        return await this.once(method, path, payload, extraHeaders);
      } catch (err) {
        if (!(err instanceof TokenBrokerError) || (err.status !== 429 && err.status !== 503) || attempt >= retries) throw err;
        const base = (err.retryAfter ?? 2 ** attempt) * 1000;
        // Jitter only lengthens the wait: Retry-After is a floor, and callers that were refused together spread out.
        const wait = base + this.random() * Math.min(1000, base / 4 + 250);
        if (waited + wait > this.maxRetryWaitMs) throw err;
        waited += wait;
        await this.sleep(wait);
      }
    }
  }

  /** API Gateway's refusal of a signature scoped to another region, said in the client's words. */
  private explained(err: TokenBrokerError): TokenBrokerError {
    if (!isWrongRegion(err.detail ?? err.title)) return err;
    return new TokenBrokerError({
      status: err.status,
      code: err.code,
      ...(err.title ? { title: err.title } : {}),
      detail:
        `the request was signed for region ${this.region}, which is not the broker's: pass region ` +
        '(--region), or use the execute-api host name, which names it',
      ...(err.requestId ? { requestId: err.requestId } : {}),
    });
  }

  private async once(method: Method, path: string, payload: unknown, extraHeaders: Record<string, string>): Promise<{ status: number; body: unknown }> {
    const url = new URL(this.baseUrl + path);
    const body = payload === undefined ? undefined : JSON.stringify(payload);
    const headers = await signRequest({
      url,
      method,
      headers: { ...extraHeaders, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body } : {}),
      credentials: await this.credentials(),
      region: this.region,
    });
    delete headers.host;
    let res: Response;
    let text: string;
    const signal = AbortSignal.timeout(this.timeoutMs);
    try {
      res = await this.fetchImpl(url, { method, headers, ...(body !== undefined ? { body } : {}), signal });
      text = await res.text();
    } catch (err) {
      const timedOut = signal.aborted;
      throw new TokenBrokerError(
        {
          status: 0,
          code: timedOut ? 'timeout' : 'unreachable',
          title: timedOut
            ? `no answer from ${url.origin} within ${this.timeoutMs} ms`
            : `cannot reach ${url.origin}: ${(err as Error)?.cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error)?.message}`,
        },
        { cause: err },
      );
    }
    if (!res.ok) throw this.explained(errorFromResponse(res.status, res.headers, text, this.now()));
    try {
      return { status: res.status, body: text ? (JSON.parse(text) as unknown) : {} };
    } catch (err) {
      throw new TokenBrokerError({ status: res.status, code: 'internal_error', title: 'the broker answered something that is not JSON' }, { cause: err });
    }
  }
}

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** If-Match as the broker reads it: one etag, quoted (or `*`). */
function ifMatchHeader(opts: ChangeOptions): Record<string, string> {
  if (opts.ifMatch === undefined) return {};
  const etag = opts.ifMatch.trim();
  return { 'if-match': etag === '*' || etag.startsWith('"') ? etag : `"${etag}"` };
}

function connectionPath(connection: string): string {
  return `/v1/connections/${encodeURIComponent(connection)}`;
}
