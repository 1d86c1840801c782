import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TRACE_SAMPLING } from '../infra/observability';

// The cost model: the simulated day's call counts turned into dollars with AWS's published us-east-1 prices, per
// million token requests and per month at three sizes, beside what each team would pay running the exchange
// itself behind the Secrets Manager Agent. Pure arithmetic here; bench/run.ts feeds it the simulation's counts.

export const PRICES_READ_ON = '2026-12-02';

export interface Tier {
  /** Units up to which this price applies (cumulative over the month). */
  upTo: number;
  price: number;
}

/** us-east-1 on-demand list prices, each with the page it is published on. */
export const PRICES = {
  apiGatewayRestPerMillion: [
    { upTo: 333e6, price: 3.5 },
    { upTo: 1e9, price: 2.8 },
    { upTo: 20e9, price: 2.38 },
    { upTo: Infinity, price: 1.51 },
  ] as Tier[],
  apiGatewayHttpPerMillion: [
    { upTo: 300e6, price: 1.0 },
    { upTo: Infinity, price: 0.9 },
  ] as Tier[],
  lambdaRequestsPerMillion: 0.2,
  /** arm64, per GB-second. */
  lambdaArmGbSecond: [
    { upTo: 7.5e9, price: 0.000_013_333_4 },
    { upTo: 18.75e9, price: 0.000_012_000_1 },
    { upTo: Infinity, price: 0.000_010_666_7 },
  ] as Tier[],
  dynamodbPerMillionWru: 0.625,
  dynamodbPerMillionRru: 0.125,
  kmsPer10kRequests: 0.03,
  kmsKeyPerMonth: 1,
  secretsManagerPer10kCalls: 0.05,
  secretsManagerPerSecretMonth: 0.4,
  logsIngestionPerGb: 0.5,
  xrayPerMillionTraces: 5,
  /** The first copy of management events in each region is free; the stack adds no data events. */
  cloudTrailFirstTrailManagementEvents: 0,
  /** A second copy of management events (the account already has a trail in the region), per 100,000 events. */
  cloudTrailExtraCopyPer100kEvents: 2,
  s3StandardPerGbMonth: 0.023,
  s3PutPer1000: 0.005,
} as const;

/**
 * The trail the stack creates by default (cloudTrail=create: write management events, this region, files kept 90
 * days in its own bucket). CloudTrail writes a file about every 5 minutes while there are events; what the files
 * hold is the account's write events in the region, not the broker's (its own calls are reads and data events).
 */
export const TRAIL = {
  deliveriesPerMonth: 12 * 24 * 30,
  /** Assumed: the account's write management events in the region a month (a quiet account; a busy one has more). */
  accountWriteEventsPerMonth: 100_000,
  /** Assumed: an event's share of a gzip-compressed CloudTrail file. */
  compressedBytesPerEvent: 250,
  retentionMonths: 3,
} as const;

/** The trail's bucket a month: its deliveries (PUTs) and the files kept 90 days, when it is the first copy. */
export function trailDollarsPerMonth(p = PRICES, t = TRAIL): number {
  const storedGb = (t.accountWriteEventsPerMonth * t.compressedBytesPerEvent * t.retentionMonths) / 1e9;
  return (t.deliveriesPerMonth / 1000) * p.s3PutPer1000 + storedGb * p.s3StandardPerGbMonth;
}

