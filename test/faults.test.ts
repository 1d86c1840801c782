import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import type http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { afterEach, describe, expect, it } from 'vitest';
import { DynamoTokenStore, createDynamoClient } from '../lib/adapters/dynamodb';
import { ensureTable } from '../lib/adapters/dynamodb-setup';
import { SecretsManagerSource } from '../lib/adapters/secrets-manager';
import { createBroker } from '../lib/compose';
import { ManualClock } from '../lib/clock';
import { LocalKeyRing } from '../lib/crypto';
import { startDynalite } from '../lib/local/dynalite';
import { SandboxVendor } from '../lib/local/sandbox-vendor';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { parseConfig } from '../lib/config';
import { secretFor, vendorConnectionInput } from './support/connections';
import { expectCode } from './support/expect';
import { RecordingMetrics, startWorld, type World } from './support/harness';
import { registerSecret } from './support/secrets-registry';

const CALLER = 'arn:aws:iam::111111111111:role/caller';
let world: World | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

type Fault = (req: http.IncomingMessage, res: http.ServerResponse) => void;
const status = (code: number, body = '', headers: Record<string, string> = {}): Fault => (_q, r) => {
  r.writeHead(code, { 'content-type': 'application/json', ...headers });
  r.end(body);
};
const ok = (body: unknown): Fault => status(200, JSON.stringify(body));

const FAULTS: [string, Fault, string][] = [
  ['500', status(500), 'vendor_unavailable'],
  ['502', status(502, '<html>Bad Gateway</html>'), 'vendor_unavailable'],
  ['503 with Retry-After', status(503, '', { 'retry-after': '5' }), 'vendor_unavailable'],
  ['429', status(429), 'vendor_unavailable'],
  ['a connection reset', (q) => q.socket.destroy(), 'vendor_unavailable'],
  ['a hang', () => undefined, 'vendor_timeout'],
  [
    'a slow drip',
    (_q, r) => {
      r.writeHead(200, { 'content-type': 'application/json' });
      const t = setInterval(() => r.write(' '), 40);
      r.on('close', () => clearInterval(t));
    },
    'vendor_timeout',
  ],
  ['invalid JSON', status(200, '{"access_token":'), 'vendor_protocol_error'],
  ['HTML', status(200, '<!doctype html><title>Login</title>'), 'vendor_protocol_error'],
  ['a 5 MB body', status(200, JSON.stringify({ access_token: 'x'.repeat(5 * 1024 * 1024), expires_in: 60 })), 'vendor_protocol_error'],
  ['no access_token', ok({ token_type: 'Bearer', expires_in: 3600 }), 'vendor_protocol_error'],
  ['a wrong token_type', ok({ access_token: 'abc', token_type: 'MAC', expires_in: 3600 }), 'vendor_protocol_error'],
  ['a negative expires_in', ok({ access_token: 'abc', token_type: 'Bearer', expires_in: -60 }), 'vendor_protocol_error'],
  ['a string expires_in', ok({ access_token: 'abc', token_type: 'Bearer', expires_in: 'one hour' }), 'vendor_protocol_error'],
  ['400 invalid_client', status(400, '{"error":"invalid_client"}'), 'vendor_rejected_credentials'],
];

describe('vendor faults, through the broker', () => {
  it.each(FAULTS.map(([n, f, c]) => [n, c, f] as const))('%s → %s; nothing cached, the cooldown holds, the still-valid token keeps being served', async (_name, code, fault) => {
    const clock = new ManualClock('2026-11-23T10:00:00.000Z');
    world = await startWorld(
      clock,
      (v) => [vendorConnectionInput(v, 'jwt', { id: 'jwt', refreshBefore: 0 })],
      { lifetime: 300 },
      (v) => ({ 'broker/jwt-test': secretFor(v, 'jwt') }),
    );
    const metrics = new RecordingMetrics();
    const b = world.broker({ metrics, options: { exchange: { retries: 0, deadlineMs: 400 } } });
    const good = await b.getToken(CALLER, 'jwt', 0);
    clock.advance(200_000); // 100 s left
    world.vendor.fail('jwt', fault);

    await expectCode(b.getToken(CALLER, 'jwt', 120), code);
    expect((await world.table.store.read('jwt')).token?.fingerprint).toBe(good.fingerprint);
    const received = world.vendor.received('jwt');

    // The cooldown: the same answer without another vendor call, from this instance and any other.
    const again = await expectCode(world.broker().getToken(CALLER, 'jwt', 120), code);
    expect(again.retryAfter).toBeGreaterThanOrEqual(1);
    expect(world.vendor.received('jwt')).toBe(received);

    // The token that is still valid keeps being served to callers it satisfies.
    expect((await b.getToken(CALLER, 'jwt', 60)).fingerprint).toBe(good.fingerprint);
    expect((await world.broker().getToken(CALLER, 'jwt', 60)).fingerprint).toBe(good.fingerprint);
    expect(metrics.get('Cooldowns')).toBe(1);
  });
});

