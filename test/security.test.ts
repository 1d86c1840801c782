import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeHandler } from '../functions/http';
import { createLogger, createMetrics } from '../lib/adapters/powertools';
import { ManualClock, systemClock } from '../lib/clock';
import { parseConfig } from '../lib/config';
import type { BrokerError } from '../lib/errors';
import { processTokenResponse } from '../lib/exchange';
import { WITHHELD } from '../lib/vendor-text';
import { startLocalServer, type RunningServer } from '../lib/local/server';
import { signRequest } from '../lib/sigv4';
import { secretFor, vendorConnectionInput } from './support/connections';
import { lambdaContext, restEvent } from './support/events';
import { startWorld, type World } from './support/harness';
import { registryOn } from './support/registered';
import { wireConnections } from '../lib/connection-changes';
import { secretsFileRule } from '../lib/secret-rules';
import { FileSecretSource } from '../lib/adapters/file-secrets';
import { leaks, registerSecret } from './support/secrets-registry';

// The HTTP surface under generated input: 10,000 requests through the very handler Lambda runs, with a healthy
// vendor, and never a 5xx; then raw HTTP against the SigV4-checking local server, never anything but 401 for a
// request that is not properly signed.

const ACCOUNT = '111111111111';
const CALLER = `arn:aws:iam::${ACCOUNT}:role/app`;
const ADMIN = `arn:aws:iam::${ACCOUNT}:role/admin`;
const KEY = { accessKeyId: 'AKIASECURITYTEST0001', secretAccessKey: 'security-test-secret-key-000001' };
const BROKEN_VALUE = 'security-misspelt-secret-value';
registerSecret(KEY.secretAccessKey, BROKEN_VALUE);

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
      { id: 'broken', dialect: 'digishare-pat', secretId: 'broken', callers: [CALLER] },
    ],
    { lifetime: 3600 },
    (v) => ({
      'broker/jwt-test': { stages: { AWSCURRENT: secretFor(v, 'jwt'), AWSPENDING: secretFor(v, 'jwt') } },
      'broker/digitaleo-test': { stages: { AWSCURRENT: secretFor(v, 'digitaleo'), AWSPENDING: secretFor(v, 'digitaleo') } },
      pat: { stages: { AWSCURRENT: { token: 'security-pat-token' }, AWSPENDING: { token: 'security-pat-token-2' } } },
      // The key is misspelt: the dialect needs `token`.
      broken: { stages: { AWSCURRENT: { tokn: BROKEN_VALUE } } },
    }),
  );
  // Wired as functions/runtime.ts wires it: both sources of connections, so the admin routes are reachable too.
  const file = { ...world.config, admins: [ADMIN] };
  const wired = wireConnections({
    file,
    registry: registryOn(world),
    clock,
    rule: secretsFileRule(new FileSecretSource(world.secretsPath), world.secretsPath),
    parse: { allowLoopbackHttp: true },
  });
  const broker = world.broker({ config: file, connections: wired.catalog });
  const connections = { catalog: wired.catalog, changes: wired.changes(broker) };
  handle = makeHandler({ broker, logger: createLogger(), metrics: createMetrics(), connections });
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

describe('a misconfigured connection', () => {
  const ask = async (method: string, path: string, userArn: string) =>
    handle(restEvent({ method, path, userArn, headers: {} }), lambdaContext()).then((r) => JSON.parse(r.body) as Record<string, unknown>);

  it('is named, with what it lacks, to an admin; a caller gets the code only', async () => {
    const toAdmin = await ask('POST', '/v1/connections/broken/refresh', ADMIN);
    expect(toAdmin).toMatchObject({ status: 500, code: 'misconfigured' });
    expect(toAdmin.detail).toMatch(/^broken: the secret broken lacks token \(a non-empty string each\)/);
    expect(JSON.stringify(toAdmin)).not.toContain(BROKEN_VALUE);

    const toCaller = await ask('GET', '/v1/connections/broken/token', CALLER);
    expect(toCaller).toMatchObject({ status: 500, code: 'misconfigured' });
    expect(toCaller).not.toHaveProperty('detail');
  });
});

describe("a vendor's error_description reaches the log only when it holds nothing of a secret", () => {
  const connection = parseConfig({ connections: [{ id: 'echo', tokenUrl: 'https://vendor.example/token', secretId: 's' }] }).connections[0]!;
  // Characters that every encoding below spells differently, and an é that NFD decomposes.
  const SECRET = 'Zq8/Xk+pé=Wm"r\\tY7&Lv3~hN';
  const CLIENT_ID = 'echo-client-0001';
  registerSecret(SECRET);
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: CLIENT_ID, client_secret: SECRET }).toString();
  const uri = encodeURIComponent(SECRET);
  const SPELLINGS: Record<string, string> = {
    'lower-case percent-encoding': uri.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase()),
    'double percent-encoding': encodeURIComponent(uri),
    'JSON with \\/': JSON.stringify(SECRET).slice(1, -1).replace(/\//g, '\\/'),
    hex: Buffer.from(SECRET, 'utf8').toString('hex'),
    'upper case': SECRET.toUpperCase(),
    'HTML entities': [...SECRET].map((c) => `&#${c.codePointAt(0)};`).join(''),
    'base64 of the form body': b64(form),
    'base64 at another offset': b64(`x${SECRET}`).slice(2),
    'a zero-width character inside': `${SECRET.slice(0, 6)}\u200b${SECRET.slice(6)}`,
    NFD: SECRET.normalize('NFD'),
    'a long prefix': SECRET.slice(0, 14),
  };
  const answer = (description: string) =>
    ({ status: 401, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ error: 'invalid_client', error_description: description })) });
  const logged = (description: string) => {
    try {
      processTokenResponse(connection, answer(description), 0, [CLIENT_ID, SECRET]);
    } catch (err) {
      return (err as BrokerError).context;
    }
    throw new Error('a 401 was taken for a token');
  };

  it.each(Object.entries(SPELLINGS))('withholds a description echoing the secret as %s', (_name, spelling) => {
    const context = logged(`Invalid client secret: ${spelling}`);
    expect(context).toMatchObject({ vendorStatus: 401, vendorError: 'invalid_client', vendorDescription: WITHHELD });
    // And the leak scan every test file ends with finds that spelling in a line.
    expect(leaks(`vendorDescription: Invalid client secret: ${spelling}`, [SECRET])).toEqual([SECRET]);
  });

  it('keeps a description that holds no run of 8 characters of a secret, printable and cut to 200', () => {
    expect(logged('The client credentials are invalid').vendorDescription).toBe('The client credentials are invalid');
    // Seven characters of the secret are not a run of eight.
    expect(logged(`close to ${SECRET.slice(0, 7)} but not it`).vendorDescription).toBe(`close to ${SECRET.slice(0, 7)} but not it`);
    expect(logged(`tab\there ${'x'.repeat(300)}`).vendorDescription).toBe(`tab here ${'x'.repeat(191)}...`);
  });

  it('logs no other vendor field, and withholds a description too long to check', () => {
    const res = { status: 400, headers: {}, body: Buffer.from(JSON.stringify({ error: 'made_up', message: 'free text', error_description: 'y'.repeat(5000) })) };
    let context: Record<string, unknown> = {};
    try {
      processTokenResponse(connection, res, 0, [SECRET]);
    } catch (err) {
      context = (err as BrokerError).context;
    }
    expect(context).toEqual({ connection: 'echo', vendorStatus: 400, vendorDescription: '(withheld: too long to check)' });
  });
});
