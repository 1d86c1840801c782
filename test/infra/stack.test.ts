import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../infra/app';
import { ENCRYPTION_CONTEXT } from '../../lib/crypto';

const run = promisify(execFile);
let outdir: string;
let broker: Template;
let data: Template;
let built: ReturnType<typeof buildApp>;

beforeAll(() => {
  outdir = mkdtempSync(join(tmpdir(), 'cdk-'));
  built = buildApp(new App({ outdir, context: { stage: 'test', allowedAccounts: '111111111111,222222222222' } }));
  built.app.synth();
  broker = Template.fromStack(built.broker);
  data = Template.fromStack(built.stateful);
}, 120_000);
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

type Statement = { Action: string | string[]; Resource: unknown; Condition?: unknown; Effect: string };

function statementsOf(roleLogicalIdPrefix: string): Statement[] {
  const policies = broker.findResources('AWS::IAM::Policy');
  const out: Statement[] = [];
  for (const [id, p] of Object.entries(policies)) {
    if (!id.startsWith(roleLogicalIdPrefix)) continue;
    out.push(...((p as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument.Statement));
  }
  return out;
}

const actionsOf = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);

describe('stateful stack', () => {
  it('keeps tokens in an on-demand table with TTL, PITR, the customer-managed key, deletion protection, retained', () => {
    data.hasResource('AWS::DynamoDB::Table', {
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
    data.hasResource('AWS::KMS::Key', { DeletionPolicy: 'Retain', Properties: { EnableKeyRotation: true } });
  });
});

describe('functions', () => {
  const functions = () => Object.values(broker.findResources('AWS::Lambda::Function')) as { Properties: Record<string, any> }[];

  it('are three, on nodejs22.x arm64 with active tracing, JSON logs in their own log group, and bounded timeouts', () => {
    expect(functions()).toHaveLength(3);
    for (const fn of functions()) {
      expect(fn.Properties).toMatchObject({
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        TracingConfig: { Mode: 'Active' },
        LoggingConfig: { LogFormat: 'JSON', LogGroup: expect.anything() },
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
      });
    }
    const http = functions().find((f) => f.Properties.Description === 'token-broker HTTP API');
    expect(http?.Properties.Timeout).toBeLessThan(29);
  });

  it('log groups keep 90 days', () => {
    broker.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
  });

  it('send failed asynchronous invocations of pre-warm and rotation to the dead-letter queue', () => {
    const configs = Object.values(broker.findResources('AWS::Lambda::EventInvokeConfig'));
    expect(configs).toHaveLength(2);
    for (const c of configs) {
      expect(c).toMatchObject({
        Properties: { MaximumRetryAttempts: 2, DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [expect.stringMatching(/^DeadLetters/), 'Arn'] } } } },
      });
    }
    broker.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true });
  });

  it('bundle the connections file, minified ESM with source maps; DynamoDB up front, Secrets Manager and KMS on first use', () => {
    const assets = Object.values(
      JSON.parse(readFileSync(join(outdir, `${built.broker.artifactId}.assets.json`), 'utf8')).files as Record<string, { source: { path: string; packaging?: string } }>,
    ).filter((a) => a.source.packaging === 'zip');
    expect(assets).toHaveLength(3);
    for (const a of assets) {
      const dir = join(outdir, a.source.path);
      expect(JSON.parse(readFileSync(join(dir, 'broker.config.json'), 'utf8')).connections.length).toBe(built.config.connections.length);
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
  for (const role of ['HttpServiceRole', 'PrewarmServiceRole', 'RotationServiceRole']) {
    it(`${role}: item actions on the table only, the key only with its contexts, exactly the configured secrets`, () => {
      const statements = statementsOf(role);
      const dynamo = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('dynamodb:')));
      expect(dynamo).toHaveLength(1);
      expect(actionsOf(dynamo[0]!).sort()).toEqual(['dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem']);
      expect(JSON.stringify(dynamo[0]!.Resource)).toContain('Table');
      expect(JSON.stringify(dynamo[0]!.Resource)).not.toContain('*');

      const kms = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')));
      expect(kms).toHaveLength(2);
      const envelope = kms.find((s) => JSON.stringify(s.Condition).includes('kms:EncryptionContext:app'));
      expect(actionsOf(envelope!).sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
      expect(envelope!.Condition).toEqual({
        StringEquals: {
          'kms:EncryptionContext:app': ENCRYPTION_CONTEXT.app,
          'kms:EncryptionContext:purpose': ENCRYPTION_CONTEXT.purpose,
        },
      });
      const viaDynamo = kms.find((s) => JSON.stringify(s.Condition).includes('kms:ViaService'));
      expect(JSON.stringify(viaDynamo!.Condition)).toContain('kms:EncryptionContext:aws:dynamodb:tableName');

      const secrets = statements.filter((s) => actionsOf(s).includes('secretsmanager:GetSecretValue'));
      expect(secrets).toHaveLength(1);
      const resources = JSON.stringify(secrets[0]!.Resource);
      for (const c of built.config.connections) {
        expect(resources).toContain(c.secretId.startsWith('arn:') ? c.secretId : `secret:${c.secretId}-??????`);
      }
      expect((Array.isArray(secrets[0]!.Resource) ? secrets[0]!.Resource : [secrets[0]!.Resource]).length).toBe(built.config.connections.length);

      // The only Resource "*" is X-Ray's, which has no resource-level permissions.
      for (const s of statements.filter((x) => x.Resource === '*')) {
        expect(actionsOf(s).every((a) => a.startsWith('xray:'))).toBe(true);
      }
    });
  }
});

