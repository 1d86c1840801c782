import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../infra/app';
import { CONSOLE_TABLE_ACTIONS, consoleFunctionName } from '../../infra/constructs/broker-console';

// The console in the template: one dashboard holding the broker's metrics, its alarms and the custom widget; the
// widget function reads the table and nothing else, and no grant anywhere gains a `*` resource from it.

type Statement = { Action: string | string[]; Resource: unknown; Condition?: Record<string, Record<string, unknown>> };
type Resource = { Type: string; Properties: Record<string, any> };

let work: string;
let template: Template;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'console-infra-'));
  const file = join(work, 'connections.json');
  writeFileSync(
    file,
    JSON.stringify({
      connections: [{ id: 'crm', dialect: 'digitaleo', tokenUrl: 'https://vendor.example/token', secretId: 'broker/crm', callers: ['arn:aws:iam::111111111111:role/app'] }],
    }),
  );
  const built = buildApp(new App({ outdir: join(work, 'out'), context: { connectionsFile: file, stage: 'test' } }), { account: '111111111111', region: 'eu-west-1' });
  template = Template.fromStack(built.broker);
}, 240_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

const resources = (type: string) => Object.entries(template.findResources(type) as Record<string, Resource>);
const list = <T>(v: T | T[]) => (Array.isArray(v) ? v : [v]);

function widget(): [string, Resource] {
  const found = resources('AWS::Lambda::Function').filter(([, fn]) => fn.Properties.FunctionName === consoleFunctionName('test'));
  expect(found).toHaveLength(1);
  return found[0]!;
}

/** The statements of every policy attached to the widget function's role. */
function widgetStatements(): Statement[] {
  const role = widget()[1].Properties.Role['Fn::GetAtt'][0] as string;
  return resources('AWS::IAM::Policy')
    .filter(([, p]) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: role }]))
    .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Statement[]);
}

describe('the dashboard', () => {
  it('is one, with the broker metrics, the alarms, the table latency and the custom widget calling the widget function', () => {
    const dashboards = resources('AWS::CloudWatch::Dashboard');
    expect(dashboards).toHaveLength(1);
    const [, dashboard] = dashboards[0]!;
    expect(dashboard.Properties.Tags).toBeUndefined();
    const body = JSON.stringify(dashboard.Properties.DashboardBody);
    for (const metric of ['TokensServed', 'Exchanges', 'ExchangeFailures', 'ExchangeLatency', 'Cooldowns', 'SuccessfulRequestLatency']) expect(body).toContain(metric);
    expect(body).toContain('\\"type\\":\\"custom\\"');
    expect(body).toContain(widget()[0]);
    expect(body).toContain('\\"type\\":\\"alarm\\"');
    for (const [id] of resources('AWS::CloudWatch::Alarm')) expect(body, id).toContain(id);
  });
});

describe('the widget function', () => {
  it('is named for custom widgets and told the table, no key', () => {
    const [, fn] = widget();
    expect(Object.keys(fn.Properties.Environment.Variables)).toContain('BROKER_TABLE');
    expect(Object.keys(fn.Properties.Environment.Variables)).not.toContain('BROKER_KEY_ID');
  });

  it('may read the table (scan, get, query) and have DynamoDB decrypt its pages, nothing else', () => {
    const statements = widgetStatements();
    const actions = statements.flatMap((s) => list(s.Action)).sort();
    expect(actions.filter((a) => !a.startsWith('logs:'))).toEqual([...CONSOLE_TABLE_ACTIONS, 'kms:Decrypt'].sort());
    const table = resources('AWS::DynamoDB::Table');
    expect(table).toHaveLength(0); // the table lives in the data stack: the grant names it by import
    const dynamo = statements.find((s) => list(s.Action).includes('dynamodb:Scan'))!;
    expect(list(dynamo.Resource)).toHaveLength(1);
    expect(JSON.stringify(dynamo.Resource)).toContain('TokenStoreTable');
    const kms = statements.find((s) => list(s.Action).includes('kms:Decrypt'))!;
    expect(kms.Condition).toEqual({
      StringEquals: { 'kms:ViaService': 'dynamodb.eu-west-1.amazonaws.com', 'kms:EncryptionContext:aws:dynamodb:tableName': expect.anything() },
    });
  });

  it('adds no * resource to any grant', () => {
    expect(widgetStatements().flatMap((s) => list(s.Resource)).filter((r) => r === '*')).toEqual([]);
    const starOwners = resources('AWS::IAM::Policy')
      .filter(([, p]) => (p.Properties.PolicyDocument.Statement as Statement[]).some((s) => list(s.Resource).includes('*')))
      .map(([id]) => id.replace(/[A-F0-9]{8}$/, ''))
      .sort();
    expect(starOwners).toEqual(['HttpTracing', 'PrewarmSecretBatchRead', 'PrewarmTracing', 'RotationTracing']);
  });
});
