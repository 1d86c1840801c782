import type { EmfMetrics } from '../lib/adapters/emf';
import type { MiddlewareObj } from '@middy/core';

/**
 * Publishes a request's stored metrics after the handler, like Powertools' logMetrics, but only when there are
 * some: most metrics carry their own dimensions and go out at once (metricsPort), so on a warm request the store is
 * usually empty, and logMetrics would then log "No application metrics to publish", one log line per request.
 */
export function publishMetrics(metrics: EmfMetrics): MiddlewareObj {
  const publish = () => {
    if (metrics.hasStoredMetrics()) return void metrics.publishStoredMetrics();
    metrics.clearDimensions();
  };
  return { after: publish, onError: publish };
}
