import { Console } from 'node:console';
import type { Context } from 'aws-lambda';
import { devMode } from './emf';

// The broker's log lines: one JSON object per line, the line Powertools' Logger printed with the broker's compact
// formatter, byte for byte (a test prints both and compares them), for the part of its API the broker uses, in
// about 4 KB of each function's bundle instead of 23 KB (Powertools' logger, its commons and the invoke store).
// The same environment: POWERTOOLS_LOG_LEVEL or else LOG_LEVEL, overridden by Lambda's AWS_LAMBDA_LOG_LEVEL;
// POWERTOOLS_SERVICE_NAME; POWERTOOLS_DEV (console, indented lines, stacks as lists); TZ for the timestamp.

/** Powertools' levels and their thresholds: a line is printed when its level's is at least the logger's. */
const LEVELS = { TRACE: 6, DEBUG: 8, INFO: 12, WARN: 16, ERROR: 20, CRITICAL: 24, SILENT: 28 };
type LogLevel = keyof typeof LEVELS;
/** The console method each level prints with (trace through log, as Powertools patches it, critical through error). */
const METHOD = { TRACE: 'log', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error', CRITICAL: 'error' } as const;
type Printed = keyof typeof METHOD;
/** Keys a line's fields may not set (Powertools drops them with a warning). */
const RESERVED = ['level', 'message', 'sampling_rate', 'service', 'timestamp'];
const DEFAULT_SERVICE = 'service_undefined';

/** Powertools' test, `in` and all: a name is valid as it is spelled, upper case. */
const valid = (level: string | undefined): level is LogLevel => typeof level === 'string' && level in LEVELS;
const env = (key: string) => process.env[key]?.trim() ?? '';

/** The runtime's per-invocation store, there when Lambda runs invocations side by side (AWS_LAMBDA_MAX_CONCURRENCY). */
interface InvokeStore {
  hasContext(): boolean;
  get(key: symbol): unknown;
  set(key: symbol, value: unknown): void;
  getXRayTraceId(): string | undefined;
}
const invokeStore = () => (globalThis as { awslambda?: { InvokeStore?: InvokeStore } }).awslambda?.InvokeStore;

/** The trace id (the header's Root) from the runtime's store or _X_AMZN_TRACE_ID, as Powertools reads it. */
function traceId(): string | undefined {
  const header = invokeStore()?.getXRayTraceId() ?? env('_X_AMZN_TRACE_ID');
  if (header === '') return undefined;
  if (!header.includes('=')) return header;
  const fields: Record<string, string | undefined> = {};
  for (const field of header.split(';')) {
    const [key, value] = field.split('=');
    fields[key!] = value;
  }
  return fields.Root;
}

/** Whether X-Ray sampled this invocation, from the trace header Lambda puts in the environment. */
const sampled = () => /(?:^|;)Sampled=1(?:;|$)/.test(process.env._X_AMZN_TRACE_ID ?? '');

/** The time as Powertools writes it: ISO in UTC, or with the offset of a TZ that is not UTC. */
function timestamp(now: Date, warned: { zone: boolean }): string {
  const tz = env('TZ');
  if (!tz || tz.includes('UTC')) return now.toISOString();
  let zone = 'UTC';
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    zone = tz;
  } catch {
    if (!warned.zone) console.warn(`Invalid or unresolvable time zone: "${tz}" - falling back to UTC.`);
    warned.zone = true;
  }
  const two = '2-digit';
  const parts: Record<string, string> = {};
  const format = new Intl.DateTimeFormat('en', { hourCycle: 'h23', year: 'numeric', month: two, day: two, hour: two, minute: two, second: two, timeZone: zone });
  for (const p of format.formatToParts(now)) parts[p.type] = p.value;
  const offset = zone === tz ? -now.getTimezoneOffset() : 0;
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}:${parts.second}.${pad(now.getMilliseconds(), 3)}${offset >= 0 ? '+' : '-'}${pad(Math.abs(Math.floor(offset / 60)))}:${pad(Math.abs(offset % 60))}`;
}

/** Where an error was thrown: the first `(file:line:column)` of its stack, as file:line. */
function location(stack: string | undefined): string {
  for (const line of stack?.split('\n') ?? []) {
    const match = /\(([^()]*?):(\d+?):(\d+?)\)\\?$/.exec(line);
    if (match) return `${match[1]}:${Number(match[2])}`;
  }
  return '';
}

/** An error as Powertools prints it: name, location, message, stack (a list of lines in dev mode), cause, its own keys. */
function formatError(error: Error): Record<string, unknown> {
  const { name, message, stack, cause, ...own } = error as Error & Record<string, unknown>;
  const formatted: Record<string, unknown> = {
    name,
    location: location(error.stack),
    message,
    stack: devMode() && typeof stack === 'string' ? stack.split('\n') : stack,
    cause: cause instanceof Error ? formatError(cause) : cause,
  };
  for (const key in error) if (!['name', 'message', 'stack', 'cause'].includes(key)) formatted[key] = own[key];
  return formatted;
}

/** JSON.stringify's replacer as Powertools has it: errors formatted, bigints as text, a value that contains itself dropped. */
function replacer() {
  const ancestors: unknown[] = [];
  return function (this: unknown, _key: string, value: unknown) {
    const replaced = value instanceof Error ? formatError(value) : value;
    if (typeof replaced === 'bigint') return replaced.toString();
    if (typeof replaced === 'object' && replaced !== null) {
      while (ancestors.length > 0 && ancestors.at(-1) !== this) ancestors.pop();
      if (ancestors.includes(replaced)) return undefined;
      ancestors.push(replaced);
    }
    return replaced;
  };
}

// Powertools merges a line's fields into it with its deepMerge: plain objects and arrays are copied (without
// `__proto__` and `constructor` keys, and without a value that contains itself), anything else is kept as it is.
const isPlain = (v: unknown): v is Record<string, unknown> => {
  const proto = typeof v === 'object' && v !== null ? (Object.getPrototypeOf(v) as unknown) : undefined;
  return proto === Object.prototype || proto === null;
};
const copied = (v: unknown) => Array.isArray(v) || isPlain(v);

function copy(v: unknown, ancestors: unknown[]): unknown {
  ancestors.push(v);
  let out: unknown[] | Record<string, unknown>;
  if (Array.isArray(v)) {
    out = [];
    // By index, as Powertools copies: a hole is copied as undefined (null in JSON), a value that contains itself left out.
    for (let i = 0; i < v.length; i++) {
      const item: unknown = v[i];
      if (!copied(item)) out[i] = item;
      else if (!ancestors.includes(item)) out[i] = copy(item, ancestors);
    }
  } else {
    out = {};
    mergeInto(out, v as Record<string, unknown>, ancestors);
  }
  ancestors.pop();
  return out;
}

function mergeInto(target: Record<string, unknown>, source: Record<string, unknown>, ancestors: unknown[]) {
  for (const key of Object.keys(source)) {
    if (key === '__proto__' || key === 'constructor') continue;
    const v = source[key];
    if (copied(v)) {
      if (!ancestors.includes(v)) target[key] = copy(v, ancestors);
    } else if (v !== undefined || target[key] === undefined) {
      target[key] = v;
    }
  }
}

/** What a line takes from the invocation's context. */
interface InvocationContext {
  coldStart: boolean;
  awsRequestId: string | undefined;
}

export interface LoggerOptions {
  serviceName?: string;
  /** Any case; Lambda's AWS_LAMBDA_LOG_LEVEL overrides it, POWERTOOLS_LOG_LEVEL (or else LOG_LEVEL) stands in for it. */
  logLevel?: string;
}

/**
 * Structured JSON lines: level, message, timestamp, service, cold_start on the first invocation of an on-demand
 * instance, the Lambda request id on warnings and errors, the X-Ray trace id only on an invocation X-Ray sampled,
 * then the line's own keys (an empty, null or undefined one left out). In Lambda form a line goes to stdout (stderr
 * for WARN and above) through a console of its own, not the runtime's patched one, so that Lambda's JSON log format
 * passes it through as it is; in dev mode (POWERTOOLS_DEV) through the global console, indented by 4.
 */
export class JsonLogger {
  readonly #service: string;
  readonly #threshold: number;
  readonly #dev = devMode();
  /**
   * Powertools' way to print: in Lambda form a console of its own on stdout and stderr (not the runtime's patched
   * one; it also keeps a failed write, a closed pipe, from throwing), in dev mode the global console.
   */
  readonly #console = this.#dev ? console : new Console({ stdout: process.stdout, stderr: process.stderr });
  readonly #warned = { zone: false };
  #coldStart = env('AWS_LAMBDA_INITIALIZATION_TYPE') === 'on-demand';
  /** The invocation's context: one per instance, or per invocation where the runtime's store scopes it. */
  readonly #contextKey = Symbol('logger.lambdaContext');
  #context: InvocationContext | undefined;

  /** A line at each of Powertools' levels: the message, then the line's keys (objects; an error; a text). */
  readonly trace = this.#at('TRACE');
  readonly debug = this.#at('DEBUG');
  readonly info = this.#at('INFO');
  readonly warn = this.#at('WARN');
  readonly error = this.#at('ERROR');
  readonly critical = this.#at('CRITICAL');

  constructor(options: LoggerOptions = {}) {
    this.#service = options.serviceName || env('POWERTOOLS_SERVICE_NAME') || DEFAULT_SERVICE;
    const wanted = options.logLevel?.toUpperCase();
    const lambdaLevel = env('AWS_LAMBDA_LOG_LEVEL') === 'FATAL' ? 'CRITICAL' : env('AWS_LAMBDA_LOG_LEVEL');
    const fromEnv = env('POWERTOOLS_LOG_LEVEL') || env('LOG_LEVEL');
    const level = [lambdaLevel, wanted, fromEnv].find(valid) ?? 'INFO';
    this.#threshold = LEVELS[level];
    if (valid(lambdaLevel) && valid(wanted) && LEVELS[lambdaLevel] > LEVELS[wanted]) {
      this.warn(
        `Current log level (${wanted}) does not match AWS Lambda Advanced Logging Controls minimum log level (${lambdaLevel}). This can lead to data loss, consider adjusting them.`,
      );
    }
  }

  /** The invocation's request id (and whether it is the instance's first on-demand one) for the lines that follow. */
  addContext(context: Pick<Context, 'awsRequestId'>): void {
    const value: InvocationContext = { coldStart: this.#coldStart, awsRequestId: context.awsRequestId };
    this.#coldStart = false;
    const store = this.#scoped();
    if (store) store.set(this.#contextKey, [value]);
    else this.#context = value;
  }

  #at(level: Printed) {
    return (message: string, ...extra: unknown[]): void => this.#log(level, message, extra);
  }

  #scoped(): InvokeStore | undefined {
    if (env('AWS_LAMBDA_MAX_CONCURRENCY') === '') return undefined;
    const store = invokeStore();
    if (!store) throw new Error('InvokeStore is not available');
    return store.hasContext() ? store : undefined;
  }

  #lambdaContext() {
    const box = this.#scoped()?.get(this.#contextKey) as [InvocationContext] | undefined;
    return box ? box[0] : this.#context;
  }

  #log(level: Printed, message: string, extra: unknown[]) {
    // Written as Powertools compares, so that a level no line reaches (none valid) prints nothing.
    if (!(LEVELS[level] >= this.#threshold)) return;
    const now = new Date();
    const trace = traceId();
    const context = this.#lambdaContext();
    // The line's keys as Powertools gathers them: an error as `error`, a text as `extra`, an object's own keys.
    const keys: Record<string, unknown> = {};
    for (const item of extra) {
      if (item === null || item === undefined) continue;
      if (item instanceof Error) keys.error = item;
      else if (typeof item === 'string') keys.extra = item;
      else {
        for (const [key, value] of Object.entries(item)) {
          if (RESERVED.includes(key)) this.warn(`The key "${key}" is a reserved key and will be dropped.`);
          else keys[key] = value;
        }
      }
    }
    const line: Record<string, unknown> = {
      level,
      message,
      timestamp: timestamp(now, this.#warned),
      service: this.#service,
      ...(context?.coldStart ? { cold_start: true } : {}),
      ...(context && LEVELS[level] >= LEVELS.WARN ? { function_request_id: context.awsRequestId } : {}),
      ...(trace && sampled() ? { xray_trace_id: trace } : {}),
    };
    mergeInto(line, keys, []);
    for (const key in line) if (line[key] === undefined || line[key] === '' || line[key] === null) delete line[key];
    const text = JSON.stringify(line, replacer(), this.#dev ? 4 : 0);
    this.#console[METHOD[level]](text);
  }
}
