import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, createMetrics } from '../../lib/adapters/powertools';
import { makeHandler } from '../../functions/http';
import { ManualClock } from '../../lib/clock';
import type { ConnectionInput } from '../../lib/config';
import { vendorConnectionInput, secretFor } from '../support/connections';
import { lambdaContext, restEvent } from '../support/events';
import { startWorld, type World } from '../support/harness';
import { capturedLogs } from '../support/setup';
import { fp } from '../support/expect';

const ACCOUNT = '111111111111';
const CAMPAIGNS = `arn:aws:sts::${ACCOUNT}:assumed-role/campaigns-api/i-0123456789abcdef0`;
const BILLING = `arn:aws:iam::${ACCOUNT}:role/billing`;
const ADMIN = `arn:aws:iam::${ACCOUNT}:role/secrets-rotation`;
const STRANGER = `arn:aws:iam::222222222222:role/campaigns-api`;

const clock = new ManualClock('2026-11-23T10:00:00.000Z', true);
let world: World;
let handle: ReturnType<typeof makeHandler>;

beforeAll(async () => {
  world = await startWorld(
    clock,
    (v) => {
      const c = (kind: Parameters<typeof vendorConnectionInput>[1], extra: Partial<ConnectionInput>) =>
        vendorConnectionInput(v, kind, extra);
      return [
        c('digitaleo', { id: 'digitaleo-prod', callers: [`arn:aws:iam::${ACCOUNT}:role/campaigns-*`] }),
        c('jwt', { id: 'billing-api', callers: [BILLING, ADMIN] }),
        c('docoon', { id: 'docoon-prod', callers: [`arn:aws:iam::${ACCOUNT}:role/campaigns-*`] }),
        { id: 'docoon-basic', dialect: 'docoon-basic', secretId: 'broker/docoon-basic', callers: [BILLING] },
        c('usage-engine', { id: 'usage', callers: [BILLING] }),
      ];
    },
    { lifetime: 3600 },
    (v) => ({
      'broker/digitaleo-test': secretFor(v, 'digitaleo'),
      'broker/jwt-test': { stages: { AWSCURRENT: secretFor(v, 'jwt'), AWSPENDING: { client_id: 'demo-jwt-client', client_secret: 'bad-pending-secret' } } },
      'broker/docoon-test': secretFor(v, 'docoon'),
      'broker/docoon-basic': { login: 'user', password: 'basic-password-1' },
      'broker/usage-engine-test': secretFor(v, 'usage-engine'),
    }),
  );
  const broker = world.broker({
    config: { ...world.config, admins: [ADMIN] },
    // One broker for every route test: the admin bound of one refresh a second is test/broker.test.ts's.
    options: { exchange: { retries: 0, deadlineMs: 300 }, invalidateMinAgeMs: 1_000, adminIntervalMs: 0 },
  });
  handle = makeHandler({ broker, logger: createLogger(), metrics: createMetrics() });
});
afterAll(() => world.close());
beforeEach(() => {
  world.vendor.heal('digitaleo');
  world.vendor.heal('jwt');
});

async function call(opts: Parameters<typeof restEvent>[0]) {
  const res = await handle(restEvent(opts), lambdaContext());
  return { ...res, json: JSON.parse(res.body) as Record<string, unknown> };
}

describe('GET /v1/connections', () => {
  it('lists only what the caller may use: ids and dialects', async () => {
    const res = await call({ method: 'GET', path: '/v1/connections', userArn: CAMPAIGNS });
    expect(res.statusCode).toBe(200);
    expect(res.json).toEqual({
      connections: [
        { id: 'digitaleo-prod', dialect: 'digitaleo' },
        { id: 'docoon-prod', dialect: 'docoon' },
      ],
    });
    expect((await call({ method: 'GET', path: '/v1/connections', userArn: STRANGER })).json).toEqual({ connections: [] });
  });
});

