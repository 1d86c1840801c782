import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient, GetItemCommand, PutItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { DecryptCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { BatchGetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { APIGatewayProxyResult } from 'aws-lambda';
import { App } from 'aws-cdk-lib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../infra/app';
import { ensureTable } from '../../lib/adapters/dynamodb-setup';
import { ENCRYPTION_CONTEXT, ENV } from '../../lib/contract';
import { dataKeyContext } from '../../lib/crypto';
import { fingerprint as fingerprintOf } from '../../lib/fingerprint';
import { startDynalite, type RunningDynalite } from '../../lib/local/dynalite';
import { SandboxVendor } from '../../lib/local/sandbox-vendor';
import { ACCOUNT, REGION, roleCredentials, startKms, startSecretsManager } from '../support/aws-services';
import { secretFor } from '../support/connections';
import {
  allows,
  grantsAllow,
  keyPolicyDenies,
  renderValue,
  logicalIdOf,
  provideRuntimeSdk,
  readAssembly,
  resolveEnvironment,
  startInstance,
  type Assembly,
  type DeployedFunction,
  type FunctionInstance,
} from '../support/deployed';
import { cloudTrailApiCall, cloudTrailServiceEvent, restEvent } from '../support/events';
import { knownSecrets, registerSecret } from '../support/secrets-registry';
import { selfSignedCertificate, startHttpsFront } from '../support/tls';
import { fp } from '../support/expect';

// The deployed bundles, proven end to end: the Lambda assets exactly as `cdk synth` bundled them, each run in a
// fresh Node process with the environment its template gives it (the runtime's AWS SDK standing in as
// node_modules), against AWS-protocol endpoints on loopback (dynalite; KMS and Secrets Manager servers speaking
// AWS JSON 1.1 with SigV4) and a vendor over https, driven with the event shapes AWS documents.

const STAGE = 'e2e';
const CALLER_SESSION = `arn:aws:sts::${ACCOUNT}:assumed-role/campaigns-api/i-0123456789abcdef0`;
const ADMIN_SESSION = `arn:aws:sts::${ACCOUNT}:assumed-role/platform-admin/ops`;
/** The secret prefix the template gives the functions; until the stack sets one, a prefix of a secret it grants. */
const FALLBACK_PREFIX = 'broker/e2e-';
const PAT = 'e2e-personal-access-token-7f3a9c';
registerSecret(PAT);

let dir: string;
let vendor: SandboxVendor;
let front: Awaited<ReturnType<typeof startHttpsFront>>;
let db: RunningDynalite;
let kms: Awaited<ReturnType<typeof startKms>>;
let sm: Awaited<ReturnType<typeof startSecretsManager>>;
let assembly: Assembly;
/** The functions by the access key of their role's credentials. */
let byKey: Map<string, DeployedFunction>;
/** Other callers of the stand-ins, by access key: the ARN of the role they stand for. */
const roles = new Map<string, string>();
let tableName: string;
let marksName: string;
let ttlAttribute: string;
let certPath: string;
const instances: FunctionInstance[] = [];
/** Instances started once: two of the HTTP function (two Lambda environments), one of each trigger. */
let httpA: FunctionInstance;
let httpB: FunctionInstance;
let prewarm: FunctionInstance;
let rotation: FunctionInstance;

function fn(name: string): DeployedFunction {
  const f = assembly.functions[name];
  if (!f) throw new Error(`no function ${name} in the assembly (found ${Object.keys(assembly.functions).join(', ')})`);
  return f;
}

type TableProperties = { TableName?: string; TimeToLiveSpecification?: { AttributeName: string; Enabled: boolean } };

/** The data stack's two tables: the tokens' (the one with TTL) and the retired marks'. */
function tablesOf(data: Assembly['templates'][string]): { tokens: string; marks: string } {
  const tables = Object.entries(data.Resources).filter(([, r]) => r.Type === 'AWS::DynamoDB::Table');
  const ttl = (id: string) => (data.Resources[id]!.Properties as TableProperties).TimeToLiveSpecification !== undefined;
  const tokens = tables.filter(([id]) => ttl(id)).map(([id]) => id);
  const marks = tables.filter(([id]) => !ttl(id)).map(([id]) => id);
  if (tokens.length !== 1 || marks.length !== 1) throw new Error(`expected a token table and a marks table, found ${tables.length} tables`);
  return { tokens: tokens[0]!, marks: marks[0]! };
}

/** A fresh instance of a function: a new process, a cold start, with what Lambda and the template set. */
async function instance(name: string): Promise<FunctionInstance> {
  const f = fn(name);
  const data = assembly.templates[`TokenBrokerData-${STAGE}`]!;
  const { tokens, marks } = tablesOf(data);
  const keyId = logicalIdOf(data, 'AWS::KMS::Key');
  const env = resolveEnvironment(assembly, f, {
    [`${tokens}.Ref`]: tableName,
    [`${tokens}.Arn`]: `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${tableName}`,
    [`${marks}.Ref`]: marksName,
    [`${marks}.Arn`]: `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${marksName}`,
    [`${keyId}.Ref`]: kms.keyId.split('/').pop()!,
    [`${keyId}.Arn`]: kms.keyId,
  });
  const credentials = roleCredentials(name);
  registerSecret(credentials.secretAccessKey, credentials.sessionToken);
  kms.trust(credentials);
  sm.trust(credentials);
  const started = await startInstance(f, {
    ...env,
    // What Lambda sets for every function.
    AWS_REGION: REGION,
    AWS_DEFAULT_REGION: REGION,
    AWS_ACCESS_KEY_ID: credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    AWS_SESSION_TOKEN: credentials.sessionToken,
    AWS_EXECUTION_ENV: `AWS_Lambda_${f.runtime}`,
    AWS_LAMBDA_FUNCTION_NAME: `TokenBroker-${STAGE}-${name}`,
    AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(f.memorySize),
    AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/TokenBroker-${STAGE}-${name}`,
    AWS_LAMBDA_LOG_STREAM_NAME: '2026/11/23/[$LATEST]e2e',
    AWS_LAMBDA_LOG_FORMAT: 'JSON',
    LAMBDA_TASK_ROOT: f.taskRoot,
    _HANDLER: f.handler,
    TZ: ':UTC',
    ...(env[ENV.secretPrefix] === undefined ? { [ENV.secretPrefix]: FALLBACK_PREFIX } : {}),
    // The loopback stand-ins, through the SDK's own variables, and the vendor's certificate.
    AWS_ENDPOINT_URL_DYNAMODB: db.endpoint,
    AWS_ENDPOINT_URL_KMS: kms.endpoint,
    AWS_ENDPOINT_URL_SECRETS_MANAGER: sm.endpoint,
    NODE_EXTRA_CA_CERTS: certPath,
  });
  instances.push(started);
  return started;
}

/** The Secrets Manager operations a function called, in order. */
const operationsOf = (name: string) => sm.calls.filter((c) => c.accessKeyId === roleCredentials(name).accessKeyId).map((c) => c.operation);

const tokenRequest = (connection: string) => restEvent({ method: 'GET', path: `/v1/connections/${connection}/token`, userArn: CALLER_SESSION });

type TokenAnswer = { connection: string; access_token: string; token_type: string; expires_in: number; authorization: string };
function answer(res: APIGatewayProxyResult): TokenAnswer {
  expect(res.statusCode, res.body).toBe(200);
  return JSON.parse(res.body) as TokenAnswer;
}

async function tokenItem(connection: string) {
  const client = new DynamoDBClient({ endpoint: db.endpoint, region: REGION, credentials: roleCredentials('test') });
  try {
    return (await client.send(new GetItemCommand({ TableName: tableName, Key: { pk: { S: `token#${connection}` } }, ConsistentRead: true }))).Item;
  } finally {
    client.destroy();
  }
}

/** Writes a token item as it was, as whoever can write the token table would. */
async function putItem(item: Record<string, AttributeValue>): Promise<void> {
  const client = new DynamoDBClient({ endpoint: db.endpoint, region: REGION, credentials: roleCredentials('test') });
  try {
    await client.send(new PutItemCommand({ TableName: tableName, Item: item }));
  } finally {
    client.destroy();
  }
}

/** The Scheduler invokes the target with the schedule's Input as the event ({} when it sets none). */
function schedulerEvent(): unknown {
  const broker = assembly.templates[`TokenBroker-${STAGE}`]!;
  const schedule = broker.Resources[logicalIdOf(broker, 'AWS::Scheduler::Schedule')]!.Properties as { Target: { Input?: string } };
  return schedule.Target.Input === undefined ? {} : JSON.parse(schedule.Target.Input);
}

function rotateAtVendorAndInSecretsManager(name: string, clientSecret: string): string {
  const account = { ...vendor.account('jwt'), client_secret: clientSecret };
  registerSecret(clientSecret);
  vendor.setAccount('jwt', account);
  return sm.put(name, secretFor(vendor, 'jwt'));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'broker-e2e-'));
  const tls = selfSignedCertificate(dir);
  certPath = tls.certPath;
  vendor = await SandboxVendor.start({ lifetime: 3600 });
  front = await startHttpsFront(vendor.url, tls);
  db = await startDynalite();
  kms = await startKms();
  sm = await startSecretsManager();
  sm.put('broker/e2e-jwt', secretFor(vendor, 'jwt'));
  sm.put('broker/e2e-warm', secretFor(vendor, 'digitaleo'));
  sm.put('broker/e2e-pat', { token: PAT });

  const callers = [`arn:aws:iam::${ACCOUNT}:role/campaigns-*`];
  const connectionsFile = join(dir, 'connections.json');
  writeFileSync(
    connectionsFile,
    JSON.stringify({
      connections: [
        { id: 'e2e-jwt', dialect: 'oauth2', tokenUrl: front.url(vendor.tokenUrl('jwt')), secretId: 'broker/e2e-jwt', callers },
        { id: 'e2e-warm', dialect: 'digitaleo', tokenUrl: front.url(vendor.tokenUrl('digitaleo')), secretId: 'broker/e2e-warm', callers, prewarm: true },
        { id: 'e2e-pat', dialect: 'digishare-pat', secretId: 'broker/e2e-pat', callers },
      ],
      admins: [`arn:aws:iam::${ACCOUNT}:role/platform-admin`],
    }),
  );
  // One synth with the project's own CDK app, bundling included, as `cdk synth` does it.
  const outdir = join(dir, 'cdk.out');
  buildApp(new App({ outdir, context: { stage: STAGE, connectionsFile } })).app.synth();
  assembly = readAssembly(outdir);
  provideRuntimeSdk(outdir);
  // Each Secrets Manager call is authorized by the calling function's role, as the template grants it.
  byKey = new Map(Object.values(assembly.functions).map((f) => [roleCredentials(f.name).accessKeyId, f]));
  sm.authorize((key, action, resource) => {
    const f = byKey.get(key);
    return f !== undefined && grantsAllow(f.grants, action, resource, { region: REGION, account: ACCOUNT });
  });

  const data = assembly.templates[`TokenBrokerData-${STAGE}`]!;
  // Each KMS call is also decided by the key's own policy in the data stack's template, for the caller's role ARN
  // (a function's role by the name the template gives it; the planters below, roles of their own).
  const where = { region: REGION, account: ACCOUNT };
  const principalArn = (key: string) => {
    const f = byKey.get(key);
    return f ? `arn:aws:iam::${ACCOUNT}:role/${renderValue(f.roleName, where)}` : (roles.get(key) ?? 'unknown');
  };
  kms.authorize((key, action, context) => !keyPolicyDenies(data, action, { context, principalArn: principalArn(key) }, where));
  const ids = tablesOf(data);
  const table = data.Resources[ids.tokens]!.Properties as TableProperties;
  tableName = table.TableName ?? `TokenBrokerData-${STAGE}-tokens`;
  ttlAttribute = table.TimeToLiveSpecification!.AttributeName;
  marksName = (data.Resources[ids.marks]!.Properties as TableProperties).TableName!;
  const raw = new DynamoDBClient({ endpoint: db.endpoint, region: REGION, credentials: roleCredentials('test') });
  await ensureTable(raw, tableName);
  await ensureTable(raw, marksName);
  raw.destroy();
  [httpA, httpB, prewarm, rotation] = await Promise.all([instance('Http'), instance('Http'), instance('Prewarm'), instance('Rotation')]);
}, 240_000);