describe('DynamoDB faults', () => {
  it('dynalite stopped mid-run and restarted: degraded service, no crash, no lost token', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dynalite-restart-'));
    const vendor = await SandboxVendor.start();
    let db = await startDynalite({ path: join(dir, 'db') });
    const port = db.port;
    try {
      const creds = { accessKeyId: 'local', secretAccessKey: 'local' };
      const raw = new DynamoDBClient({ endpoint: db.endpoint, region: 'us-east-1', credentials: creds });
      await ensureTable(raw, 'restart');
      raw.destroy();
      const store = new DynamoTokenStore(createDynamoClient({ endpoint: db.endpoint, region: 'us-east-1', credentials: creds, maxAttempts: 1 }), 'restart');
      const config = parseConfig({ connections: [{ ...vendorConnectionInput(vendor, 'jwt', { id: 'jwt' }), secretId: 's' }] }, { allowLoopbackHttp: true });
      const secrets = { getSecret: () => Promise.resolve({ value: secretFor(vendor, 'jwt'), versionId: 'v1' }) };
      const keyRing = new LocalKeyRing();
      const metrics = new RecordingMetrics();
      const make = () =>
        createBroker({ config, store, secrets, keyRing, metrics, options: { memoryTtlMs: 0 } });
      const first = await make().getToken(CALLER, 'jwt');
      await db.close();
      // The table is gone: an instance holding no token answers 503 with Retry-After, and calls no vendor.
      const during = await expectCode(make().getToken(CALLER, 'jwt'), 'service_unavailable');
      expect(during.retryAfter).toBeGreaterThanOrEqual(1);
      expect(vendor.exchanges('jwt')).toBe(1);
      expect(metrics.get('StoreDegraded')).toBeGreaterThanOrEqual(1);
      db = await startDynalite({ path: join(dir, 'db'), port });
      const after = await make().getToken(CALLER, 'jwt');
      expect(after).toMatchObject({ source: 'table', fingerprint: first.fingerprint });
    } finally {
      await db.close();
      await vendor.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('throttling errors from DynamoDB: 503 with Retry-After, and no exchange that would bypass the lease', async () => {
    const clock = new ManualClock('2026-11-23T10:00:00.000Z');
    world = await startWorld(clock, (v) => [vendorConnectionInput(v, 'jwt', { id: 'jwt' })], {}, (v) => ({ 'broker/jwt-test': secretFor(v, 'jwt') }));
    const throttled = new DynamoTokenStore(
      {
        send: () =>
          Promise.reject(Object.assign(new Error('Rate of requests exceeds the allowed throughput.'), { name: 'ProvisionedThroughputExceededException' })),
      } as never,
      'any',
    );
    const metrics = new RecordingMetrics();
    const b = world.broker({ store: throttled, metrics });
    const outcomes = await Promise.allSettled(Array.from({ length: 50 }, () => b.getToken(CALLER, 'jwt')));
    for (const o of outcomes) expect((o as PromiseRejectedResult).reason).toMatchObject({ code: 'service_unavailable', retryAfter: 5 });
    expect(world.vendor.received('jwt')).toBe(0);
    expect(metrics.get('StoreDegraded')).toBeGreaterThanOrEqual(1);
  });
});

describe('a failing vendor while the table is unreachable', () => {
  it('is not called at all: without the table there is no exchange, so no cooldown either', async () => {
    const clock = new ManualClock('2026-11-23T10:00:00.000Z');
    world = await startWorld(clock, (v) => [vendorConnectionInput(v, 'jwt', { id: 'jwt' })], {}, (v) => ({ 'broker/jwt-test': secretFor(v, 'jwt') }));
    const unreachable = new DynamoTokenStore(
      { send: async () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { name: 'TimeoutError' })) } as never,
      'any',
    );
    world.vendor.fail('jwt', status(503));
    const metrics = new RecordingMetrics();
    const b = world.broker({ store: unreachable, metrics, options: { exchange: { retries: 0 } } });
    await expectCode(b.getToken(CALLER, 'jwt'), 'service_unavailable');
    await expectCode(b.getToken(CALLER, 'jwt'), 'service_unavailable');
    expect(world.vendor.received('jwt')).toBe(0);
    expect(metrics.get('Cooldowns')).toBe(0);
  });
});

