import { createBroker } from '../lib/compose';
import { ManualClock } from '../lib/clock';
import { parseConfig } from '../lib/config';
import { METRICS_FROM_HTTP_LOG } from '../lib/contract';
import { LocalKeyRing } from '../lib/crypto';
import type { HttpClient, HttpResponse } from '../lib/http';
import type { SecretSource, TokenStore } from '../lib/ports';
import { makeHandler, type HttpDeps } from '../functions/http';
import type { JsonLogger } from '../lib/adapters/log';
import { createLogger, createMetrics, loggerPort, metricsPort } from '../lib/adapters/powertools';
import { LAMBDA_LOG_LEVELS, accessLogFormat } from '../infra/observability';
import { lambdaContext, restEvent } from '../test/support/events';

// The bytes CloudWatch Logs ingests per token request, each part rendered as AWS writes it: the http function's
// own lines (the real handler, the logger in its Lambda form, stdout captured), Lambda's platform lines at the
// stack's system log level, and API Gateway's access log line in the stack's format with realistic values.

const LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'] as const;
type Level = (typeof LEVELS)[number];
/** Whether Lambda passes a line at `level` when the function's level is `threshold`. */
export const passes = (level: Level, threshold: Level) => LEVELS.indexOf(level) >= LEVELS.indexOf(threshold);

/**
 * Application log-level filtering as Lambda documents it for JSON lines a function writes itself: the line's
 * `level` key decides; a line without one (an EMF document) counts as INFO.
 */
export function passesApplicationLevel(line: string, threshold: Level = LAMBDA_LOG_LEVELS.application): boolean {
  let level: unknown;
  try {
    level = (JSON.parse(line) as { level?: unknown }).level;
  } catch {
    return true;
  }
  const named = typeof level === 'string' ? (level.toUpperCase() === 'CRITICAL' ? 'FATAL' : level.toUpperCase()) : 'INFO';
  return passes((LEVELS as readonly string[]).includes(named) ? (named as Level) : 'INFO', threshold);
}

const REQUEST_ID = '6f7f0961-7b4b-4b3b-9f4f-3c2b1a0d9e8f';
const TRACING = { spanId: '54565fb41ac79632', type: 'X-Amzn-Trace-Id', value: 'Root=1-6748b1c0-5e8f4a2b9c7d3e1f0a6b8c4d;Parent=7d1a3f5e9b2c4d6a;Sampled=0;Lineage=1:a1b2c3d4:0' };

/**
 * Lambda's per-invocation platform lines in JSON log format for a successful warm invocation, each with the level
 * Lambda assigns it for system log-level filtering (platform.start INFO; platform.runtimeDone DEBUG on success,
 * WARN otherwise; platform.report INFO on success, WARN otherwise).
 */
export const PLATFORM_LINES: { level: Level; line: string }[] = [
  { level: 'INFO', line: JSON.stringify({ time: '2026-11-23T10:00:00.123Z', type: 'platform.start', record: { requestId: REQUEST_ID, version: '$LATEST', tracing: TRACING } }) },
  {
    level: 'DEBUG',
    line: JSON.stringify({
      time: '2026-11-23T10:00:00.126Z',
      type: 'platform.runtimeDone',
      record: { requestId: REQUEST_ID, status: 'success', tracing: TRACING, spans: [{ name: 'responseLatency', start: '2026-11-23T10:00:00.124Z', durationMs: 2.1 }], metrics: { durationMs: 2.41, producedBytes: 1400 } },
    }),
  },
  {
    level: 'INFO',
    line: JSON.stringify({
      time: '2026-11-23T10:00:00.127Z',
      type: 'platform.report',
      record: { requestId: REQUEST_ID, metrics: { durationMs: 2.41, billedDurationMs: 3, memorySizeMB: 512, maxMemoryUsedMB: 98 }, tracing: TRACING, status: 'success' },
    }),
  },
];

/** Bytes of platform lines per successful invocation at a system log level: none at WARN. */
export function platformBytesPerInvocation(systemLevel: Level = LAMBDA_LOG_LEVELS.system): number {
  return PLATFORM_LINES.filter((p) => passes(p.level, systemLevel)).reduce((n, p) => n + Buffer.byteLength(p.line), 0);
}

/** Realistic values of the access log's variables for a token request (a role session from a container). */
export const ACCESS_LOG_SAMPLE: Record<string, string> = {
  '$context.requestId': 'c6af9ac6-7b61-41e6-9a41-93e8deadbeef',
  '$context.requestTimeEpoch': '1795946400123',
  '$context.identity.userArn': 'arn:aws:sts::111111111111:assumed-role/campaigns-api/4f1c2b3a9d8e4f7a8b6c5d4e3f2a1b0c',
  '$context.identity.sourceIp': '10.20.130.47',
  '$context.httpMethod': 'GET',
  '$context.resourcePath': '/v1/connections/{id}/token',
  '$context.status': '200',
  '$context.error.responseType': '-',
  '$context.responseLatency': '14',
};

