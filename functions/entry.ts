import type { Context } from 'aws-lambda';
import type { EmfMetrics } from '../lib/adapters/emf';
import type { JsonLogger } from '../lib/adapters/log';
import { logContext, publishMetrics, type Middleware, type MiddlewareRequest } from './observability';
import { lambdaRuntime, type RuntimeOptions } from './runtime';

// What every trigger's file shares: the logging and metrics middleware around its handler, and Lambda's entry point
// that builds the broker once per instance, on the first invocation (tests import the files without an AWS runtime).

/** How long before Lambda's deadline the handler is given up, so that the middleware still runs (middy's default). */
const TIMEOUT_EARLY_MS = 5;

/** The error a handler given up at the deadline fails with (middy's). */
function timedOut(): Error {
  const err = new Error('[AbortError]: The operation was aborted.');
  err.name = 'TimeoutError';
  return err;
}

/**
 * The handler inside its middleware, run as middy ran it (middy's 2.5 KB of bundle were for features the functions
 * do not use: streamed answers, early answers, hooks): each `before` in order, the handler, then each `after` in the
 * reverse order; when any of them throws, each `onError` in the reverse order, and the error thrown on. With Lambda's context, the handler is given up
 * TIMEOUT_EARLY_MS before the deadline (it fails with a TimeoutError), so that the request's metrics are still
 * published.
 */
export function withMiddleware<E, R>(fn: (event: E, context: Context) => Promise<R>, middleware: Middleware[]) {
  const reversed = [...middleware].reverse();
  return async (event: E = {} as E, context: Context = {} as Context): Promise<R> => {
    const request: MiddlewareRequest = { event, context, response: undefined, error: undefined, internal: {} };
    let timer: NodeJS.Timeout | undefined;
    try {
      for (const m of middleware) await m.before?.(request);
      const handled = fn(event, context);
      const remaining = context.getRemainingTimeInMillis?.();
      request.response = await (remaining === undefined
        ? handled
        : Promise.race([handled, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(timedOut()), remaining - TIMEOUT_EARLY_MS)))]));
      clearTimeout(timer);
      for (const m of reversed) await m.after?.(request);
      return request.response as R;
    } catch (err) {
      clearTimeout(timer);
      request.response = undefined;
      request.error = err as Error;
      try {
        for (const m of reversed) await m.onError?.(request);
      } catch (failed) {
        (failed as { originalError?: unknown }).originalError = err;
        throw failed;
      }
      // An onError that answered in the handler's place (none of the broker's does) is answered with.
      if (request.response === undefined) throw err;
      return request.response as R;
    }
  };
}

export function withPowertools<E, R>(fn: (event: E, context: Context) => Promise<R>, deps: { logger: JsonLogger; metrics: EmfMetrics }) {
  return withMiddleware(fn, [logContext(deps.logger), publishMetrics(deps.metrics)]);
}

export function lambdaEntry<E, R>(make: (runtime: ReturnType<typeof lambdaRuntime>) => (event: E, context: Context) => Promise<R>, options: RuntimeOptions = {}) {
  let built: ((event: E, context: Context) => Promise<R>) | undefined;
  return async (event: E, context: Context): Promise<R> => {
    built ??= make(lambdaRuntime(options));
    return built(event, context);
  };
}
