import type http from 'node:http';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileSecretSource } from '../lib/adapters/file-secrets';
import type { IssuedToken } from '../lib/broker';
import { createBroker } from '../lib/compose';
import { ManualClock } from '../lib/clock';
import { LocalKeyRing } from '../lib/crypto';
import { BrokerError, StoreUnavailableError } from '../lib/errors';
import { nodeHttpClient, type HttpClient } from '../lib/http';
import type { RunningDynalite } from '../lib/local/dynalite';
import type { ConnectionRecord, LeaseClaim, RecordedFailure, StoredToken, TokenMatch, TokenStore } from '../lib/ports';
import { secretFor, vendorConnectionInput } from './support/connections';
import { startTable, startWorld, type World } from './support/harness';

// A model-based test of the fleet: several broker instances over one dynalite table, each with its own manual
// clock (up to 2 s apart), under generated interleavings of callers, vendor answers (late or failing), time,
// crashes, frozen instances that resume after their lease lapsed, throttled table writes and hung table reads.
// After every step the safety invariants hold; at the end every caller has had its answer within its deadline.

const CALLER = 'arn:aws:iam::111111111111:role/caller';
const T0 = Date.parse('2026-11-23T10:00:00.000Z');
const LEASE_MS = 15_000;
const MAX_SKEW_MS = 2_000;
/** The vendor gives up on a request after this (as the exchange deadline would). */
const VENDOR_DEADLINE_MS = 10_000;
/** A hung table read fails after this (the adapters' deadline). */
const READ_DEADLINE_MS = 3_000;
/** A caller's answer comes within: the wait for another's mint, its own exchange, hung reads, some backoff. */
const CALLER_DEADLINE_MS = 20_000 + VENDOR_DEADLINE_MS + 2 * READ_DEADLINE_MS + 2_000;
const CODES = new Set(['rate_limited', 'vendor_unavailable', 'vendor_timeout', 'service_unavailable', 'invalid_request']);

type Action =
  | { t: 'call'; i: number; minTtl: number }
  | { t: 'advance'; ms: number }
  | { t: 'answer'; ok: boolean }
  | { t: 'freeze'; i: number }
  /** A frozen Lambda: it stops, and the fleet's time runs on past its lease. */
  | { t: 'stall'; i: number }
  | { t: 'resume'; i: number }
  | { t: 'crash'; i: number }
  | { t: 'throttle'; i: number; writes: number }
  | { t: 'hang'; i: number };

const INSTANCES = 3;
const instance = fc.integer({ min: 0, max: INSTANCES - 1 });
const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constant('call' as const), i: instance, minTtl: fc.constantFrom(0, 60, 250) }) },
  { weight: 5, arbitrary: fc.record({ t: fc.constant('answer' as const), ok: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, fc.constant(false)) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('advance' as const), ms: fc.oneof(fc.integer({ min: 100, max: 5_000 }), fc.integer({ min: 5_000, max: 40_000 })) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('stall' as const), i: instance }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('resume' as const), i: instance }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('freeze' as const), i: instance }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('crash' as const), i: instance }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('throttle' as const), i: instance, writes: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('hang' as const), i: instance }) },
);

/** What every instance's table calls go through: counted, and faulty on demand. */
class Observed {
  seq = 0;
  inFlight = 0;
  /** Per fence: the sequence number at which its lease was granted. */
  readonly grants: { fence: string; doneAt: number }[] = [];
  readonly staleWrites: string[] = [];

  constructor(readonly table: TokenStore) {}

  /** True when a lease other than `fence` was granted after `fence`'s and before `issuedAt`. */
  superseded(fence: string, issuedAt: number): boolean {
    const mine = this.grants.find((g) => g.fence === fence);
    if (!mine) return false;
    return this.grants.some((g) => g.fence !== fence && g.doneAt > mine.doneAt && g.doneAt < issuedAt);
  }
}

class FaultyStore implements TokenStore {
  throttledWrites = 0;
  hungReads = 0;

