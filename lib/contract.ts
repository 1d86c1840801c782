// The names the CDK app, the functions and the broker share. Each is written here once and imported where it is
// used, so the stack cannot set a variable the function does not read, nor alarm on a metric nobody emits.
// No imports (test/boundaries.test.ts checks): the CDK app and the Lambda bundles both load it, and neither should
// pull in the other's dependencies through it.

/** Environment variables the stack sets on every function and the functions read at cold start. */
export const ENV = {
  /** The connections file, bundled beside the handler. */
  config: 'BROKER_CONFIG',
  /** The token table's name. */
  table: 'BROKER_TABLE',
  /** The retired marks' table: only the broker's roles may write its items (lib/retired.ts). */
  marksTable: 'BROKER_MARKS_TABLE',
  /** The KMS key that wraps the data keys of cached tokens. */
  keyId: 'BROKER_KEY_ID',
  /** Secrets whose name starts with this are readable by the functions through one wildcard grant (issue 19). */
  secretPrefix: 'BROKER_SECRET_PREFIX',
  /** Comma-separated KMS key ARNs the functions may decrypt secrets with (file connections' and `secretKmsKeys`). */
  secretKmsKeys: 'BROKER_SECRET_KMS_KEYS',
} as const;

/** The connections file's name inside each function's bundle (BROKER_CONFIG's value there). */
export const BUNDLED_CONFIG_FILE = 'broker.config.json';

/** Powertools' service name (a dimension of every metric) and the CloudWatch namespace of the broker's metrics. */
export const SERVICE_NAME = 'token-broker';
export const METRIC_NAMESPACE = 'TokenBroker';

/** Every metric the broker emits; the dashboard and alarms read these. */
export const METRIC_NAMES = [
  'TokensServed',
  'LeaseWaits',
  'StaleWritesRefused',
  'Cooldowns',
  'Exchanges',
  'ExchangeLatency',
  'ExchangeFailures',
  'RefreshAhead',
  'RefreshTokenMints',
  'StoreDegraded',
  'ForcedMintsRefused',
  'Invalidations',
  'Verifications',
  'StaleTokensRefused',
  'RetiredMarkReadFailures',
  'RetiredMarkWriteFailures',
  'DecryptionFailures',
  'PrewarmOutcomes',
  'RotationEvictions',
  'ConnectionChanges',
] as const;
export type MetricName = (typeof METRIC_NAMES)[number];

/** The KMS encryption context of the data keys: the functions' grant on the key holds only with it. */
export const ENCRYPTION_CONTEXT = { app: SERVICE_NAME, purpose: 'token-cache' } as const;

/** The HTTP function's log line for a failed request; with status 500 it is the broker's own fault (an alarm counts it). */
export const REQUEST_FAILED = 'request failed';

/** The HTTP function's audit line for a token it handed out; a metric filter counts TokensServed from it. */
export const TOKEN_HANDED_OUT = 'token handed out';

/**
 * Metrics the HTTP function does not emit as EMF: CloudWatch Logs counts them from its audit lines (a metric filter
 * costs nothing), instead of one more log line per request.
 */
export const METRICS_FROM_HTTP_LOG: readonly MetricName[] = ['TokensServed'];

/** The token table: its partition key and the attribute DynamoDB's TTL deletes expired items by. */
export const TABLE_KEY = 'pk';
export const TTL_ATTRIBUTE = 'ttl';

/** The stable `code` of every problem document the API answers with. */
export const PROBLEM_CODES = [
  'invalid_request',
  'not_found',
  'unauthenticated',
  'forbidden',
  'conflict',
  'precondition_failed',
  'vendor_rejected_credentials',
  'vendor_protocol_error',
  'rate_limited',
  'vendor_unavailable',
  'vendor_timeout',
  'misconfigured',
  'service_unavailable',
  'internal_error',
] as const;
export type ProblemCode = (typeof PROBLEM_CODES)[number];

/** A problem document's `type`: one URL per code, the same from the functions and from API Gateway's own answers. */
export const problemType = (code: ProblemCode) => `https://token-broker.internal/problems/${code.replace(/_/g, '-')}`;

/** The `min_ttl` a caller may ask for, in seconds, and what it is when not given. */
export const MIN_TTL = { min: 0, max: 3600, default: 60 } as const;

/** The Secrets Manager events (through CloudTrail) after which the broker re-mints with the new secret. */
export const SECRET_EVENT_SOURCE = 'secretsmanager.amazonaws.com';
export const ROTATION_EVENTS: readonly string[] = ['PutSecretValue', 'UpdateSecret', 'RotateSecret', 'UpdateSecretVersionStage', 'RotationSucceeded'];

/** The pre-warm schedule's rate: the stack schedules the run from it and the broker's pre-warm rule assumes it. */
export const PREWARM_INTERVAL_SECONDS = 60;
