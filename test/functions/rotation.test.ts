import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, createMetrics } from '../../lib/adapters/powertools';
import { makeRotationHandler } from '../../functions/rotation';
import { ManualClock } from '../../lib/clock';
import { sameSecret } from '../../lib/secrets';
import { secretFor, vendorConnectionInput } from '../support/connections';
import { cloudTrailApiCall, cloudTrailServiceEvent } from '../support/events';
import { startWorld, type World } from '../support/harness';
import { registerSecret } from '../support/secrets-registry';
import { FileSecretSource } from '../../lib/adapters/file-secrets';
import type { ConnectionRegistry } from '../../lib/ports';
import { secretsFileRule } from '../../lib/secret-rules';
import { ADMIN_ARN, CALLER_ARN as REGISTERED_CALLER, brokerInstance, registryOn } from '../support/registered';

registerSecret('rotated-jwt-secret-1', 'not-at-vendor-yet', 'bad-pending');

const CALLER = 'arn:aws:iam::111111111111:role/caller';
const ARN = 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:broker/jwt-test-Ab12Cd';
let world: World | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

const rotationSucceeded = cloudTrailServiceEvent('RotationSucceeded', ARN);

async function rotatingWorld() {
  const clock = new ManualClock('2026-11-23T10:00:00.000Z');
  world = await startWorld(
    clock,
    (v) => [
      vendorConnectionInput(v, 'jwt', { id: 'jwt', secretId: 'broker/jwt-test' }),
      vendorConnectionInput(v, 'digitaleo', { id: 'digitaleo' }),
    ],
    { lifetime: 3600 },
    (v) => ({ 'broker/jwt-test': secretFor(v, 'jwt'), 'broker/digitaleo-test': secretFor(v, 'digitaleo') }),
  );
  const w = world;
  const handler = makeRotationHandler({ broker: w.broker(), logger: createLogger(), metrics: createMetrics() });
  const rotate = (clientSecret: string) => {
    const account = { client_id: 'demo-jwt-client', client_secret: clientSecret };
    w.vendor.setAccount('jwt', account);
    w.writeSecrets({ 'broker/jwt-test': account, 'broker/digitaleo-test': secretFor(w.vendor, 'digitaleo') });
  };
  return { clock, w, handler, rotate };
}