afterAll(async () => {
  await Promise.all(instances.map((i) => i.close()));
  await Promise.all([vendor?.close(), front?.close(), db?.close(), kms?.close(), sm?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('the deployed bundles', () => {
  it('are the three functions on nodejs22.x, each with the handler and environment the template names', () => {
    // And the console's widget (test/infra/console.test.ts): it reads the table and is told no key.
    expect(Object.keys(assembly.functions).sort()).toEqual(['ConsoleWidget', 'Http', 'Prewarm', 'Rotation']);
    expect(Object.keys(fn('ConsoleWidget').environment)).not.toContain('BROKER_KEY_ID');
    for (const f of ['Http', 'Prewarm', 'Rotation'].map(fn)) {
      expect(f.runtime).toBe('nodejs22.x');
      expect(f.environment).toMatchObject({ BROKER_CONFIG: 'broker.config.json' });
      expect(Object.keys(f.environment)).toEqual(expect.arrayContaining(['BROKER_TABLE', 'BROKER_KEY_ID']));
    }
  });

  it('a token minted once by one instance is served by a second from the table, through KMS Decrypt', async () => {
    const minted = answer(await httpA.invoke<APIGatewayProxyResult>(tokenRequest('e2e-jwt')));
    expect(minted).toMatchObject({ connection: 'e2e-jwt', token_type: 'Bearer' });
    expect(fp(minted.authorization)).toBe(fp(`Bearer ${minted.access_token}`));
    expect(vendor.exchanges('jwt')).toBe(1);
    expect(kms.count('GenerateDataKey')).toBe(1);

    const decryptsBefore = kms.count('Decrypt');
    const served = answer(await httpB.invoke<APIGatewayProxyResult>(tokenRequest('e2e-jwt')));
    expect(fp(served.access_token)).toBe(fp(minted.access_token));
    expect(vendor.exchanges('jwt')).toBe(1);
    expect(kms.count('Decrypt')).toBe(decryptsBefore + 1);
  });

  it("keeps the item's TTL attribute (the one the table's TimeToLiveSpecification names) in epoch seconds, the token only encrypted", async () => {
    const item = await tokenItem('e2e-jwt');
    expect(item).toBeDefined();
    const ttl = Number(item![ttlAttribute]?.N);
    const expiresAtMs = Number(item!.expiresAt?.N);
    const nowSeconds = Date.now() / 1000;
    expect(Number.isInteger(ttl)).toBe(true);
    // Seconds, not milliseconds: after the token's expiry, within days of now.
    expect(ttl).toBeGreaterThanOrEqual(Math.floor(expiresAtMs / 1000));
    expect(ttl).toBeLessThan(nowSeconds + 3 * 86_400);
    const stored = JSON.stringify(item);
    for (const secret of knownSecrets()) expect(stored.includes(secret)).toBe(false);
  });

  it('pre-warm, invoked as the Scheduler invokes it, mints the missing token of a pre-warmed connection', async () => {
    expect(await tokenItem('e2e-warm')).toBeUndefined();
    const report = await prewarm.invoke<{ outcomes: Record<string, string> }>(schedulerEvent());
    expect(report.outcomes['e2e-warm']).toBe('minted');
    expect(vendor.exchanges('digitaleo')).toBe(1);
    expect(await tokenItem('e2e-warm')).toBeDefined();
    // One batch read of the secrets, and the mint took its secret from it (the broker and the run share one cache).
    expect(operationsOf('Prewarm')).toEqual(['BatchGetSecretValue']);
    // Callers then get it from the table.
    answer(await httpB.invoke<APIGatewayProxyResult>(tokenRequest('e2e-warm')));
    expect(vendor.exchanges('digitaleo')).toBe(1);
  });

  it('a secret changed with PutSecretValue, then by a rotation (RotationSucceeded), re-mints through EventBridge', async () => {
    const before = await tokenItem('e2e-jwt');
    const exchanges = vendor.exchanges('jwt');

    const v2 = rotateAtVendorAndInSecretsManager('broker/e2e-jwt', 'e2e-rotated-secret-v2');
    const put = await rotation.invoke<{ connections: Record<string, unknown> }>(
      cloudTrailApiCall('PutSecretValue', { secretId: 'broker/e2e-jwt', clientRequestToken: v2 }, { arn: sm.arnOf('broker/e2e-jwt'), versionId: v2 }),
    );
    expect(put.connections['e2e-jwt']).toEqual({ evicted: true, minted: true });
    const after = await tokenItem('e2e-jwt');
    expect(after?.secretVersion?.S).toBe(v2);
    expect(after?.fingerprint?.S).not.toBe(before?.fingerprint?.S);
    expect(vendor.exchanges('jwt')).toBe(exchanges + 1);
    // A new Lambda environment serves the new token from the table.
    const fresh = answer(await (await instance('Http')).invoke<APIGatewayProxyResult>(tokenRequest('e2e-jwt')));
    expect(vendor.exchanges('jwt')).toBe(exchanges + 1);
    expect(fresh.connection).toBe('e2e-jwt');
    expect(fingerprintOf(fresh.access_token)).toBe(after?.fingerprint?.S);
    // The rotation retired the old token in the marks' table: put back into the token table (a writer of it, or a
    // restore), it is refused by another new environment, which mints anew rather than serve it.
    await putItem(before!);
    const rolledBack = answer(await (await instance('Http')).invoke<APIGatewayProxyResult>(tokenRequest('e2e-jwt')));
    expect(fingerprintOf(rolledBack.access_token)).not.toBe(before?.fingerprint?.S);
    expect(vendor.exchanges('jwt')).toBe(exchanges + 2);

    const v3 = rotateAtVendorAndInSecretsManager('broker/e2e-jwt', 'e2e-rotated-secret-v3');
    const rotated = await rotation.invoke<{ connections: Record<string, unknown> }>(cloudTrailServiceEvent('RotationSucceeded', sm.arnOf('broker/e2e-jwt')));
    expect(rotated.connections['e2e-jwt']).toEqual({ evicted: true, minted: true });
    expect((await tokenItem('e2e-jwt'))?.secretVersion?.S).toBe(v3);
    expect(fresh.access_token).toBeTruthy();
  });

  it('a secret changed with no event at all is picked up by the next pre-warm run, through its batch read', async () => {
    const v4 = rotateAtVendorAndInSecretsManager('broker/e2e-jwt', 'e2e-rotated-secret-v4');
    const exchanges = vendor.exchanges('jwt');
    const batches = sm.count('BatchGetSecretValue');
    const report = await prewarm.invoke<{ outcomes: Record<string, string> }>(schedulerEvent());
    expect(report.outcomes).toMatchObject({ 'e2e-jwt': 'rotated', 'e2e-warm': 'fresh' });
    expect(sm.count('BatchGetSecretValue')).toBe(batches + 1);
    expect((await tokenItem('e2e-jwt'))?.secretVersion?.S).toBe(v4);
    expect(vendor.exchanges('jwt')).toBe(exchanges + 1);
    // Once unchanged, the next run is its one batch read, and nothing else reads a secret.
    const calls = operationsOf('Prewarm').length;
    expect((await prewarm.invoke<{ outcomes: Record<string, string> }>(schedulerEvent())).outcomes['e2e-jwt']).toBeUndefined();
    expect(operationsOf('Prewarm').slice(calls)).toEqual(['BatchGetSecretValue']);
  });

  it("the pre-warm role's grants, as the template writes them, let BatchGetSecretValue return the configured secrets and no other", async () => {
    sm.put('broker/not-configured', { client_id: 'x', client_secret: 'e2e-not-configured-secret' });
    const ask = async (name: string) => {
      const client = new SecretsManagerClient({ endpoint: sm.endpoint, region: REGION, credentials: roleCredentials(name), maxAttempts: 1 });
      try {
        return await client.send(new BatchGetSecretValueCommand({ SecretIdList: ['broker/e2e-warm', sm.arnOf('broker/e2e-jwt'), 'broker/not-configured'] }));
      } finally {
        client.destroy();
      }
    };
    const out = await ask('Prewarm');
    expect(out.SecretValues?.map((v) => v.Name).sort()).toEqual(['broker/e2e-jwt', 'broker/e2e-warm']);
    expect(out.Errors).toEqual([expect.objectContaining({ SecretId: 'broker/not-configured', ErrorCode: 'AccessDeniedException' })]);
    // A role without the action (the rotation function's) is refused the whole call.
    await expect(ask('Rotation')).rejects.toMatchObject({ name: 'AccessDeniedException' });
  });

  it('the static dialect hands out the stored credential as it is, with no vendor call', async () => {
    const received = vendor.received();
    const pat = answer(await httpA.invoke<APIGatewayProxyResult>(tokenRequest('e2e-pat')));
    expect(pat).toMatchObject({ connection: 'e2e-pat', token_type: 'Bearer', access_token: PAT, authorization: `Bearer ${PAT}` });
    expect(vendor.received()).toBe(received);
  });

  it('a connection registered through a REST proxy event to one instance is served by a second process, and deleted', async () => {
    const prefix = fn('Http').environment[ENV.secretPrefix];
    // Under the stack's own prefix a new secret is granted by its wildcard; under the fallback, one granted exactly.
    const secretId = typeof prefix === 'string' ? `${prefix}registered` : 'broker/e2e-jwt';
    if (typeof prefix === 'string') sm.put(secretId, secretFor(vendor, 'jwt'));
    const path = '/v1/connections/e2e-registered';
    const definition = { dialect: 'oauth2', tokenUrl: front.url(vendor.tokenUrl('jwt')), secretId, callers: [`arn:aws:iam::${ACCOUNT}:role/campaigns-*`] };
    const put = await httpA.invoke<APIGatewayProxyResult>(restEvent({ method: 'PUT', path, userArn: ADMIN_SESSION, body: JSON.stringify(definition) }));
    expect(put.statusCode, put.body).toBe(201);
    const { etag } = JSON.parse(put.body) as { etag: string };
    // The second process has never seen the id: its first look reads the table, well within 60 s.
    const served = answer(await httpB.invoke<APIGatewayProxyResult>(tokenRequest('e2e-registered')));
    expect(served).toMatchObject({ connection: 'e2e-registered', token_type: 'Bearer' });
    const described = await httpB.invoke<APIGatewayProxyResult>(restEvent({ method: 'GET', path, userArn: ADMIN_SESSION }));
    expect(JSON.parse(described.body)).toMatchObject({ source: 'api', etag });
    const stale = await httpB.invoke<APIGatewayProxyResult>(restEvent({ method: 'DELETE', path, userArn: ADMIN_SESSION, headers: { 'If-Match': '"stale"' } }));
    expect(stale.statusCode).toBe(412);
    const deleted = await httpB.invoke<APIGatewayProxyResult>(restEvent({ method: 'DELETE', path, userArn: ADMIN_SESSION, headers: { 'If-Match': `"${etag}"` } }));
    expect(deleted.statusCode).toBe(204);
    const gone = await httpB.invoke<APIGatewayProxyResult>(tokenRequest('e2e-registered'));
    expect(gone.statusCode).toBe(403);
    expect(await tokenItem('e2e-registered').then((item) => item?.ct)).toBeUndefined();
  });

  it("every KMS and Secrets Manager operation a function called is allowed by its role's policy in the template", () => {
    for (const [name, f] of Object.entries(assembly.functions)) {
      const key = roleCredentials(name).accessKeyId;
      const called = new Set([
        ...kms.calls.filter((c) => c.accessKeyId === key).map((c) => `kms:${c.operation}`),
        // A call refused as the policy says (a test's own probe of it) is the policy at work, not a call it missed.
        ...sm.calls.filter((c) => c.accessKeyId === key && c.error !== 'AccessDeniedException').map((c) => `secretsmanager:${c.operation}`),
      ]);
      for (const action of called) expect(allows(f.allowedActions, action), `${name} calls ${action}`).toBe(true);
    }
    // The check is not vacuous: each trigger reached both services.
    expect(new Set(kms.calls.map((c) => c.accessKeyId).filter((k) => byKey.has(k))).size).toBe(3);
    expect(new Set(sm.calls.map((c) => c.accessKeyId).filter((k) => byKey.has(k))).size).toBe(3);
  });

  it("the key's own policy refuses a data key with the broker's encryption context to any principal but the functions", async () => {
    // The fleet adopts the oldest data key it reads from the table: a principal that IAM lets use the key (an admin
    // role, a careless grant) could otherwise make one it knows, plant it, and read what the fleet then seals. Nor
    // does a near miss pass: another stage or region, a longer name, the same name under a path or in another account.
    const http = `token-broker-${STAGE}-${REGION}-http`;
    const role = (name: string, account = ACCOUNT) => `arn:aws:iam::${account}:role/${name}`;
    const planters = [
      role('ops-admin'),
      role(`token-broker-${STAGE}-eu-west-2-http`),
      role(`token-broker-${STAGE}x-${REGION}-http`),
      role(`${http}-x`),
      role(`ops/${http}`),
      role(http, '222222222222'),
    ];
    // A data key the functions wrapped, as the table holds it: its birth time is part of its encryption context.
    const envelope = Buffer.from((await tokenItem('e2e-jwt'))!.ct!.B!);
    const wrapped = envelope.subarray(9, 9 + envelope.readUInt16BE(7));
    const context = dataKeyContext(envelope.readUIntBE(1, 6));
    for (const [i, arn] of planters.entries()) {
      const planter = roleCredentials(`planter${i}`);
      kms.trust(planter);
      roles.set(planter.accessKeyId, arn);
      const client = new KMSClient({ endpoint: kms.endpoint, region: REGION, credentials: planter, maxAttempts: 1 });
      try {
        await expect(
          client.send(new GenerateDataKeyCommand({ KeyId: kms.keyId, KeySpec: 'AES_256', EncryptionContext: { ...ENCRYPTION_CONTEXT } })),
          arn,
        ).rejects.toMatchObject({ name: 'AccessDeniedException' });
        // Nor may it unwrap the fleet's data key it read from the table.
        await expect(client.send(new DecryptCommand({ KeyId: kms.keyId, CiphertextBlob: wrapped, EncryptionContext: context })), arn).rejects.toMatchObject({
          name: 'AccessDeniedException',
        });
        // Only the broker's context is refused: any other use of the key stays IAM's to decide.
        const other = await client.send(new GenerateDataKeyCommand({ KeyId: kms.keyId, KeySpec: 'AES_256', EncryptionContext: { app: 'another-app' } }));
        expect(other.CiphertextBlob?.length).toBeGreaterThan(0);
      } finally {
        client.destroy();
      }
    }
    // Under the same policy, the functions did get theirs: every one of their KMS calls went through.
    const functionCalls = kms.calls.filter((c) => byKey.has(c.accessKeyId));
    expect(functionCalls.filter((c) => c.operation === 'GenerateDataKey').length).toBeGreaterThan(0);
    expect(functionCalls.filter((c) => c.error !== undefined)).toEqual([]);
  });

  it('nothing secret in anything the functions printed', () => {
    const lines = instances.flatMap((i) => i.output());
    // The scan is not vacuous: the functions did log, as JSON, and what they minted is among the lines.
    expect(lines.some((l) => l.includes('minted a token'))).toBe(true);
    expect(lines.filter((l) => l.includes('No application metrics'))).toEqual([]);
    const secrets = [...knownSecrets()];
    expect(secrets.length).toBeGreaterThan(5);
    const leaks = secrets.filter((s) => lines.some((l) => l.includes(s)));
    expect(leaks.length, 'secrets printed by a function').toBe(0);
  });
});
