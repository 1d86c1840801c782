import { execFile } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenBrokerClient } from '../../lib/client';
import { startLocalBroker, type LocalBroker } from '../../functions/local';
import { SandboxVendor } from '../../lib/local/sandbox-vendor';
import { signRequest } from '../../lib/sigv4';
import { secretFor } from '../support/connections';
import { registerSecret } from '../support/secrets-registry';
import { fp } from '../support/expect';

const run = promisify(execFile);
const CALLER = { accessKeyId: 'AKIALOCALTESTCALLER1', secretAccessKey: 'local-test-secret-key-0123456789', arn: 'arn:aws:iam::111111111111:role/app' };
const OTHER = { accessKeyId: 'AKIALOCALTESTOTHER01', secretAccessKey: 'other-test-secret-key-0123456789', arn: 'arn:aws:iam::111111111111:role/other' };
registerSecret(CALLER.secretAccessKey, OTHER.secretAccessKey);

let dir: string;
let vendor: SandboxVendor;
let local: LocalBroker;
let env: Record<string, string>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'local-server-'));
  vendor = await SandboxVendor.start();
  writeFileSync(
    join(dir, 'broker.config.json'),
    JSON.stringify({
      connections: [
        { id: 'digitaleo', dialect: 'digitaleo', tokenUrl: vendor.tokenUrl('digitaleo'), secretId: 'digitaleo', callers: [CALLER.arn] },
        { id: 'jwt', dialect: 'oauth2', tokenUrl: vendor.tokenUrl('jwt'), secretId: 'jwt', callers: [CALLER.arn] },
      ],
    }),
  );
  writeFileSync(join(dir, 'secrets.json'), JSON.stringify({ digitaleo: secretFor(vendor, 'digitaleo'), jwt: secretFor(vendor, 'jwt') }));
  writeFileSync(
    join(dir, 'callers.json'),
    JSON.stringify({
      [CALLER.accessKeyId]: { secretAccessKey: CALLER.secretAccessKey, arn: CALLER.arn },
      [OTHER.accessKeyId]: { secretAccessKey: OTHER.secretAccessKey, arn: OTHER.arn },
    }),
  );
  env = {
    PORT: '0',
    BROKER_CONFIG: join(dir, 'broker.config.json'),
    BROKER_SECRETS_FILE: join(dir, 'secrets.json'),
    BROKER_CALLERS_FILE: join(dir, 'callers.json'),
    BROKER_DATA_DIR: join(dir, 'data'),
  };
  local = await startLocalBroker(env);
});

