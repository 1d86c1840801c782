import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { App, Tags, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { loadConfig } from '../lib/config';
import { PROJECT_ROOT } from './constructs/broker-function';
import { BrokerStack, BrokerStatefulStack } from './stacks';

// The CDK app. Context (cdk.json, or -c key=value):
//   stage            names the stacks and resources (default dev)
//   connectionsFile  the connections file (default broker.config.json when it exists, else the example in infra/)
//   allowedAccounts  comma-separated accounts whose principals may call the API (default: this account)
//   organizationId   admit a whole AWS Organization instead
//   alarmTopicArn    an SNS topic for the alarms (default: a new topic)
// The connections file is validated here, at synth time, by the same loader the functions use at cold start.

export function connectionsFileFor(context: string | undefined): string {
  if (context) return resolve(PROJECT_ROOT, context);
  const own = resolve(PROJECT_ROOT, 'broker.config.json');
  return existsSync(own) ? own : resolve(PROJECT_ROOT, 'infra/connections.example.json');
}

const list = (v: unknown) =>
  String(v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

export function buildApp(app = new App()) {
  // Keep the producer stack's exports protected (the default), and say so, as CDK asks.
  if (app.node.tryGetContext('@aws-cdk/core:defaultCrossStackReferences') === undefined) {
    app.node.setContext('@aws-cdk/core:defaultCrossStackReferences', 'strong');
  }
  const stage = String(app.node.tryGetContext('stage') || 'dev');
  const connectionsFile = connectionsFileFor(app.node.tryGetContext('connectionsFile') || undefined);
  const config = loadConfig(connectionsFile);
  const env = { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION };

  const stateful = new BrokerStatefulStack(app, `TokenBrokerData-${stage}`, {
    stage,
    env,
    description: 'token-broker: the token table and its KMS key (stateful, retained)',
    terminationProtection: stage === 'prod',
  });
  const broker = new BrokerStack(app, `TokenBroker-${stage}`, {
    stage,
    env,
    description: 'token-broker: functions, API, schedule, rotation rule, alarms',
    config,
    connectionsFile,
    table: stateful.store.table,
    key: stateful.store.key,
    allowedAccounts: list(app.node.tryGetContext('allowedAccounts')),
    organizationId: String(app.node.tryGetContext('organizationId') || '') || undefined,
    alarmTopicArn: String(app.node.tryGetContext('alarmTopicArn') || '') || undefined,
  });
  broker.addStackDependency(stateful);
  Tags.of(app).add('app', 'token-broker');
  Tags.of(app).add('stage', stage);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }), new ServerlessChecks(app, { verbose: true }));
  return { app, stateful, broker, config };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(PROJECT_ROOT, 'infra/app.ts')) {
  buildApp().app.synth();
}
