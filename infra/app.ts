import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { App, Tags, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { loadConfig } from '../lib/config';
import { PROJECT_ROOT } from './constructs/broker-function';
import { readSettings } from './settings';
import { BrokerStack, BrokerStatefulStack } from './stacks';

// The CDK app. Its settings come from CDK context (cdk.json, or -c key=value), read and checked in settings.ts:
//   stage, connectionsFile, allowedAccounts, organizationId, alarmTopicArn, cloudTrail (create | existing),
//   endpointType (REGIONAL | PRIVATE), vpcEndpointIds, apiGatewayCloudWatchRole (true | false), tracingRate (0 to 1).
// The connections file is validated here, at synth time, by the same loader the functions use at cold start.

export function connectionsFileFor(context: string | undefined): string {
  if (context) return resolve(PROJECT_ROOT, context);
  const own = resolve(PROJECT_ROOT, 'broker.config.json');
  return existsSync(own) ? own : resolve(PROJECT_ROOT, 'infra/connections.example.json');
}

/** cdk-nag's AWS Solutions and Serverless packs: a finding not acknowledged on its construct fails the synth. */
export function addChecks(app: App): void {
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }), new ServerlessChecks(app, { verbose: true }));
}

/** The stacks' account and region: CDK's defaults (the CLI's credentials and region) unless given. */
export interface AppEnvironment {
  account?: string | undefined;
  region?: string | undefined;
}

export function buildApp(app = new App(), environment: AppEnvironment = { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION }) {
  // Keep the producer stack's exports protected (the default), and say so, as CDK asks.
  if (app.node.tryGetContext('@aws-cdk/core:defaultCrossStackReferences') === undefined) {
    app.node.setContext('@aws-cdk/core:defaultCrossStackReferences', 'strong');
  }
  const settings = readSettings(app.node);
  const { stage } = settings;
  const connectionsFile = connectionsFileFor(settings.connectionsFile);
  const config = loadConfig(connectionsFile);
  const env = { account: environment.account, region: environment.region };

  const stateful = new BrokerStatefulStack(app, `TokenBrokerData-${stage}`, {
    stage,
    env,
    description: 'token-broker: the token table and its KMS key (stateful, retained)',
    terminationProtection: stage === 'prod',
    cloudTrail: settings.cloudTrail,
  });
  const broker = new BrokerStack(app, `TokenBroker-${stage}`, {
    stage,
    env,
    description: 'token-broker: functions, API, schedule, rotation rule, alarms',
    config,
    connectionsFile,
    table: stateful.store.table,
    key: stateful.store.key,
    allowedAccounts: settings.allowedAccounts,
    ...(settings.organizationId ? { organizationId: settings.organizationId } : {}),
    ...(settings.alarmTopicArn ? { alarmTopicArn: settings.alarmTopicArn } : {}),
    cloudTrail: settings.cloudTrail,
    endpointType: settings.endpointType,
    vpcEndpointIds: settings.vpcEndpointIds,
    apiGatewayCloudWatchRole: settings.apiGatewayCloudWatchRole,
    tracingRate: settings.tracingRate,
  });
  broker.addStackDependency(stateful);
  Tags.of(app).add('app', 'token-broker');
  Tags.of(app).add('stage', stage);
  addChecks(app);
  return { app, stateful, broker, config, settings };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(PROJECT_ROOT, 'infra/app.ts')) {
  buildApp().app.synth();
}
