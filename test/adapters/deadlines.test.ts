import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterEach, describe, expect, it } from 'vitest';
import { DYNAMODB_BUDGET, KMS_BUDGET, SECRETS_MANAGER_BUDGET, type CallBudget } from '../../lib/adapters/aws';
import { DynamoTokenStore, createDynamoClient } from '../../lib/adapters/dynamodb';
import { ensureTable } from '../../lib/adapters/dynamodb-setup';
import { KmsKeyRing } from '../../lib/adapters/kms';
import { SecretsManagerSource } from '../../lib/adapters/secrets-manager';
import { DependencyUnavailableError, StoreUnavailableError } from '../../lib/errors';
import { refusedEndpoint, startDynaliteProcess, startHungEndpoint } from '../support/hang';

// Every AWS call aborts at its deadline, retries included (DESIGN.md "How AWS runs it"). The hangs are real: a
// server that accepts and never answers, and a dynalite process stopped with SIGSTOP. Timing is checked only as a
// generous upper bound; what proves the abort is the error's cause and the connections the client closed.

const AWS = { region: 'us-east-1', credentials: { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'local-secret-key' } };
const SLACK_MS = 2_000; // a loaded 2-core machine
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function settled<T>(p: Promise<T>): Promise<{ err: unknown; ms: number }> {
  const started = performance.now();
  try {
    await p;
    return { err: undefined, ms: performance.now() - started };
  } catch (err) {
    return { err, ms: performance.now() - started };
  }
}

function expectAborted(result: { err: unknown; ms: number }, budget: CallBudget, type: typeof DependencyUnavailableError) {
  expect(result.err).toBeInstanceOf(type);
  expect((result.err as Error & { code: string }).code).toBe('service_unavailable');
  // The SDK's own per-attempt timeout or the call's total deadline: either way a timeout, not a refusal.
  expect(((result.err as Error).cause as Error | undefined)?.name).toBe('TimeoutError');
  expect(result.ms).toBeLessThan(budget.totalMs + SLACK_MS);
}

describe('the budgets', () => {
  it.each([
    ['DynamoDB', DYNAMODB_BUDGET],
    ['KMS', KMS_BUDGET],
    ['Secrets Manager', SECRETS_MANAGER_BUDGET],
  ] as const)('%s: every configured attempt fits in the whole call', (_name, b) => {
    expect(b.maxAttempts * b.attemptMs).toBeLessThanOrEqual(b.totalMs);
    expect(b.connectMs).toBeLessThanOrEqual(b.attemptMs);
  });

  it('a table that does not answer is known to be down well within the 3 s the HTTP answer has', () => {
    expect(DYNAMODB_BUDGET.totalMs).toBeLessThanOrEqual(2_000);
  });
});

describe('the per-attempt timeout, given to the client as handler options', () => {
  it('aborts each attempt at requestTimeout: a hung server is given up long before the call deadline', async () => {
    const hung = await startHungEndpoint();
    cleanups.push(() => hung.close());
    // Attempts of 300 ms, a whole call of 20 s: only the handler's own timeout can end this early.
    const budget: CallBudget = { connectMs: 300, attemptMs: 300, maxAttempts: 2, totalMs: 20_000 };
    const client = createDynamoClient({ endpoint: hung.endpoint, ...AWS }, budget);
    cleanups.push(() => client.destroy());
    const result = await settled(new DynamoTokenStore(client, 'tokens', budget.totalMs).read('jwt'));
    expect(result.err).toBeInstanceOf(StoreUnavailableError);
    expect(((result.err as Error).cause as Error | undefined)?.name).toBe('TimeoutError');
    expect(result.ms).toBeLessThan(budget.maxAttempts * budget.attemptMs + SLACK_MS);
    expect(hung.accepted()).toBe(budget.maxAttempts);
  });
});

