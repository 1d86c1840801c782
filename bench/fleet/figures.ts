import type { FleetResult } from './simulate';

// The simulated day's figures, each beside its ideal, and the goals they are judged by.

export interface Figure {
  what: string;
  value: string;
  ideal: string;
  ratio: string;
  goal: string;
  /** undefined: reported, no goal. */
  ok: boolean | undefined;
}

const n = (x: number) => Math.round(x).toLocaleString('en-US');
const r2 = (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '—');
const ms = (x: number) => (x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(0)} ms`);
const when = (w: Record<string, number>) =>
  Object.keys(w).length === 0
    ? ''
    : ` (${Object.entries(w)
        .map(([k, v]) => `${k} ${n(v)}`)
        .join(', ')})`;
/** The requests of a group answered with an error (neither a wait nor a token), by when and code. */
const errorsInstead = (e: Record<string, number>) => {
  const total = Object.values(e).reduce((a, b) => a + b, 0);
  return `${n(total)} answered with an error instead${when(e)}`;
};
const pct = (a: number, b: number) => (b === 0 ? '—' : `${((a / b) * 100).toFixed(1)}%`);

/** KMS and Secrets Manager calls per instance-hour made for tokens: requests, mints, rotations. */
export function tokenCallsPerInstanceHour(r: FleetResult): number {
  return (r.kms.generateDataKey + r.kms.decrypt + r.secretsManager.getSecretValue) / r.instances.instanceHours;
}


export function fleetFigures(r: FleetResult): Figure[] {
  const e = r.exchanges;
  const forTokens = tokenCallsPerInstanceHour(r);
  const w = r.waits;
  return [
    {
      what: 'vendor exchanges (tokens minted) vs the ideal: per connection, one per token lifetime (less the refreshBefore window when pre-warmed), plus rotations',
      value: n(e.tokens),
      ideal: n(e.ideal),
      ratio: r2(e.tokens / e.ideal),
      goal: '≤ 1.02×',
      ok: e.tokens / e.ideal <= 1.02,
    },
    {
      what: 'vendor exchanges vs the strict ideal: one per whole token lifetime, pre-warmed too',
      value: n(e.tokens),
      ideal: n(e.idealStrict),
      ratio: r2(e.tokens / e.idealStrict),
      goal: 'reported (the refresh window is configuration: 120 s on 5-minute tokens alone costs 1.67× on those)',
      ok: undefined,
    },
    {
      what: 'vendor token requests, all attempts (failed ones, retries and the outage included)',
      value: n(e.attempts),
      ideal: `${n(e.tokens)} tokens`,
      ratio: r2(e.attempts / Math.max(1, e.tokens)),
      goal: 'reported',
      ok: undefined,
    },
    {
      what: 'DynamoDB reads vs the ideal: one per instance per connection per 30 s in-process window, plus one per pre-warm check',
      value: n(r.dynamodb.reads),
      ideal: n(r.dynamodb.idealReads),
      ratio: r2(r.dynamodb.reads / r.dynamodb.idealReads),
      goal: 'reported',
      ok: undefined,
    },
    {
      what: 'DynamoDB writes vs the ideal: the lease taken and the token stored under it (which gives the lease back), per ideal token',
      value: n(r.dynamodb.writes),
      ideal: n(r.dynamodb.idealWrites),
      ratio: r2(r.dynamodb.writes / r.dynamodb.idealWrites),
      goal: 'reported',
      ok: undefined,
    },
    {
      what: `KMS + Secrets Manager calls per instance-hour made for tokens: requests, mints, rotations (${n(r.kms.generateDataKey)} GenerateDataKey, ${n(r.kms.decrypt)} Decrypt, ${n(r.secretsManager.getSecretValue)} GetSecretValue over ${r.instances.instanceHours.toFixed(0)} instance-hours)`,
      value: forTokens.toFixed(1),
      ideal: '15',
      ratio: r2(forTokens / 15),
      goal: '≤ 15 per instance-hour',
      ok: forTokens <= 15,
    },
    {
      what: `caller waits on a vendor, pre-warmed connections (${n(w.prewarmed.requests)} requests)`,
      value: `${n(w.prewarmed.waits)} waits${when(w.prewarmed.byWhen)}, p99 ${ms(w.prewarmed.p99Ms)}, max ${ms(w.prewarmed.maxMs)}; ${errorsInstead(w.prewarmed.errors)}`,
      ideal: '0',
      ratio: pct(w.prewarmed.waits, w.prewarmed.requests),
      goal: '0 waits',
      ok: w.prewarmed.waits === 0,
    },
    {
      what: `caller waits on a vendor, connections not pre-warmed (${n(w.cold.requests)} requests)`,
      value: `${n(w.cold.waits)} waits${when(w.cold.byWhen)}, p99 ${ms(w.cold.p99Ms)}, max ${ms(w.cold.maxMs)}; ${errorsInstead(w.cold.errors)}`,
      ideal: 'one per ideal token at most',
      ratio: pct(w.cold.waits, w.cold.requests),
      goal: 'reported',
      ok: undefined,
    },
    {
      what: `vendor outage (${r.options.outage.durationSeconds / 60} min, one vendor): requests answered from a held token, of those a held token could serve`,
      value: `${n(r.outage.fromHeldToken)} of ${n(r.outage.requests)} requests`,
      ideal: `${n(r.outage.servable)} servable`,
      ratio: r2(r.outage.fromHeldToken / Math.max(1, r.outage.servable)),
      goal: 'reported (1.00× = every servable request served)',
      ok: undefined,
    },
    {
      what: `table brownout (${r.options.brownout.durationSeconds / 60} min): requests answered from a held token, of those a held token could serve`,
      value: `${n(r.brownout.fromHeldToken)} of ${n(r.brownout.requests)} requests`,
      ideal: `${n(r.brownout.servable)} servable`,
      ratio: r2(r.brownout.fromHeldToken / Math.max(1, r.brownout.servable)),
      goal: 'reported',
      ok: undefined,
    },
    {
      what: 'table brownout: slowest answer (any status), simulated time from arrival',
      value: `max ${ms(r.brownout.maxLatencyMs)}; ${n(r.brownout.over3s)} over 3 s${when(r.brownout.slowOutcomes)}`,
      ideal: '3 s',
      ratio: r2(r.brownout.maxLatencyMs / 3000),
      goal: 'every answer ≤ 3 s',
      ok: r.brownout.over3s === 0,
    },
    {
      what: 'the alternative on the same trace: each service exchanging itself behind the Secrets Manager Agent',
      value: `${n(r.alternative.exchanges)} exchanges, ${n(r.alternative.secretReads)} GetSecretValue`,
      ideal: `broker: ${n(e.tokens)} exchanges`,
      ratio: r2(r.alternative.exchanges / Math.max(1, e.tokens)),
      goal: 'reported',
      ok: undefined,
    },
  ];
}

/** The day in a few lines: the workload as it ran. */
export function fleetSummary(r: FleetResult): string[] {
  const errors = Object.entries(r.errors)
    .map(([k, v]) => `${k} ${n(v)}`)
    .join(', ');
  const sources = Object.entries(r.sources)
    .map(([k, v]) => `${k} ${n(v)}`)
    .join(', ');
  return [
    `${n(r.requests)} token requests over ${r.options.connections} connections in a simulated day (${(r.wallMs / 1000).toFixed(0)} s wall); answered from ${sources}; errors: ${errors || 'none'}.`,
    `${n(r.instances.started)} Lambda execution environments started (cold starts), at most ${n(r.instances.peakAlive)} alive and ${n(r.instances.peakBusy)} busy at once, ${r.instances.instanceHours.toFixed(0)} instance-hours; latency p99 ${ms(r.latencyP99Ms)}, max ${ms(r.latencyMaxMs)}.`,
    `DynamoDB: ${n(r.dynamodb.rru)} RRU and ${n(r.dynamodb.wru)} WRU billed (${n(r.tally['dynamodb.reads.eventual'] ?? 0)} of ${n(r.dynamodb.reads)} reads eventually consistent, at half a unit), ${n(r.dynamodb.failedCalls)} calls failed (brownout); calls by method: ${Object.entries(r.dynamodb.calls)
      .map(([k, v]) => `${k} ${n(v)}`)
      .join(', ')}.`,
  ];
}

/** What explains the figures that miss their goal, in numbers from the same day. */
export function fleetNotes(r: FleetResult): string[] {
  const notes: string[] = [];
  const t = (k: string) => r.tally[k] ?? 0;
  if (tokenCallsPerInstanceHour(r) > 15) {
    const sm = r.secretsManager.getSecretValue;
    notes.push(
      `- KMS and Secrets Manager calls made for tokens: ${tokenCallsPerInstanceHour(r).toFixed(1)} per instance-hour: ${n(r.kms.decrypt)} Decrypt over ${n(r.instances.started)} environments (each unwraps the fleet's shared data key about once), ${n(r.kms.generateDataKey)} GenerateDataKey, ${n(sm)} GetSecretValue for ${n(r.exchanges.tokens)} tokens minted (${n(t('secretsmanager.GetSecretValue.inRequest'))} inside a caller's request).`,
    );
  }
  const pw = r.waits.prewarmed;
  if (pw.waits > 0) {
    notes.push(
      `- Pre-warmed connections still made callers wait ${n(pw.waits)} times${when(pw.byWhen)}: a caller waited on its own exchange or on another environment's lease.`,
    );
  }
  if (r.brownout.over3s > 0) {
    notes.push(
      `- Table brownout: ${n(r.brownout.over3s)} answers took over 3 s${when(r.brownout.slowOutcomes)}, although a request's table work shares a 2 s budget (lib/budget.ts).`,
    );
  }
  return notes;
}

/**
 * The day's goals again on other seeds (other arrivals, bursts, rotations, failures and latency draws): one row per
 * goal, its figure on each seed, met only when every seed meets it. A goal met on one seed alone is luck.
 */
export function seedFigures(results: readonly FleetResult[]): Figure[] {
  const per = results.map((r) => fleetFigures(r).filter((f) => f.ok !== undefined));
  const seeds = results.map((r) => r.options.seed);
  return (per[0] ?? []).map((first, i) => {
    const on = per.map((figures) => figures[i]!);
    return {
      what: `on ${results.length} other seeds (${seeds.join(', ')}): ${first.what.replace(/ \(.*$/, '')}`,
      value: on.map((f, k) => `seed ${seeds[k]}: ${f.value.replace(/ \([^)]*\)/g, '')}`).join('; '),
      ideal: [...new Set(on.map((f) => f.ideal))].join(', '),
      ratio: on.map((f) => f.ratio).join(', '),
      goal: first.goal,
      ok: on.every((f) => f.ok === true),
    };
  });
}
