import type { Context } from 'aws-lambda';
import { makePrewarmHandler } from '../../functions/prewarm';
import { makeRotationHandler } from '../../functions/rotation';
import { Broker, BROKER_DEFAULTS } from '../../lib/broker';
import { parseConfig, type BrokerConfig } from '../../lib/config';
import { createBroker } from '../../lib/compose';
import { isBrokerError } from '../../lib/errors';
import type { Clock, Metrics as MetricsPort, TokenSource, TokenStore } from '../../lib/ports';
import { CachedSecretSource } from '../../lib/secrets';
import { Covers, ServiceAlone, idealContinuousTokens, idealOnDemandTokens, usableSeconds } from './ideal';
import { EmfMetrics } from '../../lib/adapters/emf';
import { JsonLogger } from '../../lib/adapters/log';
import { MemoryTokenStore } from '../../lib/adapters/memory-store';
import { MemoryRetiredMarks } from '../../lib/adapters/memory-marks';
import { EVENTUAL_READ_LAG_MS, HANDLER_OVERHEAD_MS, IDLE_REAP_MS, LATENCY, MAX_ENVIRONMENT_LIFE_MS } from './latency';
import { logNormal, quantile, seeded } from './random';
import { SimClock, SimKeyRing, SimSecretsManager, Tally, activeRequest, requestContext, simulatedTable, type RequestTrace, type SimEnv } from './services';
import { SimVendors, vendorHost } from './vendor';
import { FLEET_DAY, makeWorkload, type Workload, type WorkloadOptions } from './workload';

// The fleet simulation: the real Broker, one per simulated Lambda execution environment, over one TokenStore
// behind DynamoDB's latency, with KMS, Secrets Manager and the vendors in process, through a simulated day. The
// simulation owns the clock: it jumps from one event (an arrival, a schedule, a sleeper's wake-up) to the next
// once every task has gone as far as it can, so a day takes seconds and nothing depends on the machine's speed.

const CALLER = 'arn:aws:iam::111111111111:role/fleet-caller';
const DAY_START = Date.parse('2026-11-23T00:00:00.000Z');

/** A min-heap of numbers (wake-up times). */
class TimeHeap {
  private readonly a: number[] = [];
  get size() {
    return this.a.length;
  }
  peek(): number | undefined {
    return this.a[0];
  }
  push(x: number): void {
    const a = this.a;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= x) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = x;
  }
  pop(): number | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l]! < (m === i ? last : a[m]!)) m = l;
        if (r < a.length && a[r]! < (m === i ? last : a[m]!)) m = r;
        if (m === i) break;
        a[i] = a[m]!;
        i = m;
      }
      a[i] = last;
    }
    return top;
  }
}

interface Instance {
  id: string;
  broker: Broker;
  born: number;
  lastUsed: number;
  idleLimit: number;
  dieAt: number;
  /** The invocation's own time after the broker answers (routing, the audit line): the environment is not free. */
  busyUntil: number;
}

export interface WaitFigures {
  requests: number;
  waits: number;
  /** Waits by when they happened: in the brownout, in the outage (its vendor), after a rotation, or otherwise. */
  byWhen: Record<string, number>;
  p99Ms: number;
  maxMs: number;
  /** The requests answered with an error instead (no wait, no token), by code and when: `brownout, service_unavailable`. */
  errors: Record<string, number>;
}

export interface WindowFigures {
  requests: number;
  answered: number;
  /** Answered without a vendor exchange, from a token already held (memory or table). */
  fromHeldToken: number;
  /** Requests a held token could have served (one was still valid for the request's min_ttl). */
  servable: number;
  maxLatencyMs: number;
  over3s: number;
  /** The answers that took over 3 s: by where the token came from, or the error code. */
  slowOutcomes: Record<string, number>;
}

