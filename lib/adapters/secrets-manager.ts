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

  private async ready(): Promise<{ sdk: Sdk; client: Pick<SecretsManagerClient, 'send'> }> {
    this.sdk ??= import('@aws-sdk/client-secrets-manager');
    const sdk = await this.sdk;
    this.client ??= new sdk.SecretsManagerClient({ ...clientSettings(SECRETS_MANAGER_BUDGET), ...this.clientConfig });
    return { sdk, client: this.client };
  }

  /** One call within the budget, its SDK errors translated to the broker's. */
  private async call<T>(operation: string, secretId: string, stage: string, send: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
    try {
      return await withinDeadline(`Secrets Manager ${operation}`, this.totalMs, send);
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
  }

  async getSecret(secretId: string, opts: SecretReadOptions = {}): Promise<SecretValue> {
    const stage = opts.versionStage ?? 'AWSCURRENT';
    const { sdk, client } = await this.ready();
    const out = await this.call('GetSecretValue', secretId, stage, (abortSignal) =>
      client.send(new sdk.GetSecretValueCommand({ SecretId: secretId, VersionStage: stage }), { abortSignal }),
    );
    return { value: parseSecretJson(secretId, out.SecretString), versionId: out.VersionId ?? 'unknown' };
  }

  /**
   * DescribeSecret's VersionIdsToStages: the current VersionId without the value (no decryption, nothing secret in
   * memory). The pre-warm run makes one such call per secret per minute (about 43,800 a month, at Secrets Manager's
   * per-call price about $0.22 a month per secret).
   */
  async currentVersion(secretId: string): Promise<string> {
    const { sdk, client } = await this.ready();
    const out = await this.call('DescribeSecret', secretId, 'AWSCURRENT', (abortSignal) =>
      client.send(new sdk.DescribeSecretCommand({ SecretId: secretId }), { abortSignal }),
    );
    const current = Object.entries(out.VersionIdsToStages ?? {}).find(([, stages]) => stages?.includes('AWSCURRENT'));
    if (!current) throw new ConfigurationError(`the secret ${secretId} has no version in stage AWSCURRENT`);
    return current[0];
  }
}
