import { problemType, type ProblemCode } from './contract';

// One error hierarchy for the whole broker. Every error a caller can see carries a stable problem `code` and an
// HTTP `status`; messages are written here, from safe parts only, never from secrets, passwords or tokens.

export type { ProblemCode };

export interface ErrorContext {
  connection?: string;
  [key: string]: string | number | boolean | undefined;
}

export class BrokerError extends Error {
  /** Told of every BrokerError made (the tests check that no message ever holds a secret). */
  static observer: ((err: BrokerError) => void) | undefined;
  readonly code: ProblemCode;
  readonly status: number;
  /** Seconds a caller should wait before trying again (sent as Retry-After). */
  readonly retryAfter: number | undefined;
  readonly context: ErrorContext;

  constructor(
    code: ProblemCode,
    status: number,
    message: string,
    opts: { cause?: unknown; retryAfter?: number; context?: ErrorContext } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = status;
    this.retryAfter = opts.retryAfter;
    this.context = opts.context ?? {};
    BrokerError.observer?.(this);
  }

  /** A caller's mistake (4xx) may be explained to the caller; anything else is shown by code only. */
  get expose(): boolean {
    return this.status < 500 || this.code.startsWith('vendor_');
  }
}

type Opts = ConstructorParameters<typeof BrokerError>[3];

export class InvalidRequestError extends BrokerError {
  constructor(message: string, opts?: Opts) {
    super('invalid_request', 400, message, opts);
  }
}

/** A path or method that is no route of the API (never an unknown connection: that is ForbiddenError). */
export class NotFoundError extends BrokerError {
  constructor(message: string, opts?: Opts) {
    super('not_found', 404, message, opts);
  }
}

export class UnauthenticatedError extends BrokerError {
  constructor(message = 'The request is not signed, or its signature does not match.', opts?: Opts) {
    super('unauthenticated', 401, message, opts);
  }
}

export class ForbiddenError extends BrokerError {
  // One message for "unknown connection" and "not yours": the API must not be an existence oracle.
  constructor(opts?: Opts) {
    super('forbidden', 403, 'This caller may not use this connection, or it does not exist.', opts);
  }
}

/** A change through the API to a connection the file defines: the file is changed by a deploy. */
export class ConflictError extends BrokerError {
  constructor(message: string, opts?: Opts) {
    super('conflict', 409, message, opts);
  }
}

/** An If-Match that is not the connection's current etag: someone changed it since the caller read it. */
export class PreconditionFailedError extends BrokerError {
  constructor(message: string, opts?: Opts) {
    super('precondition_failed', 412, message, opts);
  }
}

export class VendorRejectedCredentialsError extends BrokerError {
  constructor(message: string, opts?: Opts) {
    super('vendor_rejected_credentials', 502, message, opts);
  }
}

export class VendorProtocolError extends BrokerError {
  constructor(message: string, opts?: Opts) {
    super('vendor_protocol_error', 502, message, opts);
  }
}

export class RateLimitedError extends BrokerError {
  constructor(message: string, opts?: Opts) {
    super('rate_limited', 429, message, opts);
  }
}

export class VendorUnavailableError extends BrokerError {
  constructor(message: string, opts?: Opts) {
    super('vendor_unavailable', 503, message, opts);
  }
}

export class VendorTimeoutError extends BrokerError {
  constructor(message: string, opts?: Opts) {
    super('vendor_timeout', 504, message, opts);
  }
}

/**
 * The broker's own set-up is wrong (bad config, a secret without the keys its dialect needs). Operators fix it. The
 * message names the connection and what is missing, never a value: admins read it as the problem's detail.
 */
export class ConfigurationError extends BrokerError {
  constructor(message: string, opts?: Opts) {
    super('misconfigured', 500, message, opts);
  }
}

/** An AWS service the broker depends on (DynamoDB, Secrets Manager, KMS) failed; its SDK error is the cause. */
export class DependencyUnavailableError extends BrokerError {
  constructor(message: string, opts?: Opts) {
    super('service_unavailable', 503, message, opts);
  }
}

/** The token table could not be reached: the broker serves a valid token it holds in memory, else 503. */
export class StoreUnavailableError extends DependencyUnavailableError {}

export function isBrokerError(err: unknown): err is BrokerError {
  return err instanceof BrokerError;
}

/** Errors after which another attempt may succeed without anyone changing anything. */
export function isTransient(err: unknown): boolean {
  return err instanceof VendorUnavailableError || err instanceof VendorTimeoutError;
}

export const DEFAULT_RETRY_AFTER_SECONDS = 5;

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ProblemCode;
  detail?: string;
  instance?: string;
}

const TITLES: Record<ProblemCode, string> = {
  invalid_request: 'Invalid request',
  not_found: 'Not found',
  unauthenticated: 'Unauthenticated',
  forbidden: 'Forbidden',
  conflict: 'Conflict',
  precondition_failed: 'Precondition failed',
  vendor_rejected_credentials: 'The vendor rejected the credentials',
  vendor_protocol_error: 'The vendor answered something that is not a usable token',
  rate_limited: 'Too many requests',
  vendor_unavailable: 'The vendor is unavailable',
  vendor_timeout: 'The vendor did not answer in time',
  misconfigured: 'The broker is misconfigured',
  service_unavailable: 'A service the broker depends on is unavailable',
  internal_error: 'Internal error',
};

/** Who reads the problem: an admin is told what a `misconfigured` answer is about (the connection, what is missing). */
export interface ProblemAudience {
  admin?: boolean;
}

/**
 * The one place errors become RFC 9457 problem documents. Unknown errors become a bare 500 with no detail, so
 * nothing internal (and no secret a library put in a message) reaches a caller.
 */
export function toProblem(err: unknown, instance?: string, audience: ProblemAudience = {}): { problem: Problem; retryAfter?: number } {
  const e = isBrokerError(err) ? err : undefined;
  const code: ProblemCode = e?.code ?? 'internal_error';
  const status = e?.status ?? 500;
  const problem: Problem = {
    type: problemType(code),
    title: TITLES[code],
    status,
    code,
  };
  if (e?.expose || (audience.admin && e instanceof ConfigurationError)) problem.detail = e.message;
  if (instance) problem.instance = instance;
  // 429 and 503 always say when to come back (docs/api.md), even when nobody said how long.
  const retryAfter = e?.retryAfter ?? (status === 429 || status === 503 ? DEFAULT_RETRY_AFTER_SECONDS : undefined);
  return retryAfter !== undefined ? { problem, retryAfter } : { problem };
}

/** An HTTP answer for an error: problem+json, no-store, Retry-After when there is one. */
export function problemResponse(
  err: unknown,
  instance?: string,
  audience: ProblemAudience = {},
): { statusCode: number; headers: Record<string, string>; body: string } {
  const { problem, retryAfter } = toProblem(err, instance, audience);
  return {
    statusCode: problem.status,
    headers: {
      'content-type': 'application/problem+json',
      'cache-control': 'no-store',
      pragma: 'no-cache',
      ...(retryAfter !== undefined ? { 'retry-after': String(retryAfter) } : {}),
    },
    body: JSON.stringify(problem),
  };
}