export interface FleetResult {
  options: WorkloadOptions;
  wallMs: number;
  requests: number;
  answered: number;
  errors: Record<string, number>;
  sources: Record<string, number>;
  latencyP99Ms: number;
  latencyMaxMs: number;
  instances: { started: number; peakAlive: number; peakBusy: number; instanceHours: number; coldStarts: number };
  lambda: { httpBilledMs: number; initBilledMs: number; prewarmBilledMs: number; rotationBilledMs: number; prewarmInvocations: number; rotationInvocations: number };
  exchanges: { tokens: number; attempts: number; ideal: number; idealStrict: number; rotations: number; outageAttempts: number };
  dynamodb: { reads: number; writes: number; rru: number; wru: number; idealReads: number; idealWrites: number; failedCalls: number; calls: Record<string, number> };
  kms: { generateDataKey: number; decrypt: number };
  secretsManager: { getSecretValue: number; batchGetSecretValue: number };
  waits: { prewarmed: WaitFigures; cold: WaitFigures };
  outage: WindowFigures;
  brownout: WindowFigures;
  alternative: { exchanges: number; secretReads: number };
  tally: Record<string, number>;
}

/** The table in memory, its eventually consistent reads as far behind as DynamoDB's may be. */
export const laggingStore = (clock: Clock): TokenStore => new MemoryTokenStore({ clock, ms: EVENTUAL_READ_LAG_MS });

export interface FleetOptions {
  workload?: WorkloadOptions;
  /** The TokenStore every instance shares (before latency is injected), given the simulation's clock. */
  store?: (clock: Clock) => TokenStore;
  /** A line of progress (stderr in npm run bench). */
  progress?: (line: string) => void;
}

/**
 * Lets every task run until it waits on the clock again: no real I/O happens in the simulation, but a store may
 * yield to the event loop, so turns are taken until one passes with nothing done.
 */
async function settle(activity: { n: number }): Promise<void> {
  for (let turns = 0; turns < 1_000; turns++) {
    const seen = activity.n;
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (activity.n === seen) return;
  }
  throw new Error('the simulation does not settle: a task keeps yielding without waiting on the clock');
}

function silentLogger() {
  return new JsonLogger({ serviceName: 'token-broker', logLevel: 'SILENT' });
}

function quietMetrics() {
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  return new EmfMetrics({ namespace: 'TokenBrokerFleet', serviceName: 'token-broker' });
}

function brokerConfig(workload: Workload): BrokerConfig {
  return parseConfig({
    connections: workload.connections.map((c) => ({
      id: c.id,
      dialect: 'oauth2',
      tokenUrl: `https://${vendorHost(c.vendor)}/oauth/token`,
      secretId: `broker/${c.id}`,
      callers: [CALLER],
      refreshBefore: c.refreshBeforeSeconds,
      prewarm: c.prewarm,
    })),
    admins: [],
  });
}

