import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TokenBrokerClient, TokenBrokerError } from '../../lib/client';
import { ManualClock } from '../../lib/clock';
import { startLocalBroker, type LocalBroker } from '../../functions/local';
import { CALLER, OTHER, localFiles, type LocalFiles } from '../support/local-broker';
import { registerSecret } from '../support/secrets-registry';
import { fp } from '../support/expect';

let files: LocalFiles;
let local: LocalBroker;
// The broker's own time: moved past its 10 s bound on forced mints where a test invalidates a fresh token.
const brokerClock = new ManualClock(Date.now(), true);

beforeAll(async () => {
  files = await localFiles();
  local = await startLocalBroker(files.env, { clock: brokerClock });
});

afterAll(async () => {
  await local?.close();
  await files?.close();
});

/** A fetch that counts the calls to the broker. */
function counting() {
  const calls: string[] = [];
  const f: typeof fetch = async (input, init) => {
    const res = await fetch(input, init);
    // Counted once answered, and only the broker's routes (the fetch wrapper sends the vendor's calls through it too).
    const path = new URL(input instanceof Request ? input.url : input).pathname;
    if (path.startsWith('/v1/')) calls.push(`${init?.method ?? 'GET'} ${path} ${res.status}`);
    return res;
  };
  return { calls, fetch: f };
}