export const PRICE_SOURCES: [string, string][] = [
  ['API Gateway REST', '$3.50 per million (first 333 M/month), $2.80 (next 667 M), $2.38 (next 19 B), $1.51 beyond — aws.amazon.com/api-gateway/pricing'],
  ['API Gateway HTTP API', '$1.00 per million (first 300 M/month), $0.90 beyond, metered in 512 KB increments — same page'],
  ['Lambda', '$0.20 per million requests; arm64 $0.0000133334 per GB-s (first 7.5 B GB-s/month), $0.0000120001 (next 11.25 B), $0.0000106667 beyond; the INIT phase is billed like invocation time since 1 Aug 2025 — aws.amazon.com/lambda/pricing'],
  ['DynamoDB on-demand', '$0.625 per million write request units, $0.125 per million read request units (a strongly consistent read of ≤ 4 KB is 1 RRU, an eventually consistent one 0.5 RRU, a write of ≤ 1 KB is 1 WRU) — aws.amazon.com/dynamodb/pricing/on-demand'],
  ['KMS', '$1 per customer managed key per month, $0.03 per 10,000 requests — aws.amazon.com/kms/pricing'],
  ['Secrets Manager', '$0.40 per secret per month, $0.05 per 10,000 API calls — aws.amazon.com/secrets-manager/pricing'],
  ['CloudWatch Logs', '$0.50 per GB ingested (Standard class) — aws.amazon.com/cloudwatch/pricing'],
  ['X-Ray', `$5.00 per million traces recorded — aws.amazon.com/xray/pricing; the stack's sampling rule records ${TRACE_SAMPLING.reservoirSize} request(s) a second and ${TRACE_SAMPLING.fixedRate * 100}% of the rest (X-Ray's default rule, which it replaces for the API stage: 1 a second and 5%)`],
  ['CloudTrail', `the first copy of management events is free, a second copy $2.00 per 100,000 events; the stack's trail (cloudTrail=create, the default) records write management events in its region into its own bucket, and no data events — aws.amazon.com/cloudtrail/pricing`],
  ['S3 (the trail\'s bucket)', `$0.023 per GB-month (Standard), $0.005 per 1,000 PUT requests; priced for ${TRAIL.deliveriesPerMonth.toLocaleString('en-US')} deliveries a month and, assumed, ${TRAIL.accountWriteEventsPerMonth.toLocaleString('en-US')} write events of the account a month at ${TRAIL.compressedBytesPerEvent} bytes each compressed, kept 90 days — aws.amazon.com/s3/pricing`],
];

/** Dollars for `units` at a tiered price (each tier's price per unit of `per`). */
export function tiered(units: number, tiers: readonly Tier[], per = 1): number {
  let left = units;
  let from = 0;
  let dollars = 0;
  for (const t of tiers) {
    if (left <= 0) break;
    const inTier = Math.min(left, t.upTo - from);
    dollars += (inTier / per) * t.price;
    left -= inTier;
    from = t.upTo;
  }
  return dollars;
}

export const SECONDS_PER_MONTH = 30 * 86_400;

export interface SamplingRule {
  /** Requests recorded each second before the rate applies. */
  reservoirSize: number;
  /** Share of the other requests recorded. */
  fixedRate: number;
}

/** X-Ray's default rule, for comparison: what an API stage with tracing on records without a rule of its own. */
export const XRAY_DEFAULT_RULE: SamplingRule = { reservoirSize: 1, fixedRate: 0.05 };

/** Requests a sampling rule records in a month: its reservoir each second (requests spread evenly), then its rate. */
export function sampledTraces(requestsPerMonth: number, rule: SamplingRule = TRACE_SAMPLING): number {
  const reservoir = Math.min(requestsPerMonth, rule.reservoirSize * SECONDS_PER_MONTH);
  return reservoir + rule.fixedRate * (requestsPerMonth - reservoir);
}

/**
 * What the broker consumes, split by what drives it: per token request (the request path) and per connection per
 * month (minting, pre-warming, rotation, the secret itself). Measured on the simulated day.
 */
