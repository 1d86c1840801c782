import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeHandler } from '../../functions/http';
import { createLogger, createMetrics } from '../../lib/adapters/powertools';
import type { DynamoTokenStore } from '../../lib/adapters/dynamodb';
import { ManualClock } from '../../lib/clock';
import { HOUR_MS } from '../../lib/console/health';
import { SERVED_FLUSH_MS } from '../../lib/console/served';
import type { RecordScan, RecordSummary, ServedCounts } from '../../lib/ports';
import { secretFor, vendorConnectionInput } from '../support/connections';
import { lambdaContext, restEvent } from '../support/events';
import { startWorld, type World } from '../support/harness';

// GET /v1/status (every connection's health for admins, paged) and the requests-served counts behind the console,
// through the HTTP handler Lambda runs, on dynalite.

const ACCOUNT = '111111111111';
const APP = `arn:aws:iam::${ACCOUNT}:role/app`;
const ADMIN = `arn:aws:iam::${ACCOUNT}:role/ops`;
const clock = new ManualClock('2026-11-23T10:00:00.000Z', true);

let world: World;
let store: DynamoTokenStore;
/** Each addServed the handler makes, as the table is told it. */
const writes: { connection: string; hour: number; count: number }[] = [];
let handle: ReturnType<typeof makeHandler>;

beforeAll(async () => {
  world = await startWorld(
    clock,
    (v) => [
      vendorConnectionInput(v, 'digitaleo', { id: 'crm', callers: [APP] }),
      ...Array.from({ length: 4 }, (_, i) => vendorConnectionInput(v, 'jwt', { id: `idle-${i}`, callers: [APP] })),
    ],
    { lifetime: 3600 },
    (v) => ({ 'broker/digitaleo-test': secretFor(v, 'digitaleo'), 'broker/jwt-test': secretFor(v, 'jwt') }),
  );
  store = world.table.store as DynamoTokenStore;
  const counted: RecordScan & ServedCounts = {
    scanRecords: (opts) => store.scanRecords(opts),
    addServed: async (connection, hour, count, call) => {
      writes.push({ connection, hour, count });
      await store.addServed(connection, hour, count, call);
    },
  };
  const broker = world.broker({ config: { ...world.config, admins: [ADMIN] } });
  handle = makeHandler({ broker, logger: createLogger(), metrics: createMetrics(), store: counted, clock });
});
afterAll(() => world.close());

async function call(path: string, userArn: string, query: Record<string, string> = {}) {
  const res = await handle(restEvent({ method: 'GET', path, userArn, query }), lambdaContext());
  return { status: res.statusCode, json: JSON.parse(res.body) as Record<string, unknown> };
}

describe('requests served', () => {
  it('are written at most once per flush interval per connection, on a request already being served', async () => {
    for (let i = 0; i < 5; i++) expect((await call('/v1/connections/crm/token', APP)).status).toBe(200);
    expect(writes).toEqual([]);
    clock.advance(SERVED_FLUSH_MS);
    expect((await call('/v1/connections/crm/token', APP)).status).toBe(200);
    const hour = Math.floor(clock.now() / HOUR_MS);
    expect(writes).toEqual([{ connection: 'crm', hour, count: 5 }]);
    const crm = (await store.scanRecords({ servedHours: [hour] })).find((r: RecordSummary) => r.connection === 'crm');
    expect(crm?.served).toEqual([{ hour, count: 5 }]);
  });
});

describe('GET /v1/status', () => {
  it("answers admins every connection's health, unhealthy first, a page at a time", async () => {
    const first = await call('/v1/status', ADMIN, { limit: '3' });
    expect(first.status).toBe(200);
    const rows = first.json.connections as { connection: string; state: string; served_last_hour: number; token?: Record<string, unknown> }[];
    expect(rows.map((r) => [r.connection, r.state])).toEqual([
      ['idle-0', 'no-token'],
      ['idle-1', 'no-token'],
      ['idle-2', 'no-token'],
    ]);
    expect(first.json.total).toBe(5);
    expect(first.json.next).toBe('3');
    const second = await call('/v1/status', ADMIN, { limit: '3', next: '3' });
    const last = second.json.connections as typeof rows;
    expect(last.map((r) => [r.connection, r.state])).toEqual([
      ['idle-3', 'no-token'],
      ['crm', 'serving'],
    ]);
    expect(second.json.next).toBeUndefined();
    expect(last[1]!.served_last_hour).toBe(5);
    expect(Object.keys(last[1]!.token!).sort()).toEqual(['expires_at', 'minted_at', 'minted_by', 'refresh_from']);
  });

  it('refuses a caller that is not an admin, and a malformed limit', async () => {
    expect((await call('/v1/status', APP)).status).toBe(403);
    expect((await call('/v1/status', ADMIN, { limit: '0' })).json.code).toBe('invalid_request');
    expect((await call('/v1/status', ADMIN, { next: 'abc' })).json.code).toBe('invalid_request');
  });
});
