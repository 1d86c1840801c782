import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { Architecture, LoggingFormat, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { SqsDestination } from 'aws-cdk-lib/aws-lambda-destinations';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { ENCRYPTION_CONTEXT } from '../../lib/crypto';
import { FUNCTION_BUNDLING } from '../bundling';
import { TABLE_ITEM_ACTIONS } from './token-store';

// Our Lambda defaults in one place (Node 22 on ARM64, ESM, minified with source maps, active tracing, JSON logs in
// their own log group with a retention, Powertools settings, the connections file bundled beside the code), and
// bind helpers that set an environment variable and its least-privilege grant in one call, so they cannot drift.

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface BrokerFunctionProps {
  /** Path of the handler file, relative to the project root. */
  entry: string;
  description: string;
  memorySize: number;
  timeout: Duration;
  /** The validated connections file, copied into the bundle as broker.config.json. */
  connectionsFile: string;
  /** Asynchronous invocations that fail twice go here. */
  onFailure?: IQueue;
  logRetention?: RetentionDays;
}

export class BrokerFunction extends NodejsFunction {
  constructor(scope: Construct, id: string, props: BrokerFunctionProps) {
    const logGroup = new LogGroup(scope, `${id}Logs`, {
      retention: props.logRetention ?? RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    super(scope, id, {
      entry: resolve(PROJECT_ROOT, props.entry),
      handler: 'handler',
      description: props.description,
      runtime: Runtime.NODEJS_22_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize,
      timeout: props.timeout,
      tracing: Tracing.ACTIVE,
      logGroup,
      loggingFormat: LoggingFormat.JSON,
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: resolve(PROJECT_ROOT, 'package-lock.json'),
      environment: {
        NODE_OPTIONS: '--enable-source-maps',
        BROKER_CONFIG: 'broker.config.json',
        POWERTOOLS_SERVICE_NAME: 'token-broker',
        POWERTOOLS_METRICS_NAMESPACE: 'TokenBroker',
        POWERTOOLS_LOG_LEVEL: 'INFO',
      },
      bundling: {
        ...FUNCTION_BUNDLING,
        format: OutputFormat.ESM,
        commandHooks: {
          beforeBundling: () => [],
          beforeInstall: () => [],
          afterBundling: (_input: string, output: string) => [`cp "${props.connectionsFile}" "${output}/broker.config.json"`],
        },
      },
      ...(props.onFailure ? { onFailure: new SqsDestination(props.onFailure), retryAttempts: 2 } : {}),
    });
  }

  /** BROKER_TABLE, and the item actions the broker uses on that table only (its key through DynamoDB only). */
  bindTable(table: ITable, key: IKey): this {
    this.addEnvironment('BROKER_TABLE', table.tableName);
    this.addToRolePolicy(new PolicyStatement({ actions: [...TABLE_ITEM_ACTIONS], resources: [table.tableArn] }));
    this.addToRolePolicy(
      new PolicyStatement({
        actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'],
        resources: [key.keyArn],
        conditions: {
          StringEquals: {
            'kms:ViaService': `dynamodb.${Stack.of(this).region}.amazonaws.com`,
            'kms:EncryptionContext:aws:dynamodb:tableName': table.tableName,
          },
        },
      }),
    );
    return this;
  }

  /** BROKER_KEY_ID, and GenerateDataKey/Decrypt on that key only with the broker's encryption context. */
  bindTokenKey(key: IKey): this {
    this.addEnvironment('BROKER_KEY_ID', key.keyArn);
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

  /** GetSecretValue on exactly the connections' secrets. */
  bindSecrets(secretArns: readonly string[]): this {
    if (secretArns.length === 0) return this;
    this.addToRolePolicy(new PolicyStatement({ actions: ['secretsmanager:GetSecretValue'], resources: [...secretArns] }));
    return this;
  }
}

/** The ARN pattern a connection's secretId stands for: a name gets Secrets Manager's 6-character suffix. */
export function secretArnPattern(stack: Stack, secretId: string): string {
  if (/^arn:aws[a-z-]*:secretsmanager:/.test(secretId)) {
    return /-[A-Za-z0-9]{6}$/.test(secretId) ? secretId : `${secretId}-??????`;
  }
  return stack.formatArn({ service: 'secretsmanager', resource: 'secret', resourceName: `${secretId}-??????`, arnFormat: ArnFormat.COLON_RESOURCE_NAME });
}

export const DEFAULT_TIMEOUTS = {
  // Below API Gateway's 29 s: a caller may wait 20 s for another instance's mint, plus the lookups around it.
  http: Duration.seconds(25),
  // The schedule fires every minute; a run stops starting connections when 12 s are left.
  prewarm: Duration.seconds(55),
  rotation: Duration.seconds(60),
};