/** A plain HTTP server on loopback answering from a script, one answer per request (the last one repeats). */
async function scripted(answers: { status: number; headers?: Record<string, string>; body?: unknown }[]) {
  const seen: IncomingMessage[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen.push(req);
    const a = answers[Math.min(seen.length - 1, answers.length - 1)]!;
    res.writeHead(a.status, { 'content-type': 'application/json', ...(a.headers ?? {}) });
    res.end(typeof a.body === 'string' ? a.body : JSON.stringify(a.body ?? {}));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const TOKEN = { connection: 'c', access_token: 'scripted-access-token-1', token_type: 'Bearer', expires_in: 600, expires_at: '', authorization: 'Bearer scripted-access-token-1' };
registerSecret(TOKEN.access_token);

/** A clock that only moves when told, and records what the client slept. */
function manualClock(start = Date.now()) {
  const slept: number[] = [];
  let now = start;
  return {
    slept,
    advance: (ms: number) => void (now += ms),
    clock: { now: () => now, sleep: (ms: number) => Promise.resolve(void slept.push(ms)) },
  };
}

describe('client: reuse, sharing, refresh ahead', () => {
  it('reuses a token in-process while it covers minTtl and shares one request between concurrent callers', async () => {
    const f = counting();
    const client = new TokenBrokerClient({ baseUrl: local.url, credentials: CALLER, fetch: f.fetch });
    const tokens = await Promise.all(Array.from({ length: 10 }, () => client.getToken('jwt', { minTtl: 60 })));
    expect(new Set(tokens.map((t) => fp(t.accessToken))).size).toBe(1);
    expect(f.calls).toHaveLength(1);
    await client.getToken('jwt', { minTtl: 600 });
    expect(f.calls).toHaveLength(1);
    expect(fp(tokens[0]?.authorization)).toBe(fp(`Bearer ${tokens[0]?.accessToken}`));
    expect(fp(await client.authorization('jwt'))).toBe(fp(tokens[0]?.authorization));
  });

  it('asks again once the cached token no longer covers minTtl', async () => {
    const f = counting();
    const t = manualClock();
    const client = new TokenBrokerClient({ baseUrl: local.url, credentials: CALLER, fetch: f.fetch, clock: t.clock, refreshAhead: 0 });
    const first = await client.getToken('jwt', { minTtl: 60 });
    t.advance((first.expiresIn - 59) * 1000);
    await client.getToken('jwt', { minTtl: 60 });
    expect(f.calls).toHaveLength(2);
  });

  it('inside the refresh-ahead window serves the cached token at once and refreshes it once behind the caller', async () => {
    const f = counting();
    const t = manualClock();
    const client = new TokenBrokerClient({ baseUrl: local.url, credentials: CALLER, fetch: f.fetch, clock: t.clock, refreshAhead: 30 });
    const first = await client.getToken('jwt', { minTtl: 60 });
    t.advance((first.expiresIn - 60 - 31) * 1000);
    await client.getToken('jwt', { minTtl: 60 });
    expect(f.calls).toHaveLength(1);

    t.advance(2_000);
    const served = await Promise.all([client.getToken('jwt', { minTtl: 60 }), client.getToken('jwt', { minTtl: 60 })]);
    expect(served.every((s) => s === first)).toBe(true);
    for (let i = 0; i < 200 && f.calls.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(f.calls).toHaveLength(2);
    const after = await client.getToken('jwt', { minTtl: 60 });
    expect(after.expiresAt).toBeGreaterThan(first.expiresAt);
    expect(f.calls).toHaveLength(2);
  });

  it('takes the endpoint from TOKEN_BROKER_URL, and says so when there is none', async () => {
    const saved = process.env.TOKEN_BROKER_URL;
    try {
      process.env.TOKEN_BROKER_URL = local.url;
      const client = new TokenBrokerClient({ credentials: CALLER });
      expect(client.baseUrl).toBe(local.url);
      expect((await client.listConnections()).map((c) => c.id)).toEqual(['digitaleo', 'jwt']);
      delete process.env.TOKEN_BROKER_URL;
      expect(() => new TokenBrokerClient({ credentials: CALLER })).toThrow(/TOKEN_BROKER_URL/);
    } finally {
      if (saved === undefined) delete process.env.TOKEN_BROKER_URL;
      else process.env.TOKEN_BROKER_URL = saved;
    }
  });
});

describe("client: the vendor's 401", () => {
  async function vendorApi() {
    const seen: string[] = [];
    const server = createServer((req, res) => {
      seen.push(String(req.headers.authorization));
      res.writeHead(seen.length === 1 ? 401 : 200, { 'content-type': 'text/plain' });
      res.end(seen.length === 1 ? 'Authorization has been denied for this request' : 'ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { seen, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/JobTypes`, close: () => server.close() };
  }

  it('fetch() reports the rejected token (POST …/token/invalidate) and retries once with a new one', async () => {
    const f = counting();
    const client = new TokenBrokerClient({ baseUrl: local.url, credentials: CALLER, fetch: f.fetch });
    const first = await client.getToken('jwt');
    brokerClock.advance(11_000);
    const api = await vendorApi();
    try {
      const res = await client.fetch('jwt', api.url);
      expect(res.status).toBe(200);
      expect(api.seen).toHaveLength(2);
      expect(api.seen[0]).toBe(first.authorization);
      expect(api.seen[1]).not.toBe(first.authorization);
      expect(f.calls).toEqual([
        'GET /v1/connections/jwt/token 200',
        'POST /v1/connections/jwt/token/invalidate 200',
        'GET /v1/connections/jwt/token 200',
      ]);
    } finally {
      api.close();
    }
  });

  it('withAuthorization() does the same for any HTTP client, and retries only once', async () => {
    const client = new TokenBrokerClient({ baseUrl: local.url, credentials: CALLER });
    await client.getToken('digitaleo');
    brokerClock.advance(11_000);
    const headers: string[] = [];
    const answer = await client.withAuthorization('digitaleo', (authorization) => {
      headers.push(authorization);
      return Promise.resolve({ status: 401 });
    });
    expect(answer.status).toBe(401);
    expect(headers).toHaveLength(2);
    expect(headers[0]).not.toBe(headers[1]);
  });
});

describe('client: Retry-After on 429 and 503', () => {
  let server: Awaited<ReturnType<typeof scripted>> | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('waits at least what Retry-After says, plus jitter, then succeeds', async () => {
    server = await scripted([
      { status: 503, headers: { 'retry-after': '2', 'content-type': 'application/problem+json' }, body: { status: 503, code: 'vendor_unavailable', title: 'The vendor is unavailable' } },
      { status: 200, body: TOKEN },
    ]);
    const t = manualClock();
    const client = new TokenBrokerClient({ baseUrl: server.url, credentials: CALLER, clock: t.clock, random: () => 0.5 });
    const token = await client.getToken('c');
    expect(fp(token.accessToken)).toBe(fp(TOKEN.access_token));
    expect(server.seen).toHaveLength(2);
    expect(t.slept).toHaveLength(1);
    expect(t.slept[0]).toBeGreaterThan(2_000);
    expect(t.slept[0]).toBeLessThan(3_000);
  });

  it('spreads callers refused together: the jitter differs with the random draw, never below Retry-After', async () => {
    const waits: number[] = [];
    for (const r of [0, 0.99]) {
      server = await scripted([{ status: 429, headers: { 'retry-after': '1' }, body: { code: 'rate_limited' } }, { status: 200, body: TOKEN }]);
      const t = manualClock();
      await new TokenBrokerClient({ baseUrl: server.url, credentials: CALLER, clock: t.clock, random: () => r }).getToken('c');
      waits.push(t.slept[0]!);
      await server.close();
      server = undefined;
    }
    expect(waits[0]).toBe(1_000);
    expect(waits[1]).toBeGreaterThan(1_400);
  });

  it('gives up after maxRetries with the typed error and its Retry-After', async () => {
    server = await scripted([{ status: 429, headers: { 'retry-after': '1', 'content-type': 'application/problem+json' }, body: { status: 429, code: 'rate_limited', detail: 'minted moments ago' } }]);
    const t = manualClock();
    const client = new TokenBrokerClient({ baseUrl: server.url, credentials: CALLER, clock: t.clock, maxRetries: 2 });
    const err = await client.getToken('c').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TokenBrokerError);
    expect(err).toMatchObject({ status: 429, code: 'rate_limited', retryAfter: 1, detail: 'minted moments ago', retryable: true });
    expect(server.seen).toHaveLength(3);
    expect(t.slept).toHaveLength(2);
  });

  it('throws at once when Retry-After is longer than maxRetryWaitMs, and never retries a refusal', async () => {
    server = await scripted([{ status: 503, headers: { 'retry-after': '120' }, body: { code: 'vendor_unavailable' } }]);
    const t = manualClock();
    const err = await new TokenBrokerClient({ baseUrl: server.url, credentials: CALLER, clock: t.clock }).getToken('c').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'vendor_unavailable', retryAfter: 120 });
    expect(server.seen).toHaveLength(1);
    expect(t.slept).toHaveLength(0);
    await server.close();

    server = await scripted([{ status: 502, body: { code: 'vendor_rejected_credentials', detail: 'digitaleo: the vendor answered 400 invalid_client' } }]);
    const refused = await new TokenBrokerClient({ baseUrl: server.url, credentials: CALLER, clock: t.clock }).getToken('c').catch((e: unknown) => e);
    expect(refused).toMatchObject({ status: 502, code: 'vendor_rejected_credentials', retryable: false });
    expect(server.seen).toHaveLength(1);
  });
});

describe('client: typed errors', () => {
  it("carries the broker's problem code, status and request id", async () => {
    const client = new TokenBrokerClient({ baseUrl: local.url, credentials: OTHER });
    const err = await client.getToken('digitaleo').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TokenBrokerError);
    expect(err).toMatchObject({ name: 'TokenBrokerError', status: 403, code: 'forbidden' });
    expect((err as TokenBrokerError).requestId).toBeTruthy();
    const bad = await new TokenBrokerClient({ baseUrl: local.url, credentials: { ...CALLER, secretAccessKey: 'wrong-wrong' } })
      .listConnections()
      .catch((e: unknown) => e);
    expect(bad).toMatchObject({ status: 401, code: 'unauthenticated' });
  });

  it("a min_ttl above the connection's maxTtl is the broker's 400, naming the cap, and is not retried", async () => {
    const { calls, fetch: f } = counting();
    // jwt is handed out for at most 900 s (the default maxTtl); 1000 is within what the client itself accepts.
    const err = await new TokenBrokerClient({ baseUrl: local.url, credentials: CALLER, fetch: f }).getToken('jwt', { minTtl: 1000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TokenBrokerError);
    expect(err).toMatchObject({ status: 400, code: 'invalid_request', retryable: false });
    expect((err as TokenBrokerError).detail).toContain('at most 900 s (maxTtl)');
    expect((err as TokenBrokerError).message).toContain('min_ttl 1000 cannot be met');
    expect(calls).toEqual(['GET /v1/connections/jwt/token 400']);
  });

  it.each([
    [403, { message: 'Missing Authentication Token' }, 'forbidden'],
    [401, { message: 'Unauthorized' }, 'unauthenticated'],
    [413, { message: 'Request Too Long' }, 'invalid_request'],
    [429, { message: 'Too Many Requests' }, 'rate_limited'],
    [504, { message: 'Endpoint request timed out' }, 'vendor_timeout'],
    [502, '<html>Bad Gateway</html>', 'service_unavailable'],
  ])("maps API Gateway's own %i answer without a problem body to a code", async (status, body, code) => {
    const server = await scripted([{ status, body }]);
    try {
      const err = await new TokenBrokerClient({ baseUrl: server.url, credentials: CALLER, maxRetries: 0 }).listConnections().catch((e: unknown) => e);
      expect(err).toMatchObject({ status, code });
    } finally {
      await server.close();
    }
  });

  it('says unreachable when nothing listens, and timeout when the broker does not answer in time', async () => {
    const closed = await scripted([{ status: 200 }]);
    await closed.close();
    const unreachable = await new TokenBrokerClient({ baseUrl: closed.url, credentials: CALLER }).listConnections().catch((e: unknown) => e);
    expect(unreachable).toMatchObject({ status: 0, code: 'unreachable', retryable: true });

    const hanging = createServer(() => undefined);
    await new Promise<void>((r) => hanging.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}`;
      const timedOut = await new TokenBrokerClient({ baseUrl: url, credentials: CALLER, timeoutMs: 200 }).listConnections().catch((e: unknown) => e);
      expect(timedOut).toMatchObject({ status: 0, code: 'timeout' });
    } finally {
      hanging.closeAllConnections();
      hanging.close();
    }
  });
});
