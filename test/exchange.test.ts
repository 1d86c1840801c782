import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock, systemClock } from '../lib/clock';
import { parseConfig } from '../lib/config';
import { BrokerError } from '../lib/errors';
import { expectCode, fp } from './support/expect';
import {
  exchangeToken,
  jwtExpiry,
  mintToken,
  parseRetryAfter,
  processTokenResponse,
  readCredentials,
  type ExchangeOptions,
} from '../lib/exchange';
import { nodeHttpClient } from '../lib/http';
import { WITHHELD } from '../lib/vendor-text';
import { SandboxVendor } from '../lib/local/sandbox-vendor';
import { connectionFor, exchanging, secretFor } from './support/connections';
import { registerSecret } from './support/secrets-registry';

// Every secret literal below must stay out of logs and error messages (checked by support/setup.ts).
registerSecret(
  'wrong-secret-value',
  'not-the-password',
  'bad-digishare-secret',
  'nope-nope',
  'failure-test-secret',
  'hunter2-secret',
  's3cr3t-value',
  'p@ss:w+rd/é',
);

let vendor: SandboxVendor;
const clock = new ManualClock('2026-11-23T10:00:00.000Z', true);
const opts = (extra: Partial<ExchangeOptions> = {}): ExchangeOptions => ({
  http: nodeHttpClient,
  clock,
  backoffBaseMs: 5,
  backoffCapMs: 20,
  ...extra,
});

beforeAll(async () => {
  vendor = await SandboxVendor.start({ clock, digitaleoTokenLength: 50_000 });
});
afterAll(() => vendor.close());
beforeEach(() => {
  vendor.requests.length = 0;
});

function lastRequest() {
  const r = vendor.requests.at(-1);
  if (!r) throw new Error('the vendor received nothing');
  return r;
}

function b64(s: string) {
  return Buffer.from(s).toString('base64');
}


describe('digitaleo dialect', () => {
  it('sends client_id and client_secret in the form body and no Authorization header', async () => {
    const conn = connectionFor(vendor, 'digitaleo');
    const secret = secretFor(vendor, 'digitaleo');
    await exchangeToken(conn, readCredentials(conn, secret), opts());
    const req = lastRequest();
    expect(req.method).toBe('POST');
    expect(req.path).toBe('/digitaleo/token');
    expect(req.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(req.headers.authorization).toBeUndefined();
    expect(Object.fromEntries(new URLSearchParams(req.body))).toEqual({
      grant_type: 'client_credentials',
      client_id: secret.client_id,
      client_secret: secret.client_secret,
    });
  });

  it('capitalises token_type "bearer" and keeps a 50,000-character token intact', async () => {
    const conn = connectionFor(vendor, 'digitaleo');
    let raw = '';
    vendor.override((_req, res) => {
      raw = `dgl-${'x'.repeat(49_996)}`;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: raw, expires_in: 3600, token_type: 'bearer', scope: null }));
    });
    const token = await exchangeToken(conn, readCredentials(conn, secretFor(vendor, 'digitaleo')), opts());
    expect(token.tokenType).toBe('Bearer');
    expect(fp(token.accessToken)).toBe(fp(raw));
    expect(token.accessToken).toHaveLength(50_000);
    expect(token.lifetime).toBe(3600);
    expect(token.expiresAt).toBe(clock.now() + 3_600_000);
  });

  it('keeps a 64 KB token intact', async () => {
    const conn = connectionFor(vendor, 'digitaleo');
    const raw = 'a'.repeat(64 * 1024);
    vendor.override((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: raw, expires_in: 60, token_type: 'bearer' }));
    });
    const token = await exchangeToken(conn, readCredentials(conn, secretFor(vendor, 'digitaleo')), opts());
    expect(fp(token.accessToken)).toBe(fp(raw));
  });

  it("maps Digitaleo's 400 with error_description to vendor_rejected_credentials, once, without the secret", async () => {
    const conn = connectionFor(vendor, 'digitaleo');
    const creds = readCredentials(conn, { client_id: 'someone', client_secret: 'wrong-secret-value' });
    const err = await expectCode(exchangeToken(conn, creds, opts()), 'vendor_rejected_credentials');
    // The vendor's words go to the log only (context.vendorDescription), never to the caller's detail.
    expect(err.message).not.toContain('The client credentials are invalid');
    expect(err.context.vendorDescription).toContain('The client credentials are invalid');
    expect(err.message).toContain('HTTP 400');
    expect(err.message).not.toContain('wrong-secret-value');
    expect(vendor.received('digitaleo')).toBe(1);
  });
});