describe('secret rotation events', () => {
  it.each([
    ['PutSecretValue', cloudTrailApiCall('PutSecretValue', { secretId: 'broker/jwt-test', clientRequestToken: 'tok' }, { arn: ARN, versionId: 'v2', versionStages: ['AWSCURRENT'] })],
    ['UpdateSecret', cloudTrailApiCall('UpdateSecret', { secretId: ARN }, { arn: ARN, name: 'broker/jwt-test', versionId: 'v2' })],
    ['RotateSecret', cloudTrailApiCall('RotateSecret', { secretId: 'broker/jwt-test' }, { arn: ARN, name: 'broker/jwt-test', versionId: 'v2' })],
    ['UpdateSecretVersionStage', cloudTrailApiCall('UpdateSecretVersionStage', { secretId: ARN, versionStage: 'AWSCURRENT', moveToVersionId: 'v2', removeFromVersionId: 'v1' }, { aRN: ARN, name: 'broker/jwt-test' })],
    ['RotationSucceeded', rotationSucceeded],
  ])('%s: evicts the token of the old secret version and mints one with the new; a replay does nothing', async (_name, event) => {
    const { w, handler, rotate } = await rotatingWorld();
    const caller = w.broker();
    const old = await caller.getToken(CALLER, 'jwt');
    const oldVersion = (await w.table.store.read('jwt')).token?.secretVersion;
    const digitaleo = await caller.getToken(CALLER, 'digitaleo');
    rotate('rotated-jwt-secret-1');

    const report = await handler(event);
    expect(report).toEqual({ secret: expect.any(String) as unknown, connections: { jwt: { evicted: true, minted: true } } });
    const stored = (await w.table.store.read('jwt')).token;
    expect(stored?.secretVersion).not.toBe(oldVersion);
    expect(stored?.fingerprint).not.toBe(old.fingerprint);
    expect(w.vendor.exchanges('jwt')).toBe(2);

    expect(await handler(event)).toEqual({ secret: expect.any(String) as unknown, connections: { jwt: { evicted: false, minted: false } } });
    expect(w.vendor.exchanges('jwt')).toBe(2);
    // Another connection's token is left alone.
    expect((await w.broker().getToken(CALLER, 'digitaleo')).fingerprint).toBe(digitaleo.fingerprint);
  });

  it('ignores a secret no connection uses, and events that are not secret changes', async () => {
    const { w, handler } = await rotatingWorld();
    expect(await handler(cloudTrailApiCall('PutSecretValue', { secretId: 'someone/else' }))).toEqual({
      ignored: true,
      reason: 'no connection uses this secret',
    });
    expect(await handler(cloudTrailApiCall('GetSecretValue', { secretId: 'broker/jwt-test' }))).toMatchObject({ ignored: true });
    expect(await handler({ hello: 'world' })).toMatchObject({ ignored: true });
    expect(w.vendor.received()).toBe(0);
  });

  it('leaves no stale token behind when the new secret is refused by the vendor', async () => {
    const { w, handler } = await rotatingWorld();
    await w.broker().getToken(CALLER, 'jwt');
    // The secret changed, but the vendor does not know the new one yet.
    w.writeSecrets({ 'broker/jwt-test': { client_id: 'demo-jwt-client', client_secret: 'not-at-vendor-yet' }, 'broker/digitaleo-test': secretFor(w.vendor, 'digitaleo') });
    const report = await handler(rotationSucceeded);
    expect(report).toMatchObject({ connections: { jwt: { error: 'vendor_rejected_credentials' } } });
    expect((await w.table.store.read('jwt')).token).toBeUndefined();
  });
});

/** The world's registry, counting the listings (the scans a secret change costs). */
function countingRegistry(inner: ConnectionRegistry) {
  const counted = { lists: 0 };
  const registry: ConnectionRegistry = {
    get: (id, call) => inner.get(id, call),
    put: (entry, ifMatch) => inner.put(entry, ifMatch),
    delete: (id, ifMatch) => inner.delete(id, ifMatch),
    list: (page) => {
      counted.lists++;
      return inner.list(page);
    },
  };
  return { registry, counted };
}