  constructor(
    private readonly world: Observed,
    private readonly clock: ManualClock,
  ) {}

  private async op<T>(fn: () => Promise<T>): Promise<T> {
    this.world.inFlight++;
    try {
      return await fn();
    } finally {
      this.world.inFlight--;
      this.world.seq++;
    }
  }

  private async write<T>(fence: string | undefined, fn: () => Promise<T>): Promise<T> {
    if (this.throttledWrites > 0) {
      this.throttledWrites--;
      throw new StoreUnavailableError('the token table failed to write (ProvisionedThroughputExceededException)');
    }
    const issuedAt = this.world.seq;
    const result = await this.op(fn);
    if (fence && result === true && this.world.superseded(fence, issuedAt)) this.world.staleWrites.push(fence);
    return result;
  }

  async read(connection: string): Promise<ConnectionRecord> {
    if (this.hungReads > 0) {
      this.hungReads--;
      await this.clock.sleep(READ_DEADLINE_MS);
      throw new StoreUnavailableError('the token table failed to read a token (TimeoutError)');
    }
    return this.op(() => this.world.table.read(connection));
  }

  async acquireLease(connection: string, claim: LeaseClaim) {
    const outcome = await this.write(undefined, () => this.world.table.acquireLease(connection, claim));
    if (outcome.acquired) this.world.grants.push({ fence: claim.fence, doneAt: this.world.seq });
    return outcome;
  }

  putToken(token: StoredToken, fence: string) {
    return this.write(fence, () => this.world.table.putToken(token, fence));
  }

  recordFailure(connection: string, fence: string, failure: RecordedFailure) {
    return this.write(fence, () => this.world.table.recordFailure(connection, fence, failure));
  }

  releaseLease(connection: string, fence: string) {
    return this.write(fence, () => this.world.table.releaseLease(connection, fence));
  }

  deleteToken(connection: string, match: TokenMatch) {
    return this.write(undefined, () => this.world.table.deleteToken(connection, match));
  }
}

interface Pending {
  instance: number;
  arrivedAt: number;
  res: http.ServerResponse;
}

interface Call {
  instance: number;
  generation: number;
  minTtl: number;
  startedAt: number;
  everFrozen: boolean;
  outcome?: { token?: IssuedToken; error?: unknown };
}

let db: RunningDynalite;
let world: World;
beforeAll(async () => {
  world = await startWorld(
    new ManualClock(T0),
    (v) => [vendorConnectionInput(v, 'digitaleo', { id: 'c', refreshBefore: 120 })],
    {},
    (v) => ({ 'broker/digitaleo-test': secretFor(v, 'digitaleo') }),
  );
  db = world.db;
});
afterAll(async () => {
  await world?.close();
});

