import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addChecks, buildApp, checkDeployable, describeDeployment, type AppEnvironment } from '../../infra/app';
import { GATEWAY_RESPONSES, NOT_FOUND_METHOD } from '../../infra/constructs/broker-api';
import { BrokerFunction } from '../../infra/constructs/broker-function';
import { samplingRuleName } from '../../infra/constructs/broker-api';
import { ACCESS_LOG_FIELDS, LAMBDA_LOG_LEVELS, TRACE_SAMPLING, accessLogFormat } from '../../infra/observability';
import { sampledTraces } from '../../bench/cost';
import { readSettings } from '../../infra/settings';
import { KEY_WRAPPING_ACTIONS } from '../../infra/constructs/token-store';
import { ENCRYPTION_CONTEXT } from '../../lib/contract';
import { expectProblem, renderGatewayAnswers } from '../support/gateway-responses';
import { iamMatches } from '../support/iam';

// The synthesized templates, asserted property by property. Two apps are synthesized once each and shared by the
// tests: "main" (the defaults, a known account and region) and "private" (every operating option turned the other
// way, environment-agnostic). A third, one-function app proves cdk-nag still bites.

const run = promisify(execFile);
const ACCOUNT = '111111111111';
const REGION = 'eu-west-1';
const SECRET = (name: string, region = REGION, account = ACCOUNT) => `arn:aws:secretsmanager:${region}:${account}:secret:${name}`;
const SECRET_KEY = `arn:aws:kms:${REGION}:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
/** A key granted by context secretKmsKeys, for connections registered at runtime. */
const REGISTERED_KEY = `arn:aws:kms:${REGION}:${ACCOUNT}:key/mrk-0123456789abcdef0123456789abcdef`;
const VPC_ENDPOINTS = ['vpce-0123456789abcdef0', 'vpce-0fedcba9876543210'];

/** Every spelling of a secret a user may write, and the secret's real ARN (with its random suffix) it must reach. */
const SPELLINGS = [
  { id: 'by-name', secretId: 'broker/digitaleo-prod', real: SECRET('broker/digitaleo-prod-Xy12Ab') },
  { id: 'by-partial-arn', secretId: SECRET('broker/docoon-client'), real: SECRET('broker/docoon-client-Q1w2E3'), secretKmsKeyArn: SECRET_KEY },
  { id: 'by-full-arn', secretId: SECRET('broker/digishare-prod-AbC123'), real: SECRET('broker/digishare-prod-AbC123') },
  { id: 'by-name-like-a-suffix', secretId: 'broker/sms-sender', real: SECRET('broker/sms-sender-Zz9Yy8') },
];
/** Secrets no spelling above may reach. */
const OTHERS = [
  SECRET('broker/digitaleo-prod-extra-Xy12Ab'),
  SECRET('broker/digitaleo-prodX-Xy12Ab'),
  SECRET('broker/docoon-client2-Q1w2E3'),
  SECRET('broker/docoon-client-Q1w2E3', 'us-east-1'),
  SECRET('broker/docoon-client-Q1w2E3', REGION, '222222222222'),
  SECRET('broker/sms-sender-extra-Zz9Yy8'),
  SECRET('broker/digishare-prod-AbC124'),
];

let work: string;
let fixture: string;

function connectionsFile(dir: string, name: string, connections: Record<string, unknown>[]): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify({ connections, admins: [`arn:aws:iam::${ACCOUNT}:role/secrets-rotation`] }));
  return path;
}

const connection = (s: { id: string; secretId: string; secretKmsKeyArn?: string }) => ({
  id: s.id,
  dialect: 'digitaleo',
  tokenUrl: 'https://vendor.example/oauth/token',
  secretId: s.secretId,
  ...(s.secretKmsKeyArn ? { secretKmsKeyArn: s.secretKmsKeyArn } : {}),
  callers: [`arn:aws:iam::${ACCOUNT}:role/campaigns-*`],
  prewarm: true,
});

interface Synthesized {
  outdir: string;
  built: ReturnType<typeof buildApp>;
  broker: Template;
  data: Template;
}

function synth(context: Record<string, string>, env: AppEnvironment): Synthesized {
  const outdir = mkdtempSync(join(work, 'cdk-'));
  const built = buildApp(new App({ outdir, context: { connectionsFile: fixture, ...context } }), env);
  built.app.synth();
  return { outdir, built, broker: Template.fromStack(built.broker), data: Template.fromStack(built.stateful) };
}

let main: Synthesized;
let priv: Synthesized;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'infra-test-'));
  fixture = connectionsFile(work, 'connections.json', SPELLINGS.map(connection));
  main = synth({ stage: 'test', allowedAccounts: `${ACCOUNT},222222222222`, secretKmsKeys: REGISTERED_KEY }, { account: ACCOUNT, region: REGION });
  priv = synth(
    { stage: 'priv', cloudTrail: 'existing', endpointType: 'PRIVATE', vpcEndpointIds: VPC_ENDPOINTS.join(','), apiGatewayCloudWatchRole: 'true', tracingRate: '0' },
    {},
  );
}, 240_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

type Statement = { Action: string | string[]; Resource: unknown; Condition?: Record<string, Record<string, unknown>>; Effect: string; Sid?: string };
type Resource = { Type: string; Properties: Record<string, any>; DeletionPolicy?: string; DependsOn?: string[] };

const actionsOf = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);
const resourcesOf = (s: Statement) => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]);
const resources = (t: Template, type: string) => t.findResources(type) as Record<string, Resource>;

/** Every IAM statement of a template: policies, roles' inline policies, managed policies. */
function iamStatements(t: Template): { owner: string; statement: Statement }[] {
  const out: { owner: string; statement: Statement }[] = [];
  for (const [id, r] of Object.entries(t.toJSON().Resources as Record<string, Resource>)) {
    const documents =
      r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy'
        ? [r.Properties.PolicyDocument]
        : r.Type === 'AWS::IAM::Role'
          ? (r.Properties.Policies ?? []).map((p: { PolicyDocument: unknown }) => p.PolicyDocument)
          : [];
    for (const d of documents) for (const statement of d.Statement as Statement[]) out.push({ owner: id, statement });
  }
  return out;
}

/** The statements of the policies attached to a role (by the role's logical id), inline and customer managed. */
function statementsOfRole(t: Template, roleId: string): Statement[] {
  const role = JSON.stringify({ Ref: roleId });
  const managedArns = ((resources(t, 'AWS::IAM::Role')[roleId]!.Properties.ManagedPolicyArns ?? []) as unknown[]).map((a) => JSON.stringify(a));
  return [...Object.entries(resources(t, 'AWS::IAM::Policy')), ...Object.entries(resources(t, 'AWS::IAM::ManagedPolicy'))]
    .filter(([id, p]) => ((p.Properties.Roles ?? []) as unknown[]).some((r) => JSON.stringify(r) === role) || managedArns.includes(JSON.stringify({ Ref: id })))
    .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Statement[]);
}

/** The wildcard grant of the stage's secret prefix, rendered. */
const prefixGrant = (stage: string) => `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:token-broker/${stage}/*`;

/** Renders an ARN the way CloudFormation would for this account and region. */
function renderArn(value: unknown): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, any>;
  if (v['Fn::Join']) return (v['Fn::Join'][1] as unknown[]).map(renderArn).join(v['Fn::Join'][0]);
  const pseudo: Record<string, string> = { 'AWS::Partition': 'aws', 'AWS::Region': REGION, 'AWS::AccountId': ACCOUNT };
  if (v.Ref && pseudo[v.Ref]) return pseudo[v.Ref]!;
  throw new Error(`cannot render ${JSON.stringify(value)}`);
}


