import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BatchGetSecretValueCommand, GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { describe, expect, it } from 'vitest';
import { FileSecretSource } from '../lib/adapters/file-secrets';
import { SecretsManagerSource } from '../lib/adapters/secrets-manager';
import { ManualClock } from '../lib/clock';
import type { SecretRead, SecretSource } from '../lib/ports';
import { CachedSecretSource, SECRET_CACHE_MAX_AGE_MS, STATIC_SECRET_MAX_AGE_MS, readCurrentSecrets } from '../lib/secrets';

/** Secrets Manager has no local equivalent: a client-level fake, answering as the service does. */
function fakeSecretsManager(secrets: Record<string, Record<string, { id: string; text: string }>>) {
  const calls: GetSecretValueCommand[] = [];
  return {
    calls,
    client: {
      send: (cmd: GetSecretValueCommand) => {
        calls.push(cmd);
        const v = secrets[cmd.input.SecretId ?? '']?.[cmd.input.VersionStage ?? 'AWSCURRENT'];
        if (!v) return Promise.reject(Object.assign(new Error("Secrets Manager can't find the specified secret."), { name: 'ResourceNotFoundException' }));
        return Promise.resolve({ SecretString: v.text, VersionId: v.id, ARN: `arn:aws:secretsmanager:eu-west-1:111111111111:secret:${cmd.input.SecretId}` });
      },
    },
  };
}

describe('Secrets Manager adapter', () => {
  it('reads the JSON value, its VersionId, and a given version stage', async () => {
    const sm = fakeSecretsManager({
      s: { AWSCURRENT: { id: 'v1', text: '{"client_id":"a","client_secret":"b"}' }, AWSPENDING: { id: 'v2', text: '{"client_id":"a","client_secret":"c"}' } },
    });
    const source = new SecretsManagerSource(sm.client);
    expect(await source.getSecret('s')).toEqual({ value: { client_id: 'a', client_secret: 'b' }, versionId: 'v1' });
    expect(await source.getSecret('s', { versionStage: 'AWSPENDING' })).toMatchObject({ versionId: 'v2' });
    expect(sm.calls.map((c) => c.input)).toEqual([
      { SecretId: 's', VersionStage: 'AWSCURRENT' },
      { SecretId: 's', VersionStage: 'AWSPENDING' },
    ]);
  });

  it('names a missing secret, and never quotes a malformed one', async () => {
    const sm = fakeSecretsManager({ bad: { AWSCURRENT: { id: 'v', text: 'hunter2-not-json' } } });
    const source = new SecretsManagerSource(sm.client);
    await expect(source.getSecret('missing')).rejects.toThrow(/the secret missing has no version in stage AWSCURRENT/);
    const err = (await source.getSecret('bad').catch((e: unknown) => e)) as Error;
    expect(String(err)).toContain('the secret bad is not valid JSON');
    expect(String(err)).not.toContain('hunter2');
    expect(err.cause).toBeUndefined();
  });

  it('turns a throttle or outage into service_unavailable', async () => {
    const source = new SecretsManagerSource({
      send: async () => Promise.reject(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' })),
    });
    await expect(source.getSecret('s')).rejects.toMatchObject({ code: 'service_unavailable' });
  });
});

describe('file secrets (local mode)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'secrets-'));
  const path = join(dir, 'secrets.json');

  it('reads plain values and version stages, with a content version id', async () => {
    writeFileSync(
      path,
      JSON.stringify({
        plain: { token: 'a' },
        staged: { stages: { AWSCURRENT: { token: 'cur' }, AWSPENDING: '{"token":"pending"}' } },
      }),
    );
    const source = new FileSecretSource(path);
    const plain = await source.getSecret('plain');
    expect(plain.value).toEqual({ token: 'a' });
    expect(plain.versionId).toMatch(/^sha256:[0-9a-f]{16}$/);
    expect((await source.getSecret('staged')).value).toEqual({ token: 'cur' });
    expect((await source.getSecret('staged', { versionStage: 'AWSPENDING' })).value).toEqual({ token: 'pending' });
    await expect(source.getSecret('plain', { versionStage: 'AWSPENDING' })).rejects.toThrow(/no version in stage AWSPENDING/);
    await expect(source.getSecret('nope')).rejects.toThrow(/does not exist/);
  });
});

