import { AsyncLocalStorage } from 'node:async_hooks';
import { METRIC_NAMESPACE, SERVICE_NAME, type MetricName } from '../contract';
import type { Logger as LoggerPort, Metrics as MetricsPort } from '../ports';
import { EmfMetrics, MetricUnit } from './emf';
import { JsonLogger } from './log';

// The broker's small Logger and Metrics ports in Lambda: structured JSON logs (log.ts, which prints the lines
// Powertools' Logger printed with the broker's compact formatter) and EMF metrics (emf.ts, which writes the
// documents Powertools' Metrics wrote), both read from Powertools' environment variables, at a fraction of its weight.
// The functions and the local server both log and count through these.

export function createLogger(): JsonLogger {
  return new JsonLogger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME });
}

export function createMetrics(): EmfMetrics {
  return new EmfMetrics({
    namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? METRIC_NAMESPACE,
    serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME,
  });
}

/**
 * Who asked, in which request: the keys the broker's own lines carry while it serves that request. Kept per
 * request (async context), not in the logger's shared keys, which requests running side by side would overwrite.
 */
export const requestLogKeys = new AsyncLocalStorage<{ caller?: string; requestId?: string }>();

export function loggerPort(logger: JsonLogger): LoggerPort {
  const withRequest = (fields: Record<string, unknown> | undefined) => ({ ...requestLogKeys.getStore(), ...fields });
  return {
    info: (message, fields) => logger.info(message, withRequest(fields)),
    warn: (message, fields) => logger.warn(message, withRequest(fields)),
    error: (message, fields) => logger.error(message, withRequest(fields)),
  };
}

/** `countedFromLogs`: metrics the stack counts from this function's log lines (a metric filter), not emitted here. */
export function metricsPort(metrics: EmfMetrics, { countedFromLogs = [] }: { countedFromLogs?: readonly MetricName[] } = {}): MetricsPort {
  return {
    count(name, value = 1, dimensions) {
      if (countedFromLogs.includes(name)) return;
      if (!dimensions) return void metrics.addMetric(name, MetricUnit.Count, value);
      // A metric with its own dimensions goes out at once, so it does not lend them to the others.
      const single = metrics.singleMetric();
      single.addDimensions(dimensions);
      single.addMetric(name, MetricUnit.Count, value);
    },
    timing(name, ms, dimensions) {
      if (!dimensions) return void metrics.addMetric(name, MetricUnit.Milliseconds, ms);
      const single = metrics.singleMetric();
      single.addDimensions(dimensions);
      single.addMetric(name, MetricUnit.Milliseconds, ms);
    },
  };
}