/** The console's widget function (test/infra/console.test.ts): not one of the broker's three. */
const isConsoleWidget = (fn: Resource) => String(fn.Properties.FunctionName ?? '').startsWith('customWidget-');
const functionsOf = (t: Template) => Object.entries(resources(t, 'AWS::Lambda::Function')).filter(([, fn]) => !isConsoleWidget(fn));
const functionByDescription = (t: Template, d: string) => functionsOf(t).find(([, f]) => f.Properties.Description === d)!;

describe('stateful stack', () => {
  it('keeps tokens in an on-demand table with TTL, PITR, the customer-managed key, deletion protection, retained', () => {
    main.data.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: {
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        DeletionProtectionEnabled: true,
        SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: Match.anyValue() },
      },
    });
  });

  it('has a rotated, retained KMS key', () => {
    main.data.hasResource('AWS::KMS::Key', { DeletionPolicy: 'Retain', Properties: { EnableKeyRotation: true } });
  });

  it("refuses a data key with the broker's encryption context to every principal but the broker's functions, whatever IAM grants", () => {
    // The fleet adopts the oldest data key it reads from the table: a principal that may write the table and obtain
    // (or encrypt) a key under this CMK with the broker's context could plant one it knows, and read the tokens the
    // fleet then seals under it. The key policy's Deny holds whatever identity policies elsewhere allow.
    const keys = Object.values(resources(main.data, 'AWS::KMS::Key'));
    expect(keys).toHaveLength(1);
    const statements = keys[0]!.Properties.KeyPolicy.Statement as Statement[];
    const deny = statements.filter((st) => st.Effect === 'Deny');
    expect(deny).toEqual([
      {
        Sid: 'OnlyTheBrokerFunctionsUseTokenKeys',
        Effect: 'Deny',
        Principal: { AWS: '*' },
        Action: [...KEY_WRAPPING_ACTIONS],
        Resource: '*',
        Condition: {
          StringEquals: { 'kms:EncryptionContext:app': ENCRYPTION_CONTEXT.app, 'kms:EncryptionContext:purpose': ENCRYPTION_CONTEXT.purpose },
          ArnNotLike: { 'aws:PrincipalArn': expect.any(Array) },
        },
      },
    ]);
    // Exactly the three functions' roles of this stage and region, by full ARN: no wildcard, so neither another
    // stage whose name starts the same nor a role of the same name under a path passes.
    const arns = (deny[0]!.Condition as { ArnNotLike: { 'aws:PrincipalArn': unknown[] } }).ArnNotLike['aws:PrincipalArn'].map(renderArn);
    expect(arns).toEqual(['http', 'prewarm', 'rotation'].map((fn) => `arn:aws:iam::${ACCOUNT}:role/token-broker-test-${REGION}-${fn}`));
    // Everything that gives a caller a wrapped key it knows the plaintext of, or unwraps a token's data key, is in the list.
    for (const action of ['kms:Encrypt', 'kms:GenerateDataKey', 'kms:GenerateDataKeyPair', 'kms:ReEncryptTo', 'kms:Decrypt']) {
      expect(actionsOf(deny[0]!).some((a) => iamMatches(a, action)), action).toBe(true);
    }
  });

  it("keeps the retired marks in a table of their own whose item writes are denied to every principal but the broker's roles", () => {
    // Whoever can write the token table (or restore it) must not lower a mark: the Deny holds whatever IAM grants.
    const tables = Object.values(resources(main.data, 'AWS::DynamoDB::Table'));
    const marks = tables.find((t) => t.Properties.TableName === 'token-broker-test-marks');
    expect(marks).toBeDefined();
    expect(marks!.DeletionPolicy).toBe('Retain');
    expect(marks!.Properties).toMatchObject({
      BillingMode: 'PAY_PER_REQUEST',
      DeletionProtectionEnabled: true,
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true, SSEType: 'KMS' },
    });
    // No TTL: a mark must outlive every token it retires.
    expect(marks!.Properties.TimeToLiveSpecification).toBeUndefined();
    const statements = marks!.Properties.ResourcePolicy.PolicyDocument.Statement as Statement[];
    expect(statements).toHaveLength(1);
    const deny = statements[0]!;
    expect(deny).toMatchObject({ Sid: 'OnlyTheBrokerFunctionsWriteMarks', Effect: 'Deny', Principal: { AWS: '*' } });
    expect(renderArn(deny.Resource)).toBe(`arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/token-broker-test-marks`);
    for (const action of ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:BatchWriteItem', 'dynamodb:PartiQLInsert', 'dynamodb:PartiQLUpdate', 'dynamodb:PartiQLDelete']) {
      expect(actionsOf(deny).some((a) => iamMatches(a, action)), action).toBe(true);
    }
    const arns = (deny.Condition as { ArnNotLike: { 'aws:PrincipalArn': unknown[] } }).ArnNotLike['aws:PrincipalArn'].map(renderArn);
    expect(arns).toEqual(['http', 'prewarm', 'rotation'].map((fn) => `arn:aws:iam::${ACCOUNT}:role/token-broker-test-${REGION}-${fn}`));
    // Reads stay with IAM: the functions read and raise marks, and no statement lets anyone else write.
    expect(statements.filter((st) => st.Effect === 'Allow')).toEqual([]);
  });

  it('gives every function the retired marks: its table in the environment, read and raise on it only', () => {
    for (const [, fn] of functionsOf(main.broker)) {
      expect(Object.keys(fn.Properties.Environment.Variables)).toContain('BROKER_MARKS_TABLE');
    }
  });

  it("names exactly the three functions' roles as the key's policy expects, so its Deny does not lock the broker out", () => {
    const functionRoles = functionsOf(main.broker).map(([, fn]) => fn.Properties.Role['Fn::GetAtt'][0] as string);
    const roles = resources(main.broker, 'AWS::IAM::Role');
    expect(functionRoles.map((id) => renderArn(roles[id]!.Properties.RoleName)).sort()).toEqual(
      ['http', 'prewarm', 'rotation'].map((fn) => `token-broker-test-${REGION}-${fn}`),
    );
    // No other role of either stack has a name of its own (CDK names them), so none can be one of those three.
    for (const t of [main.broker, main.data]) {
      for (const [id, role] of Object.entries(resources(t, 'AWS::IAM::Role'))) {
        if (!functionRoles.includes(id)) expect(role.Properties.RoleName, id).toBeUndefined();
      }
    }
  });
});