describe('docoon dialect', () => {
  it('sends the password grant with scope OMS, username msg\\{login} and the client in HTTP Basic', async () => {
    const conn = connectionFor(vendor, 'docoon');
    const s = secretFor(vendor, 'docoon');
    const token = await exchangeToken(conn, readCredentials(conn, s), opts());
    const req = lastRequest();
    expect(req.path).toBe('/docoon/connect/token');
    expect(req.headers.authorization).toBe(`Basic ${b64(`${s.client_id}:${s.client_secret}`)}`);
    expect(Object.fromEntries(new URLSearchParams(req.body))).toEqual({
      grant_type: 'password',
      scope: 'OMS',
      username: `msg\\${s.login}`,
      password: s.password,
    });
    expect(token.tokenType).toBe('Bearer');
  });

  it('encodes the raw id:secret in Basic, as the vendor documents (no form-encoding first)', async () => {
    const conn = connectionFor(vendor, 'docoon');
    const original = vendor.account('docoon');
    const account = { client_id: 'client with spaces', client_secret: 'p@ss:w+rd/é', login: 'u', password: 'p' };
    vendor.setAccount('docoon', account);
    try {
      await exchangeToken(conn, readCredentials(conn, account), opts());
      expect(lastRequest().headers.authorization).toBe(`Basic ${b64('client with spaces:p@ss:w+rd/é')}`);
    } finally {
      vendor.setAccount('docoon', original);
    }
  });

  it('maps a wrong password (400 invalid_grant) to vendor_rejected_credentials', async () => {
    const conn = connectionFor(vendor, 'docoon');
    const creds = readCredentials(conn, { ...secretFor(vendor, 'docoon'), password: 'not-the-password' });
    const err = await expectCode(exchangeToken(conn, creds, opts()), 'vendor_rejected_credentials');
    expect(err.message).toContain('invalid_grant');
    expect(err.message).not.toContain('not-the-password');
  });
});

describe('digishare dialect', () => {
  it('sends a JSON body with grant_type, client_id and client_secret', async () => {
    const conn = connectionFor(vendor, 'digishare');
    const s = secretFor(vendor, 'digishare');
    const token = await exchangeToken(conn, readCredentials(conn, s), opts());
    const req = lastRequest();
    expect(req.headers['content-type']).toBe('application/json');
    expect(JSON.parse(req.body)).toEqual({
      grant_type: 'client_credentials',
      client_id: s.client_id,
      client_secret: s.client_secret,
    });
    expect(token.lifetime).toBe(31_536_000);
  });

  it('maps a 401 to vendor_rejected_credentials', async () => {
    const conn = connectionFor(vendor, 'digishare');
    const creds = readCredentials(conn, { client_id: 'x', client_secret: 'bad-digishare-secret' });
    await expectCode(exchangeToken(conn, creds, opts()), 'vendor_rejected_credentials');
  });
});

describe('usage-engine dialect', () => {
  it('sends the audience of the connection with the credentials in the form body', async () => {
    const conn = connectionFor(vendor, 'usage-engine');
    const s = secretFor(vendor, 'usage-engine');
    await exchangeToken(conn, readCredentials(conn, s), opts());
    expect(Object.fromEntries(new URLSearchParams(lastRequest().body))).toEqual({
      grant_type: 'client_credentials',
      client_id: s.client_id,
      client_secret: s.client_secret,
      audience: 'https://api.usage-engine.example',
    });
  });

  it('refuses a connection without an audience at configuration time', () => {
    expect(() =>
      parseConfig({ connections: [{ id: 'ue', dialect: 'usage-engine', tokenUrl: 'https://x.example/t', secretId: 's' }] }),
    ).toThrow(/audience.*requires it/);
  });

  it('maps a 403 for an audience the client may not use to vendor_rejected_credentials', async () => {
    const conn = connectionFor(vendor, 'usage-engine', { audience: 'https://other.example' });
    await expectCode(
      exchangeToken(conn, readCredentials(conn, secretFor(vendor, 'usage-engine')), opts()),
      'vendor_rejected_credentials',
    );
  });
});

