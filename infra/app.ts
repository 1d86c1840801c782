import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { App, Tags, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { loadConfig } from '../lib/config';
import { PROJECT_ROOT } from './constructs/broker-function';
import { AwsQuotaChecks } from './quotas';
import { readSettings, type BrokerSettings } from './settings';
import { BrokerStack, BrokerStatefulStack } from './stacks';

// The CDK app. Its settings come from CDK context (cdk.json, or -c key=value), read and checked in settings.ts:
//   stage, connectionsFile, allowedAccounts, organizationId, alarmTopicArn, cloudTrail (create | existing),
//   endpointType (REGIONAL | PRIVATE), vpcEndpointIds, apiGatewayCloudWatchRole (true | false), tracingRate (0 to 1),
//   secretPrefix, secretKmsKeys, deploying (true: set by `npm run deploy`).
// The connections file is validated here, at synth time, by the same loader the functions use at cold start, and
// every template is checked against the AWS quotas it must meet (infra/quotas.ts) before anything deploys.

export function connectionsFileFor(context: string | undefined): string {
  if (context) return resolve(PROJECT_ROOT, context);
  const own = resolve(PROJECT_ROOT, 'broker.config.json');
  return existsSync(own) ? own : resolve(PROJECT_ROOT, 'infra/connections.example.json');
}

/**
 * cdk-nag's AWS Solutions and Serverless packs (a finding not acknowledged on its construct fails the synth), and
 * the AWS quotas every template must meet (a finding fails the synth).
 */
export function addChecks(app: App): void {
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }), new ServerlessChecks(app, { verbose: true }), new AwsQuotaChecks());
}

/** With no file named, the app would bundle the example's connections: fine to synth, never to deploy. */
export function checkDeployable(settings: BrokerSettings): void {
  if (settings.deploying && !settings.connectionsFile) {
    throw new Error(
      'deploy: no connections file named. Deploying bundles the connections file with every function, so name yours: ' +
        'npm run deploy -- -c connectionsFile=broker.config.json (infra/connections.example.json is for synth only).',
    );
  }
}

/** What a synth or a deploy is about to build, in one line for the operator (written to stderr). */
export function describeDeployment(built: ReturnType<typeof buildApp>, environment: AppEnvironment): string {
  const where = (value: string | undefined, what: string) => value ?? `${what} of the deploying credentials (not known at synth)`;
  return (
    `token-broker: ${built.settings.deploying ? 'deploying' : 'synthesizing'} stage ${built.settings.stage} ` +
    `to account ${where(environment.account, 'the account')}, region ${where(environment.region, 'the region')}: ` +
    `${built.config.connections.length} connections from ${built.connectionsFile}; secrets under ${built.settings.secretPrefix} granted by one wildcard`
  );
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
  checkDeployable(settings);
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
    marks: stateful.store.marks,
    key: stateful.store.key,
    allowedAccounts: settings.allowedAccounts,
    ...(settings.organizationId ? { organizationId: settings.organizationId } : {}),
    ...(settings.alarmTopicArn ? { alarmTopicArn: settings.alarmTopicArn } : {}),
    cloudTrail: settings.cloudTrail,
    endpointType: settings.endpointType,
    vpcEndpointIds: settings.vpcEndpointIds,
    apiGatewayCloudWatchRole: settings.apiGatewayCloudWatchRole,
    tracingRate: settings.tracingRate,
    secretPrefix: settings.secretPrefix,
    secretKmsKeys: settings.secretKmsKeys,
  });
  broker.addStackDependency(stateful);
  // CloudFormation's AWS::CloudWatch::Dashboard takes no Tags (cfn-lint E3002), though the CDK would add them.
  const untaggable = { excludeResourceTypes: ['AWS::CloudWatch::Dashboard'] };
  Tags.of(app).add('app', 'token-broker', untaggable);
  Tags.of(app).add('stage', stage, untaggable);
  addChecks(app);
  return { app, stateful, broker, config, settings, connectionsFile };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(PROJECT_ROOT, 'infra/app.ts')) {
  const environment = { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION };
  const built = buildApp(new App(), environment);
  // stderr: the CDK CLI reads nothing from it, and shows it with --quiet.
  process.stderr.write(`${describeDeployment(built, environment)}\n`);
  built.app.synth();
}
