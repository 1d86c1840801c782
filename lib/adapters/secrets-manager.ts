import type { SecretsManagerClient, SecretsManagerClientConfig } from '@aws-sdk/client-secrets-manager';
import { ConfigurationError, DependencyUnavailableError } from '../errors';
import { SECRETS_MANAGER_BUDGET, clientSettings, withinDeadline } from './aws';
import type { SecretReadOptions, SecretSource, SecretValue } from '../ports';
import { parseSecretJson } from '../secrets';

type Sdk = typeof import('@aws-sdk/client-secrets-manager');

/**
 * Reads JSON secrets from AWS Secrets Manager, translating SDK errors into the broker's own at the edge. The SDK
 * module is loaded on the first read (secrets are read once per instance per 5 minutes, off the hot path), so it
 * costs nothing at cold start. Pass a client to inject one (tests, custom configuration).
 */
export class SecretsManagerSource implements SecretSource {
  private sdk: Promise<Sdk> | undefined;
  private client: Pick<SecretsManagerClient, 'send'> | undefined;

  constructor(
    client?: Pick<SecretsManagerClient, 'send'>,
    /** Merged over the budget's settings (endpoint, region, credentials for tests and local runs). */
    private readonly clientConfig: SecretsManagerClientConfig = {},
    /** The whole of one call, SDK retries included. */
    private readonly totalMs = SECRETS_MANAGER_BUDGET.totalMs,
  ) {
    this.client = client;
  }

  async getSecret(secretId: string, opts: SecretReadOptions = {}): Promise<SecretValue> {
    const stage = opts.versionStage ?? 'AWSCURRENT';
    this.sdk ??= import('@aws-sdk/client-secrets-manager');
    const sdk = await this.sdk;
    this.client ??= new sdk.SecretsManagerClient({ ...clientSettings(SECRETS_MANAGER_BUDGET), ...this.clientConfig });
    let out;
    try {
      const client = this.client;
      out = await withinDeadline('Secrets Manager GetSecretValue', this.totalMs, (abortSignal) =>
        client.send(new sdk.GetSecretValueCommand({ SecretId: secretId, VersionStage: stage }), { abortSignal }),
      );
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
