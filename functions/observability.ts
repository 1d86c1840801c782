import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { MiddlewareObj } from '@middy/core';
import type { Logger as LoggerPort, Metrics as MetricsPort } from '../lib/ports';

// Powertools for AWS Lambda behind the broker's small Logger and Metrics ports: structured JSON logs, EMF metrics.

export const SERVICE = 'token-broker';
export const METRICS_NAMESPACE = process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'TokenBroker';

export function createLogger(): Logger {
  return new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE });
}

export function createMetrics(): Metrics {
  return new Metrics({ namespace: METRICS_NAMESPACE, serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE });
}

export function loggerPort(logger: Logger): LoggerPort {
  return {
    info: (message, fields) => logger.info(message, fields ?? {}),
    warn: (message, fields) => logger.warn(message, fields ?? {}),
    error: (message, fields) => logger.error(message, fields ?? {}),
  };
}

export function metricsPort(metrics: Metrics): MetricsPort {
  return {
    count(name, value = 1, dimensions) {
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

/**
 * Publishes a request's stored metrics after the handler, like Powertools' logMetrics, but only when there are
 * some: most metrics carry their own dimensions and go out at once (metricsPort), so on a warm request the store is
 * usually empty, and logMetrics would then log "No application metrics to publish", one log line per request.
 */
export function publishMetrics(metrics: Metrics): MiddlewareObj {
  const publish = () => {
    if (metrics.hasStoredMetrics()) return void metrics.publishStoredMetrics();
    metrics.clearDimensions();
    metrics.clearMetadata();
  };
  return { after: publish, onError: publish };
}
