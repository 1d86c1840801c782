import { describe, expect, it } from 'vitest';
import { makeHandler } from '../../functions/http';
import { INTERNAL_ERRORS, TOKENS_SERVED } from '../../infra/constructs/broker-alarms';
import { ACCESS_LOG_FIELDS, LAMBDA_LOG_LEVELS } from '../../infra/observability';
import { createLogger, createMetrics, metricsPort } from '../../lib/adapters/powertools';
import { MemoryTokenStore } from '../../lib/adapters/memory-store';
import type { Broker } from '../../lib/broker';
import { ManualClock } from '../../lib/clock';
import { METRICS_FROM_HTTP_LOG, SERVICE_NAME } from '../../lib/contract';
import { VendorUnavailableError } from '../../lib/errors';
import {
  ACCESS_LOG_SAMPLE,
  lambdaFormDeps,
  passesApplicationLevel,
  platformBytesPerInvocation,
  printedInLambdaForm,
  renderAccessLogLine,
  tokenRequest,
  warmRequestLines,
} from '../../bench/log-lines';
import { lambdaContext, restEvent } from '../support/events';
import { fieldOf, matchesFilter } from '../support/log-filter';
import { capturedLogs } from '../support/setup';

// The lines the functions print as Lambda runs them (Powertools' JSON on stdout, not the tests' console), put
// through what Lambda and CloudWatch Logs do with them: the application log-level filter at the stack's level,
// then the stack's metric filters. What an alarm or the dashboard counts must survive both.

const parsed = (lines: string[]) => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
const kept = (lines: string[]) => parsed(lines.filter((l) => passesApplicationLevel(l)));

describe('a warm token request, as the http function prints it in Lambda', () => {
  it('is one compact audit line: who, which connection, the fingerprint, the source, the status; no EMF document', async () => {
    const consoleLines = capturedLogs().length;
    const perRequest = await warmRequestLines(new MemoryTokenStore(), 3);
    // Written to stdout by Powertools' own console, which Lambda passes through as the JSON object it is; the
    // runtime's patched console.log would wrap it as a string in a "message" of its own, and no filter would match.
    expect(capturedLogs().slice(consoleLines).filter((l) => l.includes('token handed out'))).toEqual([]);
    for (const lines of perRequest) {
      expect(lines).toHaveLength(1);
      const [line] = kept(lines);
      expect(line).toEqual({
        level: 'INFO',
        message: 'token handed out',
        timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        service: SERVICE_NAME,
        caller: 'arn:aws:iam::111111111111:role/campaigns-api',
        requestId: expect.stringMatching(/^[0-9a-f-]{36}$/),
        connection: 'logs',
        fingerprint: expect.stringMatching(/^[0-9a-f]{12}$/),
        source: 'memory',
        status: 200,
      });
      expect(lines[0]).not.toContain('x'.repeat(20)); // the token itself
      expect(Buffer.byteLength(lines[0]!)).toBeLessThan(330);
    }
  });

  it('is what the TokensServed metric filter counts, with the service and source dimensions the dashboard reads', async () => {
    const [lines] = await warmRequestLines(new MemoryTokenStore(), 1);
    const counted = kept(lines!).filter((l) => matchesFilter(TOKENS_SERVED.filterPattern().logPatternString, l));
    expect(counted).toHaveLength(1);
    const dimensions = Object.fromEntries(Object.entries(TOKENS_SERVED.dimensions).map(([k, sel]) => [k, fieldOf(counted[0]!, sel)]));
    expect(dimensions).toEqual({ service: SERVICE_NAME, source: 'memory' });
    expect(METRICS_FROM_HTTP_LOG).toEqual([TOKENS_SERVED.metricName]);
  });

  it('counts once per token: the mint is counted from its audit line too, and no EMF TokensServed doubles it', async () => {
    const clock = new ManualClock('2026-11-23T10:00:00.000Z');
    const { lines } = await printedInLambdaForm(async () => {
      const handler = makeHandler(lambdaFormDeps(new MemoryTokenStore(), clock));
      for (let i = 0; i < 3; i++) expect((await handler(tokenRequest(), lambdaContext())).statusCode).toBe(200);
    });
    const all = kept(lines);
    expect(all.filter((l) => matchesFilter(TOKENS_SERVED.filterPattern().logPatternString, l)).map((l) => l.source)).toEqual(['vendor', 'memory', 'memory']);
    expect(lines.filter((l) => l.includes('"TokensServed"'))).toEqual([]);
    // The mint's own metrics still go out as EMF (Exchanges, ExchangeLatency), and Lambda keeps them.
    expect(all.some((l) => JSON.stringify(l).includes('"Exchanges"'))).toBe(true);
  });
});

