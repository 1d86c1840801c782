import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CfnElement, Duration, Lazy, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { Policy, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { ApplicationLogLevel, Architecture, LoggingFormat, Runtime, SystemLogLevel, type CfnFunction } from 'aws-cdk-lib/aws-lambda';
import { SqsDestination } from 'aws-cdk-lib/aws-lambda-destinations';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { BUNDLED_CONFIG_FILE, ENCRYPTION_CONTEXT, ENV, METRIC_NAMESPACE, SERVICE_NAME } from '../../lib/contract';
import { FUNCTION_BUNDLING } from '../bundling';
import { LAMBDA_LOG_LEVELS } from '../observability';
import type { SecretGrants } from './secret-grants';
import { TABLE_ITEM_ACTIONS } from './token-store';

// Our Lambda defaults in one place (Node 22 on ARM64, ESM, minified with source maps, X-Ray for what the API stage
// samples, JSON logs in their own log group with a retention and Lambda's log levels (infra/observability.ts),
// Powertools settings, the connections file bundled beside the code), and
// bind helpers that set an environment variable and its least-privilege grant in one call, so they cannot drift.
// Each function has its own role that may write only to its own log group (no AWSLambdaBasicExecutionRole, whose
// logs permissions are on every log group).

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface BrokerFunctionProps {
  /** Path of the handler file, relative to the project root. */
  entry: string;
  description: string;
  memorySize: number;
  timeout: Duration;
  /** The validated connections file, copied into the bundle as broker.config.json. */
  connectionsFile: string;
  /** Asynchronous invocations that fail for good go here. */
  onFailure?: IQueue;
  /** Retries of a failed asynchronous invocation (Lambda's default is 2). */
  retryAttempts?: number;
  logRetention?: RetentionDays;
  /** Record X-Ray segments for the invocations an upstream (the API stage) sampled; false: no tracing at all. */
  tracing?: boolean;
  /** The execution role's name (functionRoleName): the key's policy lets only those roles wrap token keys. None: CDK names it. */
  roleName?: string;
}

export class BrokerFunction extends NodejsFunction {
  constructor(scope: Construct, id: string, props: BrokerFunctionProps) {
    const logGroup = new LogGroup(scope, `${id}Logs`, {
      retention: props.logRetention ?? RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const role = new Role(scope, `${id}ServiceRole`, {
      ...(props.roleName ? { roleName: props.roleName } : {}),
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: `token-broker ${id} function: its own log group, the table, the key, its secrets`,
    });
    logGroup.grantWrite(role);
    super(scope, id, {
      entry: resolve(PROJECT_ROOT, props.entry),
      handler: 'handler',
      description: props.description,
      runtime: Runtime.NODEJS_22_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize,
      timeout: props.timeout,
      role,
      logGroup,
      loggingFormat: LoggingFormat.JSON,
      systemLogLevelV2: SystemLogLevel[LAMBDA_LOG_LEVELS.system],
      applicationLogLevelV2: ApplicationLogLevel[LAMBDA_LOG_LEVELS.application],
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: resolve(PROJECT_ROOT, 'package-lock.json'),
      environment: {
        NODE_OPTIONS: '--enable-source-maps',
        [ENV.config]: BUNDLED_CONFIG_FILE,
        POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
        POWERTOOLS_METRICS_NAMESPACE: METRIC_NAMESPACE,
        POWERTOOLS_LOG_LEVEL: LAMBDA_LOG_LEVELS.application,
      },
      bundling: {
        ...FUNCTION_BUNDLING,
        format: OutputFormat.ESM,
        commandHooks: {
          beforeBundling: () => [],
          beforeInstall: () => [],
          afterBundling: (_input: string, output: string) => [`cp "${props.connectionsFile}" "${output}/${BUNDLED_CONFIG_FILE}"`],
        },
      },
      ...(props.onFailure ? { onFailure: new SqsDestination(props.onFailure), retryAttempts: props.retryAttempts ?? 2 } : {}),
    });
    this.dropRedundantRoleDependency(role);
    if (props.tracing ?? true) this.traceWhatUpstreamSampled(scope, id, role);
    else {
      Validations.of(this).acknowledge({
        id: 'Serverless::Serverless-LambdaTracing',
        reason: 'Tracing is turned off by the tracingRate=0 setting (docs/operations.md says how to turn it on).',
      });
    }
    const runtime = 'The runtime is pinned to nodejs22.x, the runtime the project supports and tests on.';
    Validations.of(this).acknowledge({ id: 'AwsSolutions::AwsSolutions-L1', reason: runtime }, { id: 'Serverless::Serverless-LambdaLatestVersion', reason: runtime });
  }

  /**
   * The function's Role property (a GetAtt) already orders it after the role; the DependsOn the CDK adds besides is
   * what cfn-lint reports (W3005). The role's policies stay in DependsOn: nothing else orders them.
   */
  private dropRedundantRoleDependency(role: Role) {
    const fn = this.node.defaultChild as CfnFunction;
    const roleResource = role.node.defaultChild as CfnElement;
    const stack = Stack.of(this);
    fn.addOverride(
      'DependsOn',
      Lazy.list({
        produce: () => {
          const others = fn.obtainDependencies().filter((d) => d !== roleResource && CfnElement.isCfnElement(d)) as CfnElement[];
          return others.length > 0 ? others.map((d) => stack.resolve(d.logicalId) as string).sort() : undefined;
        },
      }),
    );
  }

  /**
   * PassThrough: a segment only for an invocation whose caller sampled it (the API stage, by the stack's sampling
   * rule). Active would also sample the schedule's and the rule's invocations itself, at Lambda's fixed 1 a second
   * and 5%: every pre-warm run, 43,200 traces a month. The two X-Ray actions (which take no resource) are in a
   * policy of their own, so the one acknowledged Resource::* is theirs and a * added to other grants is reported.
   */
  private traceWhatUpstreamSampled(scope: Construct, id: string, role: Role) {
    (this.node.defaultChild as CfnFunction).tracingConfig = { mode: 'PassThrough' };
    const tracing = new Policy(scope, `${id}Tracing`, {
      roles: [role],
      statements: [new PolicyStatement({ actions: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], resources: ['*'] })],
    });
    this.node.addDependency(tracing);
    Validations.of(tracing).acknowledge({
      id: 'AwsSolutions::AwsSolutions-IAM5[Resource::*]',
      reason: 'X-Ray tracing: xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level permissions; this policy holds nothing else.',
    });
    Validations.of(this).acknowledge({
      id: 'Serverless::Serverless-LambdaTracing',
      reason: "PassThrough on purpose: the API stage's sampling rule decides which requests are traced; Active would trace every scheduled pre-warm run at Lambda's fixed rate.",
    });
  }

  /**
   * BROKER_TABLE and BROKER_MARKS_TABLE, and the item actions the broker uses on those tables only: on the retired
   * marks, read and raise (lib/adapters/dynamodb-marks.ts; that table's own resource policy lets no other principal
   * write it). Their key through DynamoDB only.
   */
  bindTable(table: ITable, key: IKey, marks: ITable): this {
    this.addEnvironment(ENV.table, table.tableName);
    this.addEnvironment(ENV.marksTable, marks.tableName);
    this.addToRolePolicy(new PolicyStatement({ actions: [...TABLE_ITEM_ACTIONS], resources: [table.tableArn] }));
    this.addToRolePolicy(new PolicyStatement({ actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem'], resources: [marks.tableArn] }));
    this.addToRolePolicy(
      new PolicyStatement({
        // Only the actions whose requests carry the table's encryption context can match this condition.
        actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey'],
        resources: [key.keyArn],
        conditions: {
          StringEquals: {
            'kms:ViaService': `dynamodb.${Stack.of(this).region}.amazonaws.com`,
            'kms:EncryptionContext:aws:dynamodb:tableName': [table.tableName, marks.tableName],
          },
        },
      }),
    );
    return this;
  }

  /**
   * BROKER_KEY_ID, and GenerateDataKey/Decrypt on that key only with the broker's encryption context (the key's own
   * policy also asks for the role's name: props.roleName, infra/constructs/token-store.ts).
   */
  bindTokenKey(key: IKey): this {
    this.addEnvironment(ENV.keyId, key.keyArn);
    const conditions: Record<string, string> = {};
    for (const [k, v] of Object.entries(ENCRYPTION_CONTEXT)) conditions[`kms:EncryptionContext:${k}`] = v;
    this.addToRolePolicy(
      new PolicyStatement({
        actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
        resources: [key.keyArn],
        conditions: { StringEquals: conditions },
      }),
    );
    return this;
  }

  /**
   * BROKER_SECRET_PREFIX and BROKER_SECRET_KMS_KEYS, and their grants: GetSecretValue on every secret under the
   * prefix (one wildcard), the file's other secrets through the shared exact-grant policies, and kms:Decrypt only
   * through Secrets Manager on the keys that encrypt some of them.
   */
  bindSecrets(grants: SecretGrants): this {
    this.addEnvironment(ENV.secretPrefix, grants.prefix);
    this.addEnvironment(ENV.secretKmsKeys, grants.kmsKeys.join(','));
    this.addToRolePolicy(new PolicyStatement({ actions: ['secretsmanager:GetSecretValue'], resources: [grants.prefixArn] }));
    if (grants.kmsKeys.length > 0) {
      this.addToRolePolicy(
        new PolicyStatement({
          actions: ['kms:Decrypt'],
          resources: grants.kmsKeys,
          conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(this).region}.amazonaws.com` } },
        }),
      );
    }
    for (const policy of grants.exactPolicies) {
      this.role!.addManagedPolicy(policy);
      // The first invocation finds its grants in place.
      this.node.addDependency(policy);
    }
    Validations.of(this.role!).acknowledge({
      id: `AwsSolutions::AwsSolutions-IAM5[Resource::${wildcardFinding(grants.prefixArn)}]`,
      reason: `Secrets are granted by rule: every secret whose name starts with ${grants.prefix} (the stage's prefix, context secretPrefix), so connections registered at runtime and any number of file connections need no per-secret grant (IAM's policy quotas fit only some hundreds).`,
    });
    return this;
  }

  /**
   * secretsmanager:BatchGetSecretValue, the pre-warm run's look at every secret (20 a call). The action takes no
   * resource, so it is granted on * in a policy of its own, acknowledged there alone: it returns no value by itself,
   * Secrets Manager authorizes GetSecretValue (bindSecrets: the prefix and the file's secrets) on each secret asked
   * for and reports the others as errors; with no ListSecrets granted, no filter can list secrets either.
   */
  bindSecretBatchRead(): this {
    const policy = new Policy(this.node.scope as Construct, `${this.node.id}SecretBatchRead`, {
      roles: [this.role!],
      statements: [new PolicyStatement({ actions: ['secretsmanager:BatchGetSecretValue'], resources: ['*'] })],
    });
    // The first scheduled run finds the grant in place.
    this.node.addDependency(policy);
    Validations.of(policy).acknowledge({
      id: 'AwsSolutions::AwsSolutions-IAM5[Resource::*]',
      reason:
        'secretsmanager:BatchGetSecretValue supports no resource-level permissions; it reads nothing by itself: Secrets Manager still authorizes GetSecretValue on each secret, granted only on the secrets under the prefix and those the connections file names.',
    });
    return this;
  }
}

export const DEFAULT_TIMEOUTS = {
  // Below API Gateway's 29 s: a caller may wait 20 s for another instance's mint, plus the lookups around it.
  http: Duration.seconds(25),
  // The schedule fires every minute; a run stops starting connections when 12 s are left.
  prewarm: Duration.seconds(55),
  rotation: Duration.seconds(60),
};

/** How cdk-nag names a resource in its findings: each intrinsic of the ARN as <AWS::Partition>, literals as they are. */
function wildcardFinding(arn: string): string {
  return Token.isUnresolved(arn) ? arn.replace(/\$\{Token\[(AWS\.[A-Za-z]+)\.\d+\]\}/g, (_, name: string) => `<${name.replace('.', '::')}>`) : arn;
}
