import { Metrics as PowertoolsMetrics, MetricUnit as PowertoolsUnit } from '@aws-lambda-powertools/metrics';
import { describe, expect, it } from 'vitest';
import { printedInLambdaForm } from '../../bench/log-lines';
import { withPowertools } from '../../functions/entry';
import { EmfMetrics, MetricUnit } from '../../lib/adapters/emf';
import { createLogger, createMetrics, metricsPort } from '../../lib/adapters/powertools';
import { METRIC_NAMESPACE, SERVICE_NAME } from '../../lib/contract';
import { lambdaContext } from '../support/events';
import { capturedLogs } from '../support/setup';

// The broker's own EMF writer (lib/adapters/emf.ts), which took the place of Powertools' Metrics: every line it
// prints must be a document CloudWatch turns into metrics, and the same document Powertools printed.

type Doc = Record<string, unknown> & {
  _aws: { Timestamp: number; CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[] };
};

/**
 * The lines printed to stdout as Lambda runs the function, each checked against the EMF specification: a
 * timestamp, one directive with a namespace, dimension sets whose every name is a top-level text value, and metric
 * definitions whose every name is a top-level number (or list of numbers).
 */
async function emfPrinted(work: () => Promise<unknown> | void): Promise<Doc[]> {
  const { lines } = await printedInLambdaForm(async () => {
    await work();
  });
  return lines.filter((line) => line.includes('"_aws"')).map((line) => {
    const doc = JSON.parse(line) as Doc;
    expect(Object.keys(doc._aws)).toEqual(['Timestamp', 'CloudWatchMetrics']);
    expect(Number.isInteger(doc._aws.Timestamp)).toBe(true);
    expect(Math.abs(doc._aws.Timestamp - Date.now())).toBeLessThan(60_000);
    expect(doc._aws.CloudWatchMetrics).toHaveLength(1);
    for (const directive of doc._aws.CloudWatchMetrics) {
      expect(Object.keys(directive)).toEqual(['Namespace', 'Dimensions', 'Metrics']);
      expect(directive.Namespace).toBe(METRIC_NAMESPACE);
      expect(directive.Dimensions.length).toBeGreaterThan(0);
      for (const set of directive.Dimensions) {
        expect(set.length).toBeGreaterThan(0);
        for (const name of set) expect(typeof doc[name]).toBe('string');
      }
      expect(directive.Metrics.length).toBeGreaterThan(0);
      for (const m of directive.Metrics) {
        expect(Object.keys(m)).toEqual(['Name', 'Unit']);
        expect(['Count', 'Milliseconds']).toContain(m.Unit);
        const values = doc[m.Name];
        expect([values].flat().every((v) => typeof v === 'number')).toBe(true);
      }
    }
    return doc;
  });
}

/** A document without its timestamp, to compare with another. */
const timeless = ({ _aws, ...rest }: Doc) => ({ ...rest, _aws: { ..._aws, Timestamp: 0 } });