describe("Lambda's application log level (INFO) keeps what the alarms read", () => {
  it('keeps the 500 line the InternalErrors filter counts, with the Lambda request id of the failed invocation', async () => {
    const context = lambdaContext();
    const { lines } = await printedInLambdaForm(async () => {
      const broker = { getToken: () => Promise.reject(new TypeError('cannot read properties of undefined')) } as unknown as Broker;
      const handler = makeHandler({ broker, logger: createLogger(), metrics: createMetrics() });
      expect((await handler(restEvent({ method: 'GET', path: '/v1/connections/logs/token' }), context)).statusCode).toBe(500);
    });
    const counted = kept(lines).filter((l) => matchesFilter(INTERNAL_ERRORS.filterPattern().logPatternString, l));
    expect(counted).toHaveLength(1);
    expect(counted[0]).toMatchObject({ level: 'ERROR', connection: 'logs', code: 'internal_error', function_request_id: context.awsRequestId });
  });

  it('keeps the EMF documents (no level: INFO to Lambda) the other alarms read, which a level above INFO would drop', async () => {
    const { lines } = await printedInLambdaForm(async () => {
      const metrics = createMetrics();
      metricsPort(metrics).count('ExchangeFailures', 1, { code: 'vendor_unavailable' });
      metricsPort(metrics).count('StoreDegraded');
      metrics.publishStoredMetrics();
      return Promise.resolve();
    });
    const emf = lines.filter((l) => l.includes('"_aws"'));
    expect(emf.length).toBeGreaterThanOrEqual(2);
    expect(emf.every((l) => passesApplicationLevel(l, LAMBDA_LOG_LEVELS.application))).toBe(true);
    expect(emf.some((l) => passesApplicationLevel(l, 'WARN'))).toBe(false);
  });

  it('keeps a refusal as its request audit line, with the connection and the status', async () => {
    const { lines } = await printedInLambdaForm(async () => {
      const broker = { getToken: () => Promise.reject(new VendorUnavailableError('logs: the vendor answered 503')) } as unknown as Broker;
      const handler = makeHandler({ broker, logger: createLogger(), metrics: createMetrics() });
      await handler(restEvent({ method: 'GET', path: '/v1/connections/logs/token' }), lambdaContext());
    });
    expect(kept(lines)).toEqual([expect.objectContaining({ connection: 'logs', status: 503, code: 'vendor_unavailable' })]);
  });
});

describe('the X-Ray trace id on a log line', () => {
  it('is there only when X-Ray sampled the invocation', async () => {
    const root = '1-6748b1c0-5e8f4a2b9c7d3e1f0a6b8c4d';
    const printed = async (header: string) => {
      const saved = process.env._X_AMZN_TRACE_ID;
      process.env._X_AMZN_TRACE_ID = header;
      try {
        const { lines } = await printedInLambdaForm(() => Promise.resolve(createLogger().info('probe')));
        return parsed(lines)[0]!;
      } finally {
        if (saved === undefined) delete process.env._X_AMZN_TRACE_ID;
        else process.env._X_AMZN_TRACE_ID = saved;
      }
    };
    expect(await printed(`Root=${root};Parent=7d1a3f5e9b2c4d6a;Sampled=1`)).toMatchObject({ xray_trace_id: root });
    expect(await printed(`Root=${root};Parent=7d1a3f5e9b2c4d6a;Sampled=0`)).not.toHaveProperty('xray_trace_id');
  });
});

describe('what the cost model counts besides the function', () => {
  it("Lambda's platform lines: none for a successful invocation at system level WARN, every line at DEBUG", () => {
    expect(LAMBDA_LOG_LEVELS.system).toBe('WARN');
    expect(platformBytesPerInvocation('WARN')).toBe(0);
    expect(platformBytesPerInvocation('INFO')).toBeGreaterThan(500);
    expect(platformBytesPerInvocation('DEBUG')).toBeGreaterThan(platformBytesPerInvocation('INFO'));
  });

  it("the access log line is the stack's format with every variable given a realistic value, and stays JSON when values are missing", () => {
    const line = JSON.parse(renderAccessLogLine()) as Record<string, string>;
    expect(Object.keys(line)).toEqual(Object.keys(ACCESS_LOG_FIELDS));
    expect(Object.values(line)).not.toContain(undefined);
    expect(line).toEqual({ requestId: expect.stringMatching(/^[0-9a-f-]{36}$/), ip: '10.20.130.47', error: '-' });
    const missing = Object.fromEntries(Object.keys(ACCESS_LOG_SAMPLE).map((k) => [k, '-']));
    expect(Object.values(JSON.parse(renderAccessLogLine(missing)) as Record<string, string>).every((v) => v === '-')).toBe(true);
  });
});
