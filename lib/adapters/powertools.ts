import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { METRIC_NAMESPACE, SERVICE_NAME } from '../contract';
import type { Logger as LoggerPort, Metrics as MetricsPort } from '../ports';

// Powertools for AWS Lambda behind the broker's small Logger and Metrics ports: structured JSON logs, EMF metrics.
// The functions and the local server both log and count through these.

export function createLogger(): Logger {
  return new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME });
}

export function createMetrics(): Metrics {
  return new Metrics({
    namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? METRIC_NAMESPACE,
    serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME,
  });
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