describe('GET /v1/connections/{id}/token', () => {
  it('answers a token with no-store, capped by maxTtl, with the authorization ready', async () => {
    const res = await call({ method: 'GET', path: '/v1/connections/digitaleo-prod/token', userArn: CAMPAIGNS, query: { min_ttl: '300' } });
    expect(res.statusCode).toBe(200);
    expect(res.headers).toMatchObject({ 'cache-control': 'no-store', pragma: 'no-cache', 'content-type': 'application/json' });
    const body = res.json as { access_token: string; token_type: string; expires_in: number; expires_at: string; authorization: string; connection: string };
    expect(body.connection).toBe('digitaleo-prod');
    expect(body.token_type).toBe('Bearer');
    expect(body.expires_in).toBe(900);
    expect(fp(body.authorization)).toBe(fp(`Bearer ${body.access_token}`));
    expect(Date.parse(body.expires_at) - clock.now()).toBe(900_000);
  });

  it('hands a static Basic credential as token_type Basic', async () => {
    const res = await call({ method: 'GET', path: '/v1/connections/docoon-basic/token', userArn: BILLING });
    expect(res.json).toMatchObject({ token_type: 'Basic', access_token: Buffer.from('user:basic-password-1').toString('base64') });
    expect(fp(res.json.authorization)).toBe(fp(`Basic ${String(res.json.access_token)}`));
  });

  it('writes an audit line with the caller, connection, fingerprint and source, never the token', async () => {
    const res = await call({ method: 'GET', path: '/v1/connections/usage/token', userArn: BILLING });
    const token = res.json.access_token as string;
    const audit = capturedLogs().filter((l) => l.includes('token handed out') && l.includes('"connection": "usage"'));
    expect(audit.length).toBeGreaterThan(0);
    expect(audit.at(-1)).toContain(BILLING);
    expect(audit.at(-1)).toMatch(/"fingerprint": "[0-9a-f]{12}"/);
    expect(audit.at(-1)).toMatch(/"source": "(vendor|table|memory)"/);
    expect(capturedLogs().some((l) => l.includes(token))).toBe(false);
  });

  it.each([
    ['abc'],
    ['-1'],
    ['3601'],
    ['1.5'],
    [''],
    ['60 '],
    ['99999999999999999999'],
  ])('refuses min_ttl=%j with invalid_request', async (minTtl) => {
    const res = await call({ method: 'GET', path: '/v1/connections/digitaleo-prod/token', userArn: CAMPAIGNS, query: { min_ttl: minTtl } });
    expect(res.statusCode).toBe(400);
    expect(res.headers?.['content-type']).toBe('application/problem+json');
    expect(res.json).toMatchObject({ status: 400, code: 'invalid_request' });
  });

  it('refuses min_ttl given twice', async () => {
    const res = await call({ method: 'GET', path: '/v1/connections/digitaleo-prod/token', userArn: CAMPAIGNS, query: { min_ttl: ['60', '120'] } });
    expect(res.json.code).toBe('invalid_request');
  });

  it.each([
    ['/v1/connections/bad%20id/token'],
    [`/v1/connections/${'a'.repeat(129)}/token`],
    ['/v1/connections/%E0%A4%A/token'],
    ['/v1/connections//token'],
  ])('refuses the malformed path %s with invalid_request', async (path) => {
    const res = await call({ method: 'GET', path, userArn: CAMPAIGNS });
    expect(res.statusCode).toBe(400);
    expect(res.json.code).toBe('invalid_request');
  });

  it('lists every connection to an admin that asks with role=admin, and refuses that to a caller', async () => {
    const own = await call({ method: 'GET', path: '/v1/connections', userArn: ADMIN });
    expect(own.json).toEqual({ connections: [{ id: 'billing-api', dialect: 'oauth2' }] });
    const all = await call({ method: 'GET', path: '/v1/connections', userArn: ADMIN, query: { role: 'admin' } });
    expect((all.json.connections as { id: string }[]).map((c) => c.id)).toEqual(['digitaleo-prod', 'billing-api', 'docoon-prod', 'docoon-basic', 'usage']);
    const caller = await call({ method: 'GET', path: '/v1/connections', userArn: BILLING, query: { role: 'admin' } });
    expect(caller.statusCode).toBe(403);
    const bad = await call({ method: 'GET', path: '/v1/connections', userArn: ADMIN, query: { role: 'root' } });
    expect(bad.json.code).toBe('invalid_request');
  });

  it.each([
    ['GET', '/v2/connections/digitaleo-prod/token'],
    ['GET', '/'],
    ['PATCH', '/v1/connections/digitaleo-prod'],
    ['GET', '/v1/connections/digitaleo-prod/token/extra'],
    ['DELETE', '/v1/connections/digitaleo-prod/token'],
    ['POST', '/v1/connections'],
    ['GET', '/v1/connections/digitaleo-prod/refresh'],
    ['PUT', '/v1/connections/digitaleo-prod/verify'],
  ])('answers %s %s, which is no route of the API, with 404 not_found', async (method, path) => {
    const res = await call({ method, path, userArn: CAMPAIGNS });
    expect(res.statusCode).toBe(404);
    expect(res.headers?.['content-type']).toBe('application/problem+json');
    expect(res.json).toMatchObject({ status: 404, code: 'not_found', title: 'Not found' });
  });
});

