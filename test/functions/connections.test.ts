import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileSecretSource } from '../../lib/adapters/file-secrets';
import { DynamoConnectionRegistry } from '../../lib/adapters/connections-table';
import { createDynamoClient } from '../../lib/adapters/dynamodb';
import { ManualClock } from '../../lib/clock';
import { StoreUnavailableError } from '../../lib/errors';
import type { ConnectionInput } from '../../lib/config';
import { CONNECTION_CHANGED } from '../../lib/connection-changes';
import { awsSecretRule, secretsFileRule } from '../../lib/secret-rules';
import { secretFor, vendorConnectionInput } from '../support/connections';
import { RecordingMetrics, startWorld, type World } from '../support/harness';
import { ADMIN_ARN, CALLER_ARN, brokerInstance, registryOn, type Answer } from '../support/registered';
import { capturedLogs } from '../support/setup';

// The admin routes of registered connections (PUT, GET, DELETE /v1/connections/{id}) and the paged list, through
// the Lambda handler over a dynalite table, with the AWS secret rule (prefix broker/, one granted KMS key).

const KEY = 'arn:aws:kms:eu-west-1:111111111111:key/11111111-2222-3333-4444-555555555555';
const OTHER_KEY = 'arn:aws:kms:eu-west-1:111111111111:key/99999999-2222-3333-4444-555555555555';
const rule = awsSecretRule({ prefix: 'broker/', kmsKeys: [KEY], region: 'eu-west-1' });

const clock = new ManualClock('2026-11-23T10:00:00.000Z', true);
let world: World;
let definition: (extra?: Partial<ConnectionInput>) => Record<string, unknown>;

beforeAll(async () => {
  world = await startWorld(
    clock,
    (v) => [
      vendorConnectionInput(v, 'digitaleo', { id: 'file-one', callers: [CALLER_ARN] }),
      vendorConnectionInput(v, 'digitaleo', { id: 'file-two', callers: [CALLER_ARN], secretId: 'broker/missing' }),
    ],
    { lifetime: 3600 },
    (v) => ({ 'broker/jwt-test': secretFor(v, 'jwt'), 'broker/digitaleo-test': secretFor(v, 'digitaleo') }),
  );
  definition = (extra = {}) => {
    const { id: _id, ...rest } = vendorConnectionInput(world.vendor, 'jwt', { callers: [CALLER_ARN], ...extra });
    return rest;
  };
});
afterAll(() => world.close());

const put = (i: ReturnType<typeof brokerInstance>, id: string, body: unknown, ifMatch?: string) =>
  i.call({ method: 'PUT', path: `/v1/connections/${id}`, userArn: ADMIN_ARN, body: JSON.stringify(body), ...(ifMatch ? { headers: { 'If-Match': ifMatch } } : {}) });
const del = (i: ReturnType<typeof brokerInstance>, id: string, ifMatch?: string) =>
  i.call({ method: 'DELETE', path: `/v1/connections/${id}`, userArn: ADMIN_ARN, ...(ifMatch ? { headers: { 'if-match': ifMatch } } : {}) });
const get = (i: ReturnType<typeof brokerInstance>, id: string, userArn = ADMIN_ARN) => i.call({ method: 'GET', path: `/v1/connections/${id}`, userArn });
const token = (i: ReturnType<typeof brokerInstance>, id: string) => i.call({ method: 'GET', path: `/v1/connections/${id}/token`, userArn: CALLER_ARN });
const code = (a: Answer) => [a.statusCode, a.json.code];

