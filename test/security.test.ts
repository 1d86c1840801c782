import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeHandler } from '../functions/http';
import { createLogger, createMetrics } from '../lib/adapters/powertools';
import { ManualClock, systemClock } from '../lib/clock';
import { startLocalServer, type RunningServer } from '../lib/local/server';
import { signRequest } from '../lib/sigv4';
import { secretFor, vendorConnectionInput } from './support/connections';
import { lambdaContext, restEvent } from './support/events';
import { startWorld, type World } from './support/harness';
import { registerSecret } from './support/secrets-registry';

// The HTTP surface under generated input: 10,000 requests through the very handler Lambda runs, with a healthy
// vendor, and never a 5xx; then raw HTTP against the SigV4-checking local server, never anything but 401 for a
// request that is not properly signed.

const ACCOUNT = '111111111111';
const CALLER = `arn:aws:iam::${ACCOUNT}:role/app`;
const ADMIN = `arn:aws:iam::${ACCOUNT}:role/admin`;
const KEY = { accessKeyId: 'AKIASECURITYTEST0001', secretAccessKey: 'security-test-secret-key-000001' };
registerSecret(KEY.secretAccessKey);

const clock = new ManualClock('2026-11-23T10:00:00.000Z', true);
let world: World;
let handle: ReturnType<typeof makeHandler>;
let server: RunningServer;

beforeAll(async () => {
  world = await startWorld(
    clock,
    (v) => [
      vendorConnectionInput(v, 'jwt', { id: 'jwt', callers: [CALLER] }),
      vendorConnectionInput(v, 'digitaleo', { id: 'digitaleo', callers: [`arn:aws:iam::${ACCOUNT}:role/a*`] }),
      { id: 'pat', dialect: 'digishare-pat', secretId: 'pat', callers: [CALLER] },
    ],
    { lifetime: 3600 },
    (v) => ({
      'broker/jwt-test': { stages: { AWSCURRENT: secretFor(v, 'jwt'), AWSPENDING: secretFor(v, 'jwt') } },
      'broker/digitaleo-test': { stages: { AWSCURRENT: secretFor(v, 'digitaleo'), AWSPENDING: secretFor(v, 'digitaleo') } },
      pat: { stages: { AWSCURRENT: { token: 'security-pat-token' }, AWSPENDING: { token: 'security-pat-token-2' } } },
    }),
  );
  const broker = world.broker({ config: { ...world.config, admins: [ADMIN] } });
  handle = makeHandler({ broker, logger: createLogger(), metrics: createMetrics() });
  server = await startLocalServer({
    handler: (e, c) => handle(e, c),
    callers: new Map([[KEY.accessKeyId, { secretAccessKey: KEY.secretAccessKey, arn: CALLER }]]),
    region: 'us-east-1',
    // SigV4's clock-skew check is against real time.
    clock: systemClock,
  });
}, 30_000);

afterAll(async () => {
  await server?.close();
  await world?.close();
});