describe('the EMF documents the functions print', () => {
  it('are valid EMF, in the namespace, with the service dimension on every metric and its own dimensions on a counted one', async () => {
    const docs = await emfPrinted(() => {
      const metrics = createMetrics();
      const port = metricsPort(metrics);
      port.count('Exchanges');
      port.timing('ExchangeLatency', 12.5);
      port.count('ExchangeFailures', 1, { code: 'vendor_unavailable' });
      port.timing('ExchangeLatency', 7);
      metrics.publishStoredMetrics();
    });
    expect(docs.map(timeless)).toEqual([
      {
        _aws: {
          Timestamp: 0,
          CloudWatchMetrics: [{ Namespace: METRIC_NAMESPACE, Dimensions: [['service', 'code']], Metrics: [{ Name: 'ExchangeFailures', Unit: 'Count' }] }],
        },
        service: SERVICE_NAME,
        code: 'vendor_unavailable',
        ExchangeFailures: 1,
      },
      {
        _aws: {
          Timestamp: 0,
          CloudWatchMetrics: [
            {
              Namespace: METRIC_NAMESPACE,
              Dimensions: [['service']],
              Metrics: [
                { Name: 'Exchanges', Unit: 'Count' },
                { Name: 'ExchangeLatency', Unit: 'Milliseconds' },
              ],
            },
          ],
        },
        service: SERVICE_NAME,
        Exchanges: 1,
        ExchangeLatency: [12.5, 7],
      },
    ]);
  });

  it("are the documents Powertools' Metrics printed, key for key, for every call the broker makes", async () => {
    const script = (m: { addMetric(n: string, u: 'Count' | 'Milliseconds', v: number): unknown; singleMetric(): unknown; publishStoredMetrics(): unknown }) => {
      m.addMetric('Exchanges', MetricUnit.Count, 1);
      m.addMetric('Exchanges', MetricUnit.Count, 1);
      m.addMetric('ExchangeLatency', MetricUnit.Milliseconds, 231.25);
      const single = m.singleMetric() as { addDimensions(d: Record<string, string>): void; addMetric(n: string, u: 'Count', v: number): void };
      single.addDimensions({ outcome: 'minted' });
      single.addMetric('PrewarmOutcomes', MetricUnit.Count, 3);
      for (let i = 0; i < 150; i++) m.addMetric(`Metric${i % 120}`, MetricUnit.Count, i);
      m.publishStoredMetrics();
    };
    const options = { namespace: METRIC_NAMESPACE, serviceName: SERVICE_NAME };
    const ours = await emfPrinted(() => script(new EmfMetrics(options)));
    const theirs = (await printedInLambdaForm(() => Promise.resolve(script(new PowertoolsMetrics(options))))).lines.map((l) => JSON.parse(l) as Doc);
    expect(PowertoolsUnit.Count).toBe(MetricUnit.Count);
    expect(PowertoolsUnit.Milliseconds).toBe(MetricUnit.Milliseconds);
    expect(ours.length).toBe(3); // the single metric, the 100 that filled a document, the rest
    expect(ours.map(timeless)).toEqual(theirs.map(timeless));
    expect(ours.map((d) => JSON.stringify(timeless(d)))).toEqual(theirs.map((d) => JSON.stringify(timeless(d))));
  });

  it('go out once per invocation, after the handler or its failure, and not again on the next one', async () => {
    const docs = await emfPrinted(async () => {
      const metrics = createMetrics();
      const port = metricsPort(metrics);
      const handler = withPowertools(
        (event: { fail: boolean }) => {
          port.count('Exchanges');
          return event.fail ? Promise.reject(new Error('boom')) : Promise.resolve('ok');
        },
        { logger: createLogger(), metrics },
      );
      expect(await handler({ fail: false }, lambdaContext())).toBe('ok');
      await expect(handler({ fail: true }, lambdaContext())).rejects.toThrow('boom');
      expect(metrics.hasStoredMetrics()).toBe(false);
    });
    const exchanges = docs.filter((d) => 'Exchanges' in d);
    expect(exchanges.map((d) => d.Exchanges)).toEqual([1, 1]);
  });

  it('are not printed while POWERTOOLS_METRICS_DISABLED is set, nor in dev mode unless it says otherwise', () => {
    const saved = { disabled: process.env.POWERTOOLS_METRICS_DISABLED, dev: process.env.POWERTOOLS_DEV };
    try {
      const from = capturedLogs().length;
      const printed = (metrics: EmfMetrics) => {
        metrics.addMetric('Exchanges', MetricUnit.Count, 1);
        metrics.publishStoredMetrics();
        return capturedLogs().slice(from).filter((l) => l.includes('"_aws"')).length;
      };
      process.env.POWERTOOLS_DEV = 'true';
      delete process.env.POWERTOOLS_METRICS_DISABLED;
      expect(printed(createMetrics())).toBe(0);
      process.env.POWERTOOLS_METRICS_DISABLED = 'yes';
      expect(printed(createMetrics())).toBe(0);
      process.env.POWERTOOLS_METRICS_DISABLED = 'false';
      expect(printed(createMetrics())).toBe(1); // dev mode: through console
      process.env.POWERTOOLS_METRICS_DISABLED = 'maybe';
      expect(() => createMetrics()).toThrow('POWERTOOLS_METRICS_DISABLED');
    } finally {
      for (const [key, value] of [['POWERTOOLS_METRICS_DISABLED', saved.disabled], ['POWERTOOLS_DEV', saved.dev]] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });

  it('refuse what CloudWatch would not take: a metric whose unit changes, a metric named as a dimension', () => {
    const metrics = new EmfMetrics({ namespace: METRIC_NAMESPACE, serviceName: SERVICE_NAME });
    metrics.addMetric('Exchanges', MetricUnit.Count, 1);
    expect(() => metrics.addMetric('Exchanges', MetricUnit.Milliseconds, 1)).toThrow('Exchanges');
    metrics.addMetric('service', MetricUnit.Count, 1);
    expect(() => metrics.serializeMetrics()).toThrow('collision');
  });
});
