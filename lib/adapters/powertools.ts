import { AsyncLocalStorage } from 'node:async_hooks';
import { LogFormatter, LogItem, Logger } from '@aws-lambda-powertools/logger';
import type { LogAttributes, UnformattedAttributes } from '@aws-lambda-powertools/logger/types';
import { METRIC_NAMESPACE, SERVICE_NAME, type MetricName } from '../contract';
import type { Logger as LoggerPort, Metrics as MetricsPort } from '../ports';
import { EmfMetrics, MetricUnit } from './emf';

// The broker's small Logger and Metrics ports in Lambda: Powertools for AWS Lambda's structured JSON logs, and EMF
// metrics (emf.ts, which writes the documents Powertools' Metrics wrote, at a quarter of its bundle weight).
// The functions and the local server both log and count through these.

/** Whether X-Ray sampled this invocation, from the trace header Lambda puts in the environment. */
const sampled = () => /(?:^|;)Sampled=1(?:;|$)/.test(process.env._X_AMZN_TRACE_ID ?? '');

/**
 * Powertools' line without what every line of a function would repeat (its ARN, name and memory, the sampling
 * rate): level, message, timestamp, service, then the line's own keys. Every byte is paid for at each request.
 * The Lambda request id rides on warnings and errors (it names the invocation in Lambda's failure report), the
 * X-Ray trace id only on an invocation X-Ray sampled (the others have no trace to find).
 */
export class CompactLogFormatter extends LogFormatter {
  formatAttributes(a: UnformattedAttributes, keys: LogAttributes): LogItem {
    const serious = a.logLevel === 'WARN' || a.logLevel === 'ERROR' || a.logLevel === 'CRITICAL';
    return new LogItem({
      attributes: {
        level: a.logLevel,
        message: a.message,
        timestamp: this.formatTimestamp(a.timestamp),
        service: a.serviceName,
        ...(a.lambdaContext?.coldStart ? { cold_start: true } : {}),
        ...(serious && a.lambdaContext ? { function_request_id: a.lambdaContext.awsRequestId } : {}),
        ...(a.xRayTraceId && sampled() ? { xray_trace_id: a.xRayTraceId } : {}),
      },
    }).addAttributes(keys);
  }
}

export function createLogger(): Logger {
  return new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME, logFormatter: new CompactLogFormatter() });
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

export function loggerPort(logger: Logger): LoggerPort {
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
