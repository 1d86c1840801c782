import type { Logger } from '@aws-lambda-powertools/logger';
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import type { Context } from 'aws-lambda';
import type { Broker } from '../lib/broker';
import { isBrokerError } from '../lib/errors';
import { lambdaEntry, withPowertools } from './entry';

// EventBridge Scheduler, every minute: every connection with `prewarm: true` gets a new token when its cached one
// is missing or inside refreshBefore. Connections are warmed concurrently with a bound; one failing vendor does
// not stop the others; no connection is started without time left for its exchange.

export interface PrewarmDeps {
  broker: Broker;
  logger: Logger;
  metrics: Metrics;
  /** How many connections are warmed at once. */
  concurrency?: number;
  /** No connection is started with less time left than this (an exchange's deadline and some). */
  reserveMs?: number;
}

export type PrewarmReport = { outcomes: Record<string, string> };

export function makePrewarmHandler(deps: PrewarmDeps) {
  const concurrency = deps.concurrency ?? 4;
  const reserveMs = deps.reserveMs ?? 12_000;
  return async (_event: unknown, context: Context): Promise<PrewarmReport> => {
    const connections = deps.broker.config.connections.filter((c) => c.prewarm);
    const outcomes: Record<string, string> = {};
    let next = 0;
    const worker = async () => {
      while (next < connections.length) {
        const connection = connections[next++]!;
        if (context.getRemainingTimeInMillis() < reserveMs) {
          outcomes[connection.id] = 'skipped-no-time';
          continue;
        }
        try {
          outcomes[connection.id] = await deps.broker.prewarm(connection);
        } catch (err) {
          outcomes[connection.id] = isBrokerError(err) ? err.code : 'internal_error';
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, connections.length) }, worker));
    const tally: Record<string, number> = {};
    for (const o of Object.values(outcomes)) tally[o] = (tally[o] ?? 0) + 1;
    for (const [outcome, n] of Object.entries(tally)) {
      const m = deps.metrics.singleMetric();
      m.addDimensions({ outcome });
      m.addMetric('PrewarmOutcomes', MetricUnit.Count, n);
    }
    const failed = Object.values(outcomes).some((o) => !['minted', 'fresh', 'busy', 'static'].includes(o));
    (failed ? deps.logger.warn.bind(deps.logger) : deps.logger.info.bind(deps.logger))('prewarm run', { outcomes, tally });
    return { outcomes };
  };
}

export const makeHandler = (deps: PrewarmDeps) => withPowertools(makePrewarmHandler(deps), deps);

export const handler = lambdaEntry(makeHandler);
