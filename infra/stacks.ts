import { Annotations, Aws, CfnRule, Duration, Fn, Stack, Token, Validations, type StackProps } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { Rule } from 'aws-cdk-lib/aws-events';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { Schedule, ScheduleExpression } from 'aws-cdk-lib/aws-scheduler';
import { LambdaInvoke } from 'aws-cdk-lib/aws-scheduler-targets';
import { Topic, type ITopic } from 'aws-cdk-lib/aws-sns';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import type { CfnFunction } from 'aws-cdk-lib/aws-lambda';
import type { Construct } from 'constructs';
import type { BrokerConfig, Connection } from '../lib/config';
import { PREWARM_INTERVAL_SECONDS, ROTATION_EVENTS, SECRET_EVENT_SOURCE } from '../lib/contract';
import { BrokerAlarms } from './constructs/broker-alarms';
import { BrokerApi } from './constructs/broker-api';
import { BrokerConsole } from './constructs/broker-console';
import { BrokerFunction, DEFAULT_TIMEOUTS } from './constructs/broker-function';
import { SECRET_ARN, SecretGrants, defaultSecretPrefix } from './constructs/secret-grants';
import { SecretEventsTrail } from './constructs/secret-events-trail';
import { TokenStore, functionRoleName } from './constructs/token-store';
import { TRACE_SAMPLING } from './observability';
import type { BrokerSettings } from './settings';

// Stateful resources (the key, the table) live in one stack, stateless ones (functions, API, schedule, rule,
// alarms) in another that receives them by props, so the second can be replaced freely.

export class BrokerStatefulStack extends Stack {
  readonly store: TokenStore;
  readonly trail: SecretEventsTrail | undefined;

  constructor(scope: Construct, id: string, props: StackProps & { stage: string; cloudTrail: BrokerSettings['cloudTrail'] }) {
    super(scope, id, props);
    this.store = new TokenStore(this, 'TokenStore', { stage: props.stage });
    // The trail's records are kept like the table, apart from the functions that come and go.
    this.trail = props.cloudTrail === 'create' ? new SecretEventsTrail(this, 'SecretEvents', { stage: props.stage }) : undefined;
  }
}

export interface BrokerStackProps extends StackProps {
  stage: string;
  config: BrokerConfig;
  /** The validated connections file, bundled with every function. */
  connectionsFile: string;
  table: ITable;
  /** The retired marks' table (the stateful stack's TokenStore.marks). */
  marks: ITable;
  key: IKey;
  allowedAccounts: string[];
  organizationId?: string;
  alarmTopicArn?: string;
  /** Whether the stateful stack creates the trail that delivers secret change events, or one exists already. */
  cloudTrail: BrokerSettings['cloudTrail'];
  endpointType?: BrokerSettings['endpointType'];
  vpcEndpointIds?: string[];
  apiGatewayCloudWatchRole?: boolean;
  /** Share of API requests X-Ray records (default TRACE_SAMPLING.fixedRate); 0: no tracing anywhere. */
  tracingRate?: number;
  /** Secrets under this prefix are granted by one wildcard (default token-broker/<stage>/). */
  secretPrefix?: string;
  /** KMS keys granted for registered connections' secrets, besides the file's secretKmsKeyArn values. */
  secretKmsKeys?: string[];
}

export class BrokerStack extends Stack {
  readonly api: BrokerApi;
  readonly functions: { http: BrokerFunction; prewarm: BrokerFunction; rotation: BrokerFunction };
  readonly deadLetters: Queue;
  readonly topic: ITopic;

  constructor(scope: Construct, id: string, props: BrokerStackProps) {
    super(scope, id, props);
    // Before anything is built: a secret elsewhere is a configuration error, not a deploy that never sees events.
    this.checkSecretsAreLocal(props.config.connections);
    // Also before the functions are bundled: a file whose exact grants cannot fit IAM's quotas fails here.
    const secrets = new SecretGrants(this, 'SecretGrants', {
      prefix: props.secretPrefix ?? defaultSecretPrefix(props.stage),
      connections: props.config.connections,
      kmsKeys: props.secretKmsKeys ?? [],
    });

    this.deadLetters = new Queue(this, 'DeadLetters', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });

