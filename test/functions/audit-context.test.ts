import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeHandler } from '../../functions/http';
import { createLogger, createMetrics } from '../../lib/adapters/powertools';
import { ManualClock } from '../../lib/clock';
import { secretFor, vendorConnectionInput } from '../support/connections';
import { lambdaContext, restEvent } from '../support/events';
import { startWorld, type World } from '../support/harness';
import { capturedJsonSince, capturedLogs } from '../support/setup';

// The audit line names who asked and which request, from the request itself: with requests overlapping in one
// handler (as the local server runs them), shared logger state would give one request's line another's caller.

const ACCOUNT = '111111111111';
const callerOf = (i: number) => `arn:aws:iam::${ACCOUNT}:role/service-${i}`;
const ADMIN = `arn:aws:iam::${ACCOUNT}:role/ops`;

const clock = new ManualClock('2026-11-23T10:00:00.000Z', true);
let world: World;
let handle: ReturnType<typeof makeHandler>;

beforeAll(async () => {
  world = await startWorld(
    clock,
    (v) => [vendorConnectionInput(v, 'jwt', { id: 'shared', callers: [`arn:aws:iam::${ACCOUNT}:role/service-*`] })],
    { lifetime: 3600 },
    (v) => ({ 'broker/jwt-test': secretFor(v, 'jwt') }),
  );
  handle = makeHandler({ broker: world.broker({ config: { ...world.config, admins: [ADMIN] } }), logger: createLogger(), metrics: createMetrics() });
});
afterAll(() => world.close());


describe('the audit line under overlapping requests', () => {
  it('carries each request its own caller and request id, token and status reads alike', async () => {
    const from = capturedLogs().length;
    const events = [
      ...Array.from({ length: 8 }, (_, i) => restEvent({ method: 'GET', path: '/v1/connections/shared/token', userArn: callerOf(i) })),
      restEvent({ method: 'GET', path: '/v1/connections/shared/status', userArn: ADMIN }),
      restEvent({ method: 'GET', path: '/v1/connections/shared/status', userArn: ADMIN }),
    ];
    const answers = await Promise.all(events.map((e) => handle(e, lambdaContext())));
    expect(answers.map((a) => a.statusCode)).toEqual(events.map(() => 200));
    const audit = capturedJsonSince(from).filter((l) => l.status !== undefined);
    expect(audit).toHaveLength(events.length);
    for (const e of events) {
      const own = audit.filter((l) => l.requestId === e.requestContext.requestId);
      expect(own, `the audit line of ${e.requestContext.requestId}`).toHaveLength(1);
      expect(own[0]).toMatchObject({ caller: e.requestContext.identity.userArn, connection: 'shared', status: 200 });
    }
    expect(audit.filter((l) => l.message === 'status read by an admin')).toHaveLength(2);
  });
});