describe('registered connections (issue 19)', () => {
  async function registeredWorld() {
    const clock = new ManualClock('2026-11-23T10:00:00.000Z');
    // The file uses digitaleo's secret only: broker/jwt-test is used by the registered connection alone.
    world = await startWorld(
      clock,
      (v) => [vendorConnectionInput(v, 'digitaleo', { id: 'digitaleo' })],
      { lifetime: 3600 },
      (v) => ({ 'broker/jwt-test': secretFor(v, 'jwt'), 'broker/digitaleo-test': secretFor(v, 'digitaleo') }),
    );
    const w = world;
    const { registry, counted } = countingRegistry(registryOn(w));
    const admin = brokerInstance(w, { clock, registry, rule: secretsFileRule(new FileSecretSource(w.secretsPath), w.secretsPath) });
    const { id: _id, ...definition } = vendorConnectionInput(w.vendor, 'jwt', { secretId: 'broker/jwt-test', callers: [REGISTERED_CALLER] });
    const put = await admin.call({ method: 'PUT', path: '/v1/connections/reg-jwt', userArn: ADMIN_ARN, body: JSON.stringify(definition) });
    expect(put.statusCode).toBe(201);
    // The rotation function is another instance: it knows the registered connection only through the table.
    const other = brokerInstance(w, { clock, registry, rule: secretsFileRule(new FileSecretSource(w.secretsPath), w.secretsPath) });
    const handler = makeRotationHandler({ broker: other.broker, logger: createLogger(), metrics: createMetrics(), connections: { catalog: other.catalog }, clock });
    const rotate = (clientSecret: string) => {
      const account = { client_id: 'demo-jwt-client', client_secret: clientSecret };
      w.vendor.setAccount('jwt', account);
      w.writeSecrets({ 'broker/jwt-test': account, 'broker/digitaleo-test': secretFor(w.vendor, 'digitaleo') });
    };
    return { clock, w, admin, handler, rotate, counted };
  }

  it('a change of its secret (by name or ARN) evicts its old token and mints one with the new secret', async () => {
    const { w, admin, handler, rotate } = await registeredWorld();
    const old = await admin.broker.getToken(REGISTERED_CALLER, 'reg-jwt');
    const oldVersion = (await w.table.store.read('reg-jwt')).token?.secretVersion;
    rotate('rotated-jwt-secret-1');

    expect(await handler(rotationSucceeded)).toEqual({ secret: ARN, connections: { 'reg-jwt': { evicted: true, minted: true } } });
    const stored = (await w.table.store.read('reg-jwt')).token;
    expect(stored?.secretVersion).not.toBe(oldVersion);
    expect(stored?.fingerprint).not.toBe(old.fingerprint);
    const byName = cloudTrailApiCall('PutSecretValue', { secretId: 'broker/jwt-test' });
    expect(await handler(byName)).toEqual({ secret: 'broker/jwt-test', connections: { 'reg-jwt': { evicted: false, minted: false } } });
    expect(w.vendor.exchanges('jwt')).toBe(2);
  });

  it('lists the table once per window for a burst of events, and again after it; a deleted one is then not matched', async () => {
    const { clock, admin, handler, counted } = await registeredWorld();
    const before = counted.lists;
    const byName = cloudTrailApiCall('PutSecretValue', { secretId: 'broker/jwt-test' });
    await Promise.all([handler(byName), handler(byName), handler(rotationSucceeded)]);
    await handler(cloudTrailApiCall('PutSecretValue', { secretId: 'someone/else' }));
    expect(counted.lists - before).toBe(1);

    expect((await admin.call({ method: 'DELETE', path: '/v1/connections/reg-jwt', userArn: ADMIN_ARN })).statusCode).toBe(204);
    clock.advance(30_000);
    expect(await handler(byName)).toEqual({ ignored: true, reason: 'no connection uses this secret' });
    expect(counted.lists - before).toBe(2);
  });

  it('testSecret verifies it with the AWSPENDING version, reading the table afresh', async () => {
    const { w, handler, counted } = await registeredWorld();
    await handler(cloudTrailApiCall('PutSecretValue', { secretId: 'someone/else' }));
    const before = counted.lists;
    w.writeSecrets({
      'broker/jwt-test': { stages: { AWSCURRENT: secretFor(w.vendor, 'jwt'), AWSPENDING: { client_id: 'demo-jwt-client', client_secret: 'bad-pending' } } },
      'broker/digitaleo-test': secretFor(w.vendor, 'digitaleo'),
    });
    await expect(handler({ Step: 'testSecret', SecretId: ARN, ClientRequestToken: 'v2' })).rejects.toThrow(
      'testSecret failed for reg-jwt: vendor_rejected_credentials',
    );
    expect(counted.lists - before).toBe(1);
  });
});

