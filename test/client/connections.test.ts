import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT, runCli } from '../../packages/client/src/cli';
import { TokenBrokerClient, type TokenBrokerError } from '../../lib/client';
import { startLocalBroker, type LocalBroker } from '../../functions/local';
import { ADMIN, CALLER, localFiles, type Identity, type LocalFiles } from '../support/local-broker';

// Registered connections through the client package and the CLI, against a real local broker (dynalite, the
// secrets file, SigV4): local mode serves the same routes, with the secrets-file rule instead of AWS's prefix.

let files: LocalFiles;
let local: LocalBroker;
let dir: string;

beforeAll(async () => {
  files = await localFiles();
  local = await startLocalBroker(files.env);
  dir = mkdtempSync(join(tmpdir(), 'connections-cli-'));
});
afterAll(async () => {
  await local?.close();
  await files?.close();
  rmSync(dir, { recursive: true, force: true });
});

const client = (as: Identity) => new TokenBrokerClient({ baseUrl: local.url, credentials: as, maxRetries: 0 });
const definition = (extra: Record<string, unknown> = {}) => ({
  dialect: 'digitaleo',
  tokenUrl: files.vendor.tokenUrl('digitaleo'),
  secretId: 'digitaleo',
  callers: [CALLER.arn],
  ...extra,
});

async function cli(args: string[], opts: { as?: Identity; input?: string } = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(args, {
    stdout: (t) => out.push(t),
    stderr: (t) => err.push(t),
    readStdin: () => Promise.resolve(opts.input ?? ''),
    env: { TOKEN_BROKER_URL: local.url, AWS_REGION: 'us-east-1' },
    client: { credentials: opts.as ?? ADMIN, maxRetries: 0 },
  });
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

describe('@token-broker/client: connections', () => {
  it('puts, gets and deletes a registered connection; callers use it in between', async () => {
    const admin = client(ADMIN);
    const created = await admin.putConnection('client-reg', definition());
    expect(created).toMatchObject({ connection: 'client-reg', created: true });
    expect((await client(CALLER).getToken('client-reg')).tokenType).toBe('Bearer');
    const described = await admin.getConnection('client-reg');
    expect(described).toMatchObject({ connection: 'client-reg', source: 'api', etag: created.etag, definition: { secretId: 'digitaleo' } });
    const replaced = await admin.putConnection('client-reg', definition({ maxTtl: 300 }), { ifMatch: created.etag });
    expect(replaced.created).toBe(false);
    const stale = await admin.deleteConnection('client-reg', { ifMatch: created.etag }).catch((e: unknown) => e as TokenBrokerError);
    expect(stale).toMatchObject({ status: 412, code: 'precondition_failed' });
    await admin.deleteConnection('client-reg', { ifMatch: replaced.etag });
    const gone = await client(CALLER).getToken('client-reg').catch((e: unknown) => e as TokenBrokerError);
    expect(gone).toMatchObject({ status: 403, code: 'forbidden' });
  });

  it('locally refuses a secret that is not in the secrets file, naming it; a file id is 409 conflict', async () => {
    const admin = client(ADMIN);
    const missing = await admin.putConnection('client-missing', definition({ secretId: 'nowhere/secret' })).catch((e: unknown) => e as TokenBrokerError);
    expect(missing).toMatchObject({ status: 400, code: 'invalid_request' });
    expect((missing as TokenBrokerError).detail).toContain('nowhere/secret');
    const file = await admin.putConnection('jwt', definition()).catch((e: unknown) => e as TokenBrokerError);
    expect(file).toMatchObject({ status: 409, code: 'conflict' });
  });

  it('lists every page: listConnections follows next, listConnectionsPage answers one', async () => {
    const admin = client(ADMIN);
    for (const id of ['list-a', 'list-b', 'list-c']) await admin.putConnection(id, definition());
    const first = await client(CALLER).listConnectionsPage({ limit: 2 });
    expect(first.connections.map((c) => c.id)).toEqual(['digitaleo', 'jwt']);
    expect(first.next).toBeDefined();
    const all = (await client(CALLER).listConnections()).map((c) => c.id);
    expect(all).toEqual(expect.arrayContaining(['digitaleo', 'jwt', 'list-a', 'list-b', 'list-c']));
  });
});

describe('token-broker connections put|get|delete', { timeout: 60_000 }, () => {
  it('registers from a file, replaces from stdin with --if-match, shows and deletes', async () => {
    const path = join(dir, 'def.json');
    writeFileSync(path, JSON.stringify(definition()));
    const put = await cli(['connections', 'put', 'cli-reg', path, '--json']);
    expect(put.code).toBe(EXIT.ok);
    const { etag } = JSON.parse(put.stdout) as { etag: string; created: boolean };
    expect(JSON.parse(put.stdout)).toMatchObject({ connection: 'cli-reg', created: true });
    const replaced = await cli(['connections', 'put', 'cli-reg', '-', '--if-match', etag], { input: JSON.stringify(definition({ maxTtl: 120 })) });
    expect(replaced).toMatchObject({ code: EXIT.ok });
    expect(replaced.stdout).toMatch(/^replaced cli-reg \(etag [A-Za-z0-9_-]+\)$/);
    const stale = await cli(['connections', 'delete', 'cli-reg', '--if-match', etag]);
    expect(stale.code).toBe(EXIT.stale);
    expect(stale.stderr).toContain('precondition_failed');
    const shown = await cli(['connections', 'get', 'cli-reg']);
    expect(shown.code).toBe(EXIT.ok);
    expect(shown.stdout).toMatch(/^cli-reg \(source api, etag /);
    expect(shown.stdout).toContain('"maxTtl": 120');
    expect((await cli(['connections', 'delete', 'cli-reg'])).code).toBe(EXIT.ok);
    expect((await cli(['connections', 'get', 'cli-reg'])).code).toBe(EXIT.forbidden);
  });

  it('refuses what it cannot send: no file, not JSON, wrong arguments; a file id exits as a usage error', async () => {
    expect((await cli(['connections', 'put', 'cli-bad', join(dir, 'missing.json')])).code).toBe(EXIT.usage);
    expect((await cli(['connections', 'put', 'cli-bad', '-'], { input: '{not json' })).code).toBe(EXIT.usage);
    expect((await cli(['connections', 'put', 'cli-bad'])).code).toBe(EXIT.usage);
    expect((await cli(['connections', 'get', 'cli-bad', '--if-match', 'x'])).code).toBe(EXIT.usage);
    expect((await cli(['connections', '--if-match', 'x'])).code).toBe(EXIT.usage);
    const conflict = await cli(['connections', 'put', 'jwt', '-'], { input: JSON.stringify(definition()) });
    expect(conflict.code).toBe(EXIT.usage);
    expect(conflict.stderr).toContain('conflict');
    const notAdmin = await cli(['connections', 'put', 'cli-bad', '-'], { as: CALLER, input: JSON.stringify(definition()) });
    expect(notAdmin.code).toBe(EXIT.forbidden);
  });
});
