// The broker's ports: what its core needs from the outside world, each implemented by an adapter in adapters/
// (AWS) and by a local one (local mode, tests). The core never imports an AWS SDK.

export { type Clock } from './clock';

/** A token as the table keeps it: metadata in the clear, the token itself only as ciphertext. */
export interface StoredToken {
  connection: string;
  /** Envelope ciphertext (crypto.ts), bound to this item and its metadata. */
  ciphertext: Uint8Array;
  tokenType: string;
  /** Epoch ms when the vendor stops accepting it. */
  expiresAt: number;
  /** Epoch ms when it was minted. */
  mintedAt: number;
  /** Seconds it was issued for. */
  lifetime: number;
  /** The secret version (Secrets Manager VersionId) it was minted with. */
  secretVersion: string;
  fingerprint: string;
}

export type TokenMatch = { fingerprint: string; mintedBefore?: number } | { notSecretVersion: string };

export interface Cooldown {
  /** Epoch ms. */
  until: number;
  code: string;
  message: string;
}

export type LeaseResult = { acquired: true } | { acquired: false; cooldown?: Cooldown };

export interface TokenStore {
  getToken(connection: string): Promise<StoredToken | undefined>;
  /** Writes the token unless the table already holds one minted later. */
  putToken(token: StoredToken): Promise<void>;
  /**
   * Deletes the token if it still matches: the same fingerprint (and minted before `mintedBefore`, when given), or
   * minted with any other secret version. True if deleted.
   */
  deleteToken(connection: string, match: TokenMatch): Promise<boolean>;
  /**
   * Takes the connection's mint lease if nobody holds a live one and it is not cooling down (an admin's refresh
   * may override the cooldown).
   */
  acquireLease(
    connection: string,
    owner: string,
    now: number,
    until: number,
    opts?: { overrideCooldown?: boolean },
  ): Promise<LeaseResult>;
  /** Gives the lease back (only the owner's lease is removed). */
  releaseLease(connection: string, owner: string): Promise<void>;
  /** Gives the lease back and records a cooldown every instance will honour. */
  startCooldown(connection: string, owner: string, cooldown: Cooldown): Promise<void>;
}

export interface SecretValue {
  /** The parsed JSON value of the secret. */
  value: unknown;
  /** Secrets Manager's VersionId (or a content hash for file secrets). */
  versionId: string;
}

export interface SecretReadOptions {
  /** AWSCURRENT when absent. */
  versionStage?: string;
  /** Bypass any cache. */
  forceRefresh?: boolean;
}

export interface SecretSource {
  getSecret(secretId: string, opts?: SecretReadOptions): Promise<SecretValue>;
}

/** Envelope encryption's key source: KMS in AWS, a local key in local mode. */
export interface KeyRing {
  generateDataKey(context: Record<string, string>): Promise<{ plaintext: Uint8Array; encrypted: Uint8Array }>;
  decryptDataKey(encrypted: Uint8Array, context: Record<string, string>): Promise<Uint8Array>;
}

export type TokenSource = 'memory' | 'table' | 'vendor' | 'secret';

export interface Metrics {
  count(name: string, value?: number, dimensions?: Record<string, string>): void;
  timing(name: string, ms: number, dimensions?: Record<string, string>): void;
}

export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export const noMetrics: Metrics = { count: () => undefined, timing: () => undefined };
export const noLogger: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };
