// What the stack logs and traces, in one CDK-free place: the CDK constructs build from it and the cost model
// (bench/) prices from it, so the two cannot drift apart.

/**
 * The functions' Lambda log levels (JSON log format). System WARN: Lambda writes no platform.start / platform.report
 * for an invocation that succeeds, only the reports of failed ones (errors, timeouts, out of memory) and dropped
 * logs. Application INFO: the audit lines are INFO, and the EMF metric documents carry no `level`, which Lambda
 * reads as INFO, so anything above INFO would drop both.
 */
export const LAMBDA_LOG_LEVELS = { system: 'WARN', application: 'INFO' } as const;

/**
 * The X-Ray sampling rule the stack scopes to its API stage: no reservoir (a reservoir of one a second records
 * every request of a quiet API), then one request in a thousand ($5 per million traces: $0.005 per million
 * requests). The functions trace only what the stage sampled. Raise it while investigating (docs/operations.md).
 */
export const TRACE_SAMPLING = { reservoirSize: 0, fixedRate: 0.001 } as const;

/**
 * The access log line holds only what API Gateway alone knows, so it repeats nothing of the audit line (who,
 * which connection, the fingerprint, the source, the status): the request id that joins the two, the source
 * address, and API Gateway's own error type when it answered itself (a refused signature, a throttle, a timeout),
 * which also names its status. The time is the log event's own. Every value is quoted: API Gateway writes "-" for
 * a missing one, which bare would not be JSON.
 */
export const ACCESS_LOG_FIELDS: Record<string, string> = {
  requestId: '$context.requestId',
  ip: '$context.identity.sourceIp',
  error: '$context.error.responseType',
};

export function accessLogFormat(): string {
  return `{${Object.entries(ACCESS_LOG_FIELDS)
    .map(([k, v]) => `"${k}":"${v}"`)
    .join(',')}}`;
}
