import type { Connection } from './config';
import type { MetricName } from './contract';

// The broker's ports: what its core needs from the outside world, each implemented by an adapter in adapters/
// (AWS) and by a local one (local mode, tests). The core never imports an AWS SDK.

export { type Clock } from './clock';

/** Where connections come from: the file, and (issue 19) the table. */
export interface ConnectionCatalog {
  /** The connection with this id, or undefined when unknown or deleted. O(1) in the number of connections. */
  find(id: string): Promise<Connection | undefined>;
}

/** A token as the table keeps it: metadata in the clear, the token itself only as ciphertext. */
export interface StoredToken {
  connection: string;
  /** Envelope ciphertext (crypto.ts), bound to this item and all the metadata below. */
  ciphertext: Uint8Array;
  tokenType: string;
  /** Epoch ms when the vendor stops accepting it. */
  expiresAt: number;
  /** Epoch ms when it was minted; the table refuses a token minted before the one it holds. */
  mintedAt: number;
  /** Seconds it was issued for. */
  lifetime: number;
  /** The secret version (Secrets Manager VersionId) it was minted with. */
  secretVersion: string;
  fingerprint: string;
  /** The broker instance that minted it (shown by the status route). */
  mintedBy: string;
}

/** A token in the broker's hands: the stored metadata with the token itself, decrypted. */
export type HeldToken = Omit<StoredToken, 'ciphertext'> & {
  accessToken: string;
  /** The vendor's refresh token, when it gave one: sealed in the same envelope as the access token. */
  refreshToken?: string;
};

export type TokenMatch = { fingerprint: string; mintedBefore?: number } | { notSecretVersion: string };

/** A failed exchange as the table records it for every instance: codes and numbers, never the vendor's text. */
export interface RecordedFailure {
  /** A problem code (vendor_* or misconfigured). */
  code: string;
  /** The vendor's HTTP status, when it answered. */
  vendorStatus?: number;
  /** The RFC 6749 5.2 error code the vendor sent, when it sent one of them. */
  vendorError?: string;
  /** Epoch ms. */
  at: number;
  /** Epoch ms until which the connection cools down; absent when the failure starts no cooldown. */
  coolUntil?: number;
}

/** Who holds a connection's mint lease. */
export interface LeaseHold {
  /** The fencing token: unique to one acquisition; every write that depends on the lease names it. */
  fence: string;
  /** The broker instance that took it. */
  holder: string;
  /** Epoch ms (the holder's clock): past it, another instance may take the lease over. */
  until: number;
}

/** Everything the table knows about one connection, from one consistent read. */
export interface ConnectionRecord {
  token?: StoredToken;
  /** The latest mint time ever stored (kept when a token is deleted): no token minted earlier is accepted. */
  mintedAt?: number;
  lease?: LeaseHold;
  failure?: RecordedFailure;
}

export interface LeaseClaim {
  fence: string;
  holder: string;
  /** This instance's clock: a lease whose `until` is before it has lapsed. */
  now: number;
  until: number;
  /**
   * Honour a recorded cooldown only when it ends after `now` and no later than this (a cooldown beyond it was not
   * written by a broker, and is ignored). Absent: take the lease whatever the cooldown (admin refresh, rotation).
   */
  cooldownCeiling?: number;
}

export type LeaseOutcome = { acquired: boolean; record: ConnectionRecord };

/** How long one table call may take: a token request gives each call what is left of its budget (lib/budget.ts). */
export interface StoreCallOptions {
  /**
   * The most this call may take, retries included, in ms; the store's own budget still applies when it is shorter.
   * At or below 0 the call is not made. Past it the call fails with StoreUnavailableError, as a table that is down.
   */
  timeoutMs?: number;
}

/**
 * The token table (DynamoDB in AWS, memory-store.ts in tests and simulations). Both pass the same contract tests
 * (test/store-contract.ts). Every write that depends on the lease is conditioned on its fencing token.
 */
