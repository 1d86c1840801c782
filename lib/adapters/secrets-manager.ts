import type { BatchGetSecretValueCommandOutput, SecretsManagerClient, SecretsManagerClientConfig } from '@aws-sdk/client-secrets-manager';
import { ConfigurationError, DependencyUnavailableError } from '../errors';
import { SECRETS_MANAGER_BUDGET, clientSettings, withinDeadline } from './aws';
import type { SecretRead, SecretReadOptions, SecretSource, SecretValue } from '../ports';
import { parseSecretJson, sameSecret } from '../secrets';

type Sdk = typeof import('@aws-sdk/client-secrets-manager');

/**
 * Reads JSON secrets from AWS Secrets Manager, translating SDK errors into the broker's own at the edge. The SDK
 * module is loaded on the first read (an instance keeps a secret up to an hour, off the hot path), so it
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
      throw secretError((err as { name?: string }).name, secretId, stage, err);
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
   * BatchGetSecretValue by SecretIdList, 20 secrets a call (the service's limit), the calls made together: one
   * pre-warm run of 45 secrets makes 3 calls. Each answer is matched to the id it was asked by (a name, a partial or
   * a full ARN) through the ARN and name the service returns; its Errors stay with their secret; a failed call
   * becomes the error of each secret it asked for.
   */
  async getCurrentSecrets(secretIds: readonly string[]): Promise<Map<string, SecretRead>> {
    const batches = secretBatches(secretIds);
    const read = new Map<string, SecretRead>();
    const started = Date.now();
    await paced(
      batches,
      async (batch) => {
        let out: BatchGetSecretValueCommandOutput;
        try {
          const { sdk, client } = await this.ready();
          out = await this.call('BatchGetSecretValue', batch.join(', '), 'AWSCURRENT', (abortSignal) =>
            client.send(new sdk.BatchGetSecretValueCommand({ SecretIdList: batch }), { abortSignal }),
          );
        } catch (err) {
          for (const id of batch) read.set(id, err instanceof Error ? err : new DependencyUnavailableError('Secrets Manager BatchGetSecretValue failed'));
          return;
        }
        for (const id of batch) read.set(id, answerFor(id, out));
      },
      (i) => started + i * BATCH_GET_SPACING_MS - Date.now(),
    );
    return read;
  }
}

/** Secrets Manager takes at most this many ids in one BatchGetSecretValue. */
export const BATCH_GET_LIMIT = 20;
/**
 * BatchGetSecretValue's quota is 100 requests a second per account and region (not adjustable): the calls of one
 * run start at most 50 a second, half of it, so that other readers in the account keep theirs. 10,000 secrets are
 * 500 calls, 10 s.
 */
export const BATCH_GET_SPACING_MS = 20;
/** Calls of one run in flight at once. */
const BATCH_GET_IN_FLIGHT = 10;

/** Runs `fn` over the items, BATCH_GET_IN_FLIGHT at a time, item i starting no sooner than `delay(i)` ms from now. */
async function paced<T>(items: readonly T[], fn: (item: T) => Promise<void>, delay: (i: number) => number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      const wait = delay(i);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(BATCH_GET_IN_FLIGHT, items.length) }, worker));
}

/** The distinct ids, in BatchGetSecretValue calls of at most BATCH_GET_LIMIT each. */
export function secretBatches(secretIds: readonly string[]): string[][] {
  const ids = [...new Set(secretIds)];
  const batches: string[][] = [];
  for (let i = 0; i < ids.length; i += BATCH_GET_LIMIT) batches.push(ids.slice(i, i + BATCH_GET_LIMIT));
  return batches;
}

/** A Secrets Manager error (an exception's name, or a batch entry's ErrorCode) as the broker's error. */
function secretError(name: string | undefined, secretId: string, stage: string, cause?: unknown): Error {
  if (name === 'ResourceNotFoundException') {
    return new ConfigurationError(`the secret ${secretId} has no version in stage ${stage}`);
  }
  if (name === 'AccessDeniedException' || name === 'DecryptionFailure' || name === 'InvalidRequestException') {
    return new ConfigurationError(`the broker may not read the secret ${secretId} (${name})`);
  }
  return new DependencyUnavailableError(`Secrets Manager did not answer for ${secretId} (${name ?? 'error'})`, cause === undefined ? {} : { cause });
}

/** The value or error BatchGetSecretValue returned for the secret asked for by `id`: an exact match first. */
function answerFor(id: string, out: BatchGetSecretValueCommandOutput): SecretRead {
  const values = out.SecretValues ?? [];
  const entry =
    values.find((v) => v.ARN === id || v.Name === id) ??
    values.find((v) => (v.ARN !== undefined && sameSecret(id, v.ARN)) || (v.Name !== undefined && sameSecret(id, v.Name)));
  if (entry) {
    try {
      return { value: parseSecretJson(id, entry.SecretString), versionId: entry.VersionId ?? 'unknown' };
    } catch (err) {
      return err as Error;
    }
  }
  const errors = out.Errors ?? [];
  const failed = errors.find((e) => e.SecretId === id) ?? errors.find((e) => e.SecretId !== undefined && sameSecret(id, e.SecretId));
  if (failed) return secretError(failed.ErrorCode, id, 'AWSCURRENT');
  return new DependencyUnavailableError(`Secrets Manager BatchGetSecretValue did not answer for ${id}`);
}
