import { describe, expect, it } from 'vitest';
import { COST_GOALS, PRICES, SECONDS_PER_MONTH, SECRETS_LINE, SIZES, TRAIL_LINE, XRAY_DEFAULT_RULE, addsSplit, costGoals, exitCodeFor, monthlyCost, sampledTraces, secretCheckDollars, tiered, trailDollarsPerMonth, type UnitRates } from '../bench/cost';
import { TRACE_SAMPLING } from '../infra/observability';

const zeroRates = (): UnitRates => ({
  perRequest: { httpGbSeconds: 0, rru: 0, kmsCalls: 0, secretsManagerCalls: 0, logBytes: 0 },
  perConnectionMonth: { wru: 0, rru: 0, kmsCalls: 0, secretsManagerCalls: 0, lambdaInvocations: 0, lambdaGbSeconds: 0, logBytes: 0 },
  fixedPerMonth: { lambdaInvocations: 0 },
  alone: { exchangesPerRequest: 0, secretsManagerCallsPerRequest: 0 },
  brokerExchangesPerConnectionMonth: 0,
  secretCheckPerSecretMonth: { calls: 0, rru: 0, gbSeconds: 0 },
});

describe('the cost model', () => {
  it('prices API Gateway REST requests by tier: $3.50 per million up to 333 M, $2.80 for the next 667 M', () => {
    expect(tiered(1e6, PRICES.apiGatewayRestPerMillion, 1e6)).toBeCloseTo(3.5, 10);
    expect(tiered(333e6, PRICES.apiGatewayRestPerMillion, 1e6)).toBeCloseTo(333 * 3.5, 6);
    expect(tiered(1e9, PRICES.apiGatewayRestPerMillion, 1e6)).toBeCloseTo(333 * 3.5 + 667 * 2.8, 6);
    // 3 B: 333 M at 3.50, 667 M at 2.80, the remaining 2 B at 2.38.
    expect(tiered(3e9, PRICES.apiGatewayRestPerMillion, 1e6)).toBeCloseTo(333 * 3.5 + 667 * 2.8 + 2000 * 2.38, 6);
  });

  it('prices nothing for nothing and never goes negative', () => {
    expect(tiered(0, PRICES.apiGatewayRestPerMillion, 1e6)).toBe(0);
    expect(tiered(-5, PRICES.lambdaArmGbSecond)).toBe(0);
  });

  it("counts X-Ray traces as X-Ray's default rule samples: one per second, then 5% of the rest", () => {
    expect(sampledTraces(1e6, XRAY_DEFAULT_RULE)).toBe(1e6);
    expect(sampledTraces(SECONDS_PER_MONTH, XRAY_DEFAULT_RULE)).toBe(SECONDS_PER_MONTH);
    expect(sampledTraces(100e6, XRAY_DEFAULT_RULE)).toBeCloseTo(SECONDS_PER_MONTH + 0.05 * (100e6 - SECONDS_PER_MONTH), 3);
  });

  it("counts X-Ray traces as the stack's rule samples: no reservoir, then one in a thousand, whatever the traffic", () => {
    expect(TRACE_SAMPLING).toEqual({ reservoirSize: 0, fixedRate: 0.001 });
    expect(sampledTraces(1e6)).toBeCloseTo(1e3, 6);
    expect(sampledTraces(100e6)).toBeCloseTo(1e5, 6);
    expect(sampledTraces(0)).toBe(0);
  });

  it('adds up each line from the rates, and sets what the broker adds against $3.50 per million', () => {
    const rates = zeroRates();
    rates.perRequest.httpGbSeconds = 0.5 * 0.004; // 512 MB for 4 ms
    rates.perRequest.rru = 0.5;
    rates.perRequest.logBytes = 1000;
    rates.perConnectionMonth.wru = 3000;
    rates.perConnectionMonth.secretsManagerCalls = 1000;
    const c = monthlyCost({ name: 't', connections: 10, requestsPerMonth: 1e6 }, rates);
    expect(c.lines['API Gateway REST requests']).toBeCloseTo(3.5, 10);
    expect(c.lines['Lambda requests']).toBeCloseTo(0.2, 10);
    expect(c.lines['Lambda compute (arm64)']).toBeCloseTo(2000 * 0.000_013_333_4, 10);
    expect(c.lines['DynamoDB reads']).toBeCloseTo(0.5 * 0.125, 10);
    expect(c.lines['DynamoDB writes']).toBeCloseTo(0.03 * 0.625, 10);
    expect(c.lines['Secrets Manager calls']).toBeCloseTo(1 * 0.05, 10);
    expect(c.lines[SECRETS_LINE]).toBeCloseTo(4, 10);
    expect(c.lines['CloudWatch Logs ingestion']).toBeCloseTo(0.5, 10);
    expect(c.lines['X-Ray traces']).toBeCloseTo(0.001 * 5, 10);
    expect(c.lines['KMS key']).toBe(1);
    const sum = Object.values(c.lines).reduce((a, b) => a + b, 0);
    expect(c.total).toBeCloseTo(sum, 10);
    // The secrets are stored without the broker too: not what it adds.
    expect(c.brokerAdds).toBeCloseTo(sum - 3.5 - 4, 10);
    expect(c.perMillion.brokerAdds).toBeCloseTo(sum - 3.5 - 4, 10);
    expect(c.addsVsRestPrice).toBeCloseTo((sum - 3.5 - 4) / 3.5, 10);
  });

  it("splits what the broker adds into the fixed lines (Lambda requests, the KMS key, the trail's bucket), the record of requests (logs, traces) and its own work", () => {
    const rates = zeroRates();
    rates.perRequest.httpGbSeconds = 0.5 * 0.004;
    rates.perRequest.rru = 0.5;
    rates.perRequest.logBytes = 1000;
    const c = monthlyCost({ name: 't', connections: 10, requestsPerMonth: 1e6 }, rates);
    const split = addsSplit(c);
    expect(split.platform).toBeCloseTo(0.2 + 1 + trailDollarsPerMonth(), 10);
    expect(split.records).toBeCloseTo(0.5 + 0.005, 10);
    expect(split.work).toBeCloseTo(2000 * 0.000_013_333_4 + 0.5 * 0.125, 10);
    expect(split.platform + split.records + split.work).toBeCloseTo(c.perMillion.brokerAdds, 10);
    expect(split.withoutRecords).toBeCloseTo(c.perMillion.brokerAdds - 0.505, 10);
  });

  it("prices the alternative as its Secrets Manager calls and secrets, and counts its exchanges", () => {
    const rates = zeroRates();
    rates.alone.exchangesPerRequest = 0.01;
    rates.alone.secretsManagerCallsPerRequest = 0.002;
    rates.brokerExchangesPerConnectionMonth = 100;
    const c = monthlyCost({ name: 't', connections: 200, requestsPerMonth: 100e6 }, rates);
    expect(c.alone.exchanges).toBeCloseTo(1e6, 6);
    expect(c.alone.secretsManagerCalls).toBeCloseTo(2e5, 6);
    expect(c.alone.dollars).toBeCloseTo(20 * 0.05 + 200 * 0.4, 10);
    expect(c.brokerExchanges).toBe(20_000);
  });
});