describe('Secrets Manager faults', () => {
  const fakeClient = (answer: (id: string) => { SecretString?: string; VersionId?: string } | Error) => ({
    send: (cmd: GetSecretValueCommand) => {
      const a = answer(cmd.input.SecretId ?? '');
      return a instanceof Error ? Promise.reject(a) : Promise.resolve(a);
    },
  });

  async function brokerWith(answer: Parameters<typeof fakeClient>[0]) {
    const clock = new ManualClock('2026-11-23T10:00:00.000Z');
    world = await startWorld(clock, (v) => [vendorConnectionInput(v, 'digitaleo', { id: 'digitaleo-prod' })]);
    const w = world;
    return createBroker({
      config: w.config,
      store: w.table.store,
      secrets: new SecretsManagerSource(fakeClient(answer)),
      keyRing: w.keyRing,
      clock,
    });
  }

  it('a missing secret: misconfigured, naming the connection and the secret', async () => {
    const b = await brokerWith(() => Object.assign(new Error("Secrets Manager can't find the specified secret."), { name: 'ResourceNotFoundException' }));
    const err = await expectCode(b.getToken(CALLER, 'digitaleo-prod'), 'misconfigured');
    expect(err.message).toBe('digitaleo-prod: the secret broker/digitaleo-test has no version in stage AWSCURRENT');
  });

  it('malformed JSON: names the connection, never quotes the value', async () => {
    registerSecret('{"client_id":"a","client_secret":"leaky-secret-9"');
    registerSecret('leaky-secret-9');
    const b = await brokerWith(() => ({ SecretString: '{"client_id":"a","client_secret":"leaky-secret-9"', VersionId: 'v1' }));
    const err = await expectCode(b.getToken(CALLER, 'digitaleo-prod'), 'misconfigured');
    expect(err.message).toBe('digitaleo-prod: the secret broker/digitaleo-test is not valid JSON');
    expect(inspect(err.cause)).not.toContain('leaky');
  });

  it('wrong keys for the dialect: names the connection and the missing key, never a value', async () => {
    registerSecret('wrong-keys-secret-1');
    const b = await brokerWith(() => ({ SecretString: JSON.stringify({ clientId: 'a', clientSecret: 'wrong-keys-secret-1' }), VersionId: 'v1' }));
    const err = await expectCode(b.getToken(CALLER, 'digitaleo-prod'), 'misconfigured');
    expect(err.message).toContain('digitaleo-prod: the secret broker/digitaleo-test lacks client_id, client_secret');
    expect(err.message).not.toContain('wrong-keys-secret-1');
  });
});

describe('a lease holder killed mid-exchange', () => {
  it('another instance mints once the lease has expired', async () => {
    const db = await startDynalite();
    const vendor = await SandboxVendor.start();
    const creds = { accessKeyId: 'local', secretAccessKey: 'local' };
    const raw = new DynamoDBClient({ endpoint: db.endpoint, region: 'us-east-1', credentials: creds });
    await ensureTable(raw, 'killed');
    raw.destroy();
    let hung = 0;
    vendor.override(() => {
      hung += 1; // the doomed holder's exchange never gets an answer
    }, 'jwt');
    const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'support/lease-holder.ts')], {
      env: {
        ...process.env,
        DYNAMO_ENDPOINT: db.endpoint,
        TABLE: 'killed',
        TOKEN_URL: vendor.tokenUrl('jwt'),
        CLIENT_ID: vendor.account('jwt').client_id,
        CLIENT_SECRET: vendor.account('jwt').client_secret,
        LEASE_MS: '1500',
      },
      stdio: 'ignore',
    });
    try {
      const store = new DynamoTokenStore(createDynamoClient({ endpoint: db.endpoint, region: 'us-east-1', credentials: creds }), 'killed');
      // Wait (bounded) until the child holds the lease and its exchange is hanging at the vendor.
      for (let i = 0; i < 200 && hung === 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(hung).toBe(1);
      child.kill('SIGKILL');
      const config = parseConfig({ connections: [{ ...vendorConnectionInput(vendor, 'jwt', { id: 'jwt' }), secretId: 's' }] }, { allowLoopbackHttp: true });
      const b = createBroker({
        config,
        store,
        secrets: { getSecret: () => Promise.resolve({ value: secretFor(vendor, 'jwt'), versionId: 'v1' }) },
        keyRing: new LocalKeyRing(),
      });
      const t = await b.getToken(CALLER, 'jwt');
      expect(t.source).toBe('vendor');
      expect(vendor.exchanges('jwt')).toBe(1);
      expect(vendor.received('jwt')).toBe(2);
    } finally {
      child.kill('SIGKILL');
      await vendor.close();
      await db.close();
    }
  }, 30_000);
});
