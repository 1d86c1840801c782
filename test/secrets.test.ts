import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { describe, expect, it } from 'vitest';
import { FileSecretSource } from '../lib/adapters/file-secrets';
import { SecretsManagerSource } from '../lib/adapters/secrets-manager';
import { ManualClock } from '../lib/clock';
import type { SecretSource } from '../lib/ports';
import { CachedSecretSource, SECRET_CACHE_MAX_AGE_MS, STATIC_SECRET_MAX_AGE_MS } from '../lib/secrets';

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
  it('keeps a secret for an hour, shares concurrent reads, and reads past the cache when forced', async () => {
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