/** Rates whose broker work is `workPerMillion` dollars of compute per million requests, and records `logBytes`. */
function ratesFor(workPerMillion: number, logBytes = 0): UnitRates {
  const rates = zeroRates();
  rates.perRequest.httpGbSeconds = workPerMillion / 1e6 / PRICES.lambdaArmGbSecond[0]!.price;
  rates.perRequest.logBytes = logBytes;
  return rates;
}
const rowsAbout = (rows: ReturnType<typeof costGoals>, what: string) => rows.filter((r) => r.what.includes(what));

describe('the cost goals (issue 20)', () => {
  it("judges the broker's own work against 5% of REST's price at that size, at 100 M and 3 B requests; at 1 M it is reported", () => {
    const judge = (workPerMillion: number) => {
      const rates = ratesFor(workPerMillion);
      return rowsAbout(costGoals(SIZES.map((size) => monthlyCost(size, rates)), rates), "the broker's own work").map((r) => r.ok);
    };
    // REST is $3.50 per million at 100 M, about $2.60 at 3 B: 5% is $0.175 and $0.13.
    expect(judge(0.12)).toEqual([undefined, true, true]);
    expect(judge(0.15)).toEqual([undefined, true, false]);
    expect(judge(0.18)).toEqual([undefined, false, false]);
    expect(exitCodeFor(costGoals(SIZES.map((size) => monthlyCost(size, ratesFor(0.15))), ratesFor(0.15)))).toBe(1);
  });

  it('judges the record of each request (log lines and traces) against $0.20 per million at every size', () => {
    const traces = (sampledTraces(1e6) / 1e6) * PRICES.xrayPerMillionTraces;
    const bytesFor = (dollars: number) => ((dollars - traces) / PRICES.logsIngestionPerGb) * 1e3;
    const judge = (bytes: number) => {
      const rates = ratesFor(0.1, bytes);
      return rowsAbout(costGoals(SIZES.map((size) => monthlyCost(size, rates)), rates), 'the record of each request').map((r) => r.ok);
    };
    expect(judge(bytesFor(0.19))).toEqual([true, true, true]);
    expect(judge(bytesFor(0.21))).toEqual([false, false, false]);
  });

  it('reports the fixed lines and the total with no goal, and a reported row never fails the run', () => {
    const rates = ratesFor(0.1);
    const rows = costGoals(SIZES.map((size) => monthlyCost(size, rates)), rates);
    const fixed = rowsAbout(rows, 'the fixed lines');
    expect(fixed).toHaveLength(SIZES.length);
    expect(fixed.every((r) => r.ok === undefined)).toBe(true);
    expect(exitCodeFor(rows)).toBe(0);
    expect(exitCodeFor([...rows, { ...fixed[0]!, ok: false }])).toBe(1);
  });

  it('prices the secret-change check per secret and month: its calls, its table reads and its compute, against $0.02', () => {
    const rates = ratesFor(0.1);
    // One BatchGetSecretValue per 20 secrets a minute, one read per secret a minute, 1 s of 256 MB a minute for 200.
    rates.secretCheckPerSecretMonth = { calls: 43_200 / 20, rru: 43_200, gbSeconds: (43_200 * 0.25) / 200 };
    const dollars = (43_200 / 20 / 1e4) * 0.05 + (43_200 / 1e6) * 0.125 + ((43_200 * 0.25) / 200) * PRICES.lambdaArmGbSecond[0]!.price;
    expect(secretCheckDollars(rates)).toBeCloseTo(dollars, 10);
    const row = (r: UnitRates) => rowsAbout(costGoals([monthlyCost(SIZES[0]!, r)], r), 'the secret-change check')[0]!;
    expect(row(rates).ok).toBe(dollars <= COST_GOALS.secretCheckPerSecretMonth);
    rates.secretCheckPerSecretMonth.calls = 43_200; // one call a minute per secret: $0.216
    expect(row(rates).ok).toBe(false);
  });

  it("prices the stack's trail as its bucket: the deliveries and 90 days of files, the events free as the first copy", () => {
    const c = monthlyCost(SIZES[0]!, zeroRates());
    expect(c.lines[TRAIL_LINE]).toBeCloseTo(trailDollarsPerMonth(), 10);
    expect(trailDollarsPerMonth()).toBeCloseTo((8_640 / 1000) * 0.005 + ((100_000 * 250 * 3) / 1e9) * 0.023, 10);
    // Lambda's request charge at 1 M requests, the KMS key, the trail's bucket.
    expect(addsSplit(c).platform).toBeCloseTo(0.2 + 1 + trailDollarsPerMonth(), 10);
  });
});