describe('secret change events through CloudTrail', () => {
  it('cloudTrail=create (the default): a trail of write management events in this region, into an encrypted, private, expiring bucket', () => {
    main.data.hasResourceProperties('AWS::CloudTrail::Trail', {
      IsLogging: true,
      IsMultiRegionTrail: false,
      IncludeGlobalServiceEvents: false,
      EnableLogFileValidation: true,
      EventSelectors: [{ IncludeManagementEvents: true, ReadWriteType: 'WriteOnly' }],
      S3BucketName: { Ref: Match.stringLikeRegexp('^SecretEventsBucket') },
    });
    main.data.hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Retain',
      Properties: {
        BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
        LifecycleConfiguration: { Rules: [Match.objectLike({ Status: 'Enabled', ExpirationInDays: 90, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } })] },
      },
    });
    main.data.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          Match.objectLike({ Effect: 'Allow', Action: 's3:PutObject', Principal: { Service: 'cloudtrail.amazonaws.com' } }),
        ]),
      },
    });
    Annotations.fromStack(main.built.broker).hasInfo('/TokenBroker-test/SecretChanges', Match.stringLikeRegexp('CloudTrail trail the data stack creates'));
  });

  it('cloudTrail=existing: no trail, and the synth warns what the rule relies on', () => {
    priv.data.resourceCountIs('AWS::CloudTrail::Trail', 0);
    priv.data.resourceCountIs('AWS::S3::Bucket', 0);
    Annotations.fromStack(priv.built.broker).hasWarning('/TokenBroker-priv/SecretChanges', Match.stringLikeRegexp('only if a CloudTrail trail records write management events in this region'));
  });

  it("rejects at synth time a secret ARN in another region or account than the stack's, saying why", () => {
    const build = (secretId: string) => () =>
      buildApp(
        new App({ outdir: mkdtempSync(join(work, 'reject-')), context: { connectionsFile: connectionsFile(work, 'elsewhere.json', [connection({ id: 'elsewhere', secretId })]) } }),
        { account: ACCOUNT, region: REGION },
      );
    expect(build(SECRET('broker/x', 'us-east-1'))).toThrow(
      /connection elsewhere: its secret's ARN names region us-east-1, but this stack deploys to region eu-west-1\. Secret change events are regional and same-account/,
    );
    expect(build(SECRET('broker/x', 'us-east-1'))).toThrow('replicate the secret into this region');
    expect(build(SECRET('broker/x', REGION, '222222222222'))).toThrow(/names account 222222222222, but this stack deploys to account 111111111111/);
  });

  it('checks at deploy time, by a CloudFormation rule, when the stack is environment-agnostic', () => {
    const rules = priv.broker.toJSON().Rules as Record<string, { Assertions: { Assert: unknown; AssertDescription: string }[] }>;
    expect(rules.SecretsInThisRegion!.Assertions).toEqual([
      { Assert: { 'Fn::Equals': [{ Ref: 'AWS::Region' }, REGION] }, AssertDescription: expect.stringContaining('region eu-west-1') },
    ]);
    expect(rules.SecretsInThisAccount!.Assertions).toEqual([
      { Assert: { 'Fn::Equals': [{ Ref: 'AWS::AccountId' }, ACCOUNT] }, AssertDescription: expect.stringContaining('account 111111111111') },
    ]);
    expect(main.broker.toJSON().Rules?.SecretsInThisRegion).toBeUndefined();
  });
});

describe('functions', () => {
  it('are three, on nodejs22.x arm64, tracing what the stage samples, JSON logs in their own log group, and bounded timeouts', () => {
    expect(functionsOf(main.broker)).toHaveLength(3);
    for (const [, fn] of functionsOf(main.broker)) {
      expect(fn.Properties).toMatchObject({
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        TracingConfig: { Mode: 'PassThrough' },
        LoggingConfig: { LogFormat: 'JSON', SystemLogLevel: 'WARN', ApplicationLogLevel: 'INFO', LogGroup: { Ref: expect.stringMatching(/Logs/) } },
        Handler: 'index.handler',
      });
      expect(fn.Properties.Timeout).toBeLessThanOrEqual(60);
      expect(fn.Properties.Environment.Variables).toMatchObject({
        NODE_OPTIONS: '--enable-source-maps',
        BROKER_CONFIG: 'broker.config.json',
        BROKER_TABLE: expect.anything(),
        BROKER_KEY_ID: expect.anything(),
        POWERTOOLS_SERVICE_NAME: 'token-broker',
        POWERTOOLS_METRICS_NAMESPACE: 'TokenBroker',
        // What the runtime checks a registered connection's secret and key against (issue 19).
        BROKER_SECRET_PREFIX: 'token-broker/test/',
        BROKER_SECRET_KMS_KEYS: `${SECRET_KEY},${REGISTERED_KEY}`,
      });
    }
    for (const [, fn] of functionsOf(priv.broker)) {
      expect(fn.Properties.Environment.Variables).toMatchObject({ BROKER_SECRET_PREFIX: 'token-broker/priv/', BROKER_SECRET_KMS_KEYS: SECRET_KEY });
    }
    expect(functionByDescription(main.broker, 'token-broker HTTP API')[1].Properties.Timeout).toBeLessThan(29);
  });

  it('log groups keep 90 days', () => {
    main.broker.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
  });

  it('each writes only to its own log group, with no AWSLambdaBasicExecutionRole', () => {
    for (const t of [main.broker, priv.broker, main.data]) {
      for (const [, role] of Object.entries(resources(t, 'AWS::IAM::Role'))) {
        expect(JSON.stringify(role.Properties.ManagedPolicyArns ?? [])).not.toContain('AWSLambdaBasicExecutionRole');
      }
    }
    for (const [, fn] of functionsOf(main.broker)) {
      const roleId = fn.Properties.Role['Fn::GetAtt'][0] as string;
      const logGroupId = fn.Properties.LoggingConfig.LogGroup.Ref as string;
      const logs = statementsOfRole(main.broker, roleId).filter((s) => actionsOf(s).some((a) => a.startsWith('logs:')));
      expect(logs).toEqual([
        { Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Effect: 'Allow', Resource: { 'Fn::GetAtt': [logGroupId, 'Arn'] } },
      ]);
    }
  });

  it('send failed asynchronous invocations to the dead-letter queue: pre-warm without retries (the next minute is the retry), rotation twice', () => {
    const configs = Object.values(resources(main.broker, 'AWS::Lambda::EventInvokeConfig'));
    const retriesOf = (fnId: string) => configs.find((c) => c.Properties.FunctionName.Ref === fnId)?.Properties;
    const [prewarmId] = functionByDescription(main.broker, 'token-broker scheduled pre-warming');
    const [rotationId] = functionsOf(main.broker).find(([id]) => id.startsWith('Rotation'))!;
    expect(retriesOf(prewarmId)).toMatchObject({ MaximumRetryAttempts: 0, DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [expect.stringMatching(/^DeadLetters/), 'Arn'] } } } });
    expect(retriesOf(rotationId)).toMatchObject({ MaximumRetryAttempts: 2, DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [expect.stringMatching(/^DeadLetters/), 'Arn'] } } } });
    expect(configs).toHaveLength(2);
    main.broker.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true });
  });

  it('bundle the connections file, minified ESM with source maps; DynamoDB up front, Secrets Manager and KMS on first use', () => {
    const widgetCode = String(Object.values(resources(main.broker, 'AWS::Lambda::Function')).find(isConsoleWidget)?.Properties.Code.S3Key);
    const assets = Object.entries(
      JSON.parse(readFileSync(join(main.outdir, `${main.built.broker.artifactId}.assets.json`), 'utf8')).files as Record<string, { source: { path: string; packaging?: string } }>,
    )
      .filter(([hash, a]) => a.source.packaging === 'zip' && widgetCode !== `${hash}.zip`)
      .map(([, a]) => a);
    expect(assets).toHaveLength(3);
    for (const a of assets) {
      const dir = join(main.outdir, a.source.path);
      expect(JSON.parse(readFileSync(join(dir, 'broker.config.json'), 'utf8')).connections.map((c: { id: string }) => c.id)).toEqual(SPELLINGS.map((s) => s.id));
      const code = readFileSync(join(dir, 'index.mjs'), 'utf8');
      expect(code.startsWith('import{createRequire}')).toBe(true);
      expect(code.split('\n').length).toBeLessThan(50);
      // The runtime provides the SDK; only the hot path's client is imported at cold start.
      expect(code).toContain('from"@aws-sdk/client-dynamodb"');
      expect(code).toContain('import("@aws-sdk/client-secrets-manager")');
      expect(code).toContain('import("@aws-sdk/client-kms")');
      expect(code).not.toMatch(/from"@aws-sdk\/client-(secrets-manager|kms)"/);
      expect(code).not.toContain('@aws-sdk/lib-dynamodb');
      expect(readFileSync(join(dir, 'index.mjs.map'), 'utf8').length).toBeGreaterThan(0);
    }
  });
});