describe('PUT /v1/connections/{id}', () => {
  it('registers a connection (201, etag in the body and the ETag header) that callers get tokens from at once', async () => {
    const a = brokerInstance(world, { clock, rule });
    const created = await put(a, 'reg-create', definition());
    expect(created.statusCode).toBe(201);
    expect(created.json.connection).toBe('reg-create');
    expect(created.json.etag).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(created.headers.etag).toBe(`"${String(created.json.etag)}"`);
    expect((await token(a, 'reg-create')).statusCode).toBe(200);
    const described = await get(a, 'reg-create');
    expect(described.json).toMatchObject({ connection: 'reg-create', source: 'api', etag: created.json.etag, definition: { id: 'reg-create', secretId: 'broker/jwt-test' } });
  });

  it('replaces it (200, a new etag); a stale If-Match is 412 precondition_failed and changes nothing', async () => {
    const a = brokerInstance(world, { clock, rule });
    const first = await put(a, 'reg-replace', definition());
    const second = await put(a, 'reg-replace', definition({ maxTtl: 300 }), first.headers.etag);
    expect(second.statusCode).toBe(200);
    expect(second.json.etag).not.toBe(first.json.etag);
    expect(code(await put(a, 'reg-replace', definition({ maxTtl: 600 }), first.headers.etag))).toEqual([412, 'precondition_failed']);
    expect((await get(a, 'reg-replace')).json.etag).toBe(second.json.etag);
    expect((await put(a, 'reg-replace', definition({ maxTtl: 600 }), '*')).statusCode).toBe(200);
    expect(code(await put(a, 'reg-never', definition(), '*'))).toEqual([412, 'precondition_failed']);
  });

  it('is 409 conflict for an id the file defines, and 403 for a caller that is not an admin', async () => {
    const a = brokerInstance(world, { clock, rule });
    expect(code(await put(a, 'file-one', definition()))).toEqual([409, 'conflict']);
    expect(code(await del(a, 'file-one'))).toEqual([409, 'conflict']);
    const notAdmin = await a.call({ method: 'PUT', path: '/v1/connections/reg-x', userArn: CALLER_ARN, body: JSON.stringify(definition()) });
    expect(code(notAdmin)).toEqual([403, 'forbidden']);
  });

  it.each([
    [{ tokenUrl: undefined }, /tokenUrl/],
    [{ maxTtl: 'long' }, /maxTtl/],
    [{ callers: ['arn:aws:iam::111111111111:role/path/name'] }, /callers\[0\]/],
    [{ dialect: 'usage-engine', audience: undefined }, /audience/],
    [{ id: 'another-id' }, /^id: /],
    [{ unknownField: 1 }, /unknownField/],
  ])('validates the body as the file is, naming the field (%j)', async (extra, field) => {
    const a = brokerInstance(world, { clock, rule });
    const res = await put(a, 'reg-invalid', { ...definition(), ...extra });
    expect(code(res)).toEqual([400, 'invalid_request']);
    expect(res.json.detail).toMatch(field);
    expect(code(await get(a, 'reg-invalid'))).toEqual([403, 'forbidden']);
  });

  it('refuses a body that is not one JSON object', async () => {
    const a = brokerInstance(world, { clock, rule });
    for (const body of ['[]', 'null', '{', '']) {
      const res = await a.call({ method: 'PUT', path: '/v1/connections/reg-body', userArn: ADMIN_ARN, body });
      expect(code(res)).toEqual([400, 'invalid_request']);
    }
    expect(code(await put(a, 'reg-body', definition(), 'W/"weak", "two"'))).toEqual([400, 'invalid_request']);
  });

  it('in AWS, refuses a secret outside the prefix naming the rule, and an ungranted KMS key naming it and secretKmsKeys', async () => {
    const a = brokerInstance(world, { clock, rule });
    const outside = await put(a, 'reg-outside', definition({ secretId: 'team-a/vendor' }));
    expect(code(outside)).toEqual([400, 'invalid_request']);
    expect(outside.json.detail).toMatch(/prefix broker\/ \(context option secretPrefix\)/);
    const elsewhere = await put(a, 'reg-elsewhere', definition({ secretId: 'arn:aws:secretsmanager:us-west-2:111111111111:secret:broker/x-AbCdEf' }));
    expect(code(elsewhere)).toEqual([400, 'invalid_request']);
    const key = await put(a, 'reg-key', definition({ secretKmsKeyArn: OTHER_KEY }));
    expect(code(key)).toEqual([400, 'invalid_request']);
    expect(key.json.detail).toContain(OTHER_KEY);
    expect(key.json.detail).toContain('secretKmsKeys');
    expect((await put(a, 'reg-key', definition({ secretKmsKeyArn: KEY }))).statusCode).toBe(201);
  });

  it('locally, refuses a secret that is not in the secrets file, naming it', async () => {
    const local = brokerInstance(world, { clock, rule: secretsFileRule(new FileSecretSource(world.secretsPath), world.secretsPath) });
    const res = await put(local, 'reg-local', definition({ secretId: 'broker/not-there' }));
    expect(code(res)).toEqual([400, 'invalid_request']);
    expect(res.json.detail).toContain('broker/not-there');
    expect((await put(local, 'reg-local', definition())).statusCode).toBe(201);
  });
});