describe('authorization', () => {
  const matrix: [string, string, string, number][] = [
    ['campaigns (assumed role) on its connection', CAMPAIGNS, 'digitaleo-prod', 200],
    ['campaigns on billing', CAMPAIGNS, 'billing-api', 403],
    ['billing on its connection', BILLING, 'billing-api', 200],
    ['billing on campaigns', BILLING, 'digitaleo-prod', 403],
    ['an admin that is also a caller', ADMIN, 'billing-api', 200],
    ['an admin that is not a caller', ADMIN, 'digitaleo-prod', 403],
    ['another account with the same role name', STRANGER, 'digitaleo-prod', 403],
    ['anyone on an unknown connection', CAMPAIGNS, 'nope', 403],
  ];
  it.each(matrix)('%s → %i', async (_name, arn, id, status) => {
    const res = await call({ method: 'GET', path: `/v1/connections/${id}/token`, userArn: arn });
    expect(res.statusCode).toBe(status);
  });

  it('gives no existence oracle: unknown and forbidden answer the same body', async () => {
    const a = await call({ method: 'GET', path: '/v1/connections/nope/token', userArn: CAMPAIGNS });
    const b = await call({ method: 'GET', path: '/v1/connections/billing-api/token', userArn: CAMPAIGNS });
    const strip = (j: Record<string, unknown>) => ({ ...j, instance: undefined });
    expect(strip(a.json)).toEqual(strip(b.json));
    const c = await call({ method: 'POST', path: '/v1/connections/nope/refresh', userArn: CAMPAIGNS });
    const d = await call({ method: 'POST', path: '/v1/connections/billing-api/refresh', userArn: CAMPAIGNS });
    expect(strip(c.json)).toEqual(strip(d.json));
  });

  it('answers 401 when the request carries no IAM identity', async () => {
    const res = await call({ method: 'GET', path: '/v1/connections', userArn: null });
    expect(res.statusCode).toBe(401);
    expect(res.json.code).toBe('unauthenticated');
  });

  it.each([
    ['refresh', 'POST', '/v1/connections/digitaleo-prod/refresh', undefined],
    ['verify', 'POST', '/v1/connections/digitaleo-prod/verify', '{"versionStage":"AWSCURRENT"}'],
    ['status', 'GET', '/v1/connections/digitaleo-prod/status', undefined],
  ])('admin-only %s: a caller gets 403, an admin gets 200', async (_n, method, path, body) => {
    expect((await call({ method, path, userArn: CAMPAIGNS, body: body ?? null })).statusCode).toBe(403);
    const ok = await call({ method, path, userArn: ADMIN, body: body ?? null });
    expect(ok.statusCode, JSON.stringify(ok.json)).toBe(200);
  });
});

