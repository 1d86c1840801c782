import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { withMiddleware, withPowertools } from '../../functions/entry';
import type { Middleware } from '../../functions/observability';
import { EmfMetrics, MetricUnit } from '../../lib/adapters/emf';
import { createLogger } from '../../lib/adapters/powertools';
import { lambdaContext } from '../support/events';

// functions/entry.ts runs each handler inside its middleware as middy did (middy left the bundles for its weight):
// the same order of steps, the same answer or error, and the same early timeout before Lambda's deadline.

type Handler = (event: string, context: Context) => Promise<string>;

/** Two middlewares that write down each step they see, with the request's answer or error at that step. */
function recorder(steps: string[], throwIn?: string): Middleware[] {
  return ['outer', 'inner'].map((name) => {
    const step = (kind: string) => (request: { response: unknown; error: Error | null | undefined }) => {
      steps.push(`${name}.${kind}(${(request.response as string | undefined) ?? request.error?.message ?? ''})`);
      if (throwIn === `${name}.${kind}`) throw new Error(`${name}.${kind} failed`);
    };
    return { before: step('before'), after: step('after'), onError: step('onError') };
  });
}

/** What each runner does with `handler`: the steps, and the answer or the error (name and message). */
async function run(kind: 'middy' | 'ours', handler: Handler, context: Context | undefined, throwIn?: string) {
  const steps: string[] = [];
  const middleware = recorder(steps, throwIn);
  const wrapped = kind === 'middy' ? middleware.reduce((m, x) => m.use(x), middy<string, string, Error, Context>(handler)) : withMiddleware(handler, middleware);
  try {
    return { steps, answer: await wrapped('event', context as Context) };
  } catch (err) {
    const e = err as Error & { originalError?: Error };
    return { steps, error: `${e.name}: ${e.message}`, originalError: e.originalError?.message };
  }
}

const shortContext = (ms: number): Context => ({ ...lambdaContext(), getRemainingTimeInMillis: () => ms });
const never: Handler = () => new Promise<string>(() => undefined);

describe('the middleware around each handler, as middy ran it', () => {
  const cases: [string, Handler, Context | undefined, string?][] = [
    ['an answer', (event) => Promise.resolve(`answer to ${event}`), lambdaContext()],
    ['a rejection', () => Promise.reject(new Error('handler failed')), lambdaContext()],
    ['a throw before the promise', () => {
      throw new Error('thrown at once');
    }, lambdaContext()],
    ['no context', (event, context) => Promise.resolve(`${event} ${typeof context}`), undefined],
    ['a before that throws', (event) => Promise.resolve(event), lambdaContext(), 'inner.before'],
    ['an after that throws', (event) => Promise.resolve(event), lambdaContext(), 'outer.after'],
    ['an onError that throws', () => Promise.reject(new Error('handler failed')), lambdaContext(), 'inner.onError'],
    ['a handler past the deadline', never, shortContext(30)],
    ['a deadline already past', never, shortContext(0)],
  ];
  for (const [what, handler, context, throwIn] of cases) {
    it(`runs the same steps to the same end: ${what}`, async () => {
      const ours = await run('ours', handler, context, throwIn);
      expect(ours).toEqual(await run('middy', handler, context, throwIn));
    });
  }

  it('gives a handler up 5 ms before the deadline, with a TimeoutError, and still publishes its metrics', async () => {
    const saved = process.env.POWERTOOLS_METRICS_DISABLED;
    process.env.POWERTOOLS_METRICS_DISABLED = 'true';
    try {
      const metrics = new EmfMetrics();
      const handler = withPowertools(() => {
        metrics.addMetric('Exchanges', MetricUnit.Count, 1);
        return never('', lambdaContext());
      }, { logger: createLogger(), metrics });
      const started = performance.now();
      await expect(handler({}, shortContext(60))).rejects.toMatchObject({ name: 'TimeoutError' });
      const took = performance.now() - started;
      expect(took).toBeGreaterThanOrEqual(50);
      expect(took).toBeLessThan(1000);
      expect(metrics.hasStoredMetrics()).toBe(false);
    } finally {
      if (saved === undefined) delete process.env.POWERTOOLS_METRICS_DISABLED;
      else process.env.POWERTOOLS_METRICS_DISABLED = saved;
    }
  });
});