describe('DELETE /v1/connections/{id}', () => {
  it('deletes (204), evicts its tokens, and afterwards it answers exactly like an unknown connection', async () => {
    const a = brokerInstance(world, { clock, rule });
    const created = await put(a, 'reg-delete', definition());
    expect((await token(a, 'reg-delete')).statusCode).toBe(200);
    expect((await world.table.store.read('reg-delete')).token).toBeDefined();
    expect(code(await del(a, 'reg-delete', '"stale"'))).toEqual([412, 'precondition_failed']);
    const gone = await del(a, 'reg-delete', created.headers.etag);
    expect(gone.statusCode).toBe(204);
    expect((await world.table.store.read('reg-delete')).token).toBeUndefined();
    const deleted = await token(a, 'reg-delete');
    const unknown = await token(a, 'never-was');
    expect(code(deleted)).toEqual([403, 'forbidden']);
    expect(deleted.json.detail).toBe(unknown.json.detail);
    expect(code(await get(a, 'reg-delete'))).toEqual([403, 'forbidden']);
    expect(code(await del(a, 'reg-delete'))).toEqual([403, 'forbidden']);
  });
});

describe('a table that is down', () => {
  it('answers PUT and DELETE with 503 service_unavailable and writes nothing', async () => {
    const a = brokerInstance(world, { clock, rule });
    await put(a, 'reg-down', definition());
    const before = (await get(a, 'reg-down')).json.etag;
    const down = new DynamoConnectionRegistry(
      createDynamoClient({ endpoint: 'http://127.0.0.1:9', region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }),
      world.table.name,
    );
    const b = brokerInstance(world, { clock, rule, registry: down });
    const res = await put(b, 'reg-down', definition({ maxTtl: 60 }));
    expect(code(res)).toEqual([503, 'service_unavailable']);
    expect(res.headers['retry-after']).toBeDefined();
    expect(code(await del(b, 'reg-down'))).toEqual([503, 'service_unavailable']);
    expect(code(await put(b, 'reg-down-new', definition()))).toEqual([503, 'service_unavailable']);
    expect((await get(a, 'reg-down')).json.etag).toBe(before);
    expect(code(await get(a, 'reg-down-new'))).toEqual([403, 'forbidden']);
  });
});

describe('a table that goes down after a connection was read', () => {
  it('keeps serving the copy held, asking the table again at most every 5 s', async () => {
    const own = new ManualClock('2026-11-23T10:00:00.000Z', true);
    const real = registryOn(world);
    let down = false;
    let reads = 0;
    const flaky: typeof real = {
      ...real,
      get: (id, call) => {
        reads++;
        return down ? Promise.reject(new StoreUnavailableError('the token table failed to read a connection (TimeoutError)')) : real.get(id, call);
      },
      put: (e, m) => real.put(e, m),
      delete: (id, m) => real.delete(id, m),
      list: (p) => real.list(p),
    };
    const a = brokerInstance(world, { clock: own, rule });
    await put(a, 'reg-held', definition());
    const b = brokerInstance(world, { clock: own, rule, registry: flaky, catalog: { ttlMs: 20_000 } });
    expect((await token(b, 'reg-held')).statusCode).toBe(200);
    down = true;
    own.advance(20_000);
    const before = reads;
    for (let i = 0; i < 5; i++) expect((await token(b, 'reg-held')).statusCode).toBe(200);
    expect(reads - before).toBe(1);
    own.advance(5_000);
    await token(b, 'reg-held');
    expect(reads - before).toBe(2);
  });
});

describe('two instances', () => {
  it('racing PUTs with the same If-Match: one wins, the other is 412; both are audited', async () => {
    const a = brokerInstance(world, { clock, rule });
    const b = brokerInstance(world, { clock, rule });
    const first = await put(a, 'reg-race', definition());
    const [x, y] = await Promise.all([put(a, 'reg-race', definition({ maxTtl: 301 }), first.headers.etag), put(b, 'reg-race', definition({ maxTtl: 302 }), first.headers.etag)]);
    expect([x.statusCode, y.statusCode].sort()).toEqual([200, 412]);
    const audit = capturedLogs().filter((l) => l.includes('"connection": "reg-race"'));
    expect(audit.filter((l) => l.includes(CONNECTION_CHANGED))).toHaveLength(2);
    expect(audit.some((l) => l.includes('precondition_failed'))).toBe(true);
  });

  it('racing PUTs without If-Match: the later write wins, and each change is audited with its etags', async () => {
    const a = brokerInstance(world, { clock, rule });
    const b = brokerInstance(world, { clock, rule });
    const x = await put(a, 'reg-later', definition({ maxTtl: 301 }));
    const y = await put(b, 'reg-later', definition({ maxTtl: 302 }));
    expect([x.statusCode, y.statusCode]).toEqual([201, 200]);
    expect((await get(a, 'reg-later')).json.etag).toBe(y.json.etag);
    const line = capturedLogs().filter((l) => l.includes(CONNECTION_CHANGED) && l.includes('"connection": "reg-later"')).at(-1)!;
    expect(line).toContain(`"etagBefore": "${String(x.json.etag)}"`);
    expect(line).toContain(`"etagAfter": "${String(y.json.etag)}"`);
    expect(line).toContain(`"admin": "${ADMIN_ARN}"`);
  });

  it('the other instance serves a change and a deletion once its copy lapses (the TTL), the changing one at once', async () => {
    const own = new ManualClock('2026-11-23T10:00:00.000Z', true);
    const a = brokerInstance(world, { clock: own, rule });
    const b = brokerInstance(world, { clock: own, rule, catalog: { ttlMs: 20_000 } });
    await put(a, 'reg-seen', definition({ callers: ['arn:aws:iam::111111111111:role/someone-else'] }));
    expect((await token(b, 'reg-seen')).statusCode).toBe(403);
    await put(a, 'reg-seen', definition());
    expect((await token(a, 'reg-seen')).statusCode).toBe(200);
    expect((await token(b, 'reg-seen')).statusCode).toBe(403);
    own.advance(20_000);
    expect((await token(b, 'reg-seen')).statusCode).toBe(200);
    await del(a, 'reg-seen');
    expect((await token(a, 'reg-seen')).statusCode).toBe(403);
    own.advance(20_000);
    expect((await token(b, 'reg-seen')).statusCode).toBe(403);
  });
});

