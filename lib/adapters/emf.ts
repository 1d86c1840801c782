// The broker's metrics as CloudWatch Embedded Metric Format (EMF) documents: one JSON line each, which CloudWatch
// Logs turns into metrics. It writes what Powertools' Metrics wrote (the same documents, key for key, and the same
// environment: POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_DISABLED, POWERTOOLS_DEV)
// for the part of it the broker uses, in 2.5 KB of bundle instead of 10.5.

export const MetricUnit = { Count: 'Count', Milliseconds: 'Milliseconds' } as const;
export type MetricUnit = (typeof MetricUnit)[keyof typeof MetricUnit];

/** The most metrics (and values of one metric) a document carries, and dimensions a metric has: EMF's limits. */
const MAX_METRICS = 100;
const MAX_DIMENSIONS = 29;
/** Powertools' defaults when neither the options nor the environment name them. */
const DEFAULT_NAMESPACE = 'default_namespace';
const DEFAULT_SERVICE = 'service_undefined';

type Dimensions = Record<string, string>;

/** The EMF document itself, as CloudWatch reads it. */
export interface EmfDocument {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: MetricUnit }[] }[];
  };
  [key: string]: unknown;
}

/** A boolean from the environment as Powertools reads one (1/y/yes/t/true/on, 0/n/no/f/false/off); undefined when unset. */
function envFlag(key: string): boolean | undefined {
  const value = process.env[key]?.trim().toLowerCase();
  if (value === undefined) return undefined;
  if (/^(1|y|yes|t|true|on|0|n|no|f|false|off)$/.test(value)) return /^(1|y|yes|t|true|on)$/.test(value);
  throw new Error(`Environment variable ${key} must be a boolean`);
}

/** Powertools' development mode (POWERTOOLS_DEV, read as Powertools reads it): console, for a person to read. */
export function devMode(): boolean {
  try {
    return envFlag('POWERTOOLS_DEV') ?? false;
  } catch {
    return false;
  }
}

const blank = (v: unknown) => typeof v !== 'string' || v.trim().length === 0;

export interface EmfOptions {
  namespace?: string;
  /** The `service` dimension every metric carries. */
  serviceName?: string;
}

/**
 * Metrics stored until publishStoredMetrics writes them as one document with the `service` dimension, or, from
 * singleMetric(), written at once with dimensions of their own. In Lambda form a document goes to stdout (Lambda
 * passes the JSON line through as it is); in dev mode (POWERTOOLS_DEV) to console, and off unless
 * POWERTOOLS_METRICS_DISABLED says otherwise.
 */
export class EmfMetrics {
  readonly #namespace: string;
  readonly #defaults: Dimensions;
  readonly #single: boolean;
  readonly #dev = devMode();
  readonly #disabled: boolean;
  #metrics = new Map<string, { unit: MetricUnit; value: number | number[] }>();
  #dimensionSets: Dimensions[] = [];

  constructor(options: EmfOptions = {}, single = false) {
    this.#disabled = envFlag('POWERTOOLS_METRICS_DISABLED') ?? this.#dev;
    this.#namespace = options.namespace || process.env.POWERTOOLS_METRICS_NAMESPACE?.trim() || DEFAULT_NAMESPACE;
    this.#defaults = { service: options.serviceName || process.env.POWERTOOLS_SERVICE_NAME?.trim() || DEFAULT_SERVICE };
    this.#single = single;
  }

  /** A metrics object whose every metric goes out at once, in a document of its own (with its own dimensions). */
  singleMetric(): EmfMetrics {
    return new EmfMetrics({ namespace: this.#namespace, serviceName: this.#defaults.service }, true);
  }

  /** Adds a set of dimensions to the document; an empty name or value is left out with a warning. */
  addDimensions(dimensions: Dimensions): this {
    const set: Dimensions = {};
    for (const [key, value] of Object.entries(dimensions)) {
      if (blank(key) || blank(value)) this.#warn(`The dimension ${key} is left out: its name and value must be non-empty strings`);
      else set[key] = value;
    }
    if (Object.keys({ ...this.#defaults, ...set }).length > MAX_DIMENSIONS) throw new RangeError(`More than ${MAX_DIMENSIONS} dimensions`);
    this.#dimensionSets.push(set);
    return this;
  }

  /** Stores a value (a metric added again keeps every value); a full document is published first. */
  addMetric(name: string, unit: MetricUnit, value: number): this {
    if (!/^.{1,255}$/.test(name) || typeof value !== 'number' || !Object.values(MetricUnit).includes(unit)) {
      throw new RangeError(`Not a metric: ${name} ${unit} ${value}`);
    }
    if (this.#metrics.size >= MAX_METRICS) this.publishStoredMetrics();
    const stored = this.#metrics.get(name);
    if (!stored) {
      this.#metrics.set(name, { unit, value });
    } else {
      if (stored.unit !== unit) throw new Error(`Metric ${name} was added in ${stored.unit}, not ${unit}`);
      stored.value = [...(Array.isArray(stored.value) ? stored.value : [stored.value]), value];
      if (stored.value.length === MAX_METRICS) this.publishStoredMetrics();
    }
    if (this.#single) this.publishStoredMetrics();
    return this;
  }

  hasStoredMetrics(): boolean {
    return this.#metrics.size > 0;
  }

  clearDimensions(): void {
    this.#dimensionSets = [];
  }

  /** Writes the stored metrics as one EMF document (none when there are none), then forgets them and their dimensions. */
  publishStoredMetrics(): this {
    const any = this.hasStoredMetrics();
    if (!any) this.#warn('No application metrics to publish');
    try {
      if (!this.#disabled && any) this.#write('log', JSON.stringify(this.serializeMetrics()));
    } finally {
      this.#metrics = new Map();
      this.clearDimensions();
    }
    return this;
  }

  /** The stored metrics as the EMF document publishStoredMetrics writes. */
  serializeMetrics(): EmfDocument {
    if (this.#namespace === DEFAULT_NAMESPACE) this.#warn('Namespace should be defined, default used');
    const defaults = Object.keys(this.#defaults);
    const dimensionNames = this.#dimensionSets.map((set) => [...new Set([...defaults, ...Object.keys(set)])]);
    if (dimensionNames.length === 0) dimensionNames.push(defaults);
    const dimensions = Object.assign({ ...this.#defaults }, ...this.#dimensionSets) as Dimensions;
    const values: Record<string, number | number[]> = {};
    for (const [name, { value }] of this.#metrics) {
      if (Object.hasOwn(dimensions, name)) throw new Error(`EMF key collision: ${name} is a dimension too`);
      values[name] = value;
    }
    return {
      _aws: {
        Timestamp: Date.now(),
        CloudWatchMetrics: [
          { Namespace: this.#namespace, Dimensions: dimensionNames, Metrics: [...this.#metrics].map(([Name, { unit }]) => ({ Name, Unit: unit })) },
        ],
      },
      ...dimensions,
      ...values,
    };
  }

  #warn(message: string) {
    this.#write('warn', message);
  }

  /** Dev mode: through console (the tests capture it). Lambda form: straight to stdout/stderr, not the runtime's patched console. */
  #write(level: 'log' | 'warn', line: string) {
    if (this.#dev) console[level](line);
    else (level === 'log' ? process.stdout : process.stderr).write(`${line}\n`);
  }
}
