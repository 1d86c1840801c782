import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import { ReadWriteType, Trail } from 'aws-cdk-lib/aws-cloudtrail';
import { BlockPublicAccess, Bucket, BucketEncryption, ObjectOwnership } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

// EventBridge receives Secrets Manager's "AWS API Call via CloudTrail" events (PutSecretValue, UpdateSecret, ...)
// only when a trail records management events in that region. This trail records the write events only, in this
// region only (the rule that reads them is regional too), into an encrypted, private bucket that forgets them.

export interface SecretEventsTrailProps {
  stage: string;
  /** Days the trail's files are kept (default 90). */
  retentionDays?: number;
}

export class SecretEventsTrail extends Construct {
  readonly trail: Trail;
  readonly bucket: Bucket;

  constructor(scope: Construct, id: string, props: SecretEventsTrailProps) {
    super(scope, id);
    this.bucket = new Bucket(this, 'Bucket', {
      encryption: BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ expiration: Duration.days(props.retentionDays ?? 90), abortIncompleteMultipartUploadAfter: Duration.days(1) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(this.bucket).acknowledge({
      id: 'AwsSolutions::AwsSolutions-S1',
      reason: "This bucket holds only CloudTrail's own deliveries, written by the trail service and read by nobody routinely; access logging it would need a second bucket to log into.",
    });
    this.trail = new Trail(this, 'Trail', {
      trailName: `token-broker-${props.stage}-secret-events`,
      bucket: this.bucket,
      managementEvents: ReadWriteType.WRITE_ONLY,
      isMultiRegionTrail: false,
      includeGlobalServiceEvents: false,
      enableFileValidation: true,
      sendToCloudWatchLogs: false,
    });
  }
}
