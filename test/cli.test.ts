import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalBroker, type LocalBroker } from '../functions/local';
import { ADMIN, CALLER, OTHER, localFiles, type Identity, type LocalFiles } from './support/local-broker';
import { secretFor } from './support/connections';
import { registerSecret } from './support/secrets-registry';
import { runCli } from '../lib/cli';
import clientPackage from '../packages/client/package.json';

// The real `token-broker` command (bin/token-broker.mjs) against a running local broker: what it prints where,
// and the exit code a script reads.

const bin = join(resolve(dirname(fileURLToPath(import.meta.url)), '..'), 'bin/token-broker.mjs');
let files: LocalFiles;
let local: LocalBroker;
let home: string;

beforeAll(async () => {
  files = await localFiles();
  local = await startLocalBroker(files.env);
  home = mkdtempSync(join(tmpdir(), 'cli-home-'));
});

afterAll(async () => {
  await local?.close();
  await files?.close();
  rmSync(home, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with only the environment given (no AWS profile of this machine can leak in). */
function cli(args: string[], opts: { as?: Identity | null; input?: string; url?: string | null } = {}): Promise<Run> {
  const identity = opts.as === undefined ? CALLER : opts.as;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: home,
    AWS_CONFIG_FILE: join(home, 'none'),
    AWS_SHARED_CREDENTIALS_FILE: join(home, 'none'),
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_REGION: 'us-east-1',
    ...(opts.url === null ? {} : { TOKEN_BROKER_URL: opts.url ?? local.url }),
    ...(identity ? { AWS_ACCESS_KEY_ID: identity.accessKeyId, AWS_SECRET_ACCESS_KEY: identity.secretAccessKey } : {}),
  };
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'], timeout: 30_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

// Each run starts a Node process that compiles the CLI: seconds each on a shared machine.
describe('token-broker CLI: answers', { timeout: 90_000 }, () => {
  it('token: a table by default, the answer with --json, the Authorization value alone with --header', async () => {
    const json = await cli(['token', 'jwt', '--min-ttl', '120', '--json']);
    expect(json).toMatchObject({ code: 0, stderr: '' });
    const answer = JSON.parse(json.stdout) as { token_type: string; authorization: string; access_token: string; expires_in: number };
    registerSecret(answer.access_token);
    expect(answer.token_type).toBe('Bearer');
    expect(answer.expires_in).toBeGreaterThanOrEqual(120);
    const header = await cli(['token', 'jwt', '--header']);
    expect(header).toMatchObject({ code: 0, stdout: `${answer.authorization}\n`, stderr: '' });
    const human = await cli(['token', 'jwt']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^connection +jwt$/m);
    expect(human.stdout).toMatch(/^expires_in +\d+ s \(\d{4}-\d\d-\d\dT/m);
  });

  it('connections: a table, or JSON', async () => {
    const table = await cli(['connections']);
    expect(table).toMatchObject({ code: 0, stderr: '' });
    expect(table.stdout.split('\n')[0]).toMatch(/^ID +DIALECT$/);
    expect(table.stdout).toMatch(/^digitaleo +digitaleo$/m);
    const json = await cli(['connections', '--json']);
    // The broker's own answer, as docs/api.md documents it.
    expect(JSON.parse(json.stdout)).toEqual({
      connections: [
        { id: 'digitaleo', dialect: 'digitaleo' },
        { id: 'jwt', dialect: 'oauth2' },
      ],
    });
  });

  it('invalidate: reads the token from stdin with "-", and says whether it was evicted', async () => {
    const run = await cli(['invalidate', 'jwt', '-', '--json'], { input: 'a-token-that-is-not-current\n' });
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(run.stdout)).toEqual({ invalidated: false });
  });

  it('refresh and verify: for admins', async () => {
    const refresh = await cli(['refresh', 'jwt', '--json'], { as: ADMIN });
    expect(refresh).toMatchObject({ code: 0, stderr: '' });
    const answer = JSON.parse(refresh.stdout) as { connection: string; expires_at: string; max_ttl: number };
    expect(answer).toMatchObject({ connection: 'jwt', max_ttl: 900 });
    // The token's own expiry (the status route's), not what a caller is handed of it (at most max_ttl).
    const [status] = JSON.parse((await cli(['status', 'jwt', '--json'], { as: ADMIN })).stdout) as { token?: { expires_at: string } }[];
    expect(answer.expires_at).toBe(status?.token?.expires_at);
    expect(Date.parse(answer.expires_at) - Date.now()).toBeGreaterThan(900_000);
    const verify = await cli(['verify', 'jwt', '--stage', 'AWSCURRENT'], { as: ADMIN });
    expect(verify).toMatchObject({ code: 0, stderr: '' });
    expect(verify.stdout).toContain('verified jwt: the vendor accepts the AWSCURRENT secret');
  });
});

describe('token-broker CLI: status', { timeout: 90_000 }, () => {
  it('prints a table over every connection, unhealthy first, or JSON; nothing secret; a caller gets exit 3', async () => {
    const token = JSON.parse((await cli(['token', 'jwt', '--json'])).stdout) as { access_token: string };
    registerSecret(token.access_token);
    const table = await cli(['status'], { as: ADMIN });
    expect(table).toMatchObject({ code: 0, stderr: '' });
    const [header, ...rows] = table.stdout.trim().split('\n');
    expect(header).toMatch(/^CONNECTION +STATE +SINCE \/ LEFT +TOKEN EXPIRES +MINTED +BY +PREWARM +SECRET +LAST FAILURE +REQUESTS 1H$/);
    expect(rows.map((r) => r.split(/ +/).slice(0, 2))).toEqual([
      ['digitaleo', 'no-token'],
      ['jwt', 'serving'],
    ]);
    expect(rows[1]).toMatch(/^jwt +serving +- +\d{4}-\d\d-\d\dT\S+ +\d{4}-\d\d-\d\dT\S+ +\S+ +off +[0-9a-f]{12} +- +\d+$/);
    const all = JSON.parse((await cli(['status', '--json'], { as: ADMIN })).stdout) as { connection: string; state: string }[];
    expect(all.map((c) => [c.connection, c.state])).toEqual([
      ['digitaleo', 'no-token'],
      ['jwt', 'serving'],
    ]);
    expect(JSON.stringify(all)).not.toContain('fingerprint');
    const json = await cli(['status', 'jwt', '--json'], { as: ADMIN });
    const [jwt] = JSON.parse(json.stdout) as { connection: string; token: { fingerprint: string } }[];
    expect(jwt).toMatchObject({ connection: 'jwt', static: false, token: { fingerprint: expect.stringMatching(/^[0-9a-f]{12}$/) as unknown } });
    for (const out of [table.stdout, json.stdout, JSON.stringify(all)]) {
      expect(out.includes(token.access_token)).toBe(false);
      for (const value of Object.values(secretFor(files.vendor, 'jwt'))) expect(out).not.toContain(value);
    }
    const caller = await cli(['status'], { as: CALLER });
    expect(caller).toMatchObject({ code: 3, stdout: '' });
  });
});

describe('token-broker CLI: exit codes, errors on stderr only', { timeout: 90_000 }, () => {
  it('2 for usage: no command, an unknown one, a missing id, a bad --min-ttl, an unknown option, no URL', async () => {
    for (const args of [[], ['mint'], ['token'], ['token', 'jwt', '--min-ttl', 'x'], ['token', 'jwt', '--nope']]) {
      const run = await cli(args);
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stdout, args.join(' ')).toBe('');
      expect(run.stderr).toContain('usage: token-broker');
    }
    const noUrl = await cli(['connections'], { url: null });
    expect(noUrl).toMatchObject({ code: 2, stdout: '' });
    expect(noUrl.stderr).toContain('TOKEN_BROKER_URL');
  });

  it('--help per command, on stdout with exit 0', async () => {
    const help = await cli(['verify', '--help']);
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toContain('usage: token-broker verify <connection> [--stage AWSPENDING]');
    expect(help.stdout).toContain('exit codes: 0 ok');
  });

  it('3 when forbidden, unauthenticated, or without credentials (with what to do about it)', async () => {
    const forbidden = await cli(['token', 'digitaleo'], { as: OTHER });
    expect(forbidden).toMatchObject({ code: 3, stdout: '' });
    expect(forbidden.stderr).toContain('forbidden');
    const refused = await cli(['refresh', 'jwt'], { as: CALLER });
    expect(refused).toMatchObject({ code: 3, stdout: '' });
    const unsigned = await cli(['connections'], { as: { ...CALLER, secretAccessKey: 'not-the-right-secret-key' } });
    expect(unsigned).toMatchObject({ code: 3, stdout: '' });
    expect(unsigned.stderr).toContain('unauthenticated');
    const none = await cli(['connections'], { as: null });
    expect(none).toMatchObject({ code: 3, stdout: '' });
    expect(none.stderr).toContain('no AWS credentials found: set AWS_PROFILE');
  });

  it('4 when the vendor refuses the credentials', async () => {
    files.vendor.setAccount('digitaleo', { client_id: 'someone-else', client_secret: 'vendor-side-secret-0' });
    const run = await cli(['token', 'digitaleo']);
    expect(run).toMatchObject({ code: 4, stdout: '' });
    expect(run.stderr).toContain('vendor_rejected_credentials');
  });

  it('5 when the broker cannot be reached', async () => {
    const run = await cli(['connections'], { url: 'http://127.0.0.1:9' });
    expect(run).toMatchObject({ code: 5, stdout: '' });
    expect(run.stderr).toContain('unreachable');
  });
});

/** The CLI in this process (no Node start-up per run): what it printed, and its exit code. */
async function inProcess(args: string[], opts: { as?: Identity; url?: string; input?: string } = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    stdout: (t) => void (stdout += `${t}\n`),
    stderr: (t) => void (stderr += `${t}\n`),
    readStdin: () => Promise.resolve(opts.input ?? ''),
    env: { TOKEN_BROKER_URL: opts.url ?? local.url, HOME: home, AWS_CONFIG_FILE: join(home, 'none') },
    client: { credentials: opts.as ?? CALLER, maxRetries: 0 },
  });
  return { code, stdout, stderr };
}

