import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { makeHandler } from '../functions/http';
import { loggerPort, metricsPort } from '../lib/adapters/powertools';
import { METRIC_NAMESPACE, SERVICE_NAME } from '../lib/contract';
import { Broker } from '../lib/broker';
import { ManualClock } from '../lib/clock';
import { parseConfig } from '../lib/config';
import { LocalKeyRing, TokenCipher } from '../lib/crypto';
import type { HttpClient, HttpResponse } from '../lib/http';
import type { SecretSource, TokenStore } from '../lib/ports';
import { lambdaContext, restEvent } from '../test/support/events';

// Bytes the http function writes to its log group per token request, measured: the real handler with Powertools
// in its Lambda form (JSON lines, EMF metrics on stdout), a token served from memory, stdout captured.

/** Lambda's own platform.start and platform.report lines in JSON log format, per invocation (estimated size). */
export const PLATFORM_LINE_BYTES = 650;
/** API Gateway's access log line in the stack's JSON format (standard fields, caller, ip, protocol...), estimated. */
export const ACCESS_LOG_LINE_BYTES = 420;

export async function measureLogBytesPerRequest(store: TokenStore, requests = 20): Promise<number> {
  const clock = new ManualClock('2026-11-23T10:00:00.000Z');
  const config = parseConfig({
    connections: [{ id: 'logs', dialect: 'oauth2', tokenUrl: 'https://vendor.example/oauth/token', secretId: 'broker/logs', callers: ['arn:aws:iam::111111111111:role/campaigns-api'] }],
  });
  const secrets: SecretSource = { getSecret: () => Promise.resolve({ value: { client_id: 'c', client_secret: 'log-measure-secret' }, versionId: 'v1' }) };
  const vendor: HttpClient = () =>
    Promise.resolve<HttpResponse>({
      status: 200,
      headers: { 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify({ access_token: 'x'.repeat(1000), token_type: 'Bearer', expires_in: 3600 })),
    });
  const saved = { disabled: process.env.POWERTOOLS_METRICS_DISABLED, dev: process.env.POWERTOOLS_DEV, level: process.env.POWERTOOLS_LOG_LEVEL };
  process.env.POWERTOOLS_METRICS_DISABLED = 'false';
  delete process.env.POWERTOOLS_DEV;
  process.env.POWERTOOLS_LOG_LEVEL = 'INFO';
  const logger = new Logger({ serviceName: SERVICE_NAME });
  const metrics = new Metrics({ namespace: METRIC_NAMESPACE, serviceName: SERVICE_NAME });
  const broker = new Broker({ config, store, secrets, cipher: new TokenCipher(new LocalKeyRing(), clock), clock, http: vendor, logger: loggerPort(logger), metrics: metricsPort(metrics) });
  const handler = makeHandler({ broker, logger, metrics });
  const call = () => handler(restEvent({ method: 'GET', path: '/v1/connections/logs/token' }), lambdaContext());
  const streams = [process.stdout, process.stderr] as const;
  const writes = streams.map((s) => s.write.bind(s));
  let bytes = 0;
  // In Lambda both streams go to the function's log group.
  const counting = ((chunk: string | Uint8Array) => {
    bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
    return true;
  }) as typeof process.stdout.write;
  try {
    for (const s of streams) s.write = counting;
    await call(); // the mint: not a typical request
    bytes = 0;
    for (let i = 0; i < requests; i++) {
      const res = await call();
      if (res.statusCode !== 200) throw new Error(`the log measurement's request answered ${res.statusCode}`);
    }
  } finally {
    streams.forEach((s, i) => (s.write = writes[i]!));
    for (const [k, v] of Object.entries({ POWERTOOLS_METRICS_DISABLED: saved.disabled, POWERTOOLS_DEV: saved.dev, POWERTOOLS_LOG_LEVEL: saved.level })) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  return bytes / requests;
}
