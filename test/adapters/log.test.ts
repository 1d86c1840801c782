import { LogFormatter, LogItem, Logger as PowertoolsLogger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { LogAttributes, UnformattedAttributes } from '@aws-lambda-powertools/logger/types';
import type { APIGatewayProxyEvent, Context } from 'aws-lambda';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { lambdaFormDeps } from '../../bench/log-lines';
import { withMiddleware, withPowertools } from '../../functions/entry';
import { makeRequestHandler } from '../../functions/http';
import { publishMetrics } from '../../functions/observability';
import { makeRotationHandler } from '../../functions/rotation';
import { JsonLogger, type LoggerOptions } from '../../lib/adapters/log';
import { MemoryTokenStore } from '../../lib/adapters/memory-store';
import { createLogger, createMetrics, loggerPort } from '../../lib/adapters/powertools';
import type { Broker } from '../../lib/broker';
import { ManualClock } from '../../lib/clock';
import { SERVICE_NAME } from '../../lib/contract';
import { BrokerError, VendorUnavailableError } from '../../lib/errors';
import type { HttpClient } from '../../lib/http';
import { lambdaContext, restEvent } from '../support/events';

// The broker's own logger (lib/adapters/log.ts), which took the place of Powertools' Logger: every line it prints,
// to the same stream or console method, must be the line Powertools printed with the broker's compact formatter,
// byte for byte. The clock is stopped, so that the timestamps are compared too.

/** The formatter the functions gave Powertools' Logger (lib/adapters/powertools.ts's, as it was). */
class CompactLogFormatter extends LogFormatter {
  formatAttributes(a: UnformattedAttributes, keys: LogAttributes): LogItem {
    const serious = a.logLevel === 'WARN' || a.logLevel === 'ERROR' || a.logLevel === 'CRITICAL';
    const sampled = /(?:^|;)Sampled=1(?:;|$)/.test(process.env._X_AMZN_TRACE_ID ?? '');
    return new LogItem({
      attributes: {
        level: a.logLevel,
        message: a.message,
        timestamp: this.formatTimestamp(a.timestamp),
        service: a.serviceName,
        ...(a.lambdaContext?.coldStart ? { cold_start: true } : {}),
        ...(serious && a.lambdaContext ? { function_request_id: a.lambdaContext.awsRequestId } : {}),
        ...(a.xRayTraceId && sampled ? { xray_trace_id: a.xRayTraceId } : {}),
      },
    }).addAttributes(keys);
  }
}

/** What the broker calls on a logger, whichever it is. */
interface Calls {
  trace(message: string, ...extra: unknown[]): void;
  debug(message: string, ...extra: unknown[]): void;
  info(message: string, ...extra: unknown[]): void;
  warn(message: string, ...extra: unknown[]): void;
  error(message: string, ...extra: unknown[]): void;
  critical(message: string, ...extra: unknown[]): void;
  addContext(context: Context): void;
}

type Kind = 'ours' | 'powertools';
const LOGGERS: Record<Kind, (options: LoggerOptions) => Calls> = {
  ours: (options) => new JsonLogger(options),
  powertools: (options) => new PowertoolsLogger({ ...options, logFormatter: new CompactLogFormatter() } as ConstructorParameters<typeof PowertoolsLogger>[0]),
};

const LAMBDA = { POWERTOOLS_DEV: undefined, POWERTOOLS_METRICS_DISABLED: 'true', AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand' };
const DEV = { POWERTOOLS_DEV: 'true', POWERTOOLS_METRICS_DISABLED: 'true' };
const LEVEL_KEYS = ['POWERTOOLS_LOG_LEVEL', 'LOG_LEVEL', 'AWS_LAMBDA_LOG_LEVEL', 'POWERTOOLS_SERVICE_NAME', 'TZ', '_X_AMZN_TRACE_ID'];
const ROOT = '1-6748b1c0-5e8f4a2b9c7d3e1f0a6b8c4d';
const SAMPLED = `Root=${ROOT};Parent=7d1a3f5e9b2c4d6a;Sampled=1`;
const UNSAMPLED = `Root=${ROOT};Parent=7d1a3f5e9b2c4d6a;Sampled=0`;

/** Each thing printed: where to (stdout or stderr in Lambda form, the console method in dev mode) and the text. */
type Print = [to: string, text: string];

afterEach(() => {
  vi.useRealTimers();
});

/**
 * Everything printed while `work` runs in the environment `env` (the level variables, the trace header, TZ unset
 * unless it says so), the clock stopped. Console calls still reach the tests' capture (setup.ts: the leak scan).
 */
async function printed(env: Record<string, string | undefined>, work: () => unknown): Promise<Print[]> {
  const all = { ...Object.fromEntries(LEVEL_KEYS.map((k) => [k, undefined])), ...env };
  const saved = Object.fromEntries(Object.keys(all).map((k) => [k, process.env[k]]));
  const set = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  const out: Print[] = [];
  const streams = { stdout: process.stdout, stderr: process.stderr };
  // Put back as they were (the console's are the tests' capture): taken unbound, called only through their objects.
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const writes = { stdout: process.stdout.write, stderr: process.stderr.write };
  const methods = ['log', 'debug', 'info', 'warn', 'error'] as const;
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const consoled = methods.map((m) => console[m]);
  vi.useFakeTimers({ toFake: ['Date'], now: new Date('2026-11-23T10:00:00.123Z') });
  set(all);
  try {
    for (const [name, stream] of Object.entries(streams)) {
      stream.write = ((chunk: string | Uint8Array) => out.push([name, typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')]) > 0);
    }
    methods.forEach((m, i) => {
      console[m] = (...args: unknown[]) => {
        out.push([`console.${m}`, args.map(String).join(' ')]);
        consoled[i]!(...args);
      };
    });
    await work();
  } finally {
    streams.stdout.write = writes.stdout;
    streams.stderr.write = writes.stderr;
    methods.forEach((m, i) => (console[m] = consoled[i]!));
    set(saved);
    vi.useRealTimers();
  }
  return out;
}

/** What each logger prints for `calls` in `env`, after checking that both print the very same. */
async function same(env: Record<string, string | undefined>, calls: (log: Calls, kind: Kind) => unknown, options: LoggerOptions = { serviceName: SERVICE_NAME }) {
  const ours = await printed(env, () => calls(LOGGERS.ours(options), 'ours'));
  const theirs = await printed(env, () => calls(LOGGERS.powertools(options), 'powertools'));
  expect(ours).toEqual(theirs);
  return ours;
}

// The broker's lines, as its code writes them (lib/, functions/), with the values they carry in production and the
// values that test the serialization: errors, nested objects, lists, unicode, empty and missing values.
class Thing {
  readonly kind = 'instance';
  back?: unknown;
}
function calls(): [level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'critical', message: string, ...extra: unknown[]][] {
  const caller = 'arn:aws:iam::111111111111:role/campaigns-api';
  const requestId = 'c6af9ac6-7b61-41e6-9a41-93e8deadbeef';
  const cause = new Error('socket hang up');
  const vendorError = new VendorUnavailableError('logs: the vendor answered 503', { cause, context: { connection: 'logs', vendorStatus: 503 } });
  const typeError = new TypeError("cannot read properties of undefined (reading 'id')");
  const tagged = Object.assign(new Error('with keys'), { code: 'ECONNRESET', errno: -104, syscall: 'read', address: undefined });
  const circular: Record<string, unknown> = { name: 'loop' };
  circular.self = circular;
  const list: unknown[] = [1, 'two'];
  list.push(list);
  const parent: Record<string, unknown> = { thing: new Thing() };
  (parent.thing as Thing).back = parent;
  const holes = [1, , 3, ,]; // eslint-disable-line no-sparse-arrays -- holes are what this line prints
  return [
    ['info', 'token handed out', { caller, requestId, connection: 'digitaleo-prod', fingerprint: '44f8354494a5', source: 'memory', status: 200 }],
    ['info', 'minted a token', { caller, requestId, connection: 'logs', fingerprint: '0a1b2c3d4e5f', expiresAt: '2026-11-23T11:00:00.000Z', secretVersion: 'v1', grant: 'client_credentials' }],
    ['warn', 'exchange failed; cooling down', { connection: 'logs', code: 'vendor_rejected', vendorStatus: 400, vendorError: 'invalid_client', vendorDescription: undefined, until: '2026-11-23T10:05:00.000Z' }],
    ['error', 'request failed', { caller, requestId, connection: 'logs', code: 'internal_error', status: 500, errorName: 'TypeError' }],
    ['info', 'request refused', { caller, requestId, connection: 'nope', code: 'unknown_connection', status: 404, reason: 'no connection nope' }],
    ['info', 'prewarm run', { outcomes: { logs: 'minted', crm: 'fresh', billing: 'vendor_unavailable' }, tally: { minted: 1, fresh: 1, vendor_unavailable: 1 } }],
    ['info', 'secret change handled', { eventName: 'PutSecretValue', secrets: ['broker/logs', 'broker/crm'], results: [{ connection: 'logs', outcome: 'rotated' }, { connection: 'crm', outcome: 'rotated', code: undefined }] }],
    ['error', 'testSecret failed', { connection: 'logs', code: 'vendor_rejected', reason: undefined }],
    ['warn', 'the retired marks could not be read; serving without them for now', { reason: '' }],
    ['info', 'testSecret passed', { secret: null, connections: [] }],
    ['error', 'a stored token failed to decrypt; ignoring it', { connection: 'logs', err: vendorError }],
    ['error', 'request failed', { error: typeError, nested: { errors: [tagged, cause], deeper: { why: vendorError } } }],
    ['error', 'an error as its own argument', typeError],
    ['warn', 'a text as its own argument', 'the extra detail', { connection: 'logs' }, null, undefined, 42],
    ['info', 'unicode: café ☕ 𝄞 日本語 \u2028 \u0000 "quoted" \\ back', { connection: 'caf\u00e9-\u2615', who: 'Zoë 🧪', lone: '\ud800', control: '\t\n\r\u001f' }],
    ['info', 'values JSON has no word for', { big: 12345678901234567890n, nan: NaN, inf: -Infinity, zero: -0, fn: () => 1, sym: Symbol('s'), date: new Date(0), map: new Map([[1, 2]]), set: new Set([1]), url: new URL('https://vendor.example/x?y=1'), bytes: Buffer.from('hi'), typed: new Uint8Array([1, 2]) }],
    ['info', 'circular values', { circular, list, parent, holes, sameTwice: { a: cause, b: cause } }],
    ['info', 'keys in odd places', { 10: 'ten', 2: 'two', constructor: 'dropped', nested: JSON.parse('{"__proto__":{"polluted":true},"constructor":1,"kept":true}') as unknown, toString: undefined }],
    ['warn', 'keys the line already has', { cold_start: false, function_request_id: 'mine', xray_trace_id: undefined }],
    ['info', 'reserved keys', { level: 'DEBUG', message: 'm', service: 's', timestamp: 't', sampling_rate: 1, kept: 'yes' }],
    ['info', '', { connection: 'a line without a message' }],
    ['info', 'a line with no keys'],
    ['trace', 'at trace', { n: 1 }],
    ['debug', 'at debug', { n: 2 }],
    ['critical', 'at critical', { n: 3 }],
  ];
}

/** Logs each of `lines` (made once, so that both loggers see the same errors, with the same stacks). */
function logEach(log: Calls, lines: ReturnType<typeof calls>) {
  for (const [level, message, ...extra] of lines) log[level](message, ...extra);
}

describe('the lines the broker prints, through its own logger and through Powertools', () => {
  for (const [form, env] of [['Lambda form', LAMBDA], ['dev mode', DEV]] as const) {
    it(`are the same, byte for byte, at every level, outside an invocation (${form})`, async () => {
      const list = calls();
      const lines = await same({ ...env, POWERTOOLS_LOG_LEVEL: 'TRACE' }, (log) => logEach(log, list));
      expect(lines.length).toBe(list.length + 5); // and the reserved keys' warnings
      if (form === 'Lambda form') {
        expect(lines.every(([to, text]) => /^std(out|err)$/.test(to) && text.endsWith('}\n') && !text.slice(0, -1).includes('\n'))).toBe(true);
        expect(new Set(lines.map(([to]) => to))).toEqual(new Set(['stdout', 'stderr']));
      } else {
        expect(new Set(lines.map(([to]) => to))).toEqual(new Set(['console.log', 'console.debug', 'console.info', 'console.warn', 'console.error']));
      }
    });

    for (const [trace, header] of [['sampled', SAMPLED], ['not sampled', UNSAMPLED], ['a bare trace id', ROOT], ['no Root', 'Parent=7d1a3f5e9b2c4d6a;Sampled=1']] as const) {
      it(`are the same in invocations, cold and warm, X-Ray ${trace} (${form})`, async () => {
        const first = lambdaContext();
        const second = lambdaContext();
        const list = calls();
        const lines = await same({ ...env, POWERTOOLS_LOG_LEVEL: 'TRACE', _X_AMZN_TRACE_ID: header }, (log) => {
          log.addContext(first);
          logEach(log, list);
          log.addContext(second);
          logEach(log, list);
          log.addContext({} as Context);
          log.error('a context without a request id');
        });
        const text = lines.map(([, t]) => t).join('');
        expect(text).toContain(first.awsRequestId);
        expect(text).toContain(second.awsRequestId);
        // Every line of the instance's first invocation but the one whose own cold_start (false) takes its place.
        if (form === 'Lambda form') expect(text.match(/"cold_start":true/g)).toHaveLength(list.length + 5 - 1);
        expect(text.includes(`"xray_trace_id":"${ROOT}"`) || text.includes(`"xray_trace_id": "${ROOT}"`)).toBe(trace === 'sampled');
      });
    }
  }

  it('are the same where the instance was not started on demand (no cold_start, provisioned or unknown)', async () => {
    for (const type of ['provisioned-concurrency', undefined, ' on-demand ']) {
      const context = lambdaContext();
      const lines = await same({ ...LAMBDA, AWS_LAMBDA_INITIALIZATION_TYPE: type }, (log) => {
        log.addContext(context);
        log.warn('first invocation');
      });
      expect(lines).toHaveLength(1);
    }
  });

  it('are the same for each time zone: UTC, an offset, a half hour behind, one that does not exist (a warning, then UTC)', async () => {
    for (const TZ of ['UTC', ':UTC', 'Europe/Paris', 'America/St_Johns', 'Asia/Kolkata', 'Not/A_Zone']) {
      const lines = await same({ ...LAMBDA, TZ }, (log) => {
        log.info('one');
        log.info('two');
      });
      expect(lines.length).toBeGreaterThanOrEqual(2);
    }
  });

  it('keep the level each environment gives: Lambda over the logger over POWERTOOLS_LOG_LEVEL over LOG_LEVEL', async () => {
    const every = (log: Calls) => {
      for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'critical'] as const) log[level](`at ${level}`);
    };
    const cases: [Record<string, string>, LoggerOptions][] = [
      [{}, {}],
      [{ POWERTOOLS_LOG_LEVEL: 'DEBUG' }, {}],
      [{ POWERTOOLS_LOG_LEVEL: ' ERROR ' }, {}],
      [{ POWERTOOLS_LOG_LEVEL: 'warn' }, {}],
      [{ POWERTOOLS_LOG_LEVEL: 'verbose', LOG_LEVEL: 'TRACE' }, {}],
      [{ POWERTOOLS_LOG_LEVEL: '', LOG_LEVEL: 'TRACE' }, {}],
      [{ LOG_LEVEL: 'CRITICAL' }, {}],
      [{ POWERTOOLS_LOG_LEVEL: 'SILENT' }, {}],
      [{ POWERTOOLS_LOG_LEVEL: 'toString' }, {}],
      [{ POWERTOOLS_LOG_LEVEL: 'DEBUG' }, { logLevel: 'error' }],
      [{ POWERTOOLS_LOG_LEVEL: 'DEBUG' }, { logLevel: 'SILENT' }],
      [{ POWERTOOLS_LOG_LEVEL: 'DEBUG' }, { logLevel: 'nonsense' }],
      [{ AWS_LAMBDA_LOG_LEVEL: 'INFO', POWERTOOLS_LOG_LEVEL: 'TRACE' }, {}],
      [{ AWS_LAMBDA_LOG_LEVEL: 'FATAL', POWERTOOLS_LOG_LEVEL: 'DEBUG' }, {}],
      [{ AWS_LAMBDA_LOG_LEVEL: 'WARN' }, { logLevel: 'DEBUG' }],
      [{ AWS_LAMBDA_LOG_LEVEL: 'ERROR' }, { logLevel: 'info' }],
      [{ AWS_LAMBDA_LOG_LEVEL: 'DEBUG' }, { logLevel: 'ERROR' }],
      [{ AWS_LAMBDA_LOG_LEVEL: 'debug', POWERTOOLS_LOG_LEVEL: 'ERROR' }, {}],
    ];
    const counts: number[] = [];
    for (const [env, options] of cases) {
      const lines = await same({ ...LAMBDA, ...env }, every, { serviceName: SERVICE_NAME, ...options });
      counts.push(lines.length);
    }
    // An invalid POWERTOOLS_LOG_LEVEL (lower case too) still hides LOG_LEVEL; a logger level below Lambda's is warned of.
    expect(counts).toEqual([4, 5, 2, 4, 4, 6, 1, 0, 0, 2, 0, 5, 4, 1, 4, 2, 5, 2]);
  });

  it('name the service as the broker does (POWERTOOLS_SERVICE_NAME or token-broker) and as Powertools does without one', async () => {
    for (const name of [undefined, 'billing', ' spaced ', '']) {
      await same({ ...LAMBDA, POWERTOOLS_SERVICE_NAME: name }, (log) => log.info('named'), { serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME });
      await same({ ...LAMBDA, POWERTOOLS_SERVICE_NAME: name }, (log) => log.info('named'), {});
    }
    expect((await printed(LAMBDA, () => createLogger().info('named')))[0]![1]).toContain(`"service":"${SERVICE_NAME}"`);
  });

  it("are the same when the runtime runs invocations side by side: each line has its own invocation's context and trace", async () => {
    // The runtime's per-invocation store (AWS_LAMBDA_MAX_CONCURRENCY), as Lambda provides it on globalThis.
    type Store = Map<symbol, unknown>;
    let current: Store | undefined;
    const traces = new WeakMap<Store, string>();
    const global = globalThis as { awslambda?: { InvokeStore?: unknown } };
    const saved = global.awslambda;
    global.awslambda = {
      InvokeStore: {
        hasContext: () => current !== undefined,
        get: (key: symbol) => current?.get(key),
        set: (key: symbol, value: unknown) => current?.set(key, value),
        getXRayTraceId: () => (current ? traces.get(current) : undefined),
      },
    };
    try {
      const [ca, cb] = [lambdaContext(), lambdaContext()];
      const lines = await same({ ...LAMBDA, AWS_LAMBDA_MAX_CONCURRENCY: '4', _X_AMZN_TRACE_ID: SAMPLED }, (log) => {
        const a: Store = new Map();
        const b: Store = new Map();
        traces.set(a, 'Root=1-aaaaaaaa-aaaaaaaaaaaaaaaaaaaaaaaa;Sampled=1');
        traces.set(b, '1-bbbbbbbb-bbbbbbbbbbbbbbbbbbbbbbbb');
        current = a;
        log.addContext(ca);
        current = b;
        log.addContext(cb);
        log.warn('in b');
        current = a;
        log.warn('in a');
        current = undefined;
        log.warn('between invocations');
      });
      expect(lines).toHaveLength(3);
    } finally {
      global.awslambda = saved;
      delete process.env.AWS_LAMBDA_MAX_CONCURRENCY;
    }
  });
});

describe('the functions, run with their own logger and with Powertools', () => {
  /** The http function as it runs each logger: ours inside withPowertools, Powertools' inside its own middleware. */
  function httpHandler(kind: Kind, log: Calls, store: MemoryTokenStore, vendor: HttpClient) {
    const deps = lambdaFormDeps(store, new ManualClock('2026-11-23T10:00:00.000Z'), { logger: log as unknown as JsonLogger, vendor });
    if (kind === 'ours') return withPowertools(makeRequestHandler(deps), deps);
    return withMiddleware(makeRequestHandler(deps), [injectLambdaContext(log as unknown as PowertoolsLogger, { resetKeys: true }), publishMetrics(deps.metrics)]);
  }

  it("print the same lines for the http function's requests: minted, served, refused, failed at the vendor and inside", async () => {
    const events: [APIGatewayProxyEvent, Context][] = [
      [restEvent({ method: 'GET', path: '/v1/connections/logs/token' }), lambdaContext()],
      [restEvent({ method: 'GET', path: '/v1/connections/logs/token' }), lambdaContext()],
      [restEvent({ method: 'GET', path: '/v1/connections/nope/token' }), lambdaContext()],
      [restEvent({ method: 'GET', path: '/v1/connections/logs/token', userArn: null }), lambdaContext()],
      [restEvent({ method: 'GET', path: '/v1/connections/logs/token', userArn: 'arn:aws:iam::111111111111:role/stranger' }), lambdaContext()],
    ];
    const failing: [APIGatewayProxyEvent, Context][] = [
      [restEvent({ method: 'GET', path: '/v1/connections/logs/token' }), lambdaContext()],
      [restEvent({ method: 'GET', path: '/v1/connections/logs/token' }), lambdaContext()],
    ];
    const vendor: HttpClient = () => Promise.resolve({ status: 200, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ access_token: 'y'.repeat(40), token_type: 'Bearer', expires_in: 3600 })) });
    const refusing: HttpClient = () => Promise.resolve({ status: 401, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ error: 'invalid_client', error_description: 'Client authentication failed: café ☕' })) });
    const inside = restEvent({ method: 'GET', path: '/v1/connections/logs/token' });
    const statuses: number[] = [];
    const lines = await same({ ...LAMBDA, POWERTOOLS_LOG_LEVEL: 'INFO', AWS_LAMBDA_LOG_LEVEL: 'INFO', _X_AMZN_TRACE_ID: SAMPLED }, async (log, kind) => {
      const handler = httpHandler(kind, log, new MemoryTokenStore(), vendor);
      for (const [event, context] of events) statuses.push((await handler(event, context)).statusCode);
      const refused = httpHandler(kind, log, new MemoryTokenStore(), refusing);
      for (const [event, context] of failing) statuses.push((await refused(event, context)).statusCode);
      const broken = withPowertools(makeRequestHandler({ broker: { getToken: () => Promise.reject(new TypeError('cannot read properties of undefined')) } as unknown as Broker, logger: log as unknown as JsonLogger, metrics: createMetrics() }), { logger: log as unknown as JsonLogger, metrics: createMetrics() });
      statuses.push((await broken(inside, events[0]![1])).statusCode);
    });
    expect(statuses.slice(0, 8)).toEqual(statuses.slice(8));
    expect(lines.length).toBeGreaterThanOrEqual(events.length + failing.length + 1);
    const text = lines.map(([, t]) => t).join('');
    for (const message of ['minted a token', 'token handed out', 'request refused', 'exchange failed; cooling down', 'request failed']) expect(text).toContain(`"message":"${message}"`);
  });

  it('print the same lines for the rotation function and for the broker port the functions log through', async () => {
    const context = lambdaContext();
    await same({ ...LAMBDA, _X_AMZN_TRACE_ID: UNSAMPLED }, async (log) => {
      const deps = lambdaFormDeps(new MemoryTokenStore(), new ManualClock('2026-11-23T10:00:00.000Z'), { logger: log as unknown as JsonLogger });
      const rotation = makeRotationHandler({ ...deps, logger: log as unknown as JsonLogger });
      log.addContext(context);
      await rotation({ source: 'aws.events', 'detail-type': 'Scheduled Event', detail: {} });
      const port = loggerPort(log as unknown as JsonLogger);
      port.info('token invalidated', { connection: 'logs', fingerprint: '0a1b2c3d4e5f' });
      port.warn('refresh ahead failed', { connection: 'logs', code: 'vendor_unavailable' });
      port.error('a registered connection does not validate; it is not served', { connection: 'crm', reason: new BrokerError('misconfigured', 500, 'no token URL').message });
    });
  });
});
