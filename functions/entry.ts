import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import type { EmfMetrics } from '../lib/adapters/emf';
import { publishMetrics } from './observability';
import { lambdaRuntime, type RuntimeOptions } from './runtime';

// What every trigger's file shares: the Powertools middleware around its handler, and Lambda's entry point that
// builds the broker once per instance, on the first invocation (tests import the files without an AWS runtime).

export function withPowertools<E, R>(fn: (event: E, context: Context) => Promise<R>, deps: { logger: Logger; metrics: EmfMetrics }) {
  return middy<E, R, Error, Context>(fn).use(injectLambdaContext(deps.logger, { resetKeys: true })).use(publishMetrics(deps.metrics));
}

export function lambdaEntry<E, R>(make: (runtime: ReturnType<typeof lambdaRuntime>) => (event: E, context: Context) => Promise<R>, options: RuntimeOptions = {}) {
  let built: ((event: E, context: Context) => Promise<R>) | undefined;
  return async (event: E, context: Context): Promise<R> => {
    built ??= make(lambdaRuntime(options));
    return built(event, context);
  };
}