describe('POST refresh and verify', () => {
  it('refresh mints now and answers the new expiry', async () => {
    const before = world.vendor.exchanges('jwt');
    const res = await call({ method: 'POST', path: '/v1/connections/billing-api/refresh', userArn: ADMIN });
    expect(res.statusCode).toBe(200);
    expect(Object.keys(res.json).sort()).toEqual(['connection', 'expires_at', 'max_ttl']);
    expect(world.vendor.exchanges('jwt')).toBe(before + 1);
  });

  it('a failed refresh answers the vendor error and leaves the cached token in service', async () => {
    const served = await call({ method: 'GET', path: '/v1/connections/billing-api/token', userArn: BILLING });
    world.vendor.fail('jwt', (_q, r) => {
      r.writeHead(500);
      r.end();
    });
    const res = await call({ method: 'POST', path: '/v1/connections/billing-api/refresh', userArn: ADMIN });
    expect(res.statusCode).toBe(503);
    expect(res.json.code).toBe('vendor_unavailable');
    expect(Number(res.headers?.['retry-after'])).toBeGreaterThanOrEqual(1);
    const still = await call({ method: 'GET', path: '/v1/connections/billing-api/token', userArn: BILLING });
    expect(fp(still.json.access_token)).toBe(fp(served.json.access_token));
  });

  it('verify exchanges with the pending secret, caches nothing and returns no token', async () => {
    const res = await call({ method: 'POST', path: '/v1/connections/digitaleo-prod/verify', userArn: ADMIN, body: '{"versionStage":"AWSCURRENT"}' });
    expect(res.json).toEqual({ connection: 'digitaleo-prod', versionStage: 'AWSCURRENT', expires_in: 3600 });
    const bad = await call({ method: 'POST', path: '/v1/connections/billing-api/verify', userArn: ADMIN, body: '{"versionStage":"AWSPENDING"}' });
    expect(bad.statusCode).toBe(502);
    expect(bad.json.code).toBe('vendor_rejected_credentials');
    const missing = await call({ method: 'POST', path: '/v1/connections/digitaleo-prod/verify', userArn: ADMIN, body: '{"versionStage":"AWSPENDING"}' });
    expect(missing.statusCode).toBe(400);
    expect(String(missing.json.detail)).toContain('no version in stage AWSPENDING');
  });
});