export interface UnitRates {
  perRequest: {
    httpGbSeconds: number;
    rru: number;
    kmsCalls: number;
    secretsManagerCalls: number;
    logBytes: number;
  };
  perConnectionMonth: {
    wru: number;
    rru: number;
    kmsCalls: number;
    secretsManagerCalls: number;
    lambdaInvocations: number;
    lambdaGbSeconds: number;
    logBytes: number;
  };
  /** What runs whatever the size: the pre-warm schedule's invocations. */
  fixedPerMonth: { lambdaInvocations: number };
  /** The alternative: each service instance exchanging for itself behind the Secrets Manager Agent. */
  alone: { exchangesPerRequest: number; secretsManagerCallsPerRequest: number };
  /** The broker's own exchanges, per connection per month. */
  brokerExchangesPerConnectionMonth: number;
  /**
   * The pre-warm run's check of every secret for a change no event announced, per secret per month: its
   * BatchGetSecretValue calls, its read of each connection's record, and the run's compute (shared with warming).
   */
  secretCheckPerSecretMonth: { calls: number; rru: number; gbSeconds: number };
}

export interface Size {
  name: string;
  connections: number;
  requestsPerMonth: number;
}

export const SIZES: Size[] = [
  { name: 'small', connections: 10, requestsPerMonth: 1e6 },
  { name: 'medium', connections: 200, requestsPerMonth: 100e6 },
  { name: 'large', connections: 1_000, requestsPerMonth: 3e9 },
];

export interface MonthlyCost {
  size: Size;
  lines: Record<string, number>;
  total: number;
  apiGateway: number;
  /** Everything but API Gateway's own request charge and the secrets (which every team pays without the broker too). */
  brokerAdds: number;
  perMillion: { total: number; apiGateway: number; brokerAdds: number };
  /** brokerAdds as a share of API Gateway REST's first-tier $3.50 per million. */
  addsVsRestPrice: number;
  alone: { exchanges: number; secretsManagerCalls: number; dollars: number };
  brokerExchanges: number;
}

/** The trail the stack creates for secret change events: the first copy is free, its bucket is not. */
export const TRAIL_LINE = "CloudTrail trail (its S3 bucket; events free as the region's first copy)";

/** The vendor credentials' secrets: stored in Secrets Manager with or without the broker. */
export const SECRETS_LINE = 'Secrets Manager secrets (paid without the broker too)';

export function monthlyCost(size: Size, rates: UnitRates, p = PRICES): MonthlyCost {
  const R = size.requestsPerMonth;
  const C = size.connections;
  const q = rates.perRequest;
  const c = rates.perConnectionMonth;
  const gbSeconds = q.httpGbSeconds * R + c.lambdaGbSeconds * C;
  const kmsCalls = q.kmsCalls * R + c.kmsCalls * C;
  const smCalls = q.secretsManagerCalls * R + c.secretsManagerCalls * C;
  const lines: Record<string, number> = {
    'API Gateway REST requests': tiered(R, p.apiGatewayRestPerMillion, 1e6),
    'Lambda requests': ((R + c.lambdaInvocations * C + rates.fixedPerMonth.lambdaInvocations) / 1e6) * p.lambdaRequestsPerMillion,
    'Lambda compute (arm64)': tiered(gbSeconds, p.lambdaArmGbSecond),
    'DynamoDB reads': ((q.rru * R + c.rru * C) / 1e6) * p.dynamodbPerMillionRru,
    'DynamoDB writes': ((c.wru * C) / 1e6) * p.dynamodbPerMillionWru,
    'KMS requests': (kmsCalls / 1e4) * p.kmsPer10kRequests,
    'KMS key': p.kmsKeyPerMonth,
    'Secrets Manager calls': (smCalls / 1e4) * p.secretsManagerPer10kCalls,
    [SECRETS_LINE]: C * p.secretsManagerPerSecretMonth,
    'CloudWatch Logs ingestion': ((q.logBytes * R + c.logBytes * C) / 1e9) * p.logsIngestionPerGb,
    'X-Ray traces': (sampledTraces(R) / 1e6) * p.xrayPerMillionTraces,
    [TRAIL_LINE]: p.cloudTrailFirstTrailManagementEvents + trailDollarsPerMonth(p),
  };
  const total = Object.values(lines).reduce((a, b) => a + b, 0);
  const apiGateway = lines['API Gateway REST requests']!;
  const brokerAdds = total - apiGateway - lines[SECRETS_LINE]!;
  const perM = (x: number) => (x / R) * 1e6;
  const aloneExchanges = rates.alone.exchangesPerRequest * R;
  const aloneCalls = rates.alone.secretsManagerCallsPerRequest * R;
  return {
    size,
    lines,
    total,
    apiGateway,
    brokerAdds,
    perMillion: { total: perM(total), apiGateway: perM(apiGateway), brokerAdds: perM(brokerAdds) },
    addsVsRestPrice: perM(brokerAdds) / p.apiGatewayRestPerMillion[0]!.price,
    alone: {
      exchanges: aloneExchanges,
      secretsManagerCalls: aloneCalls,
      dollars: (aloneCalls / 1e4) * p.secretsManagerPer10kCalls + C * p.secretsManagerPerSecretMonth,
    },
    brokerExchanges: rates.brokerExchangesPerConnectionMonth * C,
  };
}

