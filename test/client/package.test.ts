import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalBroker, type LocalBroker } from '../../functions/local';
import { CALLER, OTHER, localFiles, type LocalFiles } from '../support/local-broker';

// The client as another team gets it: `npm pack`, installed from the tarball into a project outside this repo
// (so nothing resolves from this repo's node_modules), used from ESM, from CommonJS, type-checked, and its CLI run,
// all against a running local broker.

const run = promisify(execFile);
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const tsc = join(repo, 'node_modules/typescript/bin/tsc');

let files: LocalFiles;
let local: LocalBroker;
let project: string;
let tarball: string;

function consumerEnv(identity = CALLER): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: project,
    TOKEN_BROKER_URL: local.url,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: identity.accessKeyId,
    AWS_SECRET_ACCESS_KEY: identity.secretAccessKey,
    AWS_CONFIG_FILE: join(project, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(project, 'no-aws-credentials'),
    AWS_EC2_METADATA_DISABLED: 'true',
    npm_config_cache: process.env.npm_config_cache ?? join(process.env.HOME ?? project, '.npm'),
  };
}

beforeAll(async () => {
  files = await localFiles();
  local = await startLocalBroker(files.env);
  project = mkdtempSync(join(tmpdir(), 'client-consumer-'));
  const packed = await run('npm', ['pack', '--json', '--pack-destination', project], {
    cwd: join(repo, 'packages/client'),
    timeout: 120_000,
  });
  const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  tarball = join(project, info!.filename);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, version: '1.0.0' }));
  // Its few dependencies come from the registry (the npm cache first); nothing comes from this repository.
  await run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--omit=dev'], {
    cwd: project,
    env: consumerEnv(),
    timeout: 150_000,
  });
}, 300_000);

afterAll(async () => {
  await local?.close();
  await files?.close();
  if (project) rmSync(project, { recursive: true, force: true });
});