describe('GET /v1/connections/{id}/status', () => {
  it("shows an admin the token's expiry and minting, the secret version's fingerprint, the cooldown and the last failure: nothing secret", async () => {
    world.vendor.heal('digitaleo');
    const served = await call({ method: 'GET', path: '/v1/connections/usage/token', userArn: BILLING });
    expect(served.statusCode).toBe(200);
    const healthy = await call({ method: 'GET', path: '/v1/connections/usage/status', userArn: ADMIN });
    expect(healthy.statusCode).toBe(200);
    expect(healthy.json).toMatchObject({
      connection: 'usage',
      dialect: 'usage-engine',
      static: false,
      token: {
        expires_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as unknown,
        minted_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as unknown,
        minted_by: expect.any(String) as unknown,
        fingerprint: expect.stringMatching(/^[0-9a-f]{12}$/) as unknown,
        secret_version: expect.stringMatching(/^[0-9a-f]{12}$/) as unknown,
      },
    });
    expect(healthy.json.cooldown).toBeUndefined();
    expect(healthy.headers?.['cache-control']).toBe('no-store');

    world.vendor.fail('usage-engine', (_q, r) => {
      r.writeHead(503, { 'retry-after': '40' });
      r.end();
    });
    const refresh = await call({ method: 'POST', path: '/v1/connections/usage/refresh', userArn: ADMIN });
    expect(refresh.json.code).toBe('vendor_unavailable');
    const failing = await call({ method: 'GET', path: '/v1/connections/usage/status', userArn: ADMIN });
    world.vendor.heal('usage-engine');
    expect(failing.json).toMatchObject({
      cooldown: { code: 'vendor_unavailable', until: expect.any(String) as unknown },
      last_failure: { code: 'vendor_unavailable', at: expect.any(String) as unknown, vendor_status: 503 },
    });
    const text = failing.body;
    expect(text.includes(String(served.json.access_token))).toBe(false);
    for (const value of Object.values(secretFor(world.vendor, 'usage-engine'))) expect(text).not.toContain(value);
  });

  it('answers a static connection without a stored token, and 403 to a caller, the same for unknown and forbidden', async () => {
    const basic = await call({ method: 'GET', path: '/v1/connections/docoon-basic/status', userArn: ADMIN });
    expect(basic.json).toEqual({ connection: 'docoon-basic', dialect: 'docoon-basic', static: true });
    const a = await call({ method: 'GET', path: '/v1/connections/usage/status', userArn: BILLING });
    const b = await call({ method: 'GET', path: '/v1/connections/nope/status', userArn: BILLING });
    expect(a.statusCode).toBe(403);
    expect({ ...a.json, instance: undefined }).toEqual({ ...b.json, instance: undefined });
  });
});

describe('POST /v1/connections/{id}/token/invalidate', () => {
  it('evicts the current token once; an old or repeated report evicts nothing', async () => {
    const first = await call({ method: 'GET', path: '/v1/connections/docoon-prod/token', userArn: CAMPAIGNS });
    clock.advance(2_000);
    const body = JSON.stringify({ access_token: first.json.access_token });
    const res = await call({ method: 'POST', path: '/v1/connections/docoon-prod/token/invalidate', userArn: CAMPAIGNS, body });
    expect(res.json).toEqual({ invalidated: true });
    const again = await call({ method: 'POST', path: '/v1/connections/docoon-prod/token/invalidate', userArn: CAMPAIGNS, body });
    expect(again.json).toEqual({ invalidated: false });
    const next = await call({ method: 'GET', path: '/v1/connections/docoon-prod/token', userArn: CAMPAIGNS });
    expect(fp(next.json.access_token)).not.toBe(fp(first.json.access_token));
  });

  it('answers rate_limited with Retry-After for a token minted moments ago', async () => {
    const t = await call({ method: 'POST', path: '/v1/connections/billing-api/refresh', userArn: ADMIN });
    expect(t.statusCode).toBe(200);
    const current = await call({ method: 'GET', path: '/v1/connections/billing-api/token', userArn: BILLING });
    const res = await call({
      method: 'POST',
      path: '/v1/connections/billing-api/token/invalidate',
      userArn: BILLING,
      body: JSON.stringify({ access_token: current.json.access_token }),
    });
    expect(res.statusCode).toBe(429);
    expect(res.json.code).toBe('rate_limited');
    expect(res.headers?.['retry-after']).toBe('1');
  });

  it.each([
    ['no body', null, false],
    ['not JSON', '{"access_token":', false],
    ['no access_token', '{}', false],
    ['an empty access_token', '{"access_token":""}', false],
    ['a number', '{"access_token":5}', false],
    ['over 64 KB', JSON.stringify({ access_token: 'a'.repeat(70_000) }), false],
    ['base64 JSON without access_token', Buffer.from('{"x":1}').toString('base64'), true],
  ])('refuses %s with invalid_request', async (_n, body, b64) => {
    const res = await call({ method: 'POST', path: '/v1/connections/docoon-prod/token/invalidate', userArn: CAMPAIGNS, body, isBase64Encoded: b64 });
    expect(res.statusCode).toBe(400);
    expect(res.json.code).toBe('invalid_request');
  });
});