/** A read's options: its deadline, and how consistent it must be. */
export interface ReadOptions extends StoreCallOptions {
  /**
   * False: an eventually consistent read (DynamoDB bills it half a read unit), which may miss a write made within
   * about a second. Only for a first look that a stale answer cannot mislead into a mint: every path that decides
   * to mint reads again, consistently, through the lease (docs/token-lifecycle.md). Absent or true: strongly consistent.
   */
  consistent?: boolean;
}

export interface TokenStore {
  read(connection: string, call?: ReadOptions): Promise<ConnectionRecord>;
  /**
   * Takes the lease when nobody holds a live one and no honoured cooldown runs. Either way returns the record as
   * it is after the attempt.
   */
  acquireLease(connection: string, claim: LeaseClaim, call?: StoreCallOptions): Promise<LeaseOutcome>;
  /**
   * Stores the token and gives the lease back, in one write, if `fence` still holds the lease and the token was
   * minted after every token stored before (a high-water mark more than CLOCK_SKEW_MS after the token's own mint
   * time excepted: no broker wrote it). False when refused (the lease was lost, or the token is older).
   */
  putToken(token: StoredToken, fence: string, call?: StoreCallOptions): Promise<boolean>;
  /** Records a failed exchange (and its cooldown) and gives the lease back, if `fence` still holds it. */
  recordFailure(connection: string, fence: string, failure: RecordedFailure, call?: StoreCallOptions): Promise<boolean>;
  /** Gives the lease back, if `fence` still holds it. */
  releaseLease(connection: string, fence: string, call?: StoreCallOptions): Promise<boolean>;
  /**
   * Deletes the token if it still matches: the same fingerprint (and minted before `mintedBefore`, when given), or
   * minted with any other secret version. The mint time stays as the high-water mark. The deleted token's mint time
   * (what the retired marks are raised to), or undefined when nothing matched.
   */
  deleteToken(connection: string, match: TokenMatch, call?: StoreCallOptions): Promise<number | undefined>;
}

/**
 * The retired marks: per connection, the newest mint time of a token retired for cause (invalidated, evicted by a
 * rotation or a connection change, replaced by an admin's refresh). A token minted at or before it is never served
 * again, by any instance, a fresh one included. Kept apart from the token table (in AWS, a table whose resource
 * policy lets only the broker's own roles write it), so that whoever can write the token table, or restore it from a
 * backup, cannot put a retired token back and lower its mark with it. All of them in one item, keyed by a hash of the
 * connection's id (lib/retired.ts markKey), so that an instance reads every mark it needs in one call.
 */
export interface RetiredMarks {
  /** Every mark, by markKey. */
  readAll(call?: StoreCallOptions): Promise<Map<string, number>>;
  /** Raises one mark to `mintedAt`; a mark already as high stays. */
  raise(key: string, mintedAt: number, call?: StoreCallOptions): Promise<void>;
  /** Removes marks that no longer matter, each only if it still has the value given. */
  prune(marks: ReadonlyMap<string, number>, call?: StoreCallOptions): Promise<void>;
}

/**
 * A connection's record as the console sees it (issue 21): the table's record without the token's ciphertext, and
 * the requests it served by hour, as the instances flushed them.
 */
export interface RecordSummary {
  connection: string;
  token?: Omit<StoredToken, 'ciphertext'>;
  mintedAt?: number;
  lease?: LeaseHold;
  failure?: RecordedFailure;
  /** Requests served, by hour (epoch ms / 3,600,000, floored): only the hours still kept on the item. */
  served: { hour: number; count: number }[];
}

export interface ScanOptions {
  /** Parallel scan segments (DynamoDB's Segment/TotalSegments); 1 to 64. */
  segments?: number;
  /** The hours whose requests-served counts to read (none when absent): the scan reads no other attribute of counts. */
  servedHours?: readonly number[];
  call?: StoreCallOptions;
}