function lambdaContext(clock: SimClock, timeoutMs: number, name: string): Context {
  const deadline = clock.now() + timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: name,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:111111111111:function:${name}`,
    memoryLimitInMB: '256',
    awsRequestId: `${name}-${clock.now()}`,
    logGroupName: `/aws/lambda/${name}`,
    logStreamName: 'fleet',
    getRemainingTimeInMillis: () => deadline - clock.now(),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

export async function simulateFleet(opts: FleetOptions = {}): Promise<FleetResult> {
  const o = opts.workload ?? FLEET_DAY;
  const progress = opts.progress ?? (() => undefined);
  const wallStart = performance.now();
  const workload = makeWorkload(o);
  const dayMs = o.daySeconds * 1000;
  const end = DAY_START + dayMs;

  const wakes = new TimeHeap();
  const activity = { n: 0 };
  // The day is one of many: it starts with the pre-warm run of the minute before it done, as the day before left it.
  const clock = new SimClock(DAY_START - 60_000, (until) => {
    activity.n += 1;
    wakes.push(until);
  });
  const tally = new Tally();
  const brownoutFrom = DAY_START + o.brownout.startSecond * 1000;
  const brownoutUntil = brownoutFrom + o.brownout.durationSeconds * 1000;
  const outageFrom = DAY_START + o.outage.startSecond * 1000;
  const outageUntil = outageFrom + o.outage.durationSeconds * 1000;
  const env: SimEnv = { clock, activity, rng: seeded(o.seed + 1), tally, brownout: (t) => t >= brownoutFrom && t < brownoutUntil };

  const vendors = new SimVendors(env, [{ vendor: o.outage.vendor, fromMs: outageFrom, untilMs: outageUntil }]);
  const secrets = new SimSecretsManager(env, (clientId, secret) => vendors.issueSecret(clientId, secret));
  for (const c of workload.connections) {
    vendors.register(c.id, c.lifetimeSeconds);
    secrets.create(`broker/${c.id}`, c.id);
  }
  const keyRing = new SimKeyRing(env);
  const store = simulatedTable((opts.store ?? laggingStore)(clock), env);
  // The retired marks: a second DynamoDB table, billed and browning out as the token table does.
  const marks = simulatedTable(new MemoryRetiredMarks(), env);
  const config = brokerConfig(workload);
  const brokerRandom = seeded(o.seed + 2);
  let instanceCount = 0;
  // A caller "waits on a lease" when the broker backs off for another environment's mint (it counts LeaseWaits
  // then), not when a refused lease comes with an answer at once (a cooldown, a token that will do).
  const waitCounter: MetricsPort = {
    count: (name) => {
      const r = activeRequest();
      if (r && name === 'LeaseWaits') r.leaseWaits += 1;
    },
    timing: () => undefined,
  };
  const newBroker = (name: string, cached = new CachedSecretSource(secrets, clock)) =>
    createBroker({
      config,
      store,
      marks,
      secrets: cached,
      keyRing,
      clock,
      http: vendors.http,
      random: brokerRandom,
      instanceId: name,
      metrics: waitCounter,
    });

  // The pre-warm and rotation functions: one execution environment each, kept warm by their schedules.
  // As in Lambda, the pre-warm run shares its broker's secret cache and table: its secret check runs and is counted.
  const prewarmSecrets = new CachedSecretSource(secrets, clock);
  const prewarm = makePrewarmHandler({ broker: newBroker('prewarm', prewarmSecrets), logger: silentLogger(), metrics: quietMetrics(), secrets: prewarmSecrets, store });
  const rotation = makeRotationHandler({ broker: newBroker('rotation'), logger: silentLogger(), metrics: quietMetrics() });

  const rng = seeded(o.seed + 3);
  const initLatency = logNormal(LATENCY.lambdaInit!);
  const idle: Instance[] = [];
  const retiredHours = { total: 0 };
  let alive = 0;
  let peakAlive = 0;
  let busy = 0;
  let peakBusy = 0;
  const lambda = { httpBilledMs: 0, initBilledMs: 0, prewarmBilledMs: 0, rotationBilledMs: 0, prewarmInvocations: 0, rotationInvocations: 0 };

  const retire = (inst: Instance, at: number) => {
    retiredHours.total += (Math.min(at, end) - inst.born) / 3_600_000;
    alive -= 1;
  };
  const expired = (inst: Instance, now: number) => now - inst.lastUsed > inst.idleLimit || now >= inst.dieAt;
  const sweep = (now: number) => {
    for (let i = idle.length - 1; i >= 0; i--) {
      const inst = idle[i]!;
      if (expired(inst, now)) {
        idle.splice(i, 1);
        retire(inst, Math.min(inst.lastUsed + inst.idleLimit, inst.dieAt));
      }
    }
  };
  // Lambda hands a request to a free warm environment (the most recently used here), else starts one.
  const takeIdle = (now: number): Instance | undefined => {
    for (let i = idle.length - 1; i >= 0; i--) {
      const inst = idle[i]!;
      if (inst.busyUntil > now) continue;
      idle.splice(i, 1);
      if (!expired(inst, now)) return inst;
      retire(inst, Math.min(inst.lastUsed + inst.idleLimit, inst.dieAt));
    }
    return undefined;
  };

  // Figures gathered per request.
  const minTtlWithMargin = o.minTtlSeconds + BROKER_DEFAULTS.safetyMarginSeconds;
  const latencies: number[] = [];
  const waitLatencies = { prewarmed: [] as number[], cold: [] as number[] };
  const waitCounts = { prewarmed: 0, cold: 0 };
  const waitWhen = { prewarmed: {} as Record<string, number>, cold: {} as Record<string, number> };
  const errorWhen = { prewarmed: {} as Record<string, number>, cold: {} as Record<string, number> };
  const rotatedAt = new Map<number, number[]>();
  for (const r of workload.rotations) rotatedAt.set(r.connection, [...(rotatedAt.get(r.connection) ?? []), DAY_START + r.t]);
  const requestCounts = { prewarmed: 0, cold: 0 };
  const bump = (counts: Record<string, number>, key: string) => (counts[key] = (counts[key] ?? 0) + 1);
  /** What was going on when a request arrived, for the waits and errors it is counted in. */
  const whenOf = (arrived: number, vendor: number, connectionIndex: number): string => {
    if (arrived >= brownoutFrom && arrived < brownoutUntil) return 'brownout';
    if (arrived >= brownoutUntil && arrived < brownoutUntil + 60_000) return 'the minute after the brownout';
    if (vendor === o.outage.vendor && arrived >= outageFrom && arrived < outageUntil + 60_000) return 'outage';
    if ((rotatedAt.get(connectionIndex) ?? []).some((t) => arrived >= t && arrived < t + 180_000)) return 'rotation';
    return arrived < DAY_START + 60_000 ? 'first minute' : 'otherwise';
  };
  const errors: Record<string, number> = {};
  const sources: Record<string, number> = {};
  const requestTimes = workload.connections.map(() => [] as number[]);
  const idealReads = new Covers();
  const alone = new ServiceAlone();
  const window = (): WindowFigures => ({ requests: 0, answered: 0, fromHeldToken: 0, servable: 0, maxLatencyMs: 0, over3s: 0, slowOutcomes: {} });
  const outage = window();
  const brownout = window();
  let requests = 0;
  let answered = 0;
  let inflight = 0;

  const serve = async (connectionIndex: number) => {
    const spec = workload.connections[connectionIndex]!;
    const arrived = clock.now();
    requests += 1;
    inflight += 1;
    requestTimes[connectionIndex]!.push(arrived - DAY_START);
    const usable = usableSeconds(spec.lifetimeSeconds, spec.refreshBeforeSeconds, minTtlWithMargin, false).strict * 1000;
    const servable = (vendors.newestExpiry.get(spec.id) ?? 0) >= arrived + minTtlWithMargin * 1000;
    let inst = takeIdle(arrived);
    busy += 1;
    peakBusy = Math.max(peakBusy, busy);
    if (!inst) {
      instanceCount += 1;
      const born = clock.now();
      inst = {
        id: `i${instanceCount}`,
        broker: newBroker(`i${instanceCount}`),
        born,
        lastUsed: born,
        idleLimit: IDLE_REAP_MS.min + rng() * (IDLE_REAP_MS.max - IDLE_REAP_MS.min),
        dieAt: born + MAX_ENVIRONMENT_LIFE_MS.min + rng() * (MAX_ENVIRONMENT_LIFE_MS.max - MAX_ENVIRONMENT_LIFE_MS.min),
        busyUntil: Infinity,
      };
      alive += 1;
      peakAlive = Math.max(peakAlive, alive);
      const init = initLatency(rng);
      lambda.initBilledMs += Math.ceil(init);
      await clock.sleep(init);
    }
    inst.busyUntil = Infinity;
    idealReads.observe(`${inst.id}|${spec.id}`, arrived, BROKER_DEFAULTS.memoryTtlMs);
    alone.observe(inst.id, spec.id, `broker/${spec.id}`, arrived, usable);

    const trace: RequestTrace = { connection: spec.id, ended: false, vendorCalls: 0, leaseWaits: 0 };
    const started = clock.now();
    let source: TokenSource | undefined;
    let outcome: string;
    try {
      const token = await requestContext.run(trace, () => inst.broker.getToken(CALLER, spec.id, o.minTtlSeconds));
      source = token.source;
      outcome = source;
      answered += 1;
      bump(sources, source);
    } catch (err) {
      const code = isBrokerError(err) ? err.code : 'internal_error';
      outcome = code;
      bump(errors, code);
    }
    trace.ended = true;
    const done = clock.now();
    lambda.httpBilledMs += Math.ceil(done - started + HANDLER_OVERHEAD_MS);
    const latency = done - arrived;
    latencies.push(latency);
    const waited = trace.vendorCalls > 0 || trace.leaseWaits > 0 || source === 'vendor';
    const group = spec.prewarm ? 'prewarmed' : 'cold';
    requestCounts[group] += 1;
    const when = whenOf(arrived, spec.vendor, connectionIndex);
    if (!source) bump(errorWhen[group], `${when}, ${outcome}`);
    if (waited) {
      waitCounts[group] += 1;
      waitLatencies[group].push(latency);
      // What the caller waited on: its own exchange (or one its environment shared), or another environment's lease.
      bump(waitWhen[group], `${when}, ${trace.vendorCalls > 0 || source === 'vendor' ? 'exchange' : 'lease'}`);
    }
    const windows: [WindowFigures, boolean][] = [
      [outage, spec.vendor === o.outage.vendor && arrived >= outageFrom && arrived < outageUntil],
      [brownout, arrived >= brownoutFrom && arrived < brownoutUntil],
    ];
    for (const [w, inside] of windows) {
      if (!inside) continue;
      w.requests += 1;
      if (source) w.answered += 1;
      if (source && source !== 'vendor' && source !== 'secret') w.fromHeldToken += 1;
      if (servable) w.servable += 1;
      w.maxLatencyMs = Math.max(w.maxLatencyMs, latency);
      if (latency > 3000) {
        w.over3s += 1;
        bump(w.slowOutcomes, outcome);
      }
    }
    inst.busyUntil = done + HANDLER_OVERHEAD_MS;
    inst.lastUsed = done;
    busy -= 1;
    inflight -= 1;
    if (done >= inst.dieAt) retire(inst, done);
    else idle.push(inst);
  };

  // Schedules: pre-warm every minute, secret rotations (the change, then EventBridge's delivery), sweeps, progress.
  type Job = { t: number; run: () => void };
  const jobs: Job[] = [];
  const schedule = (t: number, run: () => void) => {
    jobs.push({ t, run });
    jobs.sort((a, b) => a.t - b.t);
  };
  const rotationTimes = new Map<number, number[]>();
  for (const r of workload.rotations) {
    const at = DAY_START + r.t;
    rotationTimes.set(r.connection, [...(rotationTimes.get(r.connection) ?? []), r.t]);
    schedule(at, () => {
      const id = workload.connections[r.connection]!.id;
      secrets.rotate(`broker/${id}`);
      const delivery = 30_000 + rng() * 60_000;
      schedule(clock.now() + delivery, () => {
        lambda.rotationInvocations += 1;
        const t0 = clock.now();
        const event = {
          source: 'aws.secretsmanager',
          'detail-type': 'AWS API Call via CloudTrail',
          detail: { eventSource: 'secretsmanager.amazonaws.com', eventName: 'PutSecretValue', requestParameters: { secretId: `broker/${id}` } },
        };
        void rotation(event)
          .catch(() => tally.add('rotation.failures'))
          .finally(() => (lambda.rotationBilledMs += Math.ceil(clock.now() - t0 + HANDLER_OVERHEAD_MS)));
      });
    });
  }
  let prewarmRunning = false;
  const prewarmTick = (at: number) => {
    schedule(at, () => {
      if (at + 60_000 < end) prewarmTick(at + 60_000);
      sweep(clock.now());
      if (prewarmRunning) return tally.add('prewarm.overlapped');
      prewarmRunning = true;
      lambda.prewarmInvocations += 1;
      const t0 = clock.now();
      void prewarm({}, lambdaContext(clock, 55_000, 'token-broker-prewarm'))
        .catch(() => tally.add('prewarm.failures'))
        .finally(() => {
          prewarmRunning = false;
          lambda.prewarmBilledMs += Math.ceil(clock.now() - t0 + HANDLER_OVERHEAD_MS);
        });
    });
  };
  prewarmTick(DAY_START - 60_000);
  for (let h = 1; h <= o.daySeconds / 3600; h++) {
    schedule(DAY_START + h * 3_600_000, () =>
      progress(
        `fleet: ${String(h).padStart(2, '0')}:00 of the simulated day, ${requests.toLocaleString('en-US')} requests, ${instanceCount} instances, ${((performance.now() - wallStart) / 1000).toFixed(0)} s wall`,
      ),
    );
  }

  const arrivals = workload.arrivals();
  let next = arrivals.next();
  for (;;) {
    await settle(activity);
    const tArrival = next.done ? Infinity : DAY_START + next.value.t;
    const tJob = jobs[0]?.t ?? Infinity;
    const tWake = wakes.peek() ?? Infinity;
    const t = Math.min(tArrival, tJob, tWake);
    if (t === Infinity || (t >= end && inflight === 0)) break;
    if (t > clock.now()) clock.set(t);
    else clock.set(clock.now());
    while ((wakes.peek() ?? Infinity) <= t) wakes.pop();
    while (jobs.length > 0 && jobs[0]!.t <= t) jobs.shift()!.run();
    while (!next.done && DAY_START + next.value.t <= t) {
      void serve(next.value.connection);
      next = arrivals.next();
    }
  }
  sweep(Infinity);
  for (const inst of idle.splice(0)) retire(inst, end);
  // The two always-warm environments (pre-warm, rotation) count as instance-hours too.
  const instanceHours = retiredHours.total + (2 * dayMs) / 3_600_000;

  // The ideals.
  let ideal = 0;
  let idealStrict = 0;
  for (const c of workload.connections) {
    const u = usableSeconds(c.lifetimeSeconds, c.refreshBeforeSeconds, minTtlWithMargin, c.prewarm);
    const forcedMs = (rotationTimes.get(c.index) ?? []).sort((a, b) => a - b);
    const times = requestTimes[c.index]!;
    const count = (usableMs: number) =>
      c.prewarm ? idealContinuousTokens({ usableMs, dayMs, forcedMs }) : idealOnDemandTokens(times, { usableMs, dayMs, forcedMs });
    ideal += count(u.ideal * 1000);
    idealStrict += count(u.strict * 1000);
  }
  // The pre-warm run reads each connection's record once (its secret check; warming uses the same read).
  const prewarmReads = lambda.prewarmInvocations * workload.connections.length;
  const calls: Record<string, number> = {};
  for (const [k, v] of tally.entries()) if (k.startsWith('dynamodb.calls.')) calls[k.slice('dynamodb.calls.'.length)] = v;
  const waitFigures = (g: 'prewarmed' | 'cold'): WaitFigures => ({
    requests: requestCounts[g],
    waits: waitCounts[g],
    byWhen: waitWhen[g],
    p99Ms: quantile(waitLatencies[g], 0.99),
    maxMs: waitLatencies[g].reduce((a, b) => Math.max(a, b), 0),
    errors: errorWhen[g],
  });

  return {
    options: o,
    wallMs: performance.now() - wallStart,
    requests,
    answered,
    errors,
    sources,
    latencyP99Ms: quantile(latencies, 0.99),
    latencyMaxMs: latencies.reduce((a, b) => Math.max(a, b), 0),
    instances: { started: instanceCount, peakAlive, peakBusy, instanceHours, coldStarts: instanceCount },
    lambda,
    exchanges: {
      tokens: tally.get('vendor.tokensIssued'),
      attempts: tally.get('vendor.requests'),
      ideal,
      idealStrict,
      rotations: workload.rotations.length,
      outageAttempts: tally.get('vendor.outageAnswers'),
    },
    dynamodb: {
      reads: tally.get('dynamodb.reads'),
      writes: tally.get('dynamodb.writes'),
      rru: tally.get('dynamodb.rru'),
      wru: tally.get('dynamodb.wru'),
      idealReads: idealReads.count + prewarmReads,
      // The fenced lease takes two writes per token: the lease, then the token stored under it (which releases it).
      idealWrites: 2 * ideal,
      failedCalls: tally.get('dynamodb.failedCalls'),
      calls,
    },
    kms: { generateDataKey: tally.get('kms.GenerateDataKey'), decrypt: tally.get('kms.Decrypt') },
    secretsManager: { getSecretValue: tally.get('secretsmanager.GetSecretValue'), batchGetSecretValue: tally.get('secretsmanager.BatchGetSecretValue') },
    waits: { prewarmed: waitFigures('prewarmed'), cold: waitFigures('cold') },
    outage,
    brownout,
    alternative: { exchanges: alone.exchanges.count, secretReads: alone.secretReads.count },
    tally: Object.fromEntries(tally.entries()),
  };
}
