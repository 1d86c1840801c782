import { ArnFormat, Stack } from 'aws-cdk-lib';
import { ManagedPolicy, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { IAM_QUOTAS, policySize } from '../quotas';

// Which secrets the functions may read, by rule: every secret whose name starts with the stage's prefix through one
// wildcard grant (connections registered at runtime, and any number of file connections), and the file's other
// secrets one by one, packed into customer managed policies shared by the functions' roles. Exact grants take
// about 90 characters each, so only some hundreds fit IAM's quotas: a file naming more fails the synth here,
// saying how many fit, instead of a deploy failing on a quota.

/** What a connection says about its secret. */
export interface SecretReference {
  secretId: string;
  secretKmsKeyArn?: string | undefined;
}

export const SECRET_ARN = /^arn:(aws[a-z-]*):secretsmanager:([a-z0-9-]+):(\d{12}):secret:(.+)$/;
// Secrets Manager ends every secret's ARN with "-" and six random characters.
const SUFFIX = /-[A-Za-z0-9]{6}$/;

/** The stage's default prefix: token-broker/<stage>/. */
export const defaultSecretPrefix = (stage: string) => `token-broker/${stage}/`;

/** The secret's name as written (a name, or the resource part of an ARN, perhaps with its suffix). */
const secretName = (secretId: string) => SECRET_ARN.exec(secretId)?.[4] ?? secretId;

/** Whether the prefix's wildcard grant reaches this secret. */
export const isUnderPrefix = (secretId: string, prefix: string) => secretName(secretId).startsWith(prefix);

/**
 * The resource ARNs a connection's secretId is granted as, so every spelling reaches that secret and no other:
 * a name or a partial ARN gets `-??????` (exactly six characters: the random suffix), a full ARN is granted as
 * it is. An ARN that ends in "-" and six characters may be either (a name like broker/docoon-client looks like a
 * full ARN), so it is granted both ways: as that exact ARN, and as the secret of that name.
 */
export function secretResourcePatterns(stack: Stack, secretId: string): string[] {
  if (SECRET_ARN.test(secretId)) return SUFFIX.test(secretId) ? [secretId, `${secretId}-??????`] : [`${secretId}-??????`];
  return [secretArn(stack, `${secretId}-??????`)];
}

const secretArn = (stack: Stack, resourceName: string) =>
  stack.formatArn({ service: 'secretsmanager', resource: 'secret', resourceName, arnFormat: ArnFormat.COLON_RESOURCE_NAME });

const GET_SECRET_VALUE = 'secretsmanager:GetSecretValue';
const document = (resources: unknown[]) => ({ Version: '2012-10-17', Statement: [{ Action: GET_SECRET_VALUE, Effect: 'Allow', Resource: resources }] });

/** How a file's exact grants fit in managed policies: the policies' resources, and how many secrets fit at all. */
export interface Packing {
  policies: string[][];
  /** Secrets (not patterns: one secret may take two) that fit, in the file's order. */
  fitting: number;
  total: number;
}

/**
 * Packs each secret's patterns, in order, into documents of at most IAM's managed policy size, as IAM counts it
 * (renderedLength: a pattern's length once deployed), in at most `maxPolicies` documents.
 */
export function packExactGrants(secrets: readonly string[][], renderedLength: (pattern: string) => number, maxPolicies: number): Packing {
  const empty = policySize(document([]), {});
  const policies: string[][] = [];
  let size = Infinity;
  let fitting = 0;
  for (const patterns of secrets) {
    // Each pattern adds its quotes and a comma.
    const added = patterns.reduce((n, p) => n + renderedLength(p) + 3, 0);
    if (size + added - 1 > IAM_QUOTAS.managedPolicyCharacters) {
      if (policies.length === maxPolicies || empty + added - 1 > IAM_QUOTAS.managedPolicyCharacters) break;
      policies.push([]);
      size = empty;
    }
    policies.at(-1)!.push(...patterns);
    size += added;
    fitting += 1;
  }
  return { policies, fitting, total: secrets.length };
}

export interface SecretGrantsProps {
  /** Secrets whose name starts with this are granted through one wildcard. */
  prefix: string;
  /** The file's connections. */
  connections: readonly SecretReference[];
  /** KMS keys granted for registered connections' secrets (context secretKmsKeys), besides the file's. */
  kmsKeys: readonly string[];
}

export class SecretGrants extends Construct {
  readonly prefix: string;
  /** The wildcard ARN of every secret under the prefix. */
  readonly prefixArn: string;
  /** The file's secrets outside the prefix, granted exactly, in managed policies the functions' roles share. */
  readonly exactPolicies: ManagedPolicy[];
  /** Keys that encrypt secrets: the file's secretKmsKeyArn values and the context's. */
  readonly kmsKeys: string[];

  constructor(scope: Construct, id: string, props: SecretGrantsProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.prefix = props.prefix;
    this.prefixArn = secretArn(stack, `${props.prefix}*`);
    this.kmsKeys = [...new Set([...props.connections.flatMap((c) => (c.secretKmsKeyArn ? [c.secretKmsKeyArn] : [])), ...props.kmsKeys])];

    const outside = [...new Set(props.connections.map((c) => c.secretId).filter((s) => !isUnderPrefix(s, props.prefix)))];
    const packing = packExactGrants(
      outside.map((s) => secretResourcePatterns(stack, s)),
      (pattern) => policySize(stack.resolve(pattern), {}) - 2,
      IAM_QUOTAS.managedPoliciesPerRole,
    );
    if (packing.fitting < packing.total) throw new Error(tooManyExactGrants(packing, props.prefix));
    this.exactPolicies = packing.policies.map(
      (resources, i) =>
        new ManagedPolicy(this, `Exact${i + 1}`, {
          description: `token-broker: GetSecretValue on file connections' secrets outside ${props.prefix} (${i + 1} of ${packing.policies.length})`,
          statements: [new PolicyStatement({ actions: [GET_SECRET_VALUE], resources })],
        }),
    );
  }
}

function tooManyExactGrants(packing: Packing, prefix: string): string {
  return (
    `connections file: ${packing.total} secrets are outside the prefix ${prefix} and must be granted one by one, ` +
    `but only ${packing.fitting} fit IAM's quotas (${IAM_QUOTAS.managedPoliciesPerRole} managed policies of ${IAM_QUOTAS.managedPolicyCharacters} characters a role). ` +
    `Move the secrets under ${prefix} (one wildcard grant covers any number of them; Secrets Manager cannot rename a secret, so create it there), ` +
    `or set context secretPrefix to a prefix they share.`
  );
}