const ids = fc.oneof(fc.constantFrom('jwt', 'digitaleo', 'pat', 'nope', '', 'a'.repeat(129), '..', '%00', '%ZZ'), fc.string({ maxLength: 12 }));
const arns = fc.oneof(
  fc.constantFrom(CALLER, ADMIN, `arn:aws:sts::${ACCOUNT}:assumed-role/app/s1`, `arn:aws:iam::222222222222:role/app`, 'arn:aws:iam::*:role/app', 'garbage', ''),
  fc.string({ maxLength: 40 }),
);
const bodies = fc.oneof(
  fc.constant(null),
  fc.string({ maxLength: 64 }),
  fc.json({ maxDepth: 3 }),
  fc.record({ access_token: fc.oneof(fc.string({ maxLength: 40 }), fc.integer(), fc.constant('')) }).map((o) => JSON.stringify(o)),
  fc.record({ versionStage: fc.oneof(fc.constantFrom('AWSCURRENT', 'AWSPENDING', 'AWSPREVIOUS', ''), fc.string({ maxLength: 20 })) }).map((o) => JSON.stringify(o)),
);
const request = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'post'),
  path: fc.oneof(
    ids.map((id) => `/v1/connections/${id}/token`),
    ids.map((id) => `/v1/connections/${id}/token/invalidate`),
    ids.map((id) => `/v1/connections/${id}/refresh`),
    ids.map((id) => `/v1/connections/${id}/verify`),
    fc.constantFrom('/v1/connections', '/v1/connections/', '/', '', '/v1', '/v1/connections/jwt'),
    fc.webPath(),
  ),
  query: fc.dictionary(fc.constantFrom('min_ttl', 'MIN_TTL', 'x', ''), fc.oneof(fc.nat({ max: 5000 }).map(String), fc.string({ maxLength: 8 }), fc.array(fc.nat({ max: 100 }).map(String), { maxLength: 3 }))),
  body: bodies,
  b64: fc.boolean(),
  arn: arns,
  headers: fc.dictionary(fc.constantFrom('content-type', 'x-forwarded-for', 'authorization', 'x-amz-date'), fc.string({ maxLength: 30 })),
});

describe('the HTTP surface under 10,000 generated requests', () => {
  it('never answers 5xx and always answers JSON (problem+json on errors)', async () => {
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const body = r.b64 && r.body !== null ? Buffer.from(r.body).toString('base64') : r.body;
        const res = await handle(
          restEvent({ method: r.method, path: r.path, query: r.query, body, isBase64Encoded: r.b64, userArn: r.arn || null, headers: r.headers }),
          lambdaContext(),
        );
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        expect(res.statusCode, res.body).toBeLessThan(500);
        const parsed = JSON.parse(res.body) as { code?: string };
        if (res.statusCode >= 400) expect(res.headers?.['content-type']).toBe('application/problem+json');
        if (res.statusCode >= 400) expect(parsed.code).toMatch(/^[a-z_]+$/);
      }),
      { numRuns: 10_000 },
    );
    // The generator reaches every kind of answer, successes included.
    for (const s of [200, 400, 401, 403]) expect(statuses.get(s) ?? 0).toBeGreaterThan(0);
  }, 120_000);
});

describe('SigV4 at the local server under generated requests', () => {
  it('answers 401 to anything not properly signed, whatever its headers and target', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET', 'POST'),
        fc.oneof(fc.constant('/v1/connections/jwt/token'), fc.webPath()),
        fc.oneof(
          fc.string({ maxLength: 200 }),
          fc.constant(`AWS4-HMAC-SHA256 Credential=${KEY.accessKeyId}/20261123/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=${'0'.repeat(64)}`),
          fc.constant(`AWS4-HMAC-SHA256 Credential=AKIAUNKNOWN/20261123/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=${'a'.repeat(64)}`),
        ),
        fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
        async (method, path, authorization, amzDate) => {
          const headers: Record<string, string> = {};
          // fetch refuses header values with control characters; those never reach a server anyway.
          if (/^[\x20-\x7E]*$/.test(authorization)) headers.authorization = authorization;
          if (amzDate !== undefined && /^[\x20-\x7E]*$/.test(amzDate)) headers['x-amz-date'] = amzDate;
          const res = await fetch(`${server.url}${path.startsWith('/') ? path : `/${path}`}`, { method, headers });
          expect(res.status).toBe(401);
          expect(((await res.json()) as { code: string }).code).toBe('unauthenticated');
        },
      ),
      { numRuns: 300 },
    );
  }, 60_000);

  it('serves the same request once it is properly signed', async () => {
    const url = new URL(`${server.url}/v1/connections/jwt/token`);
    const headers = await signRequest({ url, method: 'GET', credentials: KEY, region: 'us-east-1' });
    delete headers.host;
    const res = await fetch(url, { headers });
    expect(res.status).toBe(200);
  });
});