describe('least privilege, derived from the connections file', () => {
  it('no statement in any policy has Resource "*" but those of actions with no resource-level permissions: X-Ray\'s, and pre-warm\'s BatchGetSecretValue', () => {
    for (const t of [main.broker, main.data, priv.broker, priv.data]) {
      const statements = iamStatements(t);
      if (t === main.broker || t === priv.broker) expect(statements.length).toBeGreaterThan(10);
      const batchReads: string[] = [];
      for (const { owner, statement } of statements) {
        if (!resourcesOf(statement).includes('*')) continue;
        if (actionsOf(statement).includes('secretsmanager:BatchGetSecretValue')) {
          expect(statement, owner).toEqual({ Action: 'secretsmanager:BatchGetSecretValue', Effect: 'Allow', Resource: '*' });
          batchReads.push(owner);
        } else {
          expect(actionsOf(statement).sort(), owner).toEqual(['xray:PutTelemetryRecords', 'xray:PutTraceSegments']);
        }
      }
      // Exactly one: the pre-warm function's own policy.
      expect(batchReads.map((owner) => owner.replace(/[0-9A-F]{8}$/, ''))).toEqual(t === main.broker || t === priv.broker ? ['PrewarmSecretBatchRead'] : []);
    }
  });

  it('BatchGetSecretValue reads no value by itself: each secret still needs GetSecretValue on its ARN, and nothing else is granted on *', () => {
    for (const t of [main.broker, priv.broker]) {
      const [, prewarm] = functionByDescription(t, 'token-broker scheduled pre-warming');
      const roleId = prewarm.Properties.Role['Fn::GetAtt'][0];
      const statements = statementsOfRole(t, roleId);
      const batch = statements.filter((s) => actionsOf(s).includes('secretsmanager:BatchGetSecretValue'));
      expect(batch).toEqual([{ Action: 'secretsmanager:BatchGetSecretValue', Effect: 'Allow', Resource: '*' }]);
      const values = statements.filter((s) => actionsOf(s).includes('secretsmanager:GetSecretValue'));
      // The prefix's wildcard, and the file's other secrets exactly.
      expect(values).toHaveLength(2);
      const granted = values.flatMap((v) => resourcesOf(v).map(renderArn));
      expect(granted.filter((p) => p.includes('*'))).toEqual([prefixGrant(t === main.broker ? 'test' : 'priv')]);
      // Filters would need ListSecrets: the broker asks by SecretIdList only, and is granted no ListSecrets.
      expect(statements.flatMap(actionsOf)).not.toContain('secretsmanager:ListSecrets');
      // The pre-warm function starts only once its policy exists (its first run would otherwise fail the batch read).
      const policyId = Object.keys(resources(t, 'AWS::IAM::Policy')).find((id) => id.startsWith('PrewarmSecretBatchRead'))!;
      expect(prewarm.DependsOn ?? []).toContain(policyId);
    }
  });

  for (const role of ['HttpServiceRole', 'PrewarmServiceRole', 'RotationServiceRole']) {
    it(`${role}: item actions on the tables only (read and raise on the marks), the keys only with their conditions, exactly the configured secrets`, () => {
      const roleId = Object.keys(resources(main.broker, 'AWS::IAM::Role')).find((id) => id.startsWith(role))!;
      const statements = statementsOfRole(main.broker, roleId);
      const dynamo = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('dynamodb:')));
      expect(dynamo).toHaveLength(2);
      const [tokens, marks] = dynamo.sort((a, b) => actionsOf(b).length - actionsOf(a).length);
      expect(actionsOf(tokens!).sort()).toEqual(['dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem']);
      expect(JSON.stringify(tokens!.Resource)).toContain('TokenStoreTable');
      expect(actionsOf(marks!).sort()).toEqual(['dynamodb:GetItem', 'dynamodb:UpdateItem']);
      expect(JSON.stringify(marks!.Resource)).toContain('TokenStoreMarks');
      for (const s of dynamo) expect(JSON.stringify(s.Resource)).not.toContain('*');

      const kms = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')));
      expect(kms).toHaveLength(3);
      // DescribeKey carries no encryption context, so a grant of it under these conditions could never match.
      for (const s of kms) expect(actionsOf(s)).not.toContain('kms:DescribeKey');
      const envelope = kms.find((s) => JSON.stringify(s.Condition).includes('kms:EncryptionContext:app'));
      expect(actionsOf(envelope!).sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
      expect(envelope!.Condition).toEqual({
        StringEquals: { 'kms:EncryptionContext:app': ENCRYPTION_CONTEXT.app, 'kms:EncryptionContext:purpose': ENCRYPTION_CONTEXT.purpose },
      });
      const viaDynamo = kms.find((s) => JSON.stringify(s.Condition).includes(`dynamodb.${REGION}.amazonaws.com`));
      expect(actionsOf(viaDynamo!).sort()).toEqual(['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey']);
      expect(Object.keys(viaDynamo!.Condition!.StringEquals!)).toEqual(['kms:ViaService', 'kms:EncryptionContext:aws:dynamodb:tableName']);
      // A connection's secret encrypted with a customer key: Decrypt on that key, only through Secrets Manager.
      expect(kms.find((s) => JSON.stringify(s.Condition).includes('secretsmanager.'))).toEqual({
        Action: 'kms:Decrypt',
        Effect: 'Allow',
        Resource: [SECRET_KEY, REGISTERED_KEY],
        Condition: { StringEquals: { 'kms:ViaService': `secretsmanager.${REGION}.amazonaws.com` } },
      });

      const secrets = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('secretsmanager:')));
      // GetSecretValue on the configured secrets; the pre-warm run's batch read besides (on *: it takes no resource).
      expect(secrets.filter((s) => s.Resource !== '*').map(actionsOf)).toEqual([['secretsmanager:GetSecretValue'], ['secretsmanager:GetSecretValue']]);
      expect(secrets.filter((s) => s.Resource === '*').map(actionsOf)).toEqual(role === 'PrewarmServiceRole' ? [['secretsmanager:BatchGetSecretValue']] : []);
    });
  }

  it('every spelling of a secret (name, partial ARN, full ARN, a name ending like a suffix) reaches that secret and no other', () => {
    for (const t of [main.broker, priv.broker]) {
      const [httpId, http] = functionByDescription(t, 'token-broker HTTP API');
      void httpId;
      const granted = statementsOfRole(t, http.Properties.Role['Fn::GetAtt'][0])
        .filter((s) => actionsOf(s).includes('secretsmanager:GetSecretValue'))
        .flatMap((s) => resourcesOf(s).map(renderArn));
      for (const s of SPELLINGS) {
        expect(granted.some((p) => iamMatches(p, s.real)), `${s.secretId} reaches ${s.real}`).toBe(true);
      }
      for (const other of OTHERS) expect(granted.filter((p) => iamMatches(p, other)), other).toEqual([]);
      // Exactly: a name or partial ARN gets six characters for the suffix, never a `*`; the one `*` is the prefix's.
      const stage = t === main.broker ? 'test' : 'priv';
      expect(granted.filter((p) => p.includes('*'))).toEqual([prefixGrant(stage)]);
      // Under the prefix: any secret, registered at runtime or named by the file; no other stage's.
      expect(granted.some((p) => iamMatches(p, SECRET(`token-broker/${stage}/tenants/acme-Xy12Ab`)))).toBe(true);
      for (const other of [`token-broker/${stage}2/acme-Xy12Ab`, `token-broker-${stage}/acme-Xy12Ab`]) {
        expect(granted.filter((p) => iamMatches(p, SECRET(other))), other).toEqual([]);
      }
    }
  });
});