describe('the token table (DynamoDB) at its deadline', () => {
  it('a server that accepts and never answers: StoreUnavailableError, the connections aborted', async () => {
    const hung = await startHungEndpoint();
    cleanups.push(() => hung.close());
    const client = createDynamoClient({ endpoint: hung.endpoint, ...AWS });
    cleanups.push(() => client.destroy());
    const store = new DynamoTokenStore(client, 'tokens');

    const result = await settled(store.read('jwt'));
    expectAborted(result, DYNAMODB_BUDGET, StoreUnavailableError);
    expect(hung.accepted()).toBeGreaterThanOrEqual(1);
    expect(hung.accepted()).toBeLessThanOrEqual(DYNAMODB_BUDGET.maxAttempts);
    // Every connection it opened was torn down by the client, not left waiting.
    for (let i = 0; i < 100 && hung.closedByClient() < hung.accepted(); i++) await new Promise((r) => setTimeout(r, 20));
    expect(hung.closedByClient()).toBe(hung.accepted());
  });

  it('a dynalite stopped with SIGSTOP mid-run: every kind of call gives StoreUnavailableError, and it recovers on SIGCONT', async () => {
    const db = await startDynaliteProcess();
    cleanups.push(() => db.close());
    const raw = new DynamoDBClient({ endpoint: db.endpoint, ...AWS });
    await ensureTable(raw, 'tokens');
    raw.destroy();
    const client = createDynamoClient({ endpoint: db.endpoint, ...AWS });
    cleanups.push(() => client.destroy());
    const store = new DynamoTokenStore(client, 'tokens');
    expect(await store.read('jwt')).toEqual({}); // a warm, kept-alive connection, as in Lambda

    db.stop();
    const now = Date.now();
    const results = await Promise.all([
      settled(store.read('jwt')),
      settled(store.acquireLease('jwt', { fence: 'f1', holder: 'me', now, until: now + 15_000 })),
      settled(store.releaseLease('jwt', 'f1')),
    ]);
    for (const r of results) expectAborted(r, DYNAMODB_BUDGET, StoreUnavailableError);

    db.resume();
    // The calls cut off above may still land once it resumes: a claim past their lease takes it either way.
    const later = now + 16_000;
    expect((await store.acquireLease('jwt', { fence: 'f2', holder: 'me', now: later, until: later + 15_000 })).acquired).toBe(true);
  });

  it('a refused connection: StoreUnavailableError at once, within the budget', async () => {
    const client = createDynamoClient({ endpoint: await refusedEndpoint(), ...AWS });
    cleanups.push(() => client.destroy());
    const result = await settled(new DynamoTokenStore(client, 'tokens').read('jwt'));
    expect(result.err).toBeInstanceOf(StoreUnavailableError);
    expect(((result.err as Error).cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
    expect(result.ms).toBeLessThan(DYNAMODB_BUDGET.totalMs + SLACK_MS);
  });
});

describe('KMS and Secrets Manager at their deadlines', () => {
  it('KMS Decrypt and GenerateDataKey against a server that never answers: service_unavailable, aborted', async () => {
    const hung = await startHungEndpoint();
    cleanups.push(() => hung.close());
    const ring = new KmsKeyRing('arn:aws:kms:us-east-1:111111111111:key/k', undefined, { endpoint: hung.endpoint, ...AWS });
    const results = await Promise.all([
      settled(ring.decryptDataKey(new Uint8Array(32), { connection: 'jwt' })),
      settled(ring.generateDataKey({ connection: 'jwt' })),
    ]);
    for (const r of results) expectAborted(r, KMS_BUDGET, DependencyUnavailableError);
    expect(hung.accepted()).toBeGreaterThanOrEqual(2);
  });

  it('Secrets Manager GetSecretValue against a server that never answers: service_unavailable, aborted', async () => {
    const hung = await startHungEndpoint();
    cleanups.push(() => hung.close());
    const source = new SecretsManagerSource(undefined, { endpoint: hung.endpoint, ...AWS });
    const result = await settled(source.getSecret('broker/jwt'));
    expectAborted(result, SECRETS_MANAGER_BUDGET, DependencyUnavailableError);
    expect(hung.accepted()).toBeGreaterThanOrEqual(1);
  });
});