describe('testSecret step (a Secrets Manager rotation function)', () => {
  it('passes when every connection using the secret can exchange its AWSPENDING version; caches nothing', async () => {
    const { w, handler } = await rotatingWorld();
    w.writeSecrets({
      'broker/jwt-test': { stages: { AWSCURRENT: secretFor(w.vendor, 'jwt'), AWSPENDING: secretFor(w.vendor, 'jwt') } },
      'broker/digitaleo-test': secretFor(w.vendor, 'digitaleo'),
    });
    expect(await handler({ Step: 'testSecret', SecretId: ARN, ClientRequestToken: 'v2' })).toEqual({
      step: 'testSecret',
      verified: ['jwt'],
    });
    expect((await w.table.store.read('jwt')).token).toBeUndefined();
  });

  it('fails the step with vendor_rejected_credentials for a bad pending secret', async () => {
    const { w, handler } = await rotatingWorld();
    w.writeSecrets({
      'broker/jwt-test': { stages: { AWSCURRENT: secretFor(w.vendor, 'jwt'), AWSPENDING: { client_id: 'demo-jwt-client', client_secret: 'bad-pending' } } },
      'broker/digitaleo-test': secretFor(w.vendor, 'digitaleo'),
    });
    await expect(handler({ Step: 'testSecret', SecretId: ARN, ClientRequestToken: 'v2' })).rejects.toThrow(
      'testSecret failed for jwt: vendor_rejected_credentials',
    );
    await expect(handler({ Step: 'createSecret', SecretId: ARN, ClientRequestToken: 'v2' })).rejects.toThrow(/only the testSecret/);
    expect((await w.table.store.read('jwt')).token).toBeUndefined();
  });
});

describe('secret references', () => {
  it('matches names and ARNs, with or without the random suffix', () => {
    expect(sameSecret('broker/jwt-test', ARN)).toBe(true);
    expect(sameSecret(ARN, 'broker/jwt-test')).toBe(true);
    expect(sameSecret('arn:aws:secretsmanager:eu-west-1:111111111111:secret:broker/jwt-test', ARN)).toBe(true);
    expect(sameSecret('broker/jwt', ARN)).toBe(false);
    expect(sameSecret('broker/jwt-test', 'broker/jwt-test-2')).toBe(false);
  });
});

describe('early invalidation', () => {
  it('100 concurrent reports of the same dead token from 10 instances cause one eviction and one new exchange', async () => {
    // Instances waiting for the one that mints sleep on this clock, so it moves by itself.
    const clock = new ManualClock('2026-11-23T10:00:00.000Z', true);
    world = await startWorld(
      clock,
      (v) => [vendorConnectionInput(v, 'docoon', { id: 'docoon' })],
      { lifetime: 3600 },
      (v) => ({ 'broker/docoon-test': secretFor(v, 'docoon') }),
    );
    const brokers = Array.from({ length: 10 }, () => world!.broker());
    const dead = await brokers[0]!.getToken(CALLER, 'docoon');
    clock.advance(60_000);
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) => brokers[i % 10]!.invalidate(CALLER, 'docoon', dead.accessToken)),
    );
    expect(answers.filter(Boolean)).toHaveLength(1);
    const fresh = await Promise.all(Array.from({ length: 100 }, (_, i) => brokers[i % 10]!.getToken(CALLER, 'docoon')));
    expect(new Set(fresh.map((t) => t.fingerprint)).size).toBe(1);
    expect(fresh[0]?.fingerprint).not.toBe(dead.fingerprint);
    expect(world.vendor.exchanges('docoon')).toBe(2);
  });

  it('a report of an old token evicts nothing and mints nothing', async () => {
    const clock = new ManualClock('2026-11-23T10:00:00.000Z');
    world = await startWorld(
      clock,
      (v) => [vendorConnectionInput(v, 'docoon', { id: 'docoon', refreshBefore: 0 })],
      { lifetime: 300 },
      (v) => ({ 'broker/docoon-test': secretFor(v, 'docoon') }),
    );
    const b = world.broker();
    const old = await b.getToken(CALLER, 'docoon', 0);
    clock.advance(301_000);
    const current = await b.getToken(CALLER, 'docoon', 0);
    expect(await b.invalidate(CALLER, 'docoon', old.accessToken)).toBe(false);
    expect((await world.broker().getToken(CALLER, 'docoon', 0)).fingerprint).toBe(current.fingerprint);
    expect(world.vendor.exchanges('docoon')).toBe(2);
    await expect(b.invalidate('arn:aws:iam::111111111111:role/other', 'docoon', current.accessToken)).rejects.toMatchObject({ code: 'forbidden' });
  });
});