    const tracingRate = props.tracingRate ?? TRACE_SAMPLING.fixedRate;
    const common = { connectionsFile: props.connectionsFile, tracing: tracingRate > 0 };
    const http = new BrokerFunction(this, 'Http', {
      ...common,
      roleName: functionRoleName(props.stage, Aws.REGION, 'Http'),
      entry: 'functions/http.ts',
      description: 'token-broker HTTP API',
      memorySize: 512,
      timeout: DEFAULT_TIMEOUTS.http,
    });
    const prewarm = new BrokerFunction(this, 'Prewarm', {
      ...common,
      roleName: functionRoleName(props.stage, Aws.REGION, 'Prewarm'),
      entry: 'functions/prewarm.ts',
      description: 'token-broker scheduled pre-warming',
      memorySize: 256,
      timeout: DEFAULT_TIMEOUTS.prewarm,
      onFailure: this.deadLetters,
      // It runs every minute: the next run is the retry.
      retryAttempts: 0,
    });
    const rotation = new BrokerFunction(this, 'Rotation', {
      ...common,
      roleName: functionRoleName(props.stage, Aws.REGION, 'Rotation'),
      entry: 'functions/rotation.ts',
      description: 'token-broker secret rotation: evict and re-mint; the testSecret step',
      memorySize: 256,
      timeout: DEFAULT_TIMEOUTS.rotation,
      onFailure: this.deadLetters,
      retryAttempts: 2,
    });
    for (const fn of [http, prewarm, rotation]) fn.bindTable(props.table, props.key, props.marks).bindTokenKey(props.key).bindSecrets(secrets);
    prewarm.bindSecretBatchRead();
    Validations.of(http).acknowledge({
      id: 'Serverless::Serverless-LambdaDLQ',
      reason: "API Gateway invokes the HTTP function synchronously: a failure is the caller's answer, there is nothing to re-drive.",
    });
    for (const fn of [prewarm, rotation]) {
      Validations.of(fn).acknowledge({
        id: 'Serverless::Serverless-LambdaDLQ',
        reason: 'Failed asynchronous invocations go to an on-failure destination (the dead-letter queue), which supersedes a DeadLetterConfig.',
      });
    }
    this.functions = { http, prewarm, rotation };

    this.api = new BrokerApi(this, 'Api', {
      stage: props.stage,
      handler: http,
      allowedAccounts: props.allowedAccounts.length > 0 ? props.allowedAccounts : [this.account],
      ...(props.organizationId ? { organizationId: props.organizationId } : {}),
      throttle: { rateLimit: 500, burstLimit: 1000 },
      endpointType: props.endpointType ?? 'REGIONAL',
      vpcEndpointIds: props.vpcEndpointIds ?? [],
      cloudWatchRole: props.apiGatewayCloudWatchRole ?? false,
      tracing: tracingRate > 0 ? { fixedRate: tracingRate, reservoirSize: TRACE_SAMPLING.reservoirSize } : undefined,
    });
    if (!props.apiGatewayCloudWatchRole) {
      Annotations.of(this.api).addInfoV2(
        'token-broker:api-gateway-account-role',
        "API Gateway writes the access and execution logs with the region's account-level CloudWatch role; this stack does not create it (context apiGatewayCloudWatchRole=true does), so it must already be set in API Gateway's settings.",
      );
    }

    const scheduleRole = new Role(this, 'PrewarmScheduleRole', {
      assumedBy: new ServicePrincipal('scheduler.amazonaws.com', { conditions: { StringEquals: { 'aws:SourceAccount': this.account } } }),
      description: 'token-broker: EventBridge Scheduler invokes the pre-warm function',
    });
    new Schedule(this, 'PrewarmSchedule', {
      description: 'token-broker pre-warming, every minute',
      schedule: ScheduleExpression.rate(Duration.seconds(PREWARM_INTERVAL_SECONDS)),
      target: new LambdaInvoke(prewarm, { role: scheduleRole, deadLetterQueue: this.deadLetters, retryAttempts: 0, maxEventAge: Duration.minutes(1) }),
    });
    Validations.of(scheduleRole).acknowledge({
      id: `AwsSolutions::AwsSolutions-IAM5[Resource::<${this.getLogicalId(prewarm.node.defaultChild as CfnFunction)}.Arn>:*]`,
      reason: "The scheduler's role may invoke the pre-warm function and its versions (the :* that lambda:InvokeFunction grants); no other function.",
    });