async function runFleet(skews: number[], actions: Action[]): Promise<void> {
  const table = await startTable(db);
  const observed = new Observed(table.store);
  const keyRing = new LocalKeyRing();
  let trueNow = T0;
  let tokens = 0;
  const pending: Pending[] = [];
  const arrivals: { instance: number; at: number; answeredAt?: number }[] = [];
  let httpInFlight = 0;
  const calls: Call[] = [];

  const clocks = skews.map((s) => new ManualClock(T0 + s));
  const frozen = skews.map(() => false);
  const generation = skews.map(() => 0);
  const stores = clocks.map((c) => new FaultyStore(observed, c));
  const make = (i: number) => {
    const tagged: HttpClient = async (req) => {
      httpInFlight++;
      try {
        return await nodeHttpClient({ ...req, headers: { ...req.headers, 'x-model-instance': String(i) } });
      } finally {
        httpInFlight--;
      }
    };
    return createBroker({
      config: world.config,
      store: stores[i]!,
      secrets: new FileSecretSource(world.secretsPath),
      keyRing,
      clock: clocks[i]!,
      http: tagged,
      random: () => 0.5,
      options: { leaseMs: LEASE_MS, exchange: { retries: 0, deadlineMs: 120_000 } },
    });
  };
  const brokers = skews.map((_, i) => make(i));

  world.vendor.fail('digitaleo', (req, res) => {
    const i = Number(req.headers['x-model-instance']);
    pending.push({ instance: i, arrivedAt: trueNow, res });
    arrivals.push({ instance: i, at: trueNow });
  });
  const answer = (p: Pending, ok: boolean) => {
    pending.splice(pending.indexOf(p), 1);
    const arrival = arrivals.find((a) => a.instance === p.instance && a.at === p.arrivedAt && a.answeredAt === undefined);
    if (arrival) arrival.answeredAt = trueNow;
    if (ok) {
      p.res.writeHead(200, { 'content-type': 'application/json' });
      p.res.end(JSON.stringify({ access_token: `model-token-${++tokens}`, token_type: 'Bearer', expires_in: 300 }));
    } else {
      p.res.writeHead(503, { 'content-type': 'application/json' });
      p.res.end('{"error":"temporarily_unavailable"}');
    }
  };

  /** Lets every task run until nothing moves: no table call in flight, no vendor request on its way. */
  const settle = async () => {
    let quiet = 0;
    let last = -1;
    for (let round = 0; round < 400 && quiet < 5; round++) {
      await new Promise((r) => setTimeout(r, 4));
      const mark = observed.seq + arrivals.length + calls.filter((c) => c.outcome).length;
      const busy = observed.inFlight > 0 || httpInFlight !== pending.length;
      quiet = !busy && mark === last ? quiet + 1 : 0;
      last = mark;
    }
  };

  let highWater = 0;
  const checkSafety = async () => {
    // At most one exchange in flight per connection, unless a lease expired in between (clocks up to 2 s apart).
    const open = arrivals.filter((a) => a.answeredAt === undefined || a.answeredAt > a.at);
    for (const a of open) {
      for (const b of open) {
        if (a === b || b.at < a.at) continue;
        const overlap = a.answeredAt === undefined || a.answeredAt > b.at;
        if (overlap) expect(b.at - a.at, 'two exchanges in flight within one lease').toBeGreaterThanOrEqual(LEASE_MS - 2 * MAX_SKEW_MS);
      }
    }
    // The stored mint time never decreases.
    const record = await observed.table.read('c');
    expect(record.mintedAt ?? 0).toBeGreaterThanOrEqual(highWater);
    highWater = record.mintedAt ?? 0;
    // A holder whose lease was taken over changes nothing.
    expect(observed.staleWrites).toEqual([]);
    // No live caller is still waiting once its deadline has passed (time moves in steps: checked after each). A
    // step's work may outlast the settling on a loaded machine (a file read, a decryption): it gets a real second.
    const overdue = () =>
      calls.filter((c) => !c.outcome && !c.everFrozen && c.generation === generation[c.instance] && trueNow - c.startedAt > CALLER_DEADLINE_MS);
    for (let k = 0; k < 100 && overdue().length > 0; k++) await new Promise((r) => setTimeout(r, 10));
    expect(overdue().map((c) => trueNow - c.startedAt), 'a caller waited past its deadline').toEqual([]);
  };

  const start = (i: number, minTtl: number) => {
    const call: Call = { instance: i, generation: generation[i]!, minTtl, startedAt: trueNow, everFrozen: frozen[i]! };
    calls.push(call);
    brokers[i]!.getToken(CALLER, 'c', minTtl).then(
      (token) => (call.outcome = { token }),
      (error: unknown) => (call.outcome = { error }),
    );
  };
  const advance = (ms: number) => {
    trueNow += ms;
    clocks.forEach((c, i) => {
      if (!frozen[i]) c.set(trueNow + skews[i]!);
    });
    // The vendor gives up on requests nobody answered in time; a frozen instance's stay open until it resumes.
    for (const p of [...pending]) if (!frozen[p.instance] && trueNow - p.arrivedAt >= VENDOR_DEADLINE_MS) answer(p, false);
  };

  try {
    for (const a of actions) {
      switch (a.t) {
        case 'call':
          if (!frozen[a.i]) start(a.i, a.minTtl);
          break;
        case 'advance':
          advance(a.ms);
          break;
        case 'answer': {
          const p = pending.find((x) => !frozen[x.instance]);
          if (p) answer(p, a.ok);
          break;
        }
        case 'freeze':
          frozen[a.i] = true;
          for (const c of calls) if (c.instance === a.i && !c.outcome) c.everFrozen = true;
          break;
        case 'stall':
          frozen[a.i] = true;
          for (const c of calls) if (c.instance === a.i && !c.outcome) c.everFrozen = true;
          advance(LEASE_MS + 2 * MAX_SKEW_MS + 1_000);
          break;
        case 'resume':
          if (frozen[a.i]) {
            frozen[a.i] = false;
            clocks[a.i]!.set(trueNow + skews[a.i]!);
            // What the vendor answered meanwhile reaches the instance now: its lease has likely lapsed.
            for (const p of pending.filter((x) => x.instance === a.i)) answer(p, true);
          }
          break;
        case 'crash':
          // The process is gone: its pending calls never finish; a new instance takes its place.
          generation[a.i]!++;
          frozen[a.i] = false;
          for (const p of pending.filter((x) => x.instance === a.i)) p.res.destroy();
          clocks[a.i] = new ManualClock(trueNow + skews[a.i]!);
          stores[a.i] = new FaultyStore(observed, clocks[a.i]!);
          brokers[a.i] = make(a.i);
          break;
        case 'throttle':
          stores[a.i]!.throttledWrites += a.writes;
          break;
        case 'hang':
          stores[a.i]!.hungReads += 1;
          break;
      }
      await settle();
      await checkSafety();
    }

    // The end: everyone resumes, the vendor answers, time runs on; every live caller gets its answer.
    frozen.fill(false);
    for (let step = 0; step < 60 && calls.some((c) => !c.outcome && c.generation === generation[c.instance]); step++) {
      for (const p of [...pending]) answer(p, true);
      advance(1_000);
      await settle();
      await checkSafety();
    }
    for (const c of calls) {
      if (c.generation !== generation[c.instance]) continue; // its instance crashed
      expect(c.outcome, `a caller of instance ${c.instance} got no answer`).toBeDefined();
      const { token, error } = c.outcome!;
      if (token) {
        expect(token.expiresIn).toBeGreaterThanOrEqual(Math.min(c.minTtl, 900));
        expect(token.accessToken).toMatch(/^model-token-\d+$/);
      } else {
        expect(error).toBeInstanceOf(BrokerError);
        expect(CODES.has((error as BrokerError).code), `unexpected ${(error as BrokerError).code}`).toBe(true);
      }
    }
  } finally {
    for (const p of [...pending]) p.res.destroy();
    world.vendor.heal('digitaleo');
  }
}

describe('the fleet, as a model', () => {
  it('keeps its invariants under generated interleavings of callers, vendor answers, time, crashes, pauses and table faults', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: -MAX_SKEW_MS, max: MAX_SKEW_MS }), { minLength: INSTANCES, maxLength: INSTANCES }),
        fc.array(action, { minLength: 5, maxLength: 30 }),
        (skews, actions) => runFleet(skews, actions),
      ),
      { numRuns: 25, endOnFailure: true },
    );
  }, 180_000);

  it('a frozen holder that resumes after its lease lapsed stores nothing (a fixed interleaving)', async () => {
    await runFleet(
      [2_000, -2_000, 0],
      [
        { t: 'call', i: 0, minTtl: 60 },
        { t: 'freeze', i: 0 },
        // Its lease ends at T0 + 17 s on its own clock, which runs 4 s ahead of instance 1's.
        { t: 'advance', ms: 20_000 },
        { t: 'call', i: 1, minTtl: 60 },
        { t: 'answer', ok: true },
        { t: 'resume', i: 0 },
        { t: 'call', i: 2, minTtl: 60 },
      ],
    );
  });
});