describe('oauth2 dialect (seed 004: JWT access tokens)', () => {
  it('sends grant_type alone in the form with the client in HTTP Basic', async () => {
    const conn = connectionFor(vendor, 'jwt');
    const s = secretFor(vendor, 'jwt');
    const token = await exchangeToken(conn, readCredentials(conn, s), opts());
    const req = lastRequest();
    expect(req.headers.authorization).toBe(`Basic ${b64(`${s.client_id}:${s.client_secret}`)}`);
    expect(req.body).toBe('grant_type=client_credentials');
    expect(jwtExpiry(token.accessToken)).toBe(Math.floor(clock.now() / 1000) + 3600);
  });

  it("maps the vendor's bare 401 to vendor_rejected_credentials", async () => {
    const conn = connectionFor(vendor, 'jwt');
    const creds = readCredentials(conn, { client_id: 'demo-jwt-client', client_secret: 'nope-nope' });
    const err = await expectCode(exchangeToken(conn, creds, opts()), 'vendor_rejected_credentials');
    expect(err.message).toContain('HTTP 401');
  });

  it('sends scope, audience and extra params when the connection sets them', async () => {
    const conn = connectionFor(vendor, 'jwt', {
      clientAuth: 'body',
      scope: 'read write',
      audience: 'https://api.example',
      params: { resource: 'urn:r' },
    });
    vendor.override((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: 'tok', token_type: 'Bearer', expires_in: 60 }));
    });
    await exchangeToken(conn, readCredentials(conn, secretFor(vendor, 'jwt')), opts());
    expect(Object.fromEntries(new URLSearchParams(lastRequest().body))).toEqual({
      grant_type: 'client_credentials',
      client_id: 'demo-jwt-client',
      client_secret: 'demo-jwt-secret',
      scope: 'read write',
      audience: 'https://api.example',
      resource: 'urn:r',
    });
  });
});

describe('static dialects', () => {
  const config = parseConfig({
    connections: [
      { id: 'docoon-basic', dialect: 'docoon-basic', secretId: 's1' },
      { id: 'digishare-pat', dialect: 'digishare-pat', secretId: 's2' },
    ],
  });
  const [basic, pat] = config.connections;

  it('docoon-basic hands out Basic base64(login:password) without calling anyone', async () => {
    const before = vendor.requests.length;
    const token = await mintToken(basic!, readCredentials(basic!, { login: '55XXX.restAPITest', password: '1234567' }), opts());
    expect(token).toMatchObject({ tokenType: 'Basic', static: true });
    expect(fp(token.accessToken)).toBe(fp('NTVYWFgucmVzdEFQSVRlc3Q6MTIzNDU2Nw=='));
    expect(vendor.requests.length).toBe(before);
  });

  it('digishare-pat hands out Bearer <token>', async () => {
    const token = await mintToken(pat!, readCredentials(pat!, { token: 'pat-123' }), opts());
    expect(token).toMatchObject({ tokenType: 'Bearer', static: true });
    expect(fp(token.accessToken)).toBe(fp('pat-123'));
  });

  it('names the connection and the missing keys, never a value, when the secret lacks what the dialect needs', () => {
    expect(() => readCredentials(basic!, { login: 'someone', pass: 'hunter2-secret' })).toThrow(
      /docoon-basic: the secret s1 lacks password/,
    );
    try {
      readCredentials(basic!, { login: 'someone', pass: 'hunter2-secret' });
    } catch (e) {
      expect(String((e as Error).message)).not.toContain('hunter2-secret');
      expect((e as BrokerError).code).toBe('misconfigured');
    }
    expect(() => readCredentials(pat!, 'not-json-object')).toThrow(/is not a JSON object/);
  });
});