describe('vendor failures as problem codes', () => {
  const fail = (status: number, body = '', headers: Record<string, string> = {}) =>
    world.vendor.fail('digitaleo', (_q, r) => {
      r.writeHead(status, { 'content-type': 'application/json', ...headers });
      r.end(body);
    });
  const ask = async (minTtl = '300') =>
    call({ method: 'GET', path: '/v1/connections/digitaleo-prod/token', userArn: CAMPAIGNS, query: { min_ttl: minTtl } });

  it.each([
    [400, '{"error":"invalid_client","error_description":"The client credentials are invalid"}', 502, 'vendor_rejected_credentials'],
    [200, '<html>oops</html>', 502, 'vendor_protocol_error'],
    [503, '', 503, 'vendor_unavailable'],
  ])('vendor %i → %i %s, with Retry-After while cooling down', async (status, body, expected, code) => {
    clock.advance(3_600_000); // past any earlier cooldown, and past the cached token
    fail(status, body);
    const res = await ask();
    expect(res.statusCode).toBe(expected);
    expect(res.json.code).toBe(code);
    expect(Number(res.headers?.['retry-after'])).toBeGreaterThan(0);
    expect(res.headers?.['content-type']).toBe('application/problem+json');
  });

  it('a vendor that hangs → 504 vendor_timeout', async () => {
    clock.advance(3_600_000);
    world.vendor.fail('digitaleo', () => undefined);
    const res = await ask();
    expect(res.statusCode).toBe(504);
    expect(res.json.code).toBe('vendor_timeout');
  });
});

describe('fuzzing the HTTP surface', () => {
  it('never answers 5xx of its own, never throws, whatever the path, query, headers and body', async () => {
    clock.advance(120_000); // past every cooldown the tests above caused
    const segment = fc.oneof(
      fc.constantFrom('v1', 'connections', 'token', 'invalidate', 'refresh', 'verify', 'digitaleo-prod', 'nope', '', '..', '%', '%2F'),
      fc.string({ maxLength: 20 }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'get'),
        fc.array(segment, { maxLength: 6 }),
        fc.dictionary(fc.constantFrom('min_ttl', 'x', ''), fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 3 }))),
        fc.option(fc.oneof(fc.string({ maxLength: 100 }), fc.json(), fc.constant('{"access_token":"x"}')), { nil: null }),
        fc.boolean(),
        fc.constantFrom(CAMPAIGNS, BILLING, ADMIN, STRANGER, 'not-an-arn', ''),
        async (method, segments, query, body, b64, arn) => {
          const res = await handle(
            restEvent({ method, path: `/${segments.join('/')}`, query, body, isBase64Encoded: b64, userArn: arn || null }),
            lambdaContext(),
          );
          const answer = JSON.parse(res.body) as { code?: string };
          // A 5xx is only ever the vendor's doing (the verify of a pending secret the vendor refuses), never ours.
          if (res.statusCode >= 500) expect(answer.code).toMatch(/^vendor_/);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('Retry-After', () => {
  it('is on every 503, even one no cooldown or vendor gave a duration to', async () => {
    const { problemResponse, VendorUnavailableError, DependencyUnavailableError } = await import('../../lib/errors');
    expect(problemResponse(new VendorUnavailableError('x: down')).headers['retry-after']).toBe('5');
    expect(problemResponse(new DependencyUnavailableError('Secrets Manager did not answer')).headers['retry-after']).toBe('5');
    expect(problemResponse(new VendorUnavailableError('x: down', { retryAfter: 42 })).headers['retry-after']).toBe('42');
    expect(problemResponse(new Error('boom')).headers['retry-after']).toBeUndefined();
    expect(JSON.parse(problemResponse(new Error('boom: secret-ish internals')).body)).toEqual({
      type: 'https://token-broker.internal/problems/internal-error',
      title: 'Internal error',
      status: 500,
      code: 'internal_error',
    });
  });
});
