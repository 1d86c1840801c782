import type { UnitRates } from '../cost';
import type { FleetResult } from './simulate';

// From the simulated day to the cost model's unit rates: what each token request costs on the request path, and
// what each connection costs per month on the mint path (pre-warming, rotation, exchanges, its secret).

export interface MeasuredSizes {
  /** Bytes the http function logs per request (measured) plus Lambda's platform lines and the access log line. */
  logBytesPerRequest: number;
  memoryMb: { http: number; prewarm: number; rotation: number };
}

const DAYS_PER_MONTH = 30;

export function unitRates(r: FleetResult, m: MeasuredSizes): UnitRates {
  const R = r.requests;
  const C = r.options.connections;
  const perConnectionMonth = (x: number) => (x / C) * DAYS_PER_MONTH * (86_400 / r.options.daySeconds);
  // Pre-warm reads are the schedule's: each connection's record once a run, to compare its secret's version (every
  // simulated connection caches tokens); warming a pre-warmed one uses that same read. The rest follow the requests.
  const prewarmRru = r.lambda.prewarmInvocations * C;
  const gb = (mb: number) => mb / 1024;
  return {
    perRequest: {
      httpGbSeconds: ((r.lambda.httpBilledMs + r.lambda.initBilledMs) / 1000 / R) * gb(m.memoryMb.http),
      rru: Math.max(0, r.dynamodb.rru - prewarmRru) / R,
      kmsCalls: r.kms.decrypt / R,
      secretsManagerCalls: 0,
      logBytes: m.logBytesPerRequest,
    },
    perConnectionMonth: {
      wru: perConnectionMonth(r.dynamodb.wru),
      rru: perConnectionMonth(prewarmRru),
      kmsCalls: perConnectionMonth(r.kms.generateDataKey),
      // The pre-warm run's batch reads grow with the connections (20 a call): counted per connection like the mints' reads.
      secretsManagerCalls: perConnectionMonth(r.secretsManager.getSecretValue + r.secretsManager.batchGetSecretValue),
      lambdaInvocations: perConnectionMonth(r.lambda.rotationInvocations),
      lambdaGbSeconds: perConnectionMonth(
        (r.lambda.prewarmBilledMs / 1000) * gb(m.memoryMb.prewarm) + (r.lambda.rotationBilledMs / 1000) * gb(m.memoryMb.rotation),
      ),
      // A pre-warm run logs a line with every outcome; a few hundred bytes per connection per run.
      logBytes: perConnectionMonth(r.lambda.prewarmInvocations * 300),
    },
    fixedPerMonth: { lambdaInvocations: r.lambda.prewarmInvocations * DAYS_PER_MONTH * (86_400 / r.options.daySeconds) },
    alone: { exchangesPerRequest: r.alternative.exchanges / R, secretsManagerCallsPerRequest: r.alternative.secretReads / R },
    brokerExchangesPerConnectionMonth: perConnectionMonth(r.exchanges.tokens),
    secretCheckPerSecretMonth: {
      calls: perConnectionMonth(r.secretsManager.batchGetSecretValue),
      rru: perConnectionMonth(prewarmRru),
      gbSeconds: perConnectionMonth((r.lambda.prewarmBilledMs / 1000) * gb(m.memoryMb.prewarm)),
    },
  };
}
