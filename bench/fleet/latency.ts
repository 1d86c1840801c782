import type { LatencyProfile } from './random';

// The latencies the simulation injects, each a log-normal with this median and 99th percentile, and where the
// figure comes from. AWS documents DynamoDB's latency only as "single-digit millisecond at any scale" and publishes
// no percentiles for KMS or Secrets Manager; where it is silent, the figure is our assumption, said as such.

export interface SourcedProfile extends LatencyProfile {
  source: string;
}

export const LATENCY: Record<string, SourcedProfile> = {
  dynamodbRead: {
    medianMs: 4,
    p99Ms: 12,
    source:
      'AWS: DynamoDB "delivers single-digit millisecond performance at any scale" (developer guide, Introduction); the p99 is our assumption',
  },
  dynamodbWrite: {
    medianMs: 6,
    p99Ms: 20,
    source: 'as reads (single-digit median); a conditional write a little slower; p99 assumed',
  },
  kms: {
    medianMs: 8,
    p99Ms: 40,
    source: 'AWS publishes no KMS latency figures; assumed for GenerateDataKey/Decrypt from inside the region',
  },
  secretsManager: {
    medianMs: 20,
    p99Ms: 80,
    source: 'AWS publishes no Secrets Manager latency figures; assumed for GetSecretValue from inside the region',
  },
  vendor: {
    medianMs: 180,
    p99Ms: 1_200,
    source: "assumed for an OAuth token endpoint on the internet (TLS set-up, the vendor's own database)",
  },
  lambdaInit: {
    medianMs: 250,
    p99Ms: 700,
    source:
      'assumed for Node.js 22 on arm64 with a 130 KB bundle (the module import measured above is ~100 ms of it); AWS publishes no init percentiles',
  },
  brownoutAttempt: {
    medianMs: 400,
    p99Ms: 6_000,
    source: 'the brownout: attempts that do answer are slow, a share hang past the SDK request timeout or are throttled',
  },
};

/** The table brownout: each DynamoDB attempt is throttled or hangs with these odds, else answers slowly. */
export const BROWNOUT = { throttledShare: 0.2, hungShare: 0.3 } as const;

/** The SDK's standard retry strategy backs off up to this × 2^attempt, with full jitter. */
export const SDK_BACKOFF_BASE_MS = 100;

/** A transient failure rate of the vendors outside the outage (an HTTP 500, retried by the exchange engine). */
export const VENDOR_TRANSIENT_FAILURE = 0.005;

/** The in-function time of a request besides the calls simulated (routing, validation, the audit line). */
export const HANDLER_OVERHEAD_MS = 2;

/** Lambda reaps an idle execution environment after some minutes; AWS documents no figure (observed 5–15). */
export const IDLE_REAP_MS = { min: 5 * 60_000, max: 15 * 60_000 } as const;
/** Environments are also recycled after some hours even when busy; AWS documents no figure (assumed 2–4 h). */
export const MAX_ENVIRONMENT_LIFE_MS = { min: 2 * 3_600_000, max: 4 * 3_600_000 } as const;

/**
 * How far behind an eventually consistent read may answer: DynamoDB says all copies of an item are usually
 * consistent within a second of a write. The simulation answers every such read with the record as it stood that
 * long ago (the worst case, each time), so what the cheaper read costs in extra lease calls is counted.
 */
export const EVENTUAL_READ_LAG_MS = 1_000;