    const secretChanges = new Rule(this, 'SecretChanges', {
      description: "token-broker: Secrets Manager's changes to secret values, through CloudTrail",
      eventPattern: {
        source: ['aws.secretsmanager'],
        detailType: ['AWS API Call via CloudTrail', 'AWS Service Event via CloudTrail'],
        detail: { eventSource: [SECRET_EVENT_SOURCE], eventName: [...ROTATION_EVENTS] },
      },
      targets: [new LambdaFunction(rotation, { deadLetterQueue: this.deadLetters, retryAttempts: 2, maxEventAge: Duration.hours(1) })],
    });
    if (props.cloudTrail === 'create') {
      Annotations.of(secretChanges).addInfoV2(
        'token-broker:cloudtrail',
        'Secret change events come from the CloudTrail trail the data stack creates (write management events, this region). context cloudTrail=existing relies on a trail the account already has instead.',
      );
    } else {
      Annotations.of(secretChanges).addWarningV2(
        'token-broker:cloudtrail',
        "cloudTrail=existing: secret change events reach EventBridge only if a CloudTrail trail records write management events in this region (an organization trail does). Without one, a changed secret is picked up by the pre-warm run within a minute, for connections with prewarm. context cloudTrail=create creates one.",
      );
    }

    this.topic = props.alarmTopicArn
      ? Topic.fromTopicArn(this, 'AlarmTopic', props.alarmTopicArn)
      : new Topic(this, 'AlarmTopic', { displayName: `token-broker ${props.stage} alarms`, enforceSSL: true });
    const alarms = new BrokerAlarms(this, 'Alarms', {
      stage: props.stage,
      api: this.api.api,
      functions: { Http: http, Prewarm: prewarm, Rotation: rotation },
      httpLogs: http.logGroup,
      deadLetters: this.deadLetters,
      topic: this.topic,
    });
    new BrokerConsole(this, 'Console', {
      connectionsFile: props.connectionsFile,
      stage: props.stage,
      table: props.table,
      key: props.key,
      dashboard: alarms.dashboard,
      alarms: alarms.alarms,
    });

    Validations.of(this.deadLetters).acknowledge(
      { id: 'AwsSolutions::AwsSolutions-SQS3', reason: 'This queue is itself the dead-letter queue of the asynchronous functions, the schedule and the rule.' },
      { id: 'Serverless::Serverless-SQSRedrivePolicy', reason: 'This queue is itself the dead-letter queue; nothing redrives from it automatically.' },
    );
  }

  /**
   * A secret named by ARN must be in this stack's region and account: EventBridge delivers a secret's change events
   * only in its own region and account, and the grants are written for this account. Checked at synth time when the
   * stack's environment is known, else by a CloudFormation rule at deploy time. (A secret from another region can
   * be replicated into this one with Secrets Manager's replication, and the replica named instead.)
   */
  private checkSecretsAreLocal(connections: readonly Connection[]) {
    const required = new Map<string, Set<string>>([
      ['region', new Set()],
      ['account', new Set()],
    ]);
    for (const c of connections) {
      const m = SECRET_ARN.exec(c.secretId);
      if (!m) continue;
      const [, , region, account] = m as unknown as [string, string, string, string];
      for (const [what, value, ours] of [
        ['region', region, this.region],
        ['account', account, this.account],
      ] as const) {
        if (Token.isUnresolved(ours)) required.get(what)!.add(value);
        else if (value !== ours) {
          throw new Error(
            `connection ${c.id}: its secret's ARN names ${what} ${value}, but this stack deploys to ${what} ${ours}. ` +
              `Secret change events are regional and same-account, and the broker reads its secrets where it runs: deploy the broker in ${value}` +
              (what === 'region' ? ', or replicate the secret into this region and name the replica.' : ', or copy the secret into this account.'),
          );
        }
      }
    }
    for (const [what, values] of required) {
      if (values.size === 0) continue;
      const actual = what === 'region' ? Aws.REGION : Aws.ACCOUNT_ID;
      new CfnRule(this, what === 'region' ? 'SecretsInThisRegion' : 'SecretsInThisAccount', {
        assertions: [...values].map((value) => ({
          assert: Fn.conditionEquals(actual, value),
          assertDescription: `A connection's secret is in ${what} ${value}: deploy the token broker there (secret change events are regional and same-account).`,
        })),
      });
    }
  }
}