describe('API', () => {
  const body = () => (Object.values(broker.findResources('AWS::ApiGateway::RestApi'))[0] as { Properties: { Body: any } }).Properties.Body;

  it('defines every route of openapi.json with AWS_IAM, request validation and the Lambda proxy integration', () => {
    const doc = body();
    const committed = JSON.parse(readFileSync(new URL('../../openapi.json', import.meta.url), 'utf8'));
    expect(Object.keys(doc.paths).sort()).toEqual(Object.keys(committed.paths).sort());
    let methods = 0;
    for (const path of Object.values(doc.paths) as Record<string, any>[]) {
      for (const op of Object.values(path)) {
        methods += 1;
        expect(op['x-amazon-apigateway-auth']).toEqual({ type: 'AWS_IAM' });
        expect(op['x-amazon-apigateway-request-validator']).toBe('all');
        expect(op['x-amazon-apigateway-integration']).toMatchObject({ type: 'aws_proxy', httpMethod: 'POST' });
      }
    }
    expect(methods).toBe(5);
    expect(doc['x-amazon-apigateway-request-validators'].all).toEqual({ validateRequestBody: true, validateRequestParameters: true });
    expect(doc['x-amazon-apigateway-gateway-responses'].INVALID_SIGNATURE).toMatchObject({ statusCode: '401' });
  });

  it('admits only the configured accounts in its resource policy', () => {
    const api = Object.values(broker.findResources('AWS::ApiGateway::RestApi'))[0] as { Properties: { Policy: any } };
    const [statement] = api.Properties.Policy.Statement;
    expect(statement.Effect).toBe('Allow');
    expect(statement.Action).toBe('execute-api:Invoke');
    expect(JSON.stringify(statement.Principal)).toContain('111111111111:root');
    expect(JSON.stringify(statement.Principal)).toContain('222222222222:root');
  });

  it('traces, logs access as JSON and throttles its stage', () => {
    broker.hasResourceProperties('AWS::ApiGateway::Stage', {
      StageName: 'test',
      TracingEnabled: true,
      AccessLogSetting: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('requestId') },
      MethodSettings: Match.arrayWith([Match.objectLike({ ThrottlingRateLimit: 500, ThrottlingBurstLimit: 1000, MetricsEnabled: true })]),
    });
  });

  it('may invoke the HTTP function, and only it', () => {
    const permissions = Object.values(broker.findResources('AWS::Lambda::Permission')).filter(
      (p) => (p as { Properties: { Principal: string } }).Properties.Principal === 'apigateway.amazonaws.com',
    );
    expect(permissions).toHaveLength(1);
    expect(JSON.stringify(permissions[0])).toContain('Http');
  });
});

describe('triggers', () => {
  it('pre-warms every minute through EventBridge Scheduler, with a dead-letter queue', () => {
    broker.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'rate(1 minute)',
      Target: { Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Prewarm'), 'Arn'] }, DeadLetterConfig: Match.anyValue() },
    });
  });

  it("delivers Secrets Manager's change events to the rotation function", () => {
    broker.hasResourceProperties('AWS::Events::Rule', {
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
  it('alarm on exchange failures, cooldowns, 5xx, throttles and dead letters, to one topic', () => {
    const alarms = Object.values(broker.findResources('AWS::CloudWatch::Alarm')) as { Properties: { AlarmName: string; AlarmActions: unknown[] } }[];
    const names = alarms.map((a) => a.Properties.AlarmName).sort();
    expect(names).toEqual(
      ['Api5xx', 'Cooldowns', 'DeadLetters', 'ExchangeFailures', 'HttpThrottles', 'PrewarmThrottles', 'RotationThrottles'].map((n) => `token-broker-test-${n}`),
    );
    for (const a of alarms) expect(JSON.stringify(a.Properties.AlarmActions)).toContain('AlarmTopic');
    broker.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  });
});

describe('cdk-nag', () => {
  it('AwsSolutions and Serverless packs: zero findings left unacknowledged, each acknowledgement with a reason', () => {
    const report = JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8')) as {
      pluginReports: { pluginName: string; conclusion: string; violations: unknown[]; suppressedViolations: { reason: string }[] }[];
    };
    expect(report.pluginReports.map((p) => p.pluginName).sort()).toEqual(['AwsSolutions', 'Serverless']);
    for (const p of report.pluginReports) {
      expect(p.violations, `${p.pluginName} findings`).toEqual([]);
      expect(p.conclusion).toBe('success');
      for (const s of p.suppressedViolations) expect(s.reason.length).toBeGreaterThan(30);
    }
  });
});

describe('cdk synth', () => {
  it('works offline from the CLI pinned in devDependencies', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cdk-cli-'));
    try {
      // Rejects on a non-zero exit, which is also how cdk-nag findings would show.
      await run('npx', ['cdk', 'synth', '--quiet', '--no-notices', '-o', dir], { cwd: new URL('../..', import.meta.url).pathname, timeout: 120_000 });
      const files = readdirSync(dir);
      expect(files).toEqual(expect.arrayContaining(['manifest.json', 'TokenBroker-dev.template.json', 'TokenBrokerData-dev.template.json']));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
