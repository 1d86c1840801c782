import type { Node } from 'constructs';
import { defaultSecretPrefix } from './constructs/secret-grants';
import { TRACE_SAMPLING } from './observability';

// The deploy-time settings, read from CDK context (cdk.json, or `-c key=value`) and checked once, so a typo fails
// the synth with a message naming the setting instead of deploying something else.

export interface BrokerSettings {
  /** Names the stacks and resources. */
  stage: string;
  /** The connections file; empty means broker.config.json when it exists, else the example in infra/. */
  connectionsFile: string | undefined;
  /** Accounts whose principals may call the API (default: the stack's own). */
  allowedAccounts: string[];
  /** Admit a whole AWS Organization instead of a list of accounts. */
  organizationId: string | undefined;
  /** An existing SNS topic for the alarms (default: a new topic). */
  alarmTopicArn: string | undefined;
  /** `create`: a CloudTrail trail for the secret change events; `existing`: rely on one the account already has. */
  cloudTrail: 'create' | 'existing';
  /** REGIONAL, or PRIVATE (reachable only through the interface VPC endpoints named in vpcEndpointIds). */
  endpointType: 'REGIONAL' | 'PRIVATE';
  vpcEndpointIds: string[];
  /**
   * Create the region's AWS::ApiGateway::Account CloudWatch role. There is one per account and region, shared by
   * every API and stage there, so only one stack should own it.
   */
  apiGatewayCloudWatchRole: boolean;
  /** Share of API requests X-Ray records (0 to 1); 0 turns tracing off on the stage and the functions. */
  tracingRate: number;
  /** Secrets whose name starts with this are readable through one wildcard grant (default token-broker/<stage>/). */
  secretPrefix: string;
  /** KMS keys the functions may decrypt registered connections' secrets with (through Secrets Manager only). */
  secretKmsKeys: string[];
  /** Set by `npm run deploy` (-c deploying=true): a deploy must name its connections file. */
  deploying: boolean;
}

// Context arrives as text (`-c key=a,b` or cdk.json); a list may also be written as a JSON array in cdk.json.
const list = (v: unknown) =>
  (Array.isArray(v) ? v.map(String).join(',') : typeof v === 'string' ? v : '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

function oneOf<T extends string>(node: Node, key: string, allowed: readonly T[], fallback: T): T {
  const raw: unknown = node.tryGetContext(key);
  if (raw === undefined || raw === null || raw === '') return fallback;
  const value = typeof raw === 'string' ? raw : JSON.stringify(raw);
  if (!(allowed as readonly string[]).includes(value)) {
    throw new Error(`context ${key}: must be one of ${allowed.join(', ')} (got ${JSON.stringify(value)})`);
  }
  return value as T;
}

function flag(node: Node, key: string): boolean {
  const raw: unknown = node.tryGetContext(key);
  if (raw === undefined || raw === null || raw === '' || raw === false || raw === 'false') return false;
  if (raw === true || raw === 'true') return true;
  throw new Error(`context ${key}: must be true or false (got ${JSON.stringify(raw)})`);
}

function share(node: Node, key: string, fallback: number): number {
  const raw: unknown = node.tryGetContext(key);
  if (raw === undefined || raw === null || raw === '') return fallback;
  const value = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
  if (!Number.isFinite(value) || value < 0 || value > 1) throw new Error(`context ${key}: must be a number from 0 to 1 (got ${JSON.stringify(raw)})`);
  return value;
}

// Secrets Manager's name characters; a `*` or `?` would widen the wildcard grant, and the final / keeps one stage's
// prefix from being the start of another's (token-broker/dev/ against token-broker/dev2/).
const SECRET_PREFIX = /^[A-Za-z0-9/_+=.@-]{1,256}\/$/;
const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]{1,128}$/;

function secretSettings(node: Node, stage: string): Pick<BrokerSettings, 'secretPrefix' | 'secretKmsKeys'> {
  const secretPrefix = String(node.tryGetContext('secretPrefix') ?? '') || defaultSecretPrefix(stage);
  if (!SECRET_PREFIX.test(secretPrefix)) {
    throw new Error(`context secretPrefix: ${JSON.stringify(secretPrefix)} must be up to 256 of Secrets Manager's name characters (letters, digits, /_+=.@-) ending in /`);
  }
  const secretKmsKeys = list(node.tryGetContext('secretKmsKeys'));
  for (const k of secretKmsKeys) {
    if (!KMS_KEY_ARN.test(k)) throw new Error(`context secretKmsKeys: ${JSON.stringify(k)} is not a KMS key ARN, arn:aws:kms:REGION:ACCOUNT:key/KEY-ID (not an alias)`);
  }
  return { secretPrefix, secretKmsKeys };
}

export function readSettings(node: Node): BrokerSettings {
  const text = (key: string) => String(node.tryGetContext(key) ?? '') || undefined;
  const allowedAccounts = list(node.tryGetContext('allowedAccounts'));
  for (const a of allowedAccounts) {
    if (!/^\d{12}$/.test(a)) throw new Error(`context allowedAccounts: ${JSON.stringify(a)} is not a 12-digit account id`);
  }
  const vpcEndpointIds = list(node.tryGetContext('vpcEndpointIds'));
  for (const id of vpcEndpointIds) {
    if (!/^vpce-[0-9a-f]{8,17}$/.test(id)) throw new Error(`context vpcEndpointIds: ${JSON.stringify(id)} is not a VPC endpoint id (vpce-...)`);
  }
  const endpointType = oneOf(node, 'endpointType', ['REGIONAL', 'PRIVATE'] as const, 'REGIONAL');
  if (endpointType === 'PRIVATE' && vpcEndpointIds.length === 0) {
    throw new Error('context endpointType PRIVATE needs vpcEndpointIds: the interface VPC endpoints (vpce-...) callers reach the API through');
  }
  if (endpointType === 'REGIONAL' && vpcEndpointIds.length > 0) {
    throw new Error('context vpcEndpointIds is only used with endpointType PRIVATE');
  }
  const stage = text('stage') ?? 'dev';
  // It names the stacks, the key's alias and the functions' roles (token-broker-<stage>-<region>-rotation: IAM role
  // names are at most 64 characters, and unique in the account whatever their case).
  if (stage.length > 24 || !/^[a-z0-9]+(-[a-z0-9]+)*$/.test(stage)) {
    throw new Error(`context stage: ${JSON.stringify(stage)} must be 1 to 24 lowercase letters, digits and single hyphens between them`);
  }
  return {
    stage,
    connectionsFile: text('connectionsFile'),
    allowedAccounts,
    organizationId: text('organizationId'),
    alarmTopicArn: text('alarmTopicArn'),
    cloudTrail: oneOf(node, 'cloudTrail', ['create', 'existing'] as const, 'create'),
    endpointType,
    vpcEndpointIds,
    apiGatewayCloudWatchRole: flag(node, 'apiGatewayCloudWatchRole'),
    tracingRate: share(node, 'tracingRate', TRACE_SAMPLING.fixedRate),
    ...secretSettings(node, stage),
    deploying: flag(node, 'deploying'),
  };
}
