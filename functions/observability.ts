import type { Context } from 'aws-lambda';
import type { EmfMetrics } from '../lib/adapters/emf';
import type { JsonLogger } from '../lib/adapters/log';

/** What a middleware sees of an invocation: middy's request. */
export interface MiddlewareRequest {
  event: unknown;
  context: Context;
  response: unknown;
  error: Error | null | undefined;
  internal: Record<string, unknown>;
}

/** A middleware as middy has them: each step optional, none answering in the handler's place. */
export interface Middleware {
  before?: (request: MiddlewareRequest) => unknown;
  after?: (request: MiddlewareRequest) => unknown;
  onError?: (request: MiddlewareRequest) => unknown;
}

/**
 * Publishes a request's stored metrics after the handler, like Powertools' logMetrics, but only when there are
 * some: most metrics carry their own dimensions and go out at once (metricsPort), so on a warm request the store is
 * usually empty, and logMetrics would then log "No application metrics to publish", one log line per request.
 */
export function publishMetrics(metrics: EmfMetrics): Middleware {
  const publish = () => {
    if (metrics.hasStoredMetrics()) return void metrics.publishStoredMetrics();
    metrics.clearDimensions();
  };
  return { after: publish, onError: publish };
}

/**
 * Gives the logger the invocation's context before the handler, as Powertools' injectLambdaContext did: the request
 * id for the warnings and errors that follow, cold_start on an on-demand instance's first invocation. (Its reset of
 * the keys appended during a request had nothing to reset: no line's keys are appended to the logger.)
 */
export function logContext(logger: JsonLogger): Middleware {
  return { before: ({ context }) => logger.addContext(context) };
}