/** The access log line as API Gateway writes it from the stack's format, every variable replaced by its value. */
export function renderAccessLogLine(values: Record<string, string> = ACCESS_LOG_SAMPLE): string {
  return accessLogFormat().replace(/\$context(?:\.[A-Za-z]+)+/g, (v) => {
    const value = values[v];
    if (value === undefined) throw new Error(`no sample value for ${v}`);
    return value;
  });
}

export const accessLogBytesPerRequest = () => Buffer.byteLength(renderAccessLogLine());

/**
 * Runs `work` with the logger and the EMF writer in their Lambda form (JSON lines and EMF on stdout, log level
 * INFO) and returns every line written to stdout or stderr meanwhile (in Lambda both go to the function's log
 * group). `deps` is built inside, as the logger reads its environment when constructed.
 */
export async function printedInLambdaForm<T>(work: () => Promise<T>): Promise<{ result: T; lines: string[] }> {
  const keys = ['POWERTOOLS_METRICS_DISABLED', 'POWERTOOLS_DEV', 'POWERTOOLS_LOG_LEVEL'] as const;
  const saved = keys.map((k) => process.env[k]);
  process.env.POWERTOOLS_METRICS_DISABLED = 'false';
  delete process.env.POWERTOOLS_DEV;
  process.env.POWERTOOLS_LOG_LEVEL = 'INFO';
  const streams = [process.stdout, process.stderr] as const;
  const writes = streams.map((s) => s.write.bind(s));
  let text = '';
  const capture = ((chunk: string | Uint8Array) => {
    text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  }) as typeof process.stdout.write;
  try {
    for (const s of streams) s.write = capture;
    const result = await work();
    return { result, lines: text.split('\n').filter((l) => l !== '') };
  } finally {
    streams.forEach((s, i) => (s.write = writes[i]!));
    keys.forEach((k, i) => (saved[i] === undefined ? delete process.env[k] : (process.env[k] = saved[i])));
  }
}

/** The vendor the measurement mints from: a 1,000-character token, good for an hour. */
const tokenVendor: HttpClient = () =>
  Promise.resolve<HttpResponse>({
    status: 200,
    headers: { 'content-type': 'application/json' },
    body: Buffer.from(JSON.stringify({ access_token: 'x'.repeat(1000), token_type: 'Bearer', expires_in: 3600 })),
  });

/**
 * The http function's dependencies as Lambda wires them (functions/runtime.ts), over the given store and vendor;
 * `logger` and `vendor` stand in for its own (a test prints the same requests through another logger).
 */
export function lambdaFormDeps(store: TokenStore, clock: ManualClock, { logger = createLogger(), vendor = tokenVendor }: { logger?: JsonLogger; vendor?: HttpClient } = {}): HttpDeps {
  const config = parseConfig({
    connections: [{ id: 'logs', dialect: 'oauth2', tokenUrl: 'https://vendor.example/oauth/token', secretId: 'broker/logs', callers: ['arn:aws:iam::111111111111:role/campaigns-api'] }],
  });
  const secrets: SecretSource = { getSecret: () => Promise.resolve({ value: { client_id: 'c', client_secret: 'log-measure-secret' }, versionId: 'v1' }) };
  const metrics = createMetrics();
  const broker = createBroker({
    config,
    store,
    secrets,
    keyRing: new LocalKeyRing(),
    clock,
    http: vendor,
    logger: loggerPort(logger),
    metrics: metricsPort(metrics, { countedFromLogs: METRICS_FROM_HTTP_LOG }),
  });
  return { broker, logger, metrics };
}

export const tokenRequest = () => restEvent({ method: 'GET', path: '/v1/connections/logs/token' });

/** What the http function prints for each of `requests` warm token requests (after the mint), line by line. */
export async function warmRequestLines(store: TokenStore, requests = 20): Promise<string[][]> {
  const clock = new ManualClock('2026-11-23T10:00:00.000Z');
  const { result } = await printedInLambdaForm(async () => {
    const handler = makeHandler(lambdaFormDeps(store, clock));
    const perRequest: string[][] = [];
    await handler(tokenRequest(), lambdaContext()); // the mint: not a typical request
    for (let i = 0; i < requests; i++) {
      const { lines } = await printedInLambdaForm(async () => {
        const res = await handler(tokenRequest(), lambdaContext());
        if (res.statusCode !== 200) throw new Error(`the log measurement's request answered ${res.statusCode}`);
      });
      perRequest.push(lines);
    }
    return perRequest;
  });
  return result;
}

/** Bytes the http function's log group ingests per warm token request: what it prints that Lambda keeps. */
export async function measureLogBytesPerRequest(store: TokenStore, requests = 20): Promise<number> {
  const perRequest = await warmRequestLines(store, requests);
  const bytes = perRequest.flat().filter((l) => passesApplicationLevel(l)).reduce((n, l) => n + Buffer.byteLength(l), 0);
  return bytes / requests;
}
