import { Duration, Stack, Validations, type CfnElement, type StackProps } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { Rule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { Schedule, ScheduleExpression } from 'aws-cdk-lib/aws-scheduler';
import { LambdaInvoke } from 'aws-cdk-lib/aws-scheduler-targets';
import { Topic, type ITopic } from 'aws-cdk-lib/aws-sns';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { ROTATION_EVENTS } from '../functions/rotation';
import type { BrokerConfig } from '../lib/config';
import { BrokerAlarms } from './constructs/broker-alarms';
import { BrokerApi } from './constructs/broker-api';
import { BrokerFunction, DEFAULT_TIMEOUTS, secretArnPattern } from './constructs/broker-function';
import { TokenStore } from './constructs/token-store';

// Stateful resources (the key, the table) live in one stack, stateless ones (functions, API, schedule, rule,
// alarms) in another that receives them by props, so the second can be replaced freely.

export class BrokerStatefulStack extends Stack {
  readonly store: TokenStore;

  constructor(scope: Construct, id: string, props: StackProps & { stage: string }) {
    super(scope, id, props);
    this.store = new TokenStore(this, 'TokenStore', { stage: props.stage });
  }
}

export interface BrokerStackProps extends StackProps {
  stage: string;
  config: BrokerConfig;
  /** The validated connections file, bundled with every function. */
  connectionsFile: string;
  table: ITable;
  key: IKey;
  allowedAccounts: string[];
  organizationId?: string;
  alarmTopicArn?: string;
}

export class BrokerStack extends Stack {
  readonly api: BrokerApi;
  readonly functions: { http: BrokerFunction; prewarm: BrokerFunction; rotation: BrokerFunction };
  readonly deadLetters: Queue;
  readonly topic: ITopic;

  constructor(scope: Construct, id: string, props: BrokerStackProps) {
    super(scope, id, props);
    const secretArns = [...new Set(props.config.connections.map((c) => secretArnPattern(this, c.secretId)))];

    this.deadLetters = new Queue(this, 'DeadLetters', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });

    const common = { connectionsFile: props.connectionsFile };
    const http = new BrokerFunction(this, 'Http', {
      ...common,
      entry: 'functions/http.ts',
      description: 'token-broker HTTP API',
      memorySize: 512,
      timeout: DEFAULT_TIMEOUTS.http,
    });
    const prewarm = new BrokerFunction(this, 'Prewarm', {
      ...common,
      entry: 'functions/prewarm.ts',
      description: 'token-broker scheduled pre-warming',
      memorySize: 256,
      timeout: DEFAULT_TIMEOUTS.prewarm,
      onFailure: this.deadLetters,
    });
    const rotation = new BrokerFunction(this, 'Rotation', {
      ...common,
      entry: 'functions/rotation.ts',
      description: 'token-broker secret rotation: evict and re-mint; the testSecret step',
      memorySize: 256,
      timeout: DEFAULT_TIMEOUTS.rotation,
      onFailure: this.deadLetters,
    });
    for (const fn of [http, prewarm, rotation]) fn.bindTable(props.table, props.key).bindTokenKey(props.key).bindSecrets(secretArns);
    this.functions = { http, prewarm, rotation };

    this.api = new BrokerApi(this, 'Api', {
      stage: props.stage,
      handler: http,
      allowedAccounts: props.allowedAccounts.length > 0 ? props.allowedAccounts : [this.account],
      ...(props.organizationId ? { organizationId: props.organizationId } : {}),
      throttle: { rateLimit: 500, burstLimit: 1000 },
    });

    new Schedule(this, 'PrewarmSchedule', {
      description: 'token-broker pre-warming, every minute',
      schedule: ScheduleExpression.rate(Duration.minutes(1)),
      target: new LambdaInvoke(prewarm, { deadLetterQueue: this.deadLetters, retryAttempts: 0, maxEventAge: Duration.minutes(1) }),
    });

    new Rule(this, 'SecretChanges', {
      description: "token-broker: Secrets Manager's changes to secret values, through CloudTrail",
      eventPattern: {
        source: ['aws.secretsmanager'],
        detailType: ['AWS API Call via CloudTrail', 'AWS Service Event via CloudTrail'],
        detail: { eventSource: ['secretsmanager.amazonaws.com'], eventName: ROTATION_EVENTS },
      },
      targets: [new LambdaFunction(rotation, { deadLetterQueue: this.deadLetters, retryAttempts: 2, maxEventAge: Duration.hours(1) })],
    });

    this.topic = props.alarmTopicArn
      ? Topic.fromTopicArn(this, 'AlarmTopic', props.alarmTopicArn)
      : new Topic(this, 'AlarmTopic', { displayName: `token-broker ${props.stage} alarms`, enforceSSL: true });
    new BrokerAlarms(this, 'Alarms', {
      stage: props.stage,
      api: this.api.api,
      functions: { Http: http, Prewarm: prewarm, Rotation: rotation },
      deadLetters: this.deadLetters,
      topic: this.topic,
    });

    this.acknowledgeReviewedFindings(this.getLogicalId(prewarm.node.defaultChild as CfnElement));
  }

  /**
   * The cdk-nag findings we accept, each with the reason a reviewer would ask for. (The validation report in the
   * cloud assembly lists them; test/infra fails on any finding not acknowledged here.)
   */
  private acknowledgeReviewedFindings(prewarmLogicalId: string) {
    const accept = (id: string, reason: string) => Validations.of(this).acknowledge({ id, reason });
    accept(
      `AwsSolutions::AwsSolutions-IAM5[Resource::<${prewarmLogicalId}.Arn>:*]`,
      "The scheduler's role may invoke the pre-warm function and its versions; no other function.",
    );
    accept(
      'AwsSolutions::AwsSolutions-APIG2',
      'Request validation is in the OpenAPI body (x-amazon-apigateway-request-validators "all" on every method, asserted by test/infra); cdk-nag looks for separate RequestValidator resources.',
    );
    accept(
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      'AWSLambdaBasicExecutionRole only lets a function write its own logs.',
    );
    accept(
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
      'The managed role AWS documents for API Gateway account-level logging.',
    );
    accept('AwsSolutions-IAM5[Resource::*]', 'X-Ray PutTraceSegments/PutTelemetryRecords (active tracing) support no resource-level permissions.');
    accept(
      'AwsSolutions-APIG3',
      'An internal API: every method is AWS_IAM with SigV4, the resource policy admits only the configured accounts or organization, and stage throttling is set. WAF adds cost without a threat it would stop here.',
    );
    accept('AwsSolutions-SQS3', 'This queue is itself the dead-letter queue of the asynchronous functions, the schedule and the rule.');
    accept('AwsSolutions-L1', 'The runtime is pinned to nodejs22.x, the runtime the project supports and tests on.');
    accept(
      'Serverless-LambdaDLQ',
      "The HTTP function is invoked synchronously by API Gateway: a failure is the caller's answer. The pre-warm and rotation functions send failed asynchronous invocations to an on-failure destination (the dead-letter queue), which supersedes a DeadLetterConfig.",
    );
    accept('Serverless::Serverless-SQSRedrivePolicy', 'This queue is itself the dead-letter queue; nothing redrives from it automatically.');
    accept('Serverless::Serverless-LambdaLatestVersion', 'The runtime is pinned to nodejs22.x, the runtime the project supports and tests on.');
  }
}