describe('API', () => {
  const apiOf = (t: Template) => Object.values(resources(t, 'AWS::ApiGateway::RestApi'))[0]!;

  it('defines every route of openapi.json with AWS_IAM, request validation and the Lambda proxy integration', () => {
    const doc = apiOf(main.broker).Properties.Body;
    const committed = JSON.parse(readFileSync(new URL('../../openapi.json', import.meta.url), 'utf8'));
    let methods = 0;
    for (const [path, ops] of Object.entries<Record<string, unknown>>(committed.paths)) {
      for (const method of Object.keys(ops)) {
        methods += 1;
        const op = doc.paths[path][method];
        expect(op['x-amazon-apigateway-auth']).toEqual({ type: 'AWS_IAM' });
        expect(op['x-amazon-apigateway-request-validator']).toBe('all');
        expect(op['x-amazon-apigateway-integration']).toMatchObject({ type: 'aws_proxy', httpMethod: 'POST' });
      }
    }
    expect(methods).toBeGreaterThanOrEqual(5);
    expect(doc['x-amazon-apigateway-request-validators'].all).toEqual({ validateRequestBody: true, validateRequestParameters: true });
  });

  it('answers 404 not_found, signed, for every path and method that is no route', () => {
    const doc = apiOf(main.broker).Properties.Body;
    const committed = JSON.parse(readFileSync(new URL('../../openapi.json', import.meta.url), 'utf8'));
    for (const path of Object.keys(committed.paths)) {
      const parts = path.split('/').filter(Boolean);
      for (let i = 0; i <= parts.length; i++) {
        const resource = `/${parts.slice(0, i).join('/')}`;
        expect(doc.paths[resource]['x-amazon-apigateway-any-method'], resource).toEqual(NOT_FOUND_METHOD);
      }
    }
    expect(doc.paths['/{proxy+}']['x-amazon-apigateway-any-method']).toMatchObject({ 'x-amazon-apigateway-auth': { type: 'AWS_IAM' } });
    for (const [path, ops] of Object.entries<Record<string, any>>(doc.paths)) {
      for (const op of Object.values(ops)) expect(op['x-amazon-apigateway-auth'], path).toEqual({ type: 'AWS_IAM' });
    }
  });

  it("writes its own refusals as valid problem+json with the API's codes (rendered as API Gateway renders them)", () => {
    for (const t of [main.broker, priv.broker]) {
      const doc = apiOf(t).Properties.Body;
      expect(doc['x-amazon-apigateway-gateway-responses']).toEqual(GATEWAY_RESPONSES);
      const answers = renderGatewayAnswers(doc['x-amazon-apigateway-gateway-responses'], doc.paths['/']['x-amazon-apigateway-any-method']);
      expect(answers.length).toBe(Object.keys(GATEWAY_RESPONSES).length + 1);
      for (const answer of answers) expectProblem(answer);
    }
  });

  it('admits only the configured accounts in its resource policy (regional)', () => {
    const api = apiOf(main.broker);
    expect(api.Properties.EndpointConfiguration).toEqual({ Types: ['REGIONAL'] });
    const [statement, ...rest] = api.Properties.Policy.Statement;
    expect(rest).toEqual([]);
    expect(statement.Effect).toBe('Allow');
    expect(statement.Action).toBe('execute-api:Invoke');
    expect(JSON.stringify(statement.Principal)).toContain('111111111111:root');
    expect(JSON.stringify(statement.Principal)).toContain('222222222222:root');
  });

  it('endpointType=PRIVATE: a private endpoint, reachable only through the named VPC endpoints', () => {
    const api = apiOf(priv.broker);
    expect(api.Properties.EndpointConfiguration).toEqual({ Types: ['PRIVATE'], VpcEndpointIds: VPC_ENDPOINTS });
    const statements = api.Properties.Policy.Statement as Statement[];
    expect(statements.find((s) => s.Effect === 'Allow')).toMatchObject({ Action: 'execute-api:Invoke' });
    expect(statements.find((s) => s.Effect === 'Deny')).toMatchObject({
      Action: 'execute-api:Invoke',
      Principal: { AWS: '*' },
      Condition: { StringNotEquals: { 'aws:SourceVpce': VPC_ENDPOINTS } },
    });
  });

  it('traces, throttles its stage, and logs access as JSON: caller ARN, request id, route, status, latency', () => {
    main.broker.hasResourceProperties('AWS::ApiGateway::Stage', {
      StageName: 'test',
      TracingEnabled: true,
      MethodSettings: Match.arrayWith([Match.objectLike({ ThrottlingRateLimit: 500, ThrottlingBurstLimit: 1000, MetricsEnabled: true, LoggingLevel: 'ERROR', DataTraceEnabled: false })]),
    });
    const stage = Object.values(resources(main.broker, 'AWS::ApiGateway::Stage'))[0]!;
    expect(stage.Properties.AccessLogSetting.DestinationArn).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/AccessLogs/), 'Arn'] });
    const sample: Record<string, string> = {
      '$context.requestId': 'c6af9ac6-7b61-11e6-9a41-93e8deadbeef',
      '$context.identity.sourceIp': '10.0.0.1',
      '$context.error.responseType': 'ACCESS_DENIED',
    };
    const line = JSON.parse((stage.Properties.AccessLogSetting.Format as string).replace(/\$context(?:\.[A-Za-z]+)+/g, (v) => sample[v] ?? '-'));
    // Only what API Gateway alone knows: who, the connection and the status are the audit line's, joined by requestId.
    expect(line).toEqual({ requestId: sample['$context.requestId'], ip: '10.0.0.1', error: 'ACCESS_DENIED' });
    expect(Object.keys(line)).toEqual(Object.keys(ACCESS_LOG_FIELDS));
  });

  it("creates the region's API Gateway CloudWatch role only when asked (apiGatewayCloudWatchRole=true)", () => {
    main.broker.resourceCountIs('AWS::ApiGateway::Account', 0);
    Annotations.fromStack(main.built.broker).hasInfo('/TokenBroker-test/Api', Match.stringLikeRegexp('must already be set'));
    priv.broker.hasResourceProperties('AWS::ApiGateway::Account', { CloudWatchRoleArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('CloudWatchRole'), 'Arn'] } });
  });

  it('may invoke the HTTP function, and only it', () => {
    const permissions = Object.values(resources(main.broker, 'AWS::Lambda::Permission')).filter((p) => p.Properties.Principal === 'apigateway.amazonaws.com');
    expect(permissions).toHaveLength(1);
    expect(permissions[0]!.Properties.FunctionName).toEqual({ 'Fn::GetAtt': [functionByDescription(main.broker, 'token-broker HTTP API')[0], 'Arn'] });
  });
});