describe('secret cache', () => {
  it('keeps a secret four hours, shares concurrent reads, and reads past the cache when forced', async () => {
    // The hour is what docs/token-lifecycle.md promises (how long a deleted or revoked secret may still be used).
    expect(SECRET_CACHE_MAX_AGE_MS).toBe(4 * 3_600_000);
    let reads = 0;
    const inner: SecretSource = {
      getSecret: () => {
        reads += 1;
        return Promise.resolve({ value: { n: reads }, versionId: `v${reads}` });
      },
    };
    const clock = new ManualClock();
    const cache = new CachedSecretSource(inner, clock);
    await Promise.all([cache.getSecret('s'), cache.getSecret('s'), cache.getSecret('s')]);
    expect(reads).toBe(1);
    clock.advance(SECRET_CACHE_MAX_AGE_MS - 1000);
    expect((await cache.getSecret('s')).versionId).toBe('v1');
    expect((await cache.getSecret('s', { forceRefresh: true })).versionId).toBe('v2');
    expect((await cache.getSecret('s')).versionId).toBe('v2');
    clock.advance(SECRET_CACHE_MAX_AGE_MS);
    expect((await cache.getSecret('s')).versionId).toBe('v3');
    expect((await cache.getSecret('s', { versionStage: 'AWSPENDING' })).versionId).toBe('v4');
  });

  it('a reader may ask for a younger copy (static credentials: a minute)', async () => {
    let reads = 0;
    const inner: SecretSource = { getSecret: () => Promise.resolve({ value: {}, versionId: `v${++reads}` }) };
    const clock = new ManualClock();
    const cache = new CachedSecretSource(inner, clock);
    await cache.getSecret('s');
    clock.advance(STATIC_SECRET_MAX_AGE_MS - 1);
    expect((await cache.getSecret('s', { maxAgeMs: STATIC_SECRET_MAX_AGE_MS })).versionId).toBe('v1');
    clock.advance(1);
    expect((await cache.getSecret('s', { maxAgeMs: STATIC_SECRET_MAX_AGE_MS })).versionId).toBe('v2');
    // A longer wish does not stretch the cache's own maximum.
    clock.advance(SECRET_CACHE_MAX_AGE_MS);
    expect((await cache.getSecret('s', { maxAgeMs: 2 * SECRET_CACHE_MAX_AGE_MS })).versionId).toBe('v3');
  });
});