describe('GET /v1/connections', () => {
  it('pages the caller\'s connections, the file\'s first, then the registered ones', async () => {
    const a = brokerInstance(world, { clock, rule });
    for (const id of ['page-1', 'page-2', 'page-3']) await put(a, id, definition());
    await put(a, 'page-hidden', definition({ callers: ['arn:aws:iam::111111111111:role/someone-else'] }));
    const seen: string[] = [];
    let next: string | undefined;
    for (let pages = 0; pages < 50; pages++) {
      const res = await a.call({ method: 'GET', path: '/v1/connections', userArn: CALLER_ARN, query: { limit: '2', ...(next ? { next } : {}) } });
      expect(res.statusCode).toBe(200);
      const page = res.json.connections as { id: string }[];
      expect(page.length).toBeLessThanOrEqual(2);
      seen.push(...page.map((c) => c.id));
      next = res.json.next as string | undefined;
      if (!next) break;
    }
    expect(seen.slice(0, 2)).toEqual(['file-one', 'file-two']);
    expect(seen).toEqual(expect.arrayContaining(['page-1', 'page-2', 'page-3']));
    expect(seen).not.toContain('page-hidden');
    expect(new Set(seen).size).toBe(seen.length);
  });

  it.each([['0'], ['1001'], ['x'], ['1.5']])('refuses limit=%s', async (limit) => {
    const a = brokerInstance(world, { clock, rule });
    expect(code(await a.call({ method: 'GET', path: '/v1/connections', userArn: CALLER_ARN, query: { limit } }))).toEqual([400, 'invalid_request']);
  });

  it('refuses a next token it did not give', async () => {
    const a = brokerInstance(world, { clock, rule });
    const res = await a.call({ method: 'GET', path: '/v1/connections', userArn: CALLER_ARN, query: { next: 'not-a-token' } });
    expect(code(res)).toEqual([400, 'invalid_request']);
  });
});

describe('audit, metrics and secrets', () => {
  it('counts each change as ConnectionChanges by action', async () => {
    const metrics = new RecordingMetrics();
    const a = brokerInstance(world, { clock, rule, metrics });
    await put(a, 'reg-metric', definition());
    await put(a, 'reg-metric', definition({ maxTtl: 100 }));
    await del(a, 'reg-metric');
    expect([metrics.get('ConnectionChanges{action=created}'), metrics.get('ConnectionChanges{action=replaced}'), metrics.get('ConnectionChanges{action=deleted}')]).toEqual([1, 1, 1]);
  });

  it('a registered connection whose secret is deleted later answers as a file connection whose secret is deleted', async () => {
    const a = brokerInstance(world, { clock, rule });
    await put(a, 'reg-secretless', definition({ secretId: 'broker/missing' }));
    const registered = await token(a, 'reg-secretless');
    const file = await token(a, 'file-two');
    expect(code(registered)).toEqual(code(file));
    expect(registered.statusCode).toBe(500);
  });

  it('GET answers the file connection\'s definition with source file; a non-admin gets 403', async () => {
    const a = brokerInstance(world, { clock, rule });
    const res = await get(a, 'file-one');
    expect(res.json).toMatchObject({ connection: 'file-one', source: 'file', definition: { id: 'file-one', dialect: 'digitaleo' } });
    expect(res.headers.etag).toBe(`"${String(res.json.etag)}"`);
    expect(code(await get(a, 'file-one', CALLER_ARN))).toEqual([403, 'forbidden']);
    expect(registryOn(world)).toBeDefined();
  });
});