describe('triggers', () => {
  it('pre-warms every minute through EventBridge Scheduler, with a dead-letter queue and no retry', () => {
    main.broker.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'rate(1 minute)',
      Target: {
        Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Prewarm'), 'Arn'] },
        RoleArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^PrewarmScheduleRole'), 'Arn'] },
        DeadLetterConfig: Match.anyValue(),
        RetryPolicy: { MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 },
      },
    });
  });

  it("delivers Secrets Manager's change events to the rotation function", () => {
    main.broker.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.secretsmanager'],
        'detail-type': ['AWS API Call via CloudTrail', 'AWS Service Event via CloudTrail'],
        detail: {
          eventSource: ['secretsmanager.amazonaws.com'],
          eventName: ['PutSecretValue', 'UpdateSecret', 'RotateSecret', 'UpdateSecretVersionStage', 'RotationSucceeded'],
        },
      },
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Rotation'), 'Arn'] }, DeadLetterConfig: Match.anyValue(), RetryPolicy: { MaximumRetryAttempts: 2 } })],
    });
  });
});

describe('alarms and dashboard', () => {
  type Alarm = { Properties: Record<string, any> };
  const alarms = () => Object.values(resources(main.broker, 'AWS::CloudWatch::Alarm')) as Alarm[];
  const alarm = (name: string) => alarms().find((a) => a.Properties.AlarmName === `token-broker-test-${name}`)!;

  it('alarm on what an operator must act on, each to the one topic, on alarm and on recovery', () => {
    expect(alarms().map((a) => a.Properties.AlarmName).sort()).toEqual(
      [
        'Cooldowns', 'DeadLetters', 'DecryptionFailures', 'ExchangeFailures', 'HttpErrors', 'HttpThrottles', 'InternalErrors',
        'PrewarmErrors', 'PrewarmThrottles', 'RetiredMarkReads', 'RetiredMarks', 'RotationErrors', 'RotationThrottles', 'StoreDegraded',
      ].map((n) => `token-broker-test-${n}`),
    );
    for (const a of alarms()) {
      expect(a.Properties.AlarmActions).toEqual([{ Ref: expect.stringMatching(/^AlarmTopic/) }]);
      expect(a.Properties.OKActions).toEqual(a.Properties.AlarmActions);
      expect(a.Properties.TreatMissingData).toBe('notBreaching');
      expect(a.Properties.ComparisonOperator).toBe('GreaterThanOrEqualToThreshold');
    }
  });

  it("read the broker's own EMF metrics: a degraded table, tokens that do not decrypt (any one)", () => {
    for (const name of ['StoreDegraded', 'DecryptionFailures']) {
      expect(alarm(name).Properties).toMatchObject({
        Namespace: 'TokenBroker',
        MetricName: name,
        Dimensions: [{ Name: 'service', Value: 'token-broker' }],
        Statistic: 'Sum',
        Threshold: 1,
      });
    }
  });

  it("count the broker's own 500s from the HTTP function's log, apart from the vendor's 5xx it passes on", () => {
    const [, http] = functionByDescription(main.broker, 'token-broker HTTP API');
    main.broker.hasResourceProperties('AWS::Logs::MetricFilter', {
      LogGroupName: { Ref: http.Properties.LoggingConfig.LogGroup.Ref },
      FilterPattern: '{ ($.message = "request failed") && ($.status = 500) }',
      MetricTransformations: [{ MetricNamespace: 'TokenBroker', MetricName: 'InternalErrors', MetricValue: '1' }],
    });
    expect(alarm('InternalErrors').Properties).toMatchObject({ Namespace: 'TokenBroker', MetricName: 'InternalErrors', Statistic: 'Sum', Threshold: 1 });
    expect(alarms().some((a) => a.Properties.Namespace === 'AWS/ApiGateway')).toBe(false);
  });

  it("watch each function's errors and throttles, and the dead-letter queue's depth above 0", () => {
    for (const [id, fn] of functionsOf(main.broker)) {
      const name = id.replace(/[A-F0-9]{8}$/, '');
      for (const metric of ['Errors', 'Throttles']) {
        expect(alarm(`${name}${metric}`).Properties, `${name}${metric}`).toMatchObject({
          Namespace: 'AWS/Lambda',
          MetricName: metric,
          Dimensions: [{ Name: 'FunctionName', Value: { Ref: id } }],
          Statistic: 'Sum',
          Threshold: 1,
        });
      }
      void fn;
    }
    expect(alarm('DeadLetters').Properties).toMatchObject({
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Statistic: 'Maximum',
      Threshold: 1,
    });
  });

  it('show tokens by source, exchanges, the alarms’ metrics, the API, the functions and the queue on one dashboard', () => {
    const body = JSON.stringify(Object.values(resources(main.broker, 'AWS::CloudWatch::Dashboard'))[0]!.Properties.DashboardBody);
    for (const metric of ['TokensServed', 'ExchangeFailures', 'StoreDegraded', 'DecryptionFailures', 'InternalErrors', 'ApproximateNumberOfMessagesVisible', '5XXError']) {
      expect(body).toContain(metric);
    }
  });
});