/** A vendor whose every answer the test writes: for faults the sandbox does not make. */
async function scriptedServer(handler: http.RequestListener) {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/token`,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('failures', () => {
  const secret = { client_id: 'id', client_secret: 'failure-test-secret' };

  type Case = {
    name: string;
    status?: number;
    headers?: Record<string, string>;
    body?: string;
    code: string;
    attempts: number;
    retryAfter?: number;
  };
  const cases: Case[] = [
    { name: '500', status: 500, code: 'vendor_unavailable', attempts: 3 },
    { name: '502', status: 502, body: '<html>Bad gateway</html>', code: 'vendor_unavailable', attempts: 3 },
    { name: '503', status: 503, code: 'vendor_unavailable', attempts: 3 },
    { name: '429', status: 429, code: 'vendor_unavailable', attempts: 3 },
    { name: '400 RFC 6749', status: 400, body: '{"error":"invalid_client"}', code: 'vendor_rejected_credentials', attempts: 1 },
    { name: '401 empty', status: 401, code: 'vendor_rejected_credentials', attempts: 1 },
    { name: '403', status: 403, code: 'vendor_rejected_credentials', attempts: 1 },
    { name: '404', status: 404, code: 'vendor_protocol_error', attempts: 1 },
    { name: 'a redirect', status: 302, headers: { location: 'http://127.0.0.1:1/elsewhere' }, code: 'vendor_protocol_error', attempts: 1 },
    { name: 'invalid JSON', status: 200, body: '{"access_token": ', code: 'vendor_protocol_error', attempts: 1 },
    { name: 'HTML', status: 200, body: '<html><body>Login</body></html>', code: 'vendor_protocol_error', attempts: 1 },
    { name: 'a JSON array', status: 200, body: '[1,2]', code: 'vendor_protocol_error', attempts: 1 },
    { name: 'no access_token', status: 200, body: '{"token_type":"Bearer","expires_in":60}', code: 'vendor_protocol_error', attempts: 1 },
    { name: 'an empty access_token', status: 200, body: '{"access_token":"","expires_in":60}', code: 'vendor_protocol_error', attempts: 1 },
    { name: 'a numeric access_token', status: 200, body: '{"access_token":12,"expires_in":60}', code: 'vendor_protocol_error', attempts: 1 },
    { name: 'a token with a newline', status: 200, body: '{"access_token":"a\\nb","expires_in":60}', code: 'vendor_protocol_error', attempts: 1 },
    { name: 'token_type mac', status: 200, body: '{"access_token":"t","token_type":"mac","expires_in":60}', code: 'vendor_protocol_error', attempts: 1 },
    { name: 'negative expires_in', status: 200, body: '{"access_token":"t","expires_in":-5}', code: 'vendor_protocol_error', attempts: 1 },
    { name: 'zero expires_in', status: 200, body: '{"access_token":"t","expires_in":0}', code: 'vendor_protocol_error', attempts: 1 },
    { name: 'a word for expires_in', status: 200, body: '{"access_token":"t","expires_in":"soon"}', code: 'vendor_protocol_error', attempts: 1 },
    { name: 'an absurd expires_in', status: 200, body: '{"access_token":"t","expires_in":1e12}', code: 'vendor_protocol_error', attempts: 1 },
    { name: 'no expires_in, no JWT, no default', status: 200, body: '{"access_token":"t"}', code: 'vendor_protocol_error', attempts: 1 },
  ];

  it.each(cases)('$name → $code after $attempts attempt(s)', async (c) => {
    let attempts = 0;
    const server = await scriptedServer((_req, res) => {
      attempts += 1;
      res.writeHead(c.status ?? 200, { 'content-type': 'application/json', ...(c.headers ?? {}) });
      res.end(c.body ?? '');
    });
    try {
      const conn = exchanging(
        parseConfig({ connections: [{ id: 'faulty', tokenUrl: server.url, secretId: 's' }] }, { allowLoopbackHttp: true })
          .connections[0],
      );
      const err = await expectCode(exchangeToken(conn, secret, opts()), c.code);
      expect(attempts).toBe(c.attempts);
      expect(err.message).toMatch(/^faulty: /);
      expect(err.message).not.toContain(secret.client_secret);
    } finally {
      await server.close();
    }
  });

  async function withServer(handler: http.RequestListener, run: (url: string) => Promise<void>) {
    const server = await scriptedServer(handler);
    try {
      await run(server.url);
    } finally {
      await server.close();
    }
  }
  const conn = (url: string, extra = {}) =>
    exchanging(
      parseConfig({ connections: [{ id: 'faulty', tokenUrl: url, secretId: 's', ...extra }] }, { allowLoopbackHttp: true })
        .connections[0],
    );

  it('keeps the vendor Retry-After on vendor_unavailable', async () => {
    await withServer(
      (_req, res) => {
        res.writeHead(503, { 'retry-after': '120' });
        res.end();
      },
      async (url) => {
        const err = await expectCode(exchangeToken(conn(url), secret, opts({ retries: 0 })), 'vendor_unavailable');
        expect(err.retryAfter).toBe(120);
      },
    );
  });

  it('does not retry when the vendor asks for more time than the deadline leaves', async () => {
    let attempts = 0;
    await withServer(
      (_req, res) => {
        attempts += 1;
        res.writeHead(429, { 'retry-after': '60' });
        res.end();
      },
      async (url) => {
        await expectCode(exchangeToken(conn(url), secret, opts()), 'vendor_unavailable');
        expect(attempts).toBe(1);
      },
    );
  });

  it('recovers when a retry succeeds', async () => {
    let attempts = 0;
    await withServer(
      (_req, res) => {
        attempts += 1;
        res.writeHead(attempts < 3 ? 503 : 200, { 'content-type': 'application/json' });
        res.end(attempts < 3 ? '' : '{"access_token":"third-time","token_type":"bearer","expires_in":"3600"}');
      },
      async (url) => {
        const token = await exchangeToken(conn(url), secret, opts());
        expect(token).toMatchObject({ tokenType: 'Bearer', lifetime: 3600 });
        expect(fp(token.accessToken)).toBe(fp('third-time'));
        expect(attempts).toBe(3);
      },
    );
  });

  it('maps a connection reset to vendor_unavailable', async () => {
    await withServer(
      (req) => req.socket.destroy(),
      async (url) => {
        await expectCode(exchangeToken(conn(url), secret, opts()), 'vendor_unavailable');
      },
    );
  });

  it('maps a refused connection to vendor_unavailable', async () => {
    const server = await scriptedServer(() => undefined);
    const url = server.url;
    await server.close();
    const err = await expectCode(exchangeToken(conn(url), secret, opts()), 'vendor_unavailable');
    expect(err.message).toContain('ECONNREFUSED');
  });

  it('maps a vendor that never answers to vendor_timeout at the deadline', async () => {
    let attempts = 0;
    await withServer(
      () => {
        attempts += 1; // never answers
      },
      async (url) => {
        const err = await expectCode(exchangeToken(conn(url), secret, opts({ deadlineMs: 300 })), 'vendor_timeout');
        expect(err.message).toContain('0.3 s');
        expect(attempts).toBe(1);
      },
    );
  });

  it('maps a slow drip past the deadline to vendor_timeout', async () => {
    await withServer(
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"access_token":"');
        const t = setInterval(() => res.write('a'), 50);
        res.on('close', () => clearInterval(t));
      },
      async (url) => {
        await expectCode(exchangeToken(conn(url), secret, opts({ deadlineMs: 400 })), 'vendor_timeout');
      },
    );
  });

  it('refuses an answer over 1 MiB as vendor_protocol_error', async () => {
    await withServer(
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ access_token: 'a'.repeat(5 * 1024 * 1024), expires_in: 60 }));
      },
      async (url) => {
        const err = await expectCode(exchangeToken(conn(url), secret, opts()), 'vendor_protocol_error');
        expect(err.message).toContain('larger than the limit');
      },
    );
  });

  it('refuses an over-sized answer sent without Content-Length', async () => {
    await withServer(
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
        for (let i = 0; i < 6; i++) res.write('x'.repeat(1024 * 1024));
        res.end();
      },
      async (url) => {
        await expectCode(exchangeToken(conn(url), secret, opts()), 'vendor_protocol_error');
      },
    );
  });

  it('takes the JWT exp claim when expires_in is missing, and defaultLifetime when there is no JWT', async () => {
    clock.set(Date.parse('2026-11-23T11:00:00.000Z'));
    const exp = Math.floor(clock.now() / 1000) + 900;
    const jwt = `e30.${Buffer.from(JSON.stringify({ exp })).toString('base64url')}.sig`;
    let body = JSON.stringify({ access_token: jwt, token_type: 'Bearer' });
    await withServer(
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(body);
      },
      async (url) => {
        expect((await exchangeToken(conn(url), secret, opts())).lifetime).toBe(900);
        body = JSON.stringify({ access_token: 'opaque' });
        expect((await exchangeToken(conn(url, { defaultLifetime: 1800 }), secret, opts())).lifetime).toBe(1800);
        // A JWT that dies sooner than expires_in says is believed.
        body = JSON.stringify({ access_token: jwt, expires_in: 3600 });
        expect((await exchangeToken(conn(url), secret, opts())).lifetime).toBe(900);
      },
    );
  });

  it('withholds an error_description that echoes the secret', async () => {
    await withServer(
      (_req, res) => {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'invalid_client', error_description: `bad secret ${secret.client_secret}` }));
      },
      async (url) => {
        const err = await expectCode(exchangeToken(conn(url), secret, opts()), 'vendor_rejected_credentials');
        expect(err.message).toContain('HTTP 400, invalid_client');
        expect(err.context.vendorDescription).toBe(WITHHELD);
        expect(err.message).not.toContain(secret.client_secret);
      },
    );
  });
});

describe('token URL policy', () => {
  const attempt = (tokenUrl: string, local: boolean) => () =>
    parseConfig({ connections: [{ id: 'c', tokenUrl, secretId: 's' }] }, { allowLoopbackHttp: local });

  it('accepts https', () => expect(attempt('https://vendor.example/token', false)).not.toThrow());
  it('refuses plain http to a remote host, even locally', () =>
    expect(attempt('http://vendor.example/token', true)).toThrow(/must be an https URL/));
  it('refuses plain http to loopback outside local mode', () =>
    expect(attempt('http://127.0.0.1:9000/token', false)).toThrow(/only for loopback addresses in local mode/));
  it('accepts plain http to loopback in local mode', () => {
    expect(attempt('http://127.0.0.1:9000/token', true)).not.toThrow();
    expect(attempt('http://localhost:9000/token', true)).not.toThrow();
    expect(attempt('http://[::1]:9000/token', true)).not.toThrow();
  });
  it('refuses other schemes and credentials in the URL', () => {
    expect(attempt('ftp://vendor.example/token', true)).toThrow(/https/);
    expect(attempt('https://user:pw@vendor.example/token', false)).toThrow(/credentials/);
  });
});

describe('configuration', () => {
  it('names the bad field', () => {
    expect(() => parseConfig({ connections: [{ id: 'bad id!', tokenUrl: 'https://x', secretId: 's' }] })).toThrow(
      /connections\[0\]\.id: must be 1-128 characters/,
    );
    expect(() =>
      parseConfig({ connections: [{ id: 'c', tokenUrl: 'https://x', secretId: 's', maxTtll: 5 }] }),
    ).toThrow(/maxTtll/);
    expect(() =>
      parseConfig({ connections: [{ id: 'c', tokenUrl: 'https://x', secretId: 's', callers: ['role/x'] }] }),
    ).toThrow(/connections\[0\]\.callers\[0\]: must be an IAM role or user ARN/);
  });
  it('applies the defaults of DESIGN.md', () => {
    const c = parseConfig({ connections: [{ id: 'c', tokenUrl: 'https://x.example', secretId: 's' }] }).connections[0];
    expect(c).toMatchObject({ dialectName: 'oauth2', maxTtl: 900, refreshBefore: 120, prewarm: false, callers: [] });
    expect(c?.dialect).toMatchObject({ grantType: 'client_credentials', clientAuth: 'basic', bodyFormat: 'form' });
  });
  it('lets a connection override a preset', () => {
    const c = parseConfig({
      connections: [{ id: 'c', dialect: 'docoon', tokenUrl: 'https://x.example', secretId: 's', scope: 'OTHER', usernameTemplate: '{login}@corp' }],
    }).connections[0];
    expect(c?.dialect).toMatchObject({ grantType: 'password', scope: 'OTHER', usernameTemplate: '{login}@corp' });
  });
  it('refuses duplicates, a missing tokenUrl and params the engine writes', () => {
    const base = { tokenUrl: 'https://x.example', secretId: 's' };
    expect(() => parseConfig({ connections: [{ id: 'c', ...base }, { id: 'c', ...base }] })).toThrow(/appears twice/);
    expect(() => parseConfig({ connections: [{ id: 'c', secretId: 's' }] })).toThrow(/tokenUrl.*required/);
    expect(() => parseConfig({ connections: [{ id: 'c', ...base, params: { client_secret: 'x' } }] })).toThrow(
      /cannot be overridden/,
    );
  });
});

describe('Retry-After', () => {
  const now = Date.parse('2026-11-23T10:00:00Z');
  it('reads seconds and HTTP dates, bounded', () => {
    expect(parseRetryAfter('30', now)).toBe(30);
    expect(parseRetryAfter('Mon, 23 Nov 2026 10:02:00 GMT', now)).toBe(120);
    expect(parseRetryAfter('999999', now)).toBe(3600);
    expect(parseRetryAfter('0', now)).toBe(1);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});

describe('response parser properties', () => {
  const conn = parseConfig({ connections: [{ id: 'prop', tokenUrl: 'https://x.example/t', secretId: 's' }] }).connections[0]!;
  const check = (status: number, body: Buffer, headers: Record<string, string> = {}) => {
    try {
      const token = processTokenResponse(conn, { status, headers, body }, systemClock.now(), ['s3cr3t-value']);
      expect(status).toBeGreaterThanOrEqual(200);
      expect(status).toBeLessThan(300);
      expect(token.accessToken.length).toBeGreaterThan(0);
      expect(token.lifetime).toBeGreaterThan(0);
      expect(['Bearer']).toContain(token.tokenType);
    } catch (e) {
      expect(e).toBeInstanceOf(BrokerError);
      expect((e as Error).message).not.toContain('s3cr3t-value');
    }
  };

  it("reads the vendor's error and error_description only when they are text", () => {
    const refusal = (body: unknown) => {
      try {
        processTokenResponse(conn, { status: 400, headers: {}, body: Buffer.from(JSON.stringify(body)) }, 0);
      } catch (e) {
        return { code: (e as BrokerError).code, message: (e as Error).message, context: (e as BrokerError).context };
      }
      throw new Error('a 400 was accepted');
    };
    const said = refusal({ error: 'invalid_client', error_description: 'client unknown' });
    expect(said.message).toBe('prop: the vendor refused the credentials (HTTP 400, invalid_client)');
    expect(said.context).toMatchObject({ vendorError: 'invalid_client', vendorDescription: 'client unknown' });
    for (const body of [{ error: 42, error_description: ['client unknown'] }, { error: null, error_description: { a: 1 } }, ['invalid_client'], 'invalid_client']) {
      const odd = refusal(body);
      expect(odd.code).toBe('vendor_rejected_credentials');
      expect(odd.message).toBe('prop: the vendor refused the credentials (HTTP 400)');
      expect(odd.context).not.toHaveProperty('vendorError');
      expect(odd.context).not.toHaveProperty('vendorDescription');
    }
  });

  it('turns any JSON into a token or a typed error', () => {
    fc.assert(
      fc.property(fc.constantFrom(200, 201, 400, 401, 403, 404, 429, 500, 503), fc.jsonValue(), (status, json) =>
        check(status, Buffer.from(JSON.stringify(json))),
      ),
      { numRuns: 2000 },
    );
  });

  it('turns any token-shaped object into a token or a typed error', () => {
    const field = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.constant(null), fc.boolean(), fc.constant('s3cr3t-value'));
    fc.assert(
      fc.property(
        fc.record(
          { access_token: field, token_type: fc.oneof(field, fc.constantFrom('bearer', 'Bearer', 'BEARER')), expires_in: field, error_description: field },
          { requiredKeys: [] },
        ),
        fc.constantFrom(200, 400),
        (obj, status) => check(status, Buffer.from(JSON.stringify(obj))),
      ),
      { numRuns: 2000 },
    );
  });

  it('turns any bytes into a token or a typed error', () => {
    fc.assert(
      fc.property(fc.integer({ min: 100, max: 599 }), fc.uint8Array({ maxLength: 512 }), fc.string(), (status, bytes, ra) =>
        check(status, Buffer.from(bytes), { 'retry-after': ra }),
      ),
      { numRuns: 2000 },
    );
  });
});