/** The memory (MB) the CDK app gives each function, read from its source so the two cannot drift apart. */
export function functionMemoryMb(root: string): Record<'http' | 'prewarm' | 'rotation', number> {
  const text = readFileSync(join(root, 'infra', 'stacks.ts'), 'utf8');
  const read = (entry: string) => {
    const at = text.indexOf(`functions/${entry}.ts`);
    const m = at < 0 ? null : /memorySize:\s*(\d+)/.exec(text.slice(at, at + 400));
    if (!m?.[1]) throw new Error(`cannot find the memorySize of functions/${entry}.ts in infra/stacks.ts`);
    return Number(m[1]);
  };
  return { http: read('http'), prewarm: read('prewarm'), rotation: read('rotation') };
}

/** The lines that keep a record of requests: the audit and access logs, and the traces. */
export const RECORD_LINES = ['CloudWatch Logs ingestion', 'X-Ray traces'] as const;
/**
 * The fixed lines: what no design of a Lambda function behind REST can avoid (Lambda's charge per request, the KMS
 * key), and the trail's bucket, which costs the same whatever the traffic.
 */
export const PLATFORM_LINES = ['Lambda requests', 'KMS key', TRAIL_LINE] as const;

/**
 * What the broker adds, per million requests, split three ways: the lines fixed by the platform, the record of each
 * request, and the broker's own work (compute, the table, KMS and Secrets Manager requests). It shows which
 * lines a cheaper broker could shrink, and how far that could go.
 */
export function addsSplit(c: MonthlyCost): { platform: number; records: number; work: number; withoutRecords: number } {
  const perM = (x: number) => (x / c.size.requestsPerMonth) * 1e6;
  const sum = (names: readonly string[]) => names.reduce((a, k) => a + (c.lines[k] ?? 0), 0);
  const platform = perM(sum(PLATFORM_LINES));
  const records = perM(sum(RECORD_LINES));
  return { platform, records, work: c.perMillion.brokerAdds - platform - records, withoutRecords: c.perMillion.brokerAdds - records };
}

/** The secret-change check's dollars per secret per month. */
export function secretCheckDollars(rates: UnitRates, p = PRICES): number {
  const c = rates.secretCheckPerSecretMonth;
  return (c.calls / 1e4) * p.secretsManagerPer10kCalls + (c.rru / 1e6) * p.dynamodbPerMillionRru + c.gbSeconds * p.lambdaArmGbSecond[0]!.price;
}

/** The cost goals (issue 20): each judged from the same run's figures; a goal missed fails `npm run bench`. */
export const COST_GOALS = {
  /** The broker's own work, per million requests, against API Gateway REST's price per million at that size. */
  workShareOfRest: 0.05,
  workAtSizes: ['medium', 'large'] as readonly string[],
  /** The record of each request (audit and access log lines, traces), dollars per million, at every size. */
  recordPerMillion: 0.2,
  /** The secret-change check, dollars per secret per month. */
  secretCheckPerSecretMonth: 0.02,
};