describe('cdk-nag', () => {
  type Report = {
    pluginReports: {
      pluginName: string;
      conclusion: string;
      violations: { ruleName: string; violatingConstructs: { constructPath: string }[] }[];
      suppressedViolations: { ruleName: string; reason: string; acknowledgedAt: string }[];
    }[];
  };
  const report = (outdir: string) => JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8')) as Report;

  it('AwsSolutions and Serverless packs: no finding left, each acknowledged on the construct it is about, with a reason', () => {
    for (const s of [main, priv]) {
      const r = report(s.outdir);
      expect(r.pluginReports.map((p) => p.pluginName).sort()).toEqual(['AwsSolutions', 'Serverless']);
      const stacks = [s.built.broker.node.path, s.built.stateful.node.path];
      for (const p of r.pluginReports) {
        expect(p.violations, `${p.pluginName} findings`).toEqual([]);
        expect(p.conclusion).toBe('success');
        for (const v of p.suppressedViolations) {
          expect(v.reason.length).toBeGreaterThan(30);
          // Never the whole stack or app: each acknowledgement sits on what it is about.
          expect(stacks, v.ruleName).not.toContain(v.acknowledgedAt);
          expect(v.acknowledgedAt).toContain('/');
          if (v.ruleName.startsWith('AwsSolutions-IAM5')) expect(v.ruleName).toMatch(/^AwsSolutions-IAM5\[.+\]$/);
        }
      }
    }
  });

  it("pre-warm's BatchGetSecretValue on * is acknowledged on its own policy alone, saying why it is safe", () => {
    for (const s of [main, priv]) {
      const aws = report(s.outdir).pluginReports.find((p) => p.pluginName === 'AwsSolutions')!;
      const broad = aws.suppressedViolations.filter((v) => v.ruleName === 'AwsSolutions-IAM5[Resource::*]');
      const batch = broad.filter((v) => v.acknowledgedAt.endsWith('/PrewarmSecretBatchRead'));
      expect(batch).toHaveLength(1);
      expect(batch[0]!.reason).toMatch(/BatchGetSecretValue.*GetSecretValue/);
    }
  });

  it('every acknowledgement matches a finding (none is silently ignored)', () => {
    for (const s of [main, priv]) {
      const used = new Set(report(s.outdir).pluginReports.flatMap((p) => p.suppressedViolations.map((v) => `${p.pluginName}::${v.ruleName}@${v.acknowledgedAt}`)));
      const recorded: string[] = [];
      for (const c of s.built.app.node.findAll()) {
        for (const m of c.node.metadata) {
          if (m.type === 'aws:cdk:acknowledged-rules') for (const id of Object.keys(m.data as object)) recorded.push(`${id}@${c.node.path}`);
        }
      }
      expect(recorded.length).toBeGreaterThan(10);
      for (const r of recorded) {
        expect(r, 'acknowledged as plugin::rule').toMatch(/^(AwsSolutions|Serverless)::/);
        expect(used.has(r), r).toBe(true);
      }
    }
  });

  it('reports a deliberately broad grant (GetSecretValue on *) added to a function', () => {
    const outdir = mkdtempSync(join(work, 'nag-'));
    const app = new App({ outdir });
    const stack = new Stack(app, 'NagProbe', { env: { account: ACCOUNT, region: REGION } });
    const fn = new BrokerFunction(stack, 'Http', {
      entry: 'functions/http.ts',
      description: 'token-broker HTTP API',
      memorySize: 512,
      timeout: Duration.seconds(25),
      connectionsFile: fixture,
      roleName: 'nag-probe-http',
    });
    fn.addToRolePolicy(new PolicyStatement({ actions: ['secretsmanager:GetSecretValue'], resources: ['*'] }));
    addChecks(app);
    const exitCode = process.exitCode;
    try {
      expect(() => app.synth()).toThrow(/AwsSolutions-IAM5\[Resource::\*\]/);
    } finally {
      process.exitCode = exitCode;
    }
    const aws = report(outdir).pluginReports.find((p) => p.pluginName === 'AwsSolutions')!;
    const broad = aws.violations.filter((v) => v.ruleName === 'AwsSolutions-IAM5[Resource::*]');
    expect(broad.flatMap((v) => v.violatingConstructs.map((x) => x.constructPath))).toEqual(['NagProbe/HttpServiceRole/DefaultPolicy/Resource']);
    // X-Ray's * is still acknowledged, on its own policy only.
    expect(aws.suppressedViolations.filter((v) => v.ruleName === 'AwsSolutions-IAM5[Resource::*]').map((v) => v.acknowledgedAt)).toEqual(['NagProbe/HttpTracing']);
  }, 120_000);
});

describe('logs and tracing', () => {
  it("set Lambda's log levels the cost model prices: no platform lines for a successful invocation, INFO for the audit lines and EMF", () => {
    for (const [, fn] of functionsOf(main.broker)) {
      expect(fn.Properties.LoggingConfig).toMatchObject({ LogFormat: 'JSON', SystemLogLevel: LAMBDA_LOG_LEVELS.system, ApplicationLogLevel: LAMBDA_LOG_LEVELS.application });
    }
    expect(LAMBDA_LOG_LEVELS).toEqual({ system: 'WARN', application: 'INFO' });
  });

  it("keep Powertools off the runtime's console (no POWERTOOLS_DEV), so Lambda passes its JSON lines through unwrapped", () => {
    for (const [, fn] of functionsOf(main.broker)) {
      expect(Object.keys(fn.Properties.Environment.Variables as Record<string, unknown>)).not.toContain('POWERTOOLS_DEV');
      expect(fn.Properties.Environment.Variables.POWERTOOLS_LOG_LEVEL).toBe(LAMBDA_LOG_LEVELS.application);
    }
  });

  it('write the access log in the format the cost model renders', () => {
    const stage = Object.values(resources(main.broker, 'AWS::ApiGateway::Stage'))[0]!;
    expect(stage.Properties.AccessLogSetting.Format).toBe(accessLogFormat());
  });

  it('count TokensServed by source from the HTTP function\'s audit line (a metric filter), not from an EMF line per request', () => {
    const [, http] = functionByDescription(main.broker, 'token-broker HTTP API');
    main.broker.hasResourceProperties('AWS::Logs::MetricFilter', {
      LogGroupName: { Ref: http.Properties.LoggingConfig.LogGroup.Ref },
      FilterPattern: '{ $.message = "token handed out" }',
      MetricTransformations: [
        { MetricNamespace: 'TokenBroker', MetricName: 'TokensServed', MetricValue: '1', Unit: 'Count', Dimensions: [{ Key: 'service', Value: '$.service' }, { Key: 'source', Value: '$.source' }] },
      ],
    });
  });

  it("sample the stage by a rule of its own, scoped to it, with no reservoir and the cost model's rate", () => {
    const rules = Object.values(resources(main.broker, 'AWS::XRay::SamplingRule'));
    expect(rules).toHaveLength(1);
    const rule = rules[0]!.Properties.SamplingRule as Record<string, unknown>;
    const [apiId, api] = Object.entries(resources(main.broker, 'AWS::ApiGateway::RestApi'))[0]!;
    const stage = Object.values(resources(main.broker, 'AWS::ApiGateway::Stage'))[0]!;
    expect(rule).toMatchObject({
      RuleName: 'token-broker-test',
      ServiceName: `${api.Properties.Name as string}/${stage.Properties.StageName as string}`,
      ServiceType: 'AWS::ApiGateway::Stage',
      Host: '*',
      HTTPMethod: '*',
      URLPath: '*',
      ReservoirSize: TRACE_SAMPLING.reservoirSize,
      FixedRate: TRACE_SAMPLING.fixedRate,
      Version: 1,
    });
    // Evaluated before X-Ray's default rule (priority 10000).
    expect(rule.Priority as number).toBeLessThan(10_000);
    expect(JSON.stringify(rule.ResourceARN)).toContain(`{"Ref":"${apiId}"}`);
    expect(JSON.stringify(rule.ResourceARN)).toContain('/stages/test');
    expect(stage.Properties.TracingEnabled).toBe(true);
    // What the cost model prices: one in a thousand of 100 M requests, not the default rule's one a second and 5%.
    expect(sampledTraces(100e6)).toBeCloseTo(100e6 * TRACE_SAMPLING.fixedRate, 3);
  });

  it('name the rule within X-Ray\'s 32 characters for any stage, one rule per stage', () => {
    const long = samplingRuleName('a-rather-long-stage-name-for-testing');
    expect(long.length).toBeLessThanOrEqual(32);
    expect(samplingRuleName('a-rather-long-stage-name-for-testing-2')).not.toBe(long);
    expect(samplingRuleName('prod')).toBe('token-broker-prod');
  });

  it('turn tracing off everywhere with tracingRate=0: no stage tracing, no rule, no function tracing, no X-Ray grant', () => {
    priv.broker.hasResourceProperties('AWS::ApiGateway::Stage', { TracingEnabled: false });
    priv.broker.resourceCountIs('AWS::XRay::SamplingRule', 0);
    for (const [, fn] of functionsOf(priv.broker)) expect(fn.Properties.TracingConfig).toBeUndefined();
    expect(iamStatements(priv.broker).filter(({ statement }) => actionsOf(statement).some((a) => a.startsWith('xray:')))).toEqual([]);
  });
});

