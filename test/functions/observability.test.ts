import { afterEach, describe, expect, it } from 'vitest';
import { makeHandler } from '../../functions/http';
import { createLogger, createMetrics, metricsPort } from '../../lib/adapters/powertools';
import { ManualClock } from '../../lib/clock';
import { secretFor, vendorConnectionInput } from '../support/connections';
import { lambdaContext, restEvent } from '../support/events';
import { expectCode } from '../support/expect';
import { startWorld, type World } from '../support/harness';
import { capturedLogs } from '../support/setup';

const CALLER = 'arn:aws:iam::111111111111:role/caller';
let world: World | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

type Emf = { _aws: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[] } } & Record<string, unknown>;

/** The EMF documents Powertools wrote (through console, captured by setup.ts) since `from`. */
function emfSince(from: number): Emf[] {
  return capturedLogs()
    .slice(from)
    .flatMap((line) => {
      try {
        const doc = JSON.parse(line) as Emf;
        return doc._aws ? [doc] : [];
      } catch {
        return [];
      }
    });
}

function series(docs: Emf[], name: string): { dimensions: string[]; values: Record<string, unknown> }[] {
  return docs.flatMap((d) =>
    d._aws.CloudWatchMetrics.filter((m) => m.Metrics.some((x) => x.Name === name)).map((m) => ({
      dimensions: [...(m.Dimensions[0] ?? [])].sort(),
      values: d,
    })),
  );
}

describe('EMF metrics, as the alarms and the dashboard read them', () => {
  it('emits ExchangeFailures with only the service dimension (the alarm) and by code (the dashboard), TokensServed by source', async () => {
    const previous = process.env.POWERTOOLS_METRICS_DISABLED;
    process.env.POWERTOOLS_METRICS_DISABLED = 'false';
    try {
      const metrics = createMetrics();
      const clock = new ManualClock('2026-11-23T10:00:00.000Z');
      world = await startWorld(clock, (v) => [vendorConnectionInput(v, 'jwt', { id: 'jwt' })], {}, (v) => ({ 'broker/jwt-test': secretFor(v, 'jwt') }));
      const from = capturedLogs().length;
      const broker = world.broker({ metrics: metricsPort(metrics), options: { exchange: { retries: 0 } } });
      await broker.getToken(CALLER, 'jwt');
      world.vendor.fail('jwt', (_q, r) => {
        r.writeHead(500);
        r.end();
      });
      clock.advance(3_600_000);
      await expectCode(broker.getToken(CALLER, 'jwt'), 'vendor_unavailable');
      metrics.publishStoredMetrics();

      const docs = emfSince(from);
      expect(docs.every((d) => d._aws.CloudWatchMetrics.every((m) => m.Namespace === 'TokenBroker'))).toBe(true);
      const failures = series(docs, 'ExchangeFailures');
      expect(failures.map((f) => f.dimensions)).toEqual(expect.arrayContaining([['service'], ['code', 'service']]));
      expect(failures.find((f) => f.dimensions.length === 2)?.values).toMatchObject({ code: 'vendor_unavailable', service: 'token-broker' });
      expect(series(docs, 'TokensServed')[0]).toMatchObject({ dimensions: ['service', 'source'], values: { source: 'vendor' } });
      for (const name of ['Exchanges', 'Cooldowns', 'ExchangeLatency']) {
        expect(series(docs, name).map((s) => s.dimensions)).toContainEqual(['service']);
      }
    } finally {
      process.env.POWERTOOLS_METRICS_DISABLED = previous;
    }
  });
});

describe('log lines per request', () => {
  it('a warm request served from memory prints its metrics and nothing about metrics it does not have', async () => {
    const previous = process.env.POWERTOOLS_METRICS_DISABLED;
    process.env.POWERTOOLS_METRICS_DISABLED = 'false';
    try {
      const clock = new ManualClock('2026-11-23T10:00:00.000Z');
      world = await startWorld(clock, (v) => [vendorConnectionInput(v, 'jwt', { id: 'jwt' })], {}, (v) => ({ 'broker/jwt-test': secretFor(v, 'jwt') }));
      const logger = createLogger();
      const metrics = createMetrics();
      const broker = world.broker({ metrics: metricsPort(metrics) });
      const handle = makeHandler({ broker, logger, metrics });
      const request = () =>
        handle(restEvent({ method: 'GET', path: '/v1/connections/jwt/token', userArn: 'arn:aws:sts::111111111111:assumed-role/caller/s1' }), lambdaContext());
      expect((await request()).statusCode).toBe(200); // cold: a mint
      for (let i = 0; i < 3; i++) {
        const from = capturedLogs().length;
        expect((await request()).statusCode).toBe(200);
        const lines = capturedLogs().slice(from);
        expect(lines.filter((l) => l.includes('No application metrics'))).toEqual([]);
        // What it does print: the one EMF document of the token it served.
        expect(series(emfSince(from), 'TokensServed')).toHaveLength(1);
      }
    } finally {
      process.env.POWERTOOLS_METRICS_DISABLED = previous;
    }
  });
});
