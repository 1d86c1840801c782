import type { NodeHttpHandlerOptions } from '@smithy/node-http-handler';

// Deadlines for every AWS call of the broker. Two layers, because either alone leaves a hole:
// - per attempt, in the HTTP handler: connectionTimeout, and requestTimeout with throwOnRequestTimeout (without it
//   @smithy/node-http-handler 4.x only logs a warning and keeps waiting);
// - per call, SDK retries and backoff included: an AbortSignal that fires at `totalMs`, raced by a timer so the call
//   settles even if an SDK version ignores the signal between attempts.
// maxAttempts × attemptMs stays within totalMs, so the retries the SDK is configured for fit the budget.

export interface CallBudget {
  /** TCP (and TLS) connect, per attempt. */
  connectMs: number;
  /** From sending the request to the response's headers, per attempt. */
  attemptMs: number;
  maxAttempts: number;
  /** The whole call: every attempt, the backoff between them, and reading the answer. */
  totalMs: number;
}

/**
 * The token table: a read that has not answered in 2 s is a table that is down, so the broker degrades (serves
 * from memory or answers 503) and the HTTP answer still comes within 3 s. In-region GetItem takes milliseconds.
 */
export const DYNAMODB_BUDGET: CallBudget = { connectMs: 500, attemptMs: 600, maxAttempts: 3, totalMs: 2_000 };
/** KMS Decrypt sits on the path of a table hit (when the data key is not cached yet): the same budget. */
export const KMS_BUDGET: CallBudget = { connectMs: 500, attemptMs: 600, maxAttempts: 3, totalMs: 2_000 };
/** Secrets Manager is read only to mint (and once a minute by pre-warm), next to a 10 s vendor exchange. */
export const SECRETS_MANAGER_BUDGET: CallBudget = { connectMs: 1_000, attemptMs: 1_000, maxAttempts: 3, totalMs: 3_500 };

/**
 * For runs where the table shares a loaded machine with everything else (the tests of other behaviour, an embedded
 * local table): a slow answer there is load, not an outage. The deadlines themselves are proven with DYNAMODB_BUDGET.
 */
export const UNHURRIED_BUDGET: CallBudget = { connectMs: 5_000, attemptMs: 10_000, maxAttempts: 3, totalMs: 30_000 };

/**
 * The client settings of a budget: bounded attempts, and an HTTP handler whose timeouts abort. The handler is given
 * as options, which the client builds its own NodeHttpHandler from: the functions then use the runtime's copy of
 * @smithy/node-http-handler instead of bundling one (7 KB of a 150 KB budget).
 */
export function clientSettings(budget: CallBudget): { maxAttempts: number; requestHandler: NodeHttpHandlerOptions } {
  return {
    maxAttempts: budget.maxAttempts,
    requestHandler: {
      connectionTimeout: budget.connectMs,
      requestTimeout: budget.attemptMs,
      throwOnRequestTimeout: true,
    },
  };
}

/** An AWS call that ran out of its whole budget. Named like the SDK's own timeouts. */
export class CallDeadlineError extends Error {
  constructor(what: string, totalMs: number) {
    super(`${what} did not finish within ${totalMs} ms`);
    this.name = 'TimeoutError';
  }
}

/**
 * Runs one SDK call within `totalMs`: the signal (pass it to `send(command, { abortSignal })`) aborts the request in
 * flight and any retry, and the call rejects with CallDeadlineError at the deadline at the latest.
 */
export async function withinDeadline<T>(what: string, totalMs: number, call: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      const err = new CallDeadlineError(what, totalMs);
      controller.abort(err);
      reject(err);
    }, totalMs);
  });
  const running = call(controller.signal);
  // Once the deadline has won, the aborted call's own rejection is expected and not an unhandled one.
  running.catch(() => undefined);
  try {
    return await Promise.race([running, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
