import { RemovalPolicy } from 'aws-cdk-lib';
import { AttributeType, BillingMode, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { TABLE_KEY, TTL_ATTRIBUTE } from '../../lib/contract';

/** The only DynamoDB actions the broker's code uses (lib/adapters/dynamodb.ts). */
export const TABLE_ITEM_ACTIONS = ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'] as const;

/**
 * The stateful part: the broker's customer-managed KMS key (rotated yearly) and the token table encrypted with it,
 * on demand, with TTL on the token items' `ttl`, point-in-time recovery, deletion protection, kept on delete.
 */
export class TokenStore extends Construct {
  readonly key: Key;
  readonly table: Table;

  constructor(scope: Construct, id: string, props: { stage: string }) {
    super(scope, id);
    this.key = new Key(this, 'Key', {
      description: `token-broker (${props.stage}): token table encryption and token envelope keys`,
      enableKeyRotation: true,
      alias: `alias/token-broker-${props.stage}`,
      removalPolicy: RemovalPolicy.RETAIN,
    });
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
  }
}