describe('token-broker CLI, as a new user tries it', () => {
  it('every error says its request id', async () => {
    const forbidden = await inProcess(['token', 'no-such-connection']);
    expect(forbidden).toMatchObject({ code: 3, stdout: '' });
    expect(forbidden.stderr).toMatch(/\[request id [\w-]+\]/);
  });

  it('a signature for another region than the broker\'s says so, in local mode as API Gateway says it', async () => {
    const run = await inProcess(['token', 'jwt', '--region', 'eu-central-1']);
    expect(run).toMatchObject({ code: 3, stdout: '' });
    expect(run.stderr).toContain("signed for region eu-central-1, which is not the broker's");
    // The same words for a key the broker does not know: the answer says nothing of which keys exist.
    const unknown = await inProcess(['token', 'jwt', '--region', 'eu-central-1'], { as: { ...CALLER, accessKeyId: 'AKIAUNKNOWNKEY000001' } });
    expect(unknown.stderr).toContain("signed for region eu-central-1, which is not the broker's");
  });

  it('status of connections that all fail prints nothing on stdout, only the errors', async () => {
    const run = await inProcess(['status', 'jwt', 'digitaleo']);
    expect(run).toMatchObject({ code: 3, stdout: '' });
    expect(run.stderr).toContain('jwt: ');
  });

  it('an admin-only command run by a caller says an admin is needed', async () => {
    for (const args of [['refresh', 'jwt'], ['verify', 'jwt'], ['status', 'jwt'], ['connections', '--admin']]) {
      const run = await inProcess(args);
      expect(run.code, args.join(' ')).toBe(3);
      expect(run.stderr, args.join(' ')).toContain(`${args[0] === 'connections' ? 'connections --admin' : args[0]} needs an admin of the broker`);
    }
    // A token is not admin-only: the same answer keeps its own words.
    expect((await inProcess(['token', 'digitaleo'], { as: OTHER })).stderr).not.toContain('needs an admin');
  });

  it("a --min-ttl above the connection's maxTtl says the cap, as a usage error", async () => {
    const run = await inProcess(['token', 'jwt', '--min-ttl', '1000']);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('invalid_request: jwt: tokens are handed out for at most 900 s (maxTtl), so min_ttl 1000 cannot be met');
    expect(run.code).toBe(2);
  });

  it('connections put or delete by a caller says an admin is needed', async () => {
    const definition = JSON.stringify({ dialect: 'oauth2', tokenUrl: 'https://vendor.example/token', secretId: 'jwt' });
    for (const args of [['connections', 'put', 'cli-admin', '-'], ['connections', 'delete', 'cli-admin'], ['connections', 'get', 'cli-admin']]) {
      const run = await inProcess(args, { input: definition });
      expect(run.code, args.join(' ')).toBe(3);
      expect(run.stderr, args.join(' ')).toContain(`connections ${args[1]} needs an admin of the broker`);
    }
  });

  it("an unknown option gets the command's help; --version says the client's version", async () => {
    const run = await inProcess(['status', '--nope']);
    expect(run).toMatchObject({ code: 2, stdout: '' });
    expect(run.stderr).toContain('usage: token-broker status');
    expect(run.stderr).not.toContain('commands:');
    expect(await inProcess(['--version'])).toEqual({ code: 0, stdout: `${clientPackage.version}\n`, stderr: '' });
  });

  it('a URL without a scheme suggests http://', async () => {
    const bare = local.url.replace(/^http:\/\//, '');
    const run = await inProcess(['connections'], { url: bare });
    expect(run).toMatchObject({ code: 2, stdout: '' });
    expect(run.stderr).toContain(`did you mean http://${bare}`);
  });

  it("refresh says the cap callers are handed beside the token's own expiry", async () => {
    const run = await inProcess(['refresh', 'jwt'], { as: ADMIN });
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(/the new token itself expires at \d{4}-\d\d-\d\dT\S+; callers are handed it for at most 900 s at a time \(the connection's maxTtl\)/);
  });
});
