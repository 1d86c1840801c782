import type { Connection } from './config';
import type { SecretRule } from './connection-changes';
import { ENV } from './contract';
import { ConfigurationError } from './errors';
import { readCredentials } from './exchange';
import type { SecretSource } from './ports';

// Which secrets a registered connection may name. In AWS the functions read secrets by a rule the stack grants
// (every name under the stage's prefix, and the KMS keys listed at deploy time); a connection outside it could never
// mint, so it is refused when registered. Locally there is no grant: the secret must be in the secrets file.

export interface AwsSecretGrant {
  /** BROKER_SECRET_PREFIX: names that start with it are readable. Absent: this deployment grants no prefix. */
  prefix: string | undefined;
  /** BROKER_SECRET_KMS_KEYS: the customer-managed keys the functions may decrypt secrets with. */
  kmsKeys: readonly string[];
  /** The stack's region: a secret ARN elsewhere is outside the grant. */
  region?: string;
}

export function awsGrantFromEnv(env: Record<string, string | undefined> = process.env): AwsSecretGrant {
  const kmsKeys = (env[ENV.secretKmsKeys] ?? '').split(',').map((k) => k.trim()).filter((k) => k !== '');
  const region = env.AWS_REGION;
  return { prefix: env[ENV.secretPrefix] || undefined, kmsKeys, ...(region ? { region } : {}) };
}

/** A secret reference's name and region: the name itself, or the name inside an ARN (without its random suffix). */
function nameOf(secretId: string): { name: string; region?: string } {
  const m = /^arn:aws[a-z-]*:secretsmanager:([a-z0-9-]+):\d{12}:secret:(.+)$/.exec(secretId);
  return m ? { name: m[2]!, region: m[1]! } : { name: secretId };
}

export function awsSecretRule(grant: AwsSecretGrant): SecretRule {
  return {
    problem: (c: Connection) => Promise.resolve(outsideGrant(grant, c)),
  };
}

/** Why the stack's grant does not cover this connection's secret, or undefined when it does. */
function outsideGrant(grant: AwsSecretGrant, c: Connection): string | undefined {
  const { name, region } = nameOf(c.secretId);
  if (grant.prefix === undefined) {
    return `secretId: this deployment grants no secret prefix (${ENV.secretPrefix} is not set), so no registered connection can read its secret`;
  }
  if (!name.startsWith(grant.prefix) || (region !== undefined && grant.region !== undefined && region !== grant.region)) {
    return (
      `secretId: ${c.secretId} is outside the rule by which the functions read secrets: a registered connection's secret ` +
      `must be named under the prefix ${grant.prefix} (context option secretPrefix) in this account and region`
    );
  }
  if (c.secretKmsKeyArn !== undefined && !grant.kmsKeys.includes(c.secretKmsKeyArn)) {
    return (
      `secretKmsKeyArn: the functions may not decrypt with the key ${c.secretKmsKeyArn}: add it to the context option ` +
      `secretKmsKeys and deploy, then register the connection`
    );
  }
  return undefined;
}

/** Local mode: the secret must be in the secrets file, with the keys the connection's dialect reads. */
export function secretsFileRule(secrets: SecretSource, path: string): SecretRule {
  return {
    problem: async (c: Connection) => {
      try {
        readCredentials(c, (await secrets.getSecret(c.secretId, { forceRefresh: true })).value);
        return undefined;
      } catch (err) {
        if (!(err instanceof ConfigurationError)) throw err;
        return `secretId: the secret ${c.secretId} must be in the secrets file ${path} with what the ${c.dialectName} dialect needs (${err.message})`;
      }
    },
  };
}
