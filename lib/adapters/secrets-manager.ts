import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ConfigurationError, DependencyUnavailableError } from '../errors';
import type { SecretReadOptions, SecretSource, SecretValue } from '../ports';
import { parseSecretJson } from '../secrets';

/** Reads JSON secrets from AWS Secrets Manager, translating SDK errors into the broker's own at the edge. */
export class SecretsManagerSource implements SecretSource {
  constructor(private readonly client: Pick<SecretsManagerClient, 'send'>) {}

  async getSecret(secretId: string, opts: SecretReadOptions = {}): Promise<SecretValue> {
    const stage = opts.versionStage ?? 'AWSCURRENT';
    let out;
    try {
      out = await this.client.send(new GetSecretValueCommand({ SecretId: secretId, VersionStage: stage }));
    } catch (err) {
      const name = (err as { name?: string }).name;
      if (name === 'ResourceNotFoundException') {
        throw new ConfigurationError(`the secret ${secretId} has no version in stage ${stage}`);
      }
      if (name === 'AccessDeniedException' || name === 'DecryptionFailure' || name === 'InvalidRequestException') {
        throw new ConfigurationError(`the broker may not read the secret ${secretId} (${name})`);
      }
      throw new DependencyUnavailableError(`Secrets Manager did not answer for ${secretId} (${name ?? 'error'})`, {
        cause: err,
      });
    }
    return { value: parseSecretJson(secretId, out.SecretString), versionId: out.VersionId ?? 'unknown' };
  }
}
