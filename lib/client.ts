import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@aws-sdk/types';
import { systemClock, type Clock } from './clock';
import { signRequest } from './sigv4';

// The client SDK for internal services: SigV4-signed calls to the broker with the default AWS credential chain,
// a token reused in-process while it still covers minTtl, one request in flight per connection however many
// callers wait, and a fetch wrapper that reports a token the vendor rejected and retries once.

export interface TokenBrokerClientOptions {
  /** The API's base URL, e.g. https://abc123.execute-api.eu-west-1.amazonaws.com/prod */
  baseUrl: string;
  region?: string;
  /** Defaults to the AWS SDK's default credential chain. */
  credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** Per call to the broker. */
  timeoutMs?: number;
  fetch?: typeof fetch;
  clock?: Clock;
}

export interface BrokerToken {
  connection: string;
  accessToken: string;
  tokenType: string;
  expiresIn: number;
  /** Epoch ms on this machine's clock. */
  expiresAt: number;
  /** `tokenType accessToken`, ready for an Authorization header. */
  authorization: string;
}

/** An answer of the broker that is not a success: its problem `code`, status and Retry-After. */
export class TokenBrokerError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'TokenBrokerError';
  }
}

export class TokenBrokerClient {
  private readonly baseUrl: string;
  private readonly region: string;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;
  private readonly clock: Clock;
  private readonly cache = new Map<string, BrokerToken>();
  private readonly inflight = new Map<string, Promise<BrokerToken>>();
  private credentials: AwsCredentialIdentityProvider | undefined;

  constructor(private readonly opts: TokenBrokerClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.region = opts.region ?? process.env.AWS_REGION ?? 'us-east-1';
    this.timeoutMs = opts.timeoutMs ?? 15_000;
    this.fetchImpl = opts.fetch ?? fetch;
    this.clock = opts.clock ?? systemClock;
  }

  /** A token valid for at least `minTtl` seconds (default 60), from this process's cache when it can. */
  async getToken(connection: string, opts: { minTtl?: number } = {}): Promise<BrokerToken> {
    const minTtl = opts.minTtl ?? 60;
    const cached = this.cache.get(connection);
    if (cached && cached.expiresAt - this.clock.now() >= minTtl * 1000) return cached;
    const shared = this.inflight.get(connection);
    if (shared) {
      const t = await shared;
      if (t.expiresAt - this.clock.now() >= minTtl * 1000) return t;
    }
    const own = this.fetchToken(connection, minTtl).finally(() => {
      if (this.inflight.get(connection) === own) this.inflight.delete(connection);
    });
    if (!this.inflight.has(connection)) this.inflight.set(connection, own);
    return own;
  }

  /** Reports a token the vendor rejected; true if the broker evicted it. */
  async invalidate(connection: string, accessToken: string): Promise<boolean> {
    if (this.cache.get(connection)?.accessToken === accessToken) this.cache.delete(connection);
    const body = await this.call('POST', `/v1/connections/${encodeURIComponent(connection)}/token/invalidate`, {
      access_token: accessToken,
    });
    return Boolean((body as { invalidated?: boolean }).invalidated);
  }

  async listConnections(): Promise<{ id: string; dialect: string }[]> {
    const body = await this.call('GET', '/v1/connections');
    return (body as { connections: { id: string; dialect: string }[] }).connections;
  }

  /**
   * fetch() with the connection's Authorization header. When the vendor answers 401, the token is reported to the
   * broker and the request is sent once more with a fresh token (bodies must be replayable: strings, buffers).
   */
  async fetch(connection: string, input: string | URL, init: RequestInit = {}, opts: { minTtl?: number } = {}) {
    const send = async (token: BrokerToken) => {
      const headers = new Headers(init.headers);
      headers.set('authorization', token.authorization);
      return this.fetchImpl(input, { ...init, headers });
    };
    const token = await this.getToken(connection, opts);
    const res = await send(token);
    if (res.status !== 401) return res;
    await res.body?.cancel().catch(() => undefined);
    await this.invalidate(connection, token.accessToken).catch(() => false);
    this.cache.delete(connection);
    return send(await this.getToken(connection, opts));
  }

  private async fetchToken(connection: string, minTtl: number): Promise<BrokerToken> {
    const started = this.clock.now();
    const body = (await this.call(
      'GET',
      `/v1/connections/${encodeURIComponent(connection)}/token?min_ttl=${minTtl}`,
    )) as { access_token: string; token_type: string; expires_in: number; authorization: string };
    const token: BrokerToken = {
      connection,
      accessToken: body.access_token,
      tokenType: body.token_type,
      expiresIn: body.expires_in,
      // Counted from when the request left, so network time is not added to the token's life.
      expiresAt: started + body.expires_in * 1000,
      authorization: body.authorization,
    };
    this.cache.set(connection, token);
    return token;
  }

  private async resolveCredentials(): Promise<AwsCredentialIdentity> {
    const c = this.opts.credentials;
    if (typeof c === 'function') return c();
    if (c) return c;
    if (!this.credentials) {
      // Loaded only when needed: callers that pass credentials never pay for the chain.
      const { defaultProvider } = await import('@aws-sdk/credential-provider-node');
      this.credentials = defaultProvider();
    }
    return this.credentials();
  }

  private async call(method: 'GET' | 'POST', path: string, payload?: unknown): Promise<unknown> {
    const url = new URL(this.baseUrl + path);
    const body = payload === undefined ? undefined : JSON.stringify(payload);
    const headers = await signRequest({
      url,
      method,
      ...(body !== undefined ? { body, headers: { 'content-type': 'application/json' } } : {}),
      credentials: await this.resolveCredentials(),
      region: this.region,
    });
    delete headers.host;
    const res = await this.fetchImpl(url, {
      method,
      headers,
      ...(body !== undefined ? { body } : {}),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      json = {};
    }
    if (!res.ok) {
      const p = json as { code?: string; detail?: string; title?: string };
      const retryAfter = Number(res.headers.get('retry-after'));
      throw new TokenBrokerError(
        res.status,
        p.code ?? 'unknown',
        `token broker: ${p.code ?? res.status}${p.detail ? `: ${p.detail}` : p.title ? `: ${p.title}` : ''}`,
        Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined,
      );
    }
    return json;
  }
}