/** A row of BENCHMARKS.md's table: ok undefined is reported, no goal. */
export interface GoalRow {
  what: string;
  value: string;
  yardstick: string;
  ratio: string;
  goal: string;
  ok: boolean | undefined;
}

const sizeName = (s: Size) => `${s.connections} connections / ${count(s.requestsPerMonth)} requests a month`;
const count = (x: number) => (x >= 1e9 ? `${x / 1e9} B` : x >= 1e6 ? `${x / 1e6} M` : `${x}`);
const pctOf = (a: number, b: number) => `${((a / b) * 100).toFixed(1)}%`;

/** The cost rows: the broker's own work and the record of each request judged, the fixed lines and total reported. */
export function costGoals(results: readonly MonthlyCost[], rates: UnitRates, g = COST_GOALS): GoalRow[] {
  const rows: GoalRow[] = [];
  for (const c of results) {
    const split = addsSplit(c);
    const rest = c.perMillion.apiGateway;
    const judged = g.workAtSizes.includes(c.size.name);
    rows.push({
      what: `cost: the broker's own work (Lambda compute, DynamoDB, KMS and Secrets Manager requests), ${sizeName(c.size)}`,
      value: `${usd(split.work)} per million`,
      yardstick: `API Gateway REST at that size: ${usd(rest)} per million`,
      ratio: pctOf(split.work, rest),
      goal: judged ? `≤ ${g.workShareOfRest * 100}% of REST's price` : 'reported',
      ok: judged ? split.work <= g.workShareOfRest * rest : undefined,
    });
  }
  for (const c of results) {
    const records = addsSplit(c).records;
    rows.push({
      what: `cost: the record of each request (audit line, access log line, traces), ${sizeName(c.size)}`,
      value: `${usd(records)} per million`,
      yardstick: `limit ${usd(g.recordPerMillion)} per million`,
      ratio: `${(records / g.recordPerMillion).toFixed(2)}×`,
      goal: `≤ ${usd(g.recordPerMillion)} per million`,
      ok: records <= g.recordPerMillion,
    });
  }
  for (const c of results) {
    rows.push({
      what: `cost: the fixed lines (Lambda's request charge, the KMS key, the trail's bucket) and the total, ${sizeName(c.size)}`,
      value: `fixed ${usd(addsSplit(c).platform)} per million; total ${usd(c.perMillion.total)} per million (${usd(c.total)} a month)`,
      yardstick: `API Gateway REST ${usd(c.perMillion.apiGateway)} per million`,
      ratio: '—',
      goal: 'reported',
      ok: undefined,
    });
  }
  const check = secretCheckDollars(rates);
  rows.push({
    what: `cost: the secret-change check (every secret read each minute: ${Math.round(rates.secretCheckPerSecretMonth.calls).toLocaleString('en-US')} BatchGetSecretValue calls' share, ${Math.round(rates.secretCheckPerSecretMonth.rru).toLocaleString('en-US')} table reads and the pre-warm run's compute), per secret and month`,
    value: `${usd(check)} per secret a month`,
    yardstick: `limit ${usd(g.secretCheckPerSecretMonth)}`,
    ratio: `${(check / g.secretCheckPerSecretMonth).toFixed(2)}×`,
    goal: `≤ ${usd(g.secretCheckPerSecretMonth)} per secret a month`,
    ok: check <= g.secretCheckPerSecretMonth,
  });
  return rows;
}

/** What `npm run bench` exits with: 1 when any goal is missed, a reported row never counting. */
export const exitCodeFor = (rows: readonly { ok: boolean | undefined }[]) => (rows.some((r) => r.ok === false) ? 1 : 0);

export const usd = (x: number) => (x >= 100 ? `$${x.toFixed(0)}` : x >= 1 ? `$${x.toFixed(2)}` : `$${x.toFixed(3)}`);