afterAll(async () => {
  await local?.close();
  await vendor?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function signedFetch(
  path: string,
  opts: { method?: string; body?: string; creds?: { accessKeyId: string; secretAccessKey: string }; region?: string; signingDate?: Date; sendBody?: string } = {},
) {
  const url = new URL(local.url + path);
  const headers = await signRequest({
    url,
    method: opts.method ?? 'GET',
    ...(opts.body !== undefined ? { body: opts.body } : {}),
    credentials: opts.creds ?? CALLER,
    region: opts.region ?? 'us-east-1',
    ...(opts.signingDate ? { signingDate: opts.signingDate } : {}),
  });
  delete headers.host;
  const body = opts.sendBody ?? opts.body;
  const res = await fetch(url, { method: opts.method ?? 'GET', headers, ...(body !== undefined ? { body } : {}) });
  return { status: res.status, headers: res.headers, json: (await res.json()) as Record<string, unknown> };
}

describe('local server: SigV4 as API Gateway checks it', () => {
  it('serves a correctly signed request', async () => {
    const res = await signedFetch('/v1/connections/digitaleo/token?min_ttl=120');
    expect(res.status).toBe(200);
    expect(res.json.token_type).toBe('Bearer');
    expect(res.headers.get('cache-control')).toBe('no-store');
  });

  it.each([
    ['a wrong secret', { creds: { accessKeyId: CALLER.accessKeyId, secretAccessKey: 'wrong-secret-key' } }],
    ['an unknown key', { creds: { accessKeyId: 'AKIAUNKNOWN000000000', secretAccessKey: 'x' } }],
    ['a stale date', { signingDate: new Date(Date.now() - 10 * 60_000) }],
    ['a date from the future', { signingDate: new Date(Date.now() + 10 * 60_000) }],
    ['another region', { region: 'eu-west-1' }],
  ])('answers 401 unauthenticated for %s', async (_name, opts) => {
    const res = await signedFetch('/v1/connections/digitaleo/token', opts);
    expect(res.status).toBe(401);
    expect(res.json.code).toBe('unauthenticated');
  });

  it('answers 401 for an unsigned request and for a body other than the one signed', async () => {
    const unsigned = await fetch(`${local.url}/v1/connections`);
    expect(unsigned.status).toBe(401);
    const tampered = await signedFetch('/v1/connections/digitaleo/token/invalidate', {
      method: 'POST',
      body: '{"access_token":"a"}',
      sendBody: '{"access_token":"b"}',
    });
    expect(tampered.status).toBe(401);
  });

  it('answers 403 to a signed caller that may not use the connection', async () => {
    const res = await signedFetch('/v1/connections/digitaleo/token', { creds: OTHER });
    expect(res.status).toBe(403);
  });

  it('answers a signed request to no route with 404 not_found, an unsigned one with 401', async () => {
    const res = await signedFetch('/v1/tokens');
    expect(res.status).toBe(404);
    expect(res.json.code).toBe('not_found');
    expect((await fetch(`${local.url}/v1/tokens`)).status).toBe(401);
  });

  it('refuses a body over 64 KB with invalid_request', async () => {
    const big = JSON.stringify({ access_token: 'a'.repeat(70_000) });
    const res = await signedFetch('/v1/connections/digitaleo/token/invalidate', { method: 'POST', body: big });
    expect(res.status).toBe(400);
    expect(res.json.code).toBe('invalid_request');
  });

  it.each(['chunked', 'content-length'] as const)(
    'stops reading an unsigned %s body at 64 KB: 400 invalid_request, the connection closed, not 1 GB read',
    async (framing) => {
      const url = new URL(local.url);
      const socket = net.connect(Number(url.port), url.hostname);
      await once(socket, 'connect');
      let response = '';
      let open = true;
      socket.on('data', (d: Buffer) => (response += d.toString('latin1')));
      socket.on('error', () => undefined);
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve(void (open = false))));
      const length = framing === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${1024 ** 3}`;
      socket.write(`POST /v1/connections/jwt/token/invalidate HTTP/1.1\r\nHost: ${url.host}\r\n${length}\r\nContent-Type: application/json\r\n\r\n`);
      const chunk = Buffer.alloc(256 * 1024, 0x61);
      const piece = framing === 'chunked' ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]) : chunk;
      let sent = 0;
      // As fast as the server takes it, up to 1 GB, until it answers: a server that reads it all takes it all.
      while (open && sent < 1024 ** 3 && !response.includes('"code":"invalid_request"')) {
        sent += chunk.length;
        if (!socket.write(piece)) await Promise.race([new Promise((r) => socket.once('drain', r)), closed]);
      }
      socket.destroy();
      expect(response).toMatch(/^HTTP\/1\.1 400 /);
      expect(response.toLowerCase()).toContain('connection: close');
      expect(response).toContain('"code":"invalid_request"');
      expect(sent).toBeLessThan(32 * 1024 * 1024);
    },
  );

  it("accepts the system curl's --aws-sigv4, and refuses it with a wrong secret", async () => {
    const url = `${local.url}/v1/connections/jwt/token?min_ttl=60`;
    const ok = await run('curl', ['-s', '--aws-sigv4', 'aws:amz:us-east-1:execute-api', '--user', `${CALLER.accessKeyId}:${CALLER.secretAccessKey}`, '-w', '\n%{http_code}', url]);
    const [body, status] = ok.stdout.trim().split('\n');
    expect(status).toBe('200');
    expect((JSON.parse(body ?? '{}') as { token_type?: string }).token_type).toBe('Bearer');
    const bad = await run('curl', ['-s', '-o', '/dev/null', '--aws-sigv4', 'aws:amz:us-east-1:execute-api', '--user', `${CALLER.accessKeyId}:nope-wrong`, '-w', '%{http_code}', url]);
    expect(bad.stdout).toBe('401');
    const post = await run('curl', [
      '-s', '--aws-sigv4', 'aws:amz:us-east-1:execute-api', '--user', `${CALLER.accessKeyId}:${CALLER.secretAccessKey}`,
      '-X', 'POST', '-H', 'content-type: application/json', '-d', '{"access_token":"not-current"}', '-w', '\n%{http_code}',
      `${local.url}/v1/connections/jwt/token/invalidate`,
    ]);
    expect(post.stdout.trim().split('\n')).toEqual(['{"invalidated":false}', '200']);
  });
});

describe('local server: embedded table', () => {
  it('keeps the cache across a restart (BROKER_DATA_DIR)', async () => {
    const first = await signedFetch('/v1/connections/digitaleo/token');
    const minted = vendor.exchanges('digitaleo');
    await local.close();
    local = await startLocalBroker(env);
    const again = await signedFetch('/v1/connections/digitaleo/token');
    expect(fp(again.json.access_token)).toBe(fp(first.json.access_token));
    expect(vendor.exchanges('digitaleo')).toBe(minted);
  });
});

describe('demo mode', () => {
  it('with nothing configured, serves every demo connection to the demo caller', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'demo-'));
    const demo = await startLocalBroker({ PORT: '0', BROKER_DATA_DIR: join(cwd, 'data') }, { cwd });
    try {
      expect(demo.demo).toBeDefined();
      const { caller, connections } = demo.demo!;
      registerSecret(caller.secretAccessKey, demo.demo!.admin.secretAccessKey);
      const client = new TokenBrokerClient({ baseUrl: demo.url, credentials: caller });
      expect((await client.listConnections()).map((c) => c.id)).toEqual(connections);
      for (const id of connections) {
        const t = await client.getToken(id, { minTtl: 300 });
        expect(t.expiresIn).toBeGreaterThanOrEqual(300);
        expect(t.authorization).toMatch(/^(Bearer|Basic) \S+$/);
      }
    } finally {
      await demo.close();
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});
