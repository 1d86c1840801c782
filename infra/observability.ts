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
 * every request of a quiet API), then this share of requests. The functions trace only what the stage sampled.
 */
export const TRACE_SAMPLING = { reservoirSize: 0, fixedRate: 0.01 } as const;

/**
 * The access log line: which request, when (epoch ms), who called (the caller's ARN as API Gateway authenticated
 * it, and from where), which route, what it answered, API Gateway's own error type when it answered itself, and
 * the latency in ms. Every value is quoted: API Gateway writes "-" for a missing one, which bare would not be JSON.
 */
export const ACCESS_LOG_FIELDS: Record<string, string> = {
  requestId: '$context.requestId',
  time: '$context.requestTimeEpoch',
  caller: '$context.identity.userArn',
  ip: '$context.identity.sourceIp',
  method: '$context.httpMethod',
  route: '$context.resourcePath',
  status: '$context.status',
  error: '$context.error.responseType',
  latency: '$context.responseLatency',
};

export function accessLogFormat(): string {
  return `{${Object.entries(ACCESS_LOG_FIELDS)
    .map(([k, v]) => `"${k}":"${v}"`)
    .join(',')}}`;
}
