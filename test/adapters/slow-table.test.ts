import { afterEach, describe, expect, it } from 'vitest';
import { DYNAMODB_BUDGET } from '../../lib/adapters/aws';
import { DynamoTokenStore, createDynamoClient } from '../../lib/adapters/dynamodb';
import { BUDGET_DEFAULTS } from '../../lib/budget';
import { systemClock } from '../../lib/clock';
import { StoreUnavailableError } from '../../lib/errors';
import { expectCode } from '../support/expect';
import { secretFor, vendorConnectionInput } from '../support/connections';
import { RecordingMetrics, startWorld, type World } from '../support/harness';
import { startDelayingProxy } from '../support/hang';

// The request budget against a real table: dynalite behind a loopback proxy that holds back every request, so each
// call answers, slowly, within its own deadline. The DynamoDB store gives up at the deadline a call is given, and
// a broker over it answers a caller that would wait on another instance's lease within 3 s.

const CALLER = 'arn:aws:iam::111111111111:role/caller';
const AWS = { region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } };
const ANSWER_WITHIN_MS = 3_000;
const SLACK_MS = 2_000; // a loaded 2-core machine

let world: World | undefined;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await world?.close();
  world = undefined;
});

async function slowDynalite() {
  world = await startWorld(
    systemClock,
    (v) => [vendorConnectionInput(v, 'jwt', { id: 'jwt', callers: [CALLER] })],
    { lifetime: 3600 },
    (v) => ({ 'broker/jwt-test': secretFor(v, 'jwt') }),
  );
  const proxy = await startDelayingProxy(world.db.endpoint);
  cleanups.push(() => proxy.close());
  // The production client and budget: 600 ms an attempt, 2 s a call.
  const client = createDynamoClient({ endpoint: proxy.endpoint, ...AWS }, DYNAMODB_BUDGET);
  cleanups.push(() => client.destroy());
  return { w: world, proxy, store: new DynamoTokenStore(client, world.table.name) };
}

describe('the DynamoDB store at a slow table', () => {
  it('gives up at the deadline a call is given, shorter than its own, and answers when given enough', async () => {
    const { proxy, store } = await slowDynalite();
    proxy.delay.ms = 400;
    const err = await store.read('jwt', { timeoutMs: 150 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect(((err as Error).cause as Error | undefined)?.name).toBe('TimeoutError');
    expect(await store.read('jwt', { timeoutMs: DYNAMODB_BUDGET.totalMs })).toEqual({});
    await expect(store.read('jwt', { timeoutMs: 0 })).rejects.toBeInstanceOf(StoreUnavailableError);
  });
});

describe('a broker over a slow dynalite', () => {
  it('a caller that would wait on another instance lease answers 503 within 3 s, without a vendor call', async () => {
    const { w, proxy, store } = await slowDynalite();
    await w.table.store.acquireLease('jwt', { fence: 'other', holder: 'other-instance', now: Date.now(), until: Date.now() + 15_000 });
    proxy.delay.ms = 400;
    const metrics = new RecordingMetrics();
    const broker = w.broker({ clock: systemClock, store, metrics, options: { ...BUDGET_DEFAULTS } });
    const started = performance.now();
    await expectCode(broker.getToken(CALLER, 'jwt'), 'service_unavailable');
    expect(performance.now() - started).toBeLessThan(ANSWER_WITHIN_MS + SLACK_MS);
    expect(w.vendor.received()).toBe(0);
    expect(broker.pendingWork()).toBe(0);
  }, 30_000);
});
