import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../lib/clock';
import { awsSecretRule } from '../lib/secret-rules';
import { secretFor, vendorConnectionInput } from './support/connections';
import { startTable, startWorld, type World } from './support/harness';
import { ADMIN_ARN, CALLER_ARN, brokerInstance, registryOn, type Answer } from './support/registered';

// A model-based test of registered connections: two broker instances over one dynalite table take generated groups
// of concurrent PUTs (with or without If-Match), DELETEs and token requests, while time moves. The table is the
// truth (read after each group); the invariants:
//   - every answer is one the contract allows (PUT 200/201/412, DELETE 204/403/412, token 200/403), never a 500;
//   - a group's successful writes decide the table: its etag afterwards is one of theirs (or unchanged);
//   - the instance that made the latest change serves it at once; any instance serves it once its copy lapsed (TTL).

const TTL_MS = 20_000;
const rule = awsSecretRule({ prefix: 'broker/', kmsKeys: [] });
const ID = 'modelled';

type Op =
  | { t: 'put'; i: number; allow: boolean; ifMatch: boolean }
  | { t: 'delete'; i: number; ifMatch: boolean }
  | { t: 'token'; i: number };
type Step = { ops: Op[]; advanceMs: number };

const who = fc.integer({ min: 0, max: 1 });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ t: fc.constant('put' as const), i: who, allow: fc.boolean(), ifMatch: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('delete' as const), i: who, ifMatch: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('token' as const), i: who }) },
);
const step: fc.Arbitrary<Step> = fc.record({
  ops: fc.array(op, { minLength: 1, maxLength: 3 }),
  advanceMs: fc.oneof(fc.constant(0), fc.integer({ min: 1_000, max: 30_000 })),
});

let world: World;

beforeAll(async () => {
  world = await startWorld(new ManualClock(), (v) => [vendorConnectionInput(v, 'jwt', { id: 'file-only', callers: [CALLER_ARN] })], { lifetime: 3600 }, (v) => ({
    'broker/jwt-test': secretFor(v, 'jwt'),
  }));
});
afterAll(() => world.close());

describe('registered connections, modelled over two instances and one table', () => {
  it('hold the contract under concurrent PUT, DELETE and token requests', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 3, maxLength: 10 }), async (steps) => {
        const clock = new ManualClock('2026-11-23T10:00:00.000Z');
        const table = await startTable(world.db);
        const scoped = { ...world, table };
        const registry = registryOn(scoped);
        const instances = [0, 1].map(() => brokerInstance(scoped, { clock, rule, registry, store: table.store, catalog: { ttlMs: TTL_MS } }));
        const definition = (allow: boolean) => {
          const { id: _id, ...rest } = vendorConnectionInput(world.vendor, 'jwt', { callers: [allow ? CALLER_ARN : 'arn:aws:iam::111111111111:role/nobody'] });
          return rest;
        };
        let truth: { etag: string; allow: boolean } | undefined;
        let changed: { at: number; by: number } | undefined;
        for (const s of steps) {
          const known = truth?.etag;
          const written: { etag: string | undefined; by: number }[] = [];
          const answers = await Promise.all(
            s.ops.map(async (o): Promise<[Op, Answer]> => {
              const inst = instances[o.i]!;
              const headers = 'ifMatch' in o && o.ifMatch ? { 'If-Match': known ? `"${known}"` : '"none"' } : undefined;
              if (o.t === 'put') {
                const a = await inst.call({ method: 'PUT', path: `/v1/connections/${ID}`, userArn: ADMIN_ARN, body: JSON.stringify(definition(o.allow)), ...(headers ? { headers } : {}) });
                if (a.statusCode < 300) written.push({ etag: a.json.etag as string, by: o.i });
                return [o, a];
              }
              if (o.t === 'delete') {
                const a = await inst.call({ method: 'DELETE', path: `/v1/connections/${ID}`, userArn: ADMIN_ARN, ...(headers ? { headers } : {}) });
                if (a.statusCode === 204) written.push({ etag: undefined, by: o.i });
                return [o, a];
              }
              return [o, await inst.call({ method: 'GET', path: `/v1/connections/${ID}/token`, userArn: CALLER_ARN })];
            }),
          );
          const allowed: Record<Op['t'], number[]> = { put: [200, 201, 412], delete: [204, 403, 412], token: [200, 403] };
          for (const [o, a] of answers) expect(allowed[o.t], `${o.t} answered ${a.statusCode} ${String(a.json.code)}`).toContain(a.statusCode);
          // The table decided: its state is one of this group's successful writes, or what it was.
          const stored = await registry.get(ID);
          const etags = written.map((w) => w.etag);
          if (written.length === 0) expect(stored?.etag).toBe(known);
          else expect(etags).toContain(stored?.etag);
          truth = stored ? { etag: stored.etag, allow: (stored.definition.callers as string[]).includes(CALLER_ARN) } : undefined;
          if (written.length > 0) changed = { at: clock.now(), by: written.find((w) => w.etag === stored?.etag)!.by };
          clock.advance(s.advanceMs);
          // Each instance is up to date once its copy lapsed; the one that made the change, at once.
          for (const i of [0, 1]) {
            const settled = !changed || clock.now() - changed.at >= TTL_MS || (changed.by === i && written.length === 1);
            if (!settled) continue;
            const a = await instances[i]!.call({ method: 'GET', path: `/v1/connections/${ID}/token`, userArn: CALLER_ARN });
            expect(a.statusCode, `instance ${i} after ${JSON.stringify(s)}`).toBe(truth?.allow ? 200 : 403);
          }
        }
      }),
      { numRuns: 12, endOnFailure: true },
    );
  }, 240_000);
});