/** Every connection's record in one pass, for the console: a parallel scan, never one read per connection. */
export interface RecordScan {
  scanRecords(opts?: ScanOptions): Promise<RecordSummary[]>;
}

/**
 * Where the instances add up the requests they served: one write adds a connection's count to its hour and drops
 * the hours no reader looks at any more. Called at most once every few minutes per connection and instance.
 */
export interface ServedCounts {
  addServed(connection: string, hour: number, count: number, call?: StoreCallOptions): Promise<void>;
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
  /** Accept a cached copy only if it was read less than this long ago (a cache's own maximum otherwise). */
  maxAgeMs?: number;
}

/** What a batch read found for one secret: its AWSCURRENT value, or the error that kept it (that secret's only). */
export type SecretRead = SecretValue | Error;

export interface SecretSource {
  getSecret(secretId: string, opts?: SecretReadOptions): Promise<SecretValue>;
  /**
   * The AWSCURRENT values of many secrets, read afresh in as few calls as the source allows (Secrets Manager:
   * BatchGetSecretValue, 20 a call): how the pre-warm run notices a change no event announced. Keyed by the ids as
   * given. It does not reject: a secret it could not read, or a call that failed, maps to its error. Sources without
   * it are read one getSecret (forceRefresh) per secret.
   */
  getCurrentSecrets?(secretIds: readonly string[]): Promise<Map<string, SecretRead>>;
}

/** Envelope encryption's key source: KMS in AWS, a local key in local mode. */
export interface KeyRing {
  generateDataKey(context: Record<string, string>): Promise<{ plaintext: Uint8Array; encrypted: Uint8Array }>;
  decryptDataKey(encrypted: Uint8Array, context: Record<string, string>): Promise<Uint8Array>;
}

/** A connection registered through the API (issue 19), as the table keeps it: the definition as given. */
export interface RegisteredConnection {
  id: string;
  /** The connection object as in the file (validated by lib/config.ts on the way in and on every read). */
  definition: Record<string, unknown>;
  /** A hash of the definition: what If-Match compares with. */
  etag: string;
  /** Epoch ms of the change, and the admin who made it. */
  changedAt: number;
  changedBy: string;
}

/** One page of registered connections, in the table's order; `next` resumes after the last one. */
export interface RegisteredPage {
  items: RegisteredConnection[];
  next?: string;
}

/**
 * Where registered connections live: the token table, one item each, apart from the token items. Each write is
 * one conditional item write: a stale `ifMatch` is decided by the table (`written: false`), never half-applied.
 */
export interface ConnectionRegistry {
  get(id: string, call?: StoreCallOptions): Promise<RegisteredConnection | undefined>;
  /** Writes the definition; with `ifMatch`, only over a connection whose etag it is. Returns what it replaced. */
  put(entry: RegisteredConnection, ifMatch?: string): Promise<{ written: boolean; previous?: RegisteredConnection }>;
  /** Deletes it; with `ifMatch`, only when its etag is that. Returns what it deleted. */
  delete(id: string, ifMatch?: string): Promise<{ written: boolean; previous?: RegisteredConnection }>;
  /** Up to `limit` registered connections for which `keep` holds, after `after` (a page's `next`). */
  list(page: { limit: number; after?: string; keep?: (c: RegisteredConnection) => boolean }): Promise<RegisteredPage>;
}

export type TokenSource = 'memory' | 'table' | 'vendor' | 'secret';

/** Counts and timings by the names in lib/contract.ts, which the dashboard and alarms read. */
export interface Metrics {
  count(name: MetricName, value?: number, dimensions?: Record<string, string>): void;
  timing(name: MetricName, ms: number, dimensions?: Record<string, string>): void;
}

export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export const noMetrics: Metrics = { count: () => undefined, timing: () => undefined };
export const noLogger: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };
