import { readFile } from 'node:fs/promises';
import { ConfigurationError } from '../errors';
import type { SecretRead, SecretReadOptions, SecretSource, SecretValue } from '../ports';
import { contentVersion, parseSecretJson } from '../secrets';

/**
 * Local mode's Secrets Manager: a JSON file mapping secret id → the secret's JSON value, or
 * `{ "stages": { "AWSCURRENT": value, "AWSPENDING": value } }` for a secret with version stages. Read on every
 * call (the cache in front of it decides how often), so editing the file is a rotation.
 */
export class FileSecretSource implements SecretSource {
  constructor(private readonly path: string) {}

  async getSecret(secretId: string, opts: SecretReadOptions = {}): Promise<SecretValue> {
    return secretIn(await this.readAll(), secretId, opts.versionStage ?? 'AWSCURRENT');
  }

  /** One read of the file for all of them, as one batch call would be. */
  async getCurrentSecrets(secretIds: readonly string[]): Promise<Map<string, SecretRead>> {
    let all: unknown;
    try {
      all = await this.readAll();
    } catch (err) {
      return new Map(secretIds.map((id) => [id, err as Error]));
    }
    const read = new Map<string, SecretRead>();
    for (const id of secretIds) {
      try {
        read.set(id, secretIn(all, id, 'AWSCURRENT'));
      } catch (err) {
        read.set(id, err as Error);
      }
    }
    return read;
  }

  private async readAll(): Promise<unknown> {
    try {
      return JSON.parse(await readFile(this.path, 'utf8'));
    } catch {
      throw new ConfigurationError(`the secrets file ${this.path} cannot be read as JSON`);
    }
  }
}

function secretIn(all: unknown, secretId: string, stage: string): SecretValue {
  if (typeof all !== 'object' || all === null || !Object.hasOwn(all, secretId)) {
    throw new ConfigurationError(`the secret ${secretId} does not exist`);
  }
  const entry = (all as Record<string, unknown>)[secretId];
  const staged =
    typeof entry === 'object' && entry !== null && 'stages' in entry
      ? ((entry as { stages: Record<string, unknown> }).stages ?? {})
      : { AWSCURRENT: entry };
  if (!Object.hasOwn(staged, stage)) {
    throw new ConfigurationError(`the secret ${secretId} has no version in stage ${stage}`);
  }
  const value = staged[stage];
  // The file holds JSON values; a string value is a SecretString to parse, as Secrets Manager would hold it.
  const parsed = typeof value === 'string' ? parseSecretJson(secretId, value) : value;
  return { value: parsed, versionId: contentVersion(parsed) };
}
