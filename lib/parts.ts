import { BUDGET_DEFAULTS, type BudgetOptions, type RequestBudget, type TableHealth } from './budget';
import type { Clock } from './clock';
import type { BrokerConfig } from './config';
import { PREWARM_INTERVAL_SECONDS } from './contract';
import { COOLDOWN_DEFAULTS, type CooldownOptions, type Cooldowns, type PrewarmHold } from './cooldowns';
import type { TokenCipher } from './crypto';
import type { StoreUnavailableError } from './errors';
import type { ExchangeOptions } from './exchange';
import type { HttpClient } from './http';
import type { Instance } from './instance';
import { LEASE_DEFAULTS, type Lease, type LeaseOptions } from './lease';
import type { ConnectionCatalog, HeldToken, Logger, Metrics, RetiredMarks, SecretSource, TokenSource, TokenStore } from './ports';
import type { Retirements } from './retired';

// What the broker's use cases (token-path, admin, background) share: its options, its ports, the mechanisms
// (lease, cooldowns, table health) and the instance's memory, built once per broker (lib/broker.ts) and passed in.

export type RefreshAhead = 'in-request' | 'background';

/** A pre-warm run's failure holds the connection's callers off until this long after the next run is due. */
export const PREWARM_HOLD_MARGIN_MS = 30_000;

export interface BrokerOptions extends LeaseOptions, CooldownOptions, BudgetOptions {
  /** How long an instance trusts its in-process copy before looking at the table again. */
  memoryTtlMs: number;
  /** Seconds added to every min_ttl, for clock skew and the caller's own latency. */
  safetyMarginSeconds: number;
  /** A token younger than this cannot be invalidated (at most one eviction per connection in this time). */
  invalidateMinAgeMs: number;
  /** A mint a caller forces (a min_ttl the current token cannot meet) happens at most once per this, fleet-wide. */
  forcedMintIntervalMs: number;
  /** An admin's refresh (fleet-wide) and verify (per instance) of one connection: at most one per this. */
  adminIntervalMs: number;
  /**
   * Who refreshes a token inside its refreshBefore window. 'in-request' (Lambda: nothing may run after the
   * answer): the request that draws the refresh mints before answering, and connections that are pre-warmed are
   * left to the pre-warm run. 'background' (the local server): a task the answer does not wait for.
   */
  refreshAhead: RefreshAhead;
  /** Retry-After (s) when the table is down and this instance holds no token that will do. */
  storeRetryAfterSeconds: number;
  /** How often the pre-warm run comes (the schedule's rate): a token must stay out of its window until the next. */
  prewarmIntervalMs: number;
  exchange: Partial<Omit<ExchangeOptions, 'http' | 'clock'>>;
}

export const BROKER_DEFAULTS: BrokerOptions = {
  ...LEASE_DEFAULTS,
  ...COOLDOWN_DEFAULTS,
  ...BUDGET_DEFAULTS,
  memoryTtlMs: 30_000,
  safetyMarginSeconds: 10,
  invalidateMinAgeMs: 10_000,
  forcedMintIntervalMs: 10_000,
  adminIntervalMs: 1_000,
  refreshAhead: 'in-request',
  storeRetryAfterSeconds: 5,
  prewarmIntervalMs: PREWARM_INTERVAL_SECONDS * 1000,
  exchange: {},
};

/** What a caller receives. */
export interface IssuedToken {
  connection: string;
  accessToken: string;
  tokenType: string;
  /** Seconds handed out: what is left of the token less the safety margin, capped by maxTtl. */
  expiresIn: number;
  /** Epoch ms: now + expiresIn. */
  expiresAt: number;
  /** Epoch ms: when the token itself expires (the vendor stops accepting it), past what a caller is handed. */
  tokenExpiresAt: number;
  /** The connection's maxTtl: the most a caller is handed at a time (expiresIn's cap). */
  maxTtl: number;
  fingerprint: string;
  source: TokenSource;
}

/** storeDown: served in degraded mode; a caller sharing this outcome makes no table call of its own. */
export type Served = { held: HeldToken; source: TokenSource; storeDown?: StoreUnavailableError };
/** Whether a token will do for the one asking. */
export type Want = (t: HeldToken) => boolean;

/** How a mint goes: named, so that a call says what it means. */
export interface MintPlan {
  /** Wait for another instance's mint (callers), or give up at once (pre-warm, refresh ahead). */
  wait: boolean;
  /** Past any cooldown (an admin's refresh, a rotation). */
  ignoreCooldown?: boolean;
  /** Read the secret past the cache first. */
  freshSecret?: boolean;
  /** A caller forces it: bounded to one per forcedMintIntervalMs. */
  forced?: { minTtl: number };
  /** The pre-warm run's: a failure keeps callers off until after the run that will probe again. */
  hold?: PrewarmHold;
  /** The request's budget: the table work of the mint shares it, and no mint starts once it is mostly spent. */
  budget?: RequestBudget;
}

/** The ports a broker is built from (lib/compose.ts fills them in). */
export interface BrokerDeps {
  config: BrokerConfig;
  /** Where connections are looked up: the file's when absent. */
  connections?: ConnectionCatalog;
  store: TokenStore;
  /**
   * The retired marks (lib/retired.ts): in AWS a table of their own that the token table's writers cannot write.
   * Absent: this instance's memory only, which does not protect a fresh instance (tests of other behaviour).
   */
  marks?: RetiredMarks;
  secrets: SecretSource;
  cipher: TokenCipher;
  clock: Clock;
  http: HttpClient;
  metrics?: Metrics;
  logger?: Logger;
  random?: () => number;
  /** Names this instance in leases and on the tokens it mints. */
  instanceId?: string;
  options?: Partial<BrokerOptions>;
}

/** Everything a use case works with: the ports, with defaults filled in, and the mechanisms built on them. */
export interface Parts {
  config: BrokerConfig;
  connections: ConnectionCatalog;
  store: TokenStore;
  secrets: SecretSource;
  cipher: TokenCipher;
  clock: Clock;
  http: HttpClient;
  metrics: Metrics;
  log: Logger;
  random: () => number;
  instanceId: string;
  opts: BrokerOptions;
  lease: Lease;
  cooldowns: Cooldowns;
  tableHealth: TableHealth;
  instance: Instance;
  /** Tokens retired for cause, fleet-wide: what no instance serves again (lib/retired.ts). */
  retired: Retirements;
}