describe('@token-broker/client, packed and installed elsewhere', { timeout: 150_000 }, () => {
  it('ships dist/ and its README, with ESM, CommonJS and type entry points, and installs without the broker', () => {
    const root = join(project, 'node_modules/@token-broker/client');
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      exports: Record<string, Record<string, Record<string, string>>>;
      dependencies: Record<string, string>;
    };
    expect(Object.keys(pkg.dependencies).sort()).toEqual(['@aws-crypto/sha256-js', '@aws-sdk/credential-provider-node', '@smithy/signature-v4']);
    for (const f of ['dist/index.mjs', 'dist/index.cjs', 'dist/index.d.mts', 'dist/index.d.cts', 'dist/cli.mjs']) {
      expect(existsSync(join(root, f)), f).toBe(true);
    }
    expect(existsSync(join(root, 'src'))).toBe(false);
    // The tarball says how to get and use it, and never to install it from the public registry.
    expect(readFileSync(join(root, 'README.md'), 'utf8')).toContain('not on the public npm registry');
    expect(pkg.exports['.']!.import!.default).toBe('./dist/index.mjs');
    expect(pkg.exports['.']!.require!.default).toBe('./dist/index.cjs');
    for (const heavy of ['dynalite', 'level', 'tsx', 'zod', 'aws-cdk-lib', '@aws-sdk/client-dynamodb']) {
      expect(existsSync(join(project, 'node_modules', heavy)), heavy).toBe(false);
    }
    // Nothing above the project could lend it a module.
    expect(existsSync(join(dirname(project), 'node_modules'))).toBe(false);
    expect(project.startsWith(repo)).toBe(false);
  });

  it('works from an ES module with the default credential chain', async () => {
    writeFileSync(
      join(project, 'esm.mjs'),
      `import { TokenBrokerClient, TokenBrokerError } from '@token-broker/client';
const client = new TokenBrokerClient();
const token = await client.getToken('jwt', { minTtl: 120 });
const list = await client.listConnections();
const denied = await new TokenBrokerClient({ credentials: { accessKeyId: process.argv[2], secretAccessKey: process.argv[3] } })
  .getToken('jwt').catch((e) => e);
console.log(JSON.stringify({ type: token.tokenType, covers: token.expiresIn >= 120, header: token.authorization.startsWith('Bearer '),
  list: list.map((c) => c.id), denied: denied instanceof TokenBrokerError ? denied.code : String(denied) }));
`,
    );
    const out = await run(process.execPath, [join(project, 'esm.mjs'), OTHER.accessKeyId, OTHER.secretAccessKey], {
      cwd: project,
      env: consumerEnv(),
      timeout: 30_000,
    });
    expect(JSON.parse(out.stdout)).toEqual({ type: 'Bearer', covers: true, header: true, list: ['digitaleo', 'jwt'], denied: 'forbidden' });
  });

  it('works from CommonJS', async () => {
    writeFileSync(
      join(project, 'cjs.cjs'),
      `const { TokenBrokerClient, TokenBrokerError } = require('@token-broker/client');
(async () => {
  const client = new TokenBrokerClient({ baseUrl: process.env.TOKEN_BROKER_URL });
  const header = await client.authorization('digitaleo');
  const err = await client.getToken('nope').catch((e) => e);
  console.log(JSON.stringify({ header: /^Bearer \\S+$/.test(header), code: err instanceof TokenBrokerError ? err.code : String(err), status: err.status }));
})();
`,
    );
    const out = await run(process.execPath, [join(project, 'cjs.cjs')], { cwd: project, env: consumerEnv(), timeout: 30_000 });
    expect(JSON.parse(out.stdout)).toEqual({ header: true, code: 'forbidden', status: 403 });
  });

  it('type-checks from ESM and CommonJS TypeScript (tsc --noEmit), and its types catch a wrong call', async () => {
    const src = join(project, 'src');
    mkdirSync(src, { recursive: true });
    const body = (importLine: string) => `${importLine}
async function main(): Promise<string> {
  const options: TokenBrokerClientOptions = { region: 'eu-west-1', maxRetries: 1 };
  const client = new TokenBrokerClient(options);
  const token: BrokerToken = await client.getToken('digitaleo-prod', { minTtl: 300 });
  const res: Response = await client.fetch('docoon-prod', 'https://vendor.example/api');
  try {
    await client.invalidate('digitaleo-prod', token.accessToken);
  } catch (err) {
    if (err instanceof TokenBrokerError && err.code === 'rate_limited') return String(err.retryAfter ?? 0);
  }
  // @ts-expect-error minTtl is a number
  await client.getToken('x', { minTtl: '300' });
  return token.authorization + res.status;
}
void main;
`;
    writeFileSync(join(src, 'esm.mts'), body(`import { TokenBrokerClient, TokenBrokerError, type BrokerToken, type TokenBrokerClientOptions } from '@token-broker/client';`));
    writeFileSync(join(src, 'cjs.cts'), body(`import { TokenBrokerClient, TokenBrokerError, type BrokerToken, type TokenBrokerClientOptions } from '@token-broker/client';`));
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', lib: ['es2022', 'dom'], types: [], strict: true, noEmit: true },
        include: ['src'],
      }),
    );
    const checked = await run(process.execPath, [tsc, '--noEmit', '-p', project], { cwd: project, timeout: 120_000 }).catch(
      (e: { stdout: string; code: number }) => e,
    );
    expect('code' in checked ? checked.stdout : '').toBe('');
  });

  it('installs the token-broker command', async () => {
    const bin = join(project, 'node_modules/.bin/token-broker');
    const out = await run(bin, ['connections', '--json'], { cwd: project, env: consumerEnv(), timeout: 30_000 });
    expect(JSON.parse(out.stdout)).toEqual({
      connections: [
        { id: 'digitaleo', dialect: 'digitaleo' },
        { id: 'jwt', dialect: 'oauth2' },
      ],
    });
    expect((await run(bin, ['--version'], { cwd: project, env: consumerEnv(), timeout: 30_000 })).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
