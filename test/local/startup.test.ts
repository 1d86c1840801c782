import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TokenBrokerClient } from '../../lib/client';
import { firstInvalidOffset, jsonError, lineAndColumn } from '../../lib/local/json-file';
import { startLocalBroker, type LocalBroker } from '../../functions/local';
import { CALLER, localFiles, type LocalFiles } from '../support/local-broker';
import { registerSecret } from '../support/secrets-registry';

// A local broker that tells you what is wrong: at start, in one clear message, not as a 500 at the first request.

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SECRET_IN_A_BROKEN_FILE = 'never-quote-me-secret-value-42';
registerSecret(SECRET_IN_A_BROKEN_FILE);

let files: LocalFiles;
const running: LocalBroker[] = [];

beforeEach(async () => {
  files = await localFiles();
});

afterEach(async () => {
  for (const l of running.splice(0)) await l.close();
  await files.close();
});

async function start(env: Record<string, string> = files.env) {
  const local = await startLocalBroker(env);
  running.push(local);
  return local;
}


const startError = (env: Record<string, string> = files.env) =>
  startLocalBroker(env).then(
    async (l) => {
      await l.close();
      return 'started';
    },
    (e: unknown) => (e as Error).message,
  );

function editJson(path: string, edit: (value: Record<string, unknown>) => void) {
  const value = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  edit(value);
  writeFileSync(path, JSON.stringify(value));
}

describe('local mode: the files are checked at start', () => {
  it('names the connection and the key its dialect needs when a secret lacks it', async () => {
    editJson(files.paths.secrets, (s) => {
      delete (s.jwt as Record<string, unknown>).client_secret;
    });
    const message = await startError();
    expect(message).toContain('jwt: the secret jwt lacks client_secret');
    expect(message).toContain('oauth2 dialect');
    expect(message).not.toContain('digitaleo:');
  });

  it('names the connection whose secret is not in the secrets file, and every such connection at once', async () => {
    editJson(files.paths.secrets, (s) => {
      delete s.jwt;
      delete s.digitaleo;
    });
    const message = await startError();
    expect(message).toContain('digitaleo: its secret digitaleo is not in the secrets file');
    expect(message).toContain('jwt: its secret jwt is not in the secrets file');
  });

  it('tells a missing callers file from a malformed one, with the line and column', async () => {
    const missing = await startError({ ...files.env, BROKER_CALLERS_FILE: join(files.dir, 'nope.json') });
    expect(missing).toMatch(/the callers file .*nope\.json does not exist \(set BROKER_CALLERS_FILE/);
    writeFileSync(files.paths.callers, '{\n  "AKIA1": { "secretAccessKey": "x", "arn": "arn:aws:iam::111111111111:role/a" }\n  "AKIA2": {}\n}');
    const malformed = await startError();
    expect(malformed).toContain(`the callers file ${files.paths.callers} is not valid JSON`);
    expect(malformed).toContain('at line 3, column 3');
  });

  it('says where a malformed secrets file breaks without quoting it', async () => {
    writeFileSync(files.paths.secrets, `{"jwt": {"client_id": "a", "client_secret": "${SECRET_IN_A_BROKEN_FILE}"},\n "digitaleo": oops}`);
    const message = await startError();
    expect(message).toContain(`the secrets file ${files.paths.secrets} is not valid JSON: unexpected character at line 2, column 15`);
    expect(message).not.toContain(SECRET_IN_A_BROKEN_FILE);
    const missing = await startError({ ...files.env, BROKER_SECRETS_FILE: join(files.dir, 'gone.json') });
    expect(missing).toContain('does not exist (set BROKER_SECRETS_FILE');
  });

  it('says where a malformed connections file breaks', async () => {
    writeFileSync(files.paths.config, '{ "connections": [ { "id": "a", } ] }');
    expect(await startError()).toContain(`the connections file ${files.paths.config} is not valid JSON: Expected double-quoted property name at line 1, column 33`);
  });

  it('refuses a callers entry without an IAM ARN, naming the access key id', async () => {
    writeFileSync(files.paths.callers, JSON.stringify({ AKIABAD: { secretAccessKey: 'k-123456', arn: 'app' } }));
    expect(await startError()).toContain('AKIABAD needs an "arn" such as arn:aws:iam::111111111111:role/name');
  });
});

describe('local mode: JSON error positions', () => {
  it.each([
    ['{"a": x}', 6],
    ['[1, 2,, 3]', 6],
    ['{"a": 1}}', 8],
    ['{"a": tru}', 9],
    ['"abc', 4],
    ['', 0],
  ])('finds where %j breaks', (text, offset) => {
    expect(firstInvalidOffset(text)).toBe(offset);
  });

  it('takes V8 position when it gives one, and counts lines and columns from 1', () => {
    expect(jsonError('{"a": 1,}', "Expected double-quoted property name in JSON at position 8")).toEqual({
      offset: 8,
      reason: 'Expected double-quoted property name',
    });
    expect(lineAndColumn('{\n  "a" x\n}', 8)).toEqual({ line: 2, column: 7 });
  });
});

describe('local mode: cooldowns do not outlive the server, and misconfigured starts none', () => {
  it('serves at once after a restart although the vendor failed just before it', async () => {
    const first = await start();
    const client = () => new TokenBrokerClient({ baseUrl: running.at(-1)!.url, credentials: CALLER, maxRetries: 0 });
    files.vendor.fail('jwt', (_req, res) => {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('down');
    });
    const failed = await client().getToken('jwt').catch((e: unknown) => e);
    expect(failed).toMatchObject({ code: 'vendor_unavailable' });
    const cooling = await client().getToken('jwt').catch((e: unknown) => e);
    expect(cooling).toMatchObject({ code: 'vendor_unavailable' });
    files.vendor.heal('jwt');

    await first.close();
    running.splice(0);
    await start();
    const token = await client().getToken('jwt');
    expect(token.tokenType).toBe('Bearer');
  });

  it('answers misconfigured while a secret is broken, and serves as soon as it is fixed', async () => {
    const local = await start();
    const saved = readFileSync(files.paths.secrets, 'utf8');
    editJson(files.paths.secrets, (s) => {
      delete s.jwt;
    });
    const client = new TokenBrokerClient({ baseUrl: local.url, credentials: CALLER, maxRetries: 0 });
    const broken = await client.getToken('jwt').catch((e: unknown) => e);
    expect(broken).toMatchObject({ status: 500, code: 'misconfigured' });
    writeFileSync(files.paths.secrets, saved);
    expect((await client.getToken('jwt')).tokenType).toBe('Bearer');
  });
});

/** `npm start`'s program, as a child process: what it prints, where, and its exit code. */
function main(env: Record<string, string>): { child: ChildProcess; output: Promise<{ code: number | null; stdout: string; stderr: string }>; stdout: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(repo, 'functions/local-main.ts')], {
    cwd: repo,
    env: { PATH: process.env.PATH, HOME: files.dir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 60_000,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const output = new Promise<{ code: number | null; stdout: string; stderr: string }>((r) =>
    child.on('close', (code) => r({ code, stdout, stderr })),
  );
  return { child, output, stdout: () => stdout };
}

const nodeWarnings = (stderr: string) =>
  stderr
    .split('\n')
    .filter((l) => l.trim() !== '' && !/Warning|AWS SDK|node >=22|upgrade to node|a\.co\/|trace-warnings|versions published|will require|To continue|security updates|More information/.test(l));

describe('npm start: one clear line for what stops it', { timeout: 90_000 }, () => {
  it('PORT=abc', async () => {
    const { output } = main({ ...files.env, PORT: 'abc' });
    const { code, stdout, stderr } = await output;
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(nodeWarnings(stderr)).toEqual(['token-broker: PORT must be a port number from 0 to 65535 (0 picks a free one), not "abc"']);
  });

  it('a busy port, suggesting PORT', async () => {
    const busy: Server = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as { port: number }).port;
    try {
      const { code, stdout, stderr } = await main({ ...files.env, PORT: String(port) }).output;
      expect(code).toBe(1);
      expect(stdout).toBe('');
      expect(nodeWarnings(stderr)).toEqual([`token-broker: port ${port} is already in use: set PORT to a free port (PORT=0 picks one)`]);
    } finally {
      busy.close();
    }
  });

  it('a secret without a key its dialect needs, before it listens', async () => {
    editJson(files.paths.secrets, (s) => {
      delete (s.digitaleo as Record<string, unknown>).client_id;
    });
    const { code, stdout, stderr } = await main(files.env).output;
    expect(code).toBe(1);
    expect(stdout).not.toContain('listening');
    expect(stderr).toContain('digitaleo: the secret digitaleo lacks client_id');
  });

  it('logs for a person by default, one JSON object per line with BROKER_LOG_FORMAT=json', async () => {
    const seen: Record<string, string> = {};
    for (const format of ['dev', 'json']) {
      const run = main({ ...files.env, BROKER_DATA_DIR: join(files.dir, `data-${format}`), ...(format === 'json' ? { BROKER_LOG_FORMAT: 'json' } : {}) });
      try {
        for (let i = 0; i < 600 && !/listening on (\S+)/.test(run.stdout()); i++) await new Promise((r) => setTimeout(r, 50));
        const url = /listening on (\S+)/.exec(run.stdout())?.[1];
        expect(url).toBeDefined();
        await new TokenBrokerClient({ baseUrl: url!, credentials: CALLER }).getToken('jwt');
        for (let i = 0; i < 100 && !run.stdout().includes('token handed out'); i++) await new Promise((r) => setTimeout(r, 50));
      } finally {
        run.child.kill('SIGTERM');
      }
      seen[format] = (await run.output).stdout;
    }
    const devLine = seen.dev!.split('\n').find((l) => l.includes('"token handed out"'));
    expect(devLine).toBeDefined();
    // Dev mode indents: the message stands on its own line, not inside one long JSON line.
    expect(devLine!.trim().startsWith('"message"')).toBe(true);
    const jsonLine = seen.json!.split('\n').find((l) => l.includes('"token handed out"'));
    expect(() => JSON.parse(jsonLine!) as unknown).not.toThrow();
    expect(JSON.parse(jsonLine!)).toMatchObject({ message: 'token handed out', connection: 'jwt' });
  });
});
