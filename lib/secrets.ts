import { createHash } from 'node:crypto';
import type { Clock } from './clock';
import { ConfigurationError } from './errors';
import type { SecretRead, SecretReadOptions, SecretSource, SecretValue } from './ports';

// Secrets are cached per instance for up to four hours (about an environment's life): a mint needs the secret, and
// mints land on whichever instance takes the lease, so a short cache costs a Secrets Manager call per mint (an hour
// cost busy environments a read per connection per hour). The age is a backstop, not how a change is noticed: a
// change reaches a cached copy by three ways (lib/broker.ts): the token in the table carries the secret version it
// was minted with, and a mint reads the secret again when that version differs from its copy (a rotation's new
// token); a vendor's refusal of the credentials reads it again; and the pre-warm run, which reads every secret each
// minute, re-mints every token whose version is no longer current. A static credential is the secret itself, so its
// copy is kept a minute at most.

export const SECRET_CACHE_MAX_AGE_MS = 4 * 3_600_000;
export const STATIC_SECRET_MAX_AGE_MS = 60_000;

export class CachedSecretSource implements SecretSource {
  private readonly cache = new Map<string, { value: SecretValue; at: number }>();
  private readonly pending = new Map<string, Promise<SecretValue>>();

  constructor(
    private readonly inner: SecretSource,
    private readonly clock: Clock,
    private readonly maxAgeMs = SECRET_CACHE_MAX_AGE_MS,
  ) {}

  async getSecret(secretId: string, opts: SecretReadOptions = {}): Promise<SecretValue> {
    const stage = opts.versionStage ?? 'AWSCURRENT';
    const key = cacheKey(secretId, stage);
    const hit = this.cache.get(key);
    const maxAge = Math.min(this.maxAgeMs, opts.maxAgeMs ?? Infinity);
    if (!opts.forceRefresh && hit && this.clock.now() - hit.at < maxAge) return hit.value;
    let p = this.pending.get(key);
    if (!p) {
      p = this.inner
        .getSecret(secretId, { versionStage: stage })
        .then((value) => {
          this.cache.set(key, { value, at: this.clock.now() });
          return value;
        })
        .finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    return p;
  }

  /** Read afresh (it is how a change is noticed), and kept: the mints that follow need no read of their own. */
  async getCurrentSecrets(secretIds: readonly string[]): Promise<Map<string, SecretRead>> {
    const read = await readCurrentSecrets(this.inner, secretIds);
    const at = this.clock.now();
    for (const [secretId, value] of read) if (!(value instanceof Error)) this.cache.set(cacheKey(secretId, 'AWSCURRENT'), { value, at });
    return read;
  }
}

const cacheKey = (secretId: string, stage: string) => `${stage}\u0000${secretId}`;

/** The AWSCURRENT value of each secret, in one batch when the source can, else one forced read each. */
export async function readCurrentSecrets(source: SecretSource, secretIds: readonly string[]): Promise<Map<string, SecretRead>> {
  if (source.getCurrentSecrets) return source.getCurrentSecrets(secretIds);
  const ids = [...new Set(secretIds)];
  const read = await Promise.all(ids.map((id) => source.getSecret(id, { forceRefresh: true }).catch((err: unknown) => (err instanceof Error ? err : new Error('the secret could not be read')))));
  return new Map(ids.map((id, i) => [id, read[i]!]));
}

/** Parses a secret's text as JSON. The parser's own message quotes the text, so it is never passed on. */
export function parseSecretJson(secretId: string, text: string | undefined): unknown {
  if (text === undefined) throw new ConfigurationError(`the secret ${secretId} has no SecretString`);
  try {
    return JSON.parse(text);
  } catch {
    throw new ConfigurationError(`the secret ${secretId} is not valid JSON`);
  }
}

/** A stable version id for a secret value that has none of its own (file secrets). */
export function contentVersion(value: unknown): string {
  return `sha256:${createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16)}`;
}

/** The names a secret reference can stand for: itself, and for an ARN its name with and without the random suffix. */
function secretNames(ref: string): string[] {
  const m = /^arn:aws[a-z-]*:secretsmanager:[^:]*:\d{12}:secret:(.+)$/.exec(ref);
  if (!m?.[1]) return [ref];
  const name = m[1];
  const unsuffixed = /^(.+)-[A-Za-z0-9]{6}$/.exec(name)?.[1];
  return unsuffixed ? [ref, name, unsuffixed] : [ref, name];
}

/** Whether a secret reported by an event (name or ARN) is the one a connection names (name or ARN). */
export function sameSecret(configured: string, reported: string): boolean {
  if (configured === reported) return true;
  const a = secretNames(configured);
  const b = secretNames(reported);
  // Full ARNs must match exactly (done above); a name matches a name, or the name inside an ARN.
  const aArn = configured.startsWith('arn:');
  const bArn = reported.startsWith('arn:');
  if (aArn && bArn) return a[1] === b[1] || a.slice(1).some((n) => b.slice(1).includes(n));
  return a.some((n) => b.includes(n));
}