describe('settings', () => {
  const settings = (context: Record<string, unknown>) => () => readSettings(new App({ context }).node);

  it('default to a created trail, a regional endpoint and no account-level role', () => {
    expect(settings({})()).toMatchObject({ stage: 'dev', cloudTrail: 'create', endpointType: 'REGIONAL', vpcEndpointIds: [], apiGatewayCloudWatchRole: false });
    expect(settings({ apiGatewayCloudWatchRole: true })().apiGatewayCloudWatchRole).toBe(true);
  });

  it('refuse a value they do not know, naming the setting', () => {
    expect(settings({ cloudTrail: 'yes' })).toThrow('context cloudTrail: must be one of create, existing');
    expect(settings({ endpointType: 'EDGE' })).toThrow('context endpointType: must be one of REGIONAL, PRIVATE');
    expect(settings({ endpointType: 'PRIVATE' })).toThrow('endpointType PRIVATE needs vpcEndpointIds');
    expect(settings({ vpcEndpointIds: 'vpce-0123456789abcdef0' })).toThrow('only used with endpointType PRIVATE');
    expect(settings({ endpointType: 'PRIVATE', vpcEndpointIds: 'vpc-123' })).toThrow('is not a VPC endpoint id');
    expect(settings({ apiGatewayCloudWatchRole: 'yes' })).toThrow('context apiGatewayCloudWatchRole: must be true or false');
    expect(settings({ allowedAccounts: '1111' })).toThrow('is not a 12-digit account id');
    for (const bad of ['abc', '2', '-0.1', ' ']) expect(settings({ tracingRate: bad })).toThrow('context tracingRate: must be a number from 0 to 1');
    // The stage names the stacks, the key's alias and the roles the key's policy trusts (64 characters at most,
    // unique in the account whatever their case).
    for (const bad of ['prod env', 'prod_1', '-prod', 'prod-', 'eu--prod', 'Prod', 'a'.repeat(25), 'prod*']) expect(settings({ stage: bad })).toThrow('context stage:');
    expect(settings({ stage: 'eu-prod-2' })().stage).toBe('eu-prod-2');
    expect(settings({ stage: 'a'.repeat(24) })().stage).toBe('a'.repeat(24));
    // The longest role name, in the longest region name, still fits.
    expect(`token-broker-${'a'.repeat(24)}-ap-southeast-3-rotation`.length).toBeLessThanOrEqual(64);
  });

  it("grant secrets under token-broker/<stage>/ unless told otherwise, and refuse a prefix that would widen the wildcard", () => {
    expect(settings({ stage: 'prod' })()).toMatchObject({ secretPrefix: 'token-broker/prod/', secretKmsKeys: [], deploying: false });
    expect(settings({ secretPrefix: 'teams/payments/' })().secretPrefix).toBe('teams/payments/');
    for (const bad of ['teams/*/', 'teams/pay?/', 'token-broker/dev', 'teams payments/', '/'.repeat(300)]) {
      expect(settings({ secretPrefix: bad }), bad).toThrow('context secretPrefix:');
    }
  });

  it('take the KMS keys of registered connections\' secrets as a comma list of key ARNs, never aliases', () => {
    expect(settings({ secretKmsKeys: ` ${SECRET_KEY} , ${REGISTERED_KEY}` })().secretKmsKeys).toEqual([SECRET_KEY, REGISTERED_KEY]);
    expect(settings({ secretKmsKeys: [SECRET_KEY] })().secretKmsKeys).toEqual([SECRET_KEY]);
    for (const bad of [`arn:aws:kms:${REGION}:${ACCOUNT}:alias/secrets`, '1234abcd-12ab-34cd-56ef-1234567890ab', `${SECRET_KEY}*`]) {
      expect(settings({ secretKmsKeys: bad }), bad).toThrow('context secretKmsKeys:');
    }
  });

  it('trace one request in a thousand unless told otherwise; 0 turns tracing off', () => {
    expect(settings({})().tracingRate).toBe(TRACE_SAMPLING.fixedRate);
    expect(settings({ tracingRate: '0.2' })().tracingRate).toBe(0.2);
    expect(settings({ tracingRate: 0 })().tracingRate).toBe(0);
  });
});

describe('deploy says what it deploys', () => {
  it('refuses to deploy the example: npm run deploy (-c deploying=true) must name a connections file', () => {
    const app = new App({ context: { deploying: 'true', 'aws:cdk:bundling-stacks': [] } });
    expect(() => buildApp(app, { account: ACCOUNT, region: REGION })).toThrow('deploy: no connections file named');
    expect(() => checkDeployable(readSettings(new App({ context: { deploying: true, connectionsFile: fixture } }).node))).not.toThrow();
    expect(() => checkDeployable(readSettings(new App({ context: {} }).node))).not.toThrow();
  });

  it('names the stage, the account and region, the connections file and how many connections it holds', () => {
    expect(describeDeployment(main.built, { account: ACCOUNT, region: REGION })).toBe(
      `token-broker: synthesizing stage test to account ${ACCOUNT}, region ${REGION}: ${SPELLINGS.length} connections from ${fixture}; secrets under token-broker/test/ granted by one wildcard`,
    );
    expect(describeDeployment(priv.built, {})).toContain('to account the account of the deploying credentials (not known at synth), region the region of the deploying credentials');
  });

  it('tags every resource CloudFormation lets be tagged, and not the dashboard (cfn-lint E3002)', () => {
    for (const [id, d] of Object.entries(resources(main.broker, 'AWS::CloudWatch::Dashboard'))) expect(d.Properties.Tags, id).toBeUndefined();
    for (const [id, q] of Object.entries(resources(main.broker, 'AWS::SQS::Queue'))) {
      expect(q.Properties.Tags, id).toEqual(expect.arrayContaining([{ Key: 'app', Value: 'token-broker' }, { Key: 'stage', Value: 'test' }]));
    }
  });
});

describe('cdk synth', () => {
  it('works offline from the CLI pinned in devDependencies', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cdk-cli-'));
    try {
      // Rejects on a non-zero exit, which is also how cdk-nag findings would show.
      const { stderr } = await run('npx', ['cdk', 'synth', '--quiet', '-o', dir], { cwd: new URL('../..', import.meta.url).pathname, timeout: 290_000 });
      // What it builds, said by the app (issue 22); no notices asked for from the network (cdk.json "notices": false).
      expect(stderr).toMatch(/token-broker: synthesizing stage dev to account .*: \d+ connections from .*connections\.example\.json/);
      const files = readdirSync(dir);
      expect(files).toEqual(expect.arrayContaining(['manifest.json', 'TokenBroker-dev.template.json', 'TokenBrokerData-dev.template.json']));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
