import { Aws, RemovalPolicy } from 'aws-cdk-lib';
import { AttributeType, BillingMode, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import { AnyPrincipal, Effect, PolicyDocument, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { ENCRYPTION_CONTEXT, TABLE_KEY, TTL_ATTRIBUTE } from '../../lib/contract';

/** The broker's functions, by the construct ids the stack gives them. */
export const BROKER_FUNCTIONS = ['Http', 'Prewarm', 'Rotation'] as const;

/**
 * The name of a broker function's execution role: token-broker-<stage>-<region>-<function> (IAM names are global
 * to the account, so the region keeps one stage's deployments in two regions apart). The key's policy (below) lets
 * exactly these roles wrap token keys, so the two stacks agree on it here.
 */
export function functionRoleName(stage: string, region: string, fn: (typeof BROKER_FUNCTIONS)[number]): string {
  return `token-broker-${stage}-${region}-${fn.toLowerCase()}`;
}

/**
 * Every KMS action that leaves a caller knowing a key the broker's key wraps, or a token data key it unwraps (the
 * ones the key policy denies): Decrypt too, so a data key read from the table is unwrapped by the functions only.
 */
export const KEY_WRAPPING_ACTIONS = ['kms:Encrypt', 'kms:GenerateDataKey*', 'kms:ReEncrypt*', 'kms:Decrypt'] as const;

/** The ARNs of the broker functions' roles in this stack's account and region. */
function brokerRoleArns(stage: string): string[] {
  return BROKER_FUNCTIONS.map((fn) => `arn:${Aws.PARTITION}:iam::${Aws.ACCOUNT_ID}:role/${functionRoleName(stage, Aws.REGION, fn)}`);
}

/** The name of a stage's retired-marks table (lib/retired.ts): fixed, so that its own resource policy can name it. */
export function marksTableName(stage: string): string {
  return `token-broker-${stage}-marks`;
}

/**
 * Every DynamoDB action that writes an item of a table: the retired marks' resource policy denies them to every
 * principal but the broker's roles (a restore always creates a new table, which the broker does not read).
 */
export const ITEM_WRITE_ACTIONS = [
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
  'dynamodb:PartiQLInsert',
  'dynamodb:PartiQLUpdate',
  'dynamodb:PartiQLDelete',
] as const;

/** The only DynamoDB actions the broker's code uses (lib/adapters/dynamodb.ts). */
export const TABLE_ITEM_ACTIONS = ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'] as const;

/**
 * The stateful part: the broker's customer-managed KMS key (rotated yearly) and the token table encrypted with it,
 * on demand, with TTL on the token items' `ttl`, point-in-time recovery, deletion protection, kept on delete; and the
 * retired marks' table beside it, which only the broker's functions may write.
 */
export class TokenStore extends Construct {
  readonly key: Key;
  readonly table: Table;
  readonly marks: Table;

  constructor(scope: Construct, id: string, props: { stage: string }) {
    super(scope, id);
    this.key = new Key(this, 'Key', {
      description: `token-broker (${props.stage}): token table encryption and token envelope keys`,
      enableKeyRotation: true,
      alias: `alias/token-broker-${props.stage}`,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // Only the broker's functions (their three roles, by ARN) may obtain or unwrap a data key with the broker's encryption context,
    // however IAM policies elsewhere in the account grant this key: the fleet adopts the oldest data key it reads
    // from the table, so a key planted by anyone else would seal real tokens under a key its planter knows. The role
    // ARN is what the condition reads, not a tag: a session tag or a tag on a user can be set by more principals
    // than can create a role of that name.
    const context: Record<string, string> = {};
    for (const [k, v] of Object.entries(ENCRYPTION_CONTEXT)) context[`kms:EncryptionContext:${k}`] = v;
    this.key.addToResourcePolicy(
      new PolicyStatement({
        sid: 'OnlyTheBrokerFunctionsUseTokenKeys',
        effect: Effect.DENY,
        principals: [new AnyPrincipal()],
        actions: [...KEY_WRAPPING_ACTIONS],
        resources: ['*'],
        conditions: {
          StringEquals: context,
          ArnNotLike: { 'aws:PrincipalArn': brokerRoleArns(props.stage) },
        },
      }),
    );
    this.table = new Table(this, 'Table', {
      partitionKey: { name: TABLE_KEY, type: AttributeType.STRING },
      billingMode: BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: TTL_ATTRIBUTE,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: this.key,
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // The retired marks (lib/retired.ts): whoever can write the token table, or restore it from a backup, must not be
    // able to lower a mark with it. Its resource policy denies item writes to every principal but the broker's three
    // roles, by ARN, whatever IAM policies elsewhere in the account grant; changing that policy (or deleting the
    // table, which deletion protection also guards) is an administrator's act, kept apart from writing tokens.
    const marksName = marksTableName(props.stage);
    this.marks = new Table(this, 'Marks', {
      tableName: marksName,
      partitionKey: { name: TABLE_KEY, type: AttributeType.STRING },
      billingMode: BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: this.key,
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
      resourcePolicy: new PolicyDocument({
        statements: [
          new PolicyStatement({
            sid: 'OnlyTheBrokerFunctionsWriteMarks',
            effect: Effect.DENY,
            principals: [new AnyPrincipal()],
            actions: [...ITEM_WRITE_ACTIONS],
            resources: [`arn:${Aws.PARTITION}:dynamodb:${Aws.REGION}:${Aws.ACCOUNT_ID}:table/${marksName}`],
            conditions: { ArnNotLike: { 'aws:PrincipalArn': brokerRoleArns(props.stage) } },
          }),
        ],
      }),
    });
  }
}