describe('batch reads (the pre-warm run\'s look at every secret)', () => {
  const messageOf = (read: SecretRead | undefined) => (read instanceof Error ? read.message : 'not an error');

  it('the cache keeps what a batch read found; a secret it could not read stays as it was', async () => {
    const calls: string[] = [];
    const inner: SecretSource = {
      getSecret: (id) => {
        calls.push(`get ${id}`);
        return Promise.resolve({ value: { id }, versionId: 'old' });
      },
      getCurrentSecrets: (ids) => {
        calls.push(`batch ${ids.join(',')}`);
        return Promise.resolve(new Map(ids.map((id) => [id, id === 'gone' ? new Error('not found') : { value: { id }, versionId: 'new' }])));
      },
    };
    const cache = new CachedSecretSource(inner, new ManualClock());
    await cache.getSecret('gone');
    const read = await cache.getCurrentSecrets(['a', 'gone']);
    expect(read.get('a')).toEqual({ value: { id: 'a' }, versionId: 'new' });
    expect(read.get('gone')).toBeInstanceOf(Error);
    expect((await cache.getSecret('a')).versionId).toBe('new');
    expect((await cache.getSecret('gone')).versionId).toBe('old');
    expect(calls).toEqual(['get gone', 'batch a,gone']);
  });

  it('a source without a batch read is read once per secret, forced, its errors kept per secret', async () => {
    const forced: (boolean | undefined)[] = [];
    const inner: SecretSource = {
      getSecret: (id, opts) => {
        forced.push(opts?.forceRefresh);
        return id === 'gone' ? Promise.reject(new Error('not found')) : Promise.resolve({ value: {}, versionId: `${id}-v` });
      },
    };
    const read = await readCurrentSecrets(inner, ['a', 'gone', 'a']);
    expect([...read.keys()]).toEqual(['a', 'gone']);
    expect(read.get('a')).toEqual({ value: {}, versionId: 'a-v' });
    expect(read.get('gone')).toBeInstanceOf(Error);
    expect(forced).toEqual([true, true]);
  });

  it('file secrets: one read of the file for all of them, each missing one its own error', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'secrets-')), 'secrets.json');
    writeFileSync(path, JSON.stringify({ a: { token: 'a' }, b: { stages: { AWSPENDING: { token: 'b' } } } }));
    const read = await new FileSecretSource(path).getCurrentSecrets(['a', 'b', 'c']);
    expect(read.get('a')).toMatchObject({ value: { token: 'a' } });
    expect(messageOf(read.get('b'))).toContain('the secret b has no version in stage AWSCURRENT');
    expect(messageOf(read.get('c'))).toContain('the secret c does not exist');
    writeFileSync(path, 'not json');
    expect(messageOf((await new FileSecretSource(path).getCurrentSecrets(['a'])).get('a'))).toContain('cannot be read as JSON');
  });

  it('Secrets Manager: 20 ids a call; each answer, value or error, goes to the id it was asked by', async () => {
    const sent: string[][] = [];
    const arn = (name: string) => `arn:aws:secretsmanager:eu-west-1:111111111111:secret:${name}-AbC123`;
    const source = new SecretsManagerSource({
      send: (cmd: BatchGetSecretValueCommand) => {
        const ids = cmd.input.SecretIdList ?? [];
        sent.push(ids);
        if (ids.includes('throttled')) return Promise.reject(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
        const name = (id: string) => id.replace(/^arn:.*:secret:/, '').replace(/-AbC123$/, '');
        const found = ids.filter((id) => !id.startsWith('denied'));
        return Promise.resolve({
          // In no particular order, named by ARN and name, never by the id as asked.
          SecretValues: found.reverse().map((id) => ({ ARN: arn(name(id)), Name: name(id), VersionId: `${name(id)}-v`, SecretString: '{"k":"v"}' })),
          Errors: ids.filter((id) => id.startsWith('denied')).map((id) => ({ SecretId: id, ErrorCode: 'AccessDeniedException', Message: 'denied' })),
        });
      },
    });
    const ids = [
      ...Array.from({ length: 18 }, (_, i) => `s${i}`),
      'arn:aws:secretsmanager:eu-west-1:111111111111:secret:partial',
      arn('full'),
      'denied-one',
      'throttled',
    ];
    const read = await source.getCurrentSecrets(ids);
    expect(sent.map((b) => b.length)).toEqual([20, 2]);
    expect(read.get('s7')).toEqual({ value: { k: 'v' }, versionId: 's7-v' });
    expect(read.get('arn:aws:secretsmanager:eu-west-1:111111111111:secret:partial')).toMatchObject({ versionId: 'partial-v' });
    expect(read.get(arn('full'))).toMatchObject({ versionId: 'full-v' });
    // The second call failed as a whole: each of its secrets carries that failure.
    expect(read.get('denied-one')).toMatchObject({ code: 'service_unavailable' });
    expect(read.get('throttled')).toMatchObject({ code: 'service_unavailable' });
  });

  it('Secrets Manager: a secret in Errors is that secret\'s error, by its code', async () => {
    const source = new SecretsManagerSource({
      send: () =>
        Promise.resolve({
          SecretValues: [],
          Errors: [
            { SecretId: 'denied', ErrorCode: 'AccessDeniedException', Message: 'denied' },
            { SecretId: 'gone', ErrorCode: 'ResourceNotFoundException', Message: 'gone' },
          ],
        }),
    });
    const read = await source.getCurrentSecrets(['denied', 'gone', 'unanswered']);
    expect(messageOf(read.get('denied'))).toContain('the broker may not read the secret denied (AccessDeniedException)');
    expect(messageOf(read.get('gone'))).toContain('the secret gone has no version in stage AWSCURRENT');
    expect(read.get('unanswered')).toMatchObject({ code: 'service_unavailable' });
  });
});

