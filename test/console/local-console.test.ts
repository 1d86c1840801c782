import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalBroker, type LocalBroker } from '../../functions/local';
import { HOUR_MS } from '../../lib/console/health';
import { fingerprint } from '../../lib/fingerprint';
import { startDynalite, type RunningDynalite } from '../../lib/local/dynalite';
import { SandboxVendor } from '../../lib/local/sandbox-vendor';
import type { DynamoTokenStore } from '../../lib/adapters/dynamodb';
import { TokenBrokerClient } from '../../packages/client/src/index';
import { secretFor } from '../support/connections';
import { startTable } from '../support/harness';
import { CALLER } from '../support/local-broker';
import { knownSecrets, registerSecretValue } from '../support/secrets-registry';
import { attributes, openBrowser, screenshot, type Browser } from './browser';

// `npm start`'s console in a real headless Chromium: four connections, one in each state the table can put them
// in, seeded through the store the broker uses (the healthy one minted by a real signed request).

let db: RunningDynalite;
let vendor: SandboxVendor;
let dir: string;
let local: LocalBroker;
let store: DynamoTokenStore;
let browser: Browser;
let issued: string;
let offset = 0;
const START = Date.now();
const clock = { now: () => START + offset, sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)) };

beforeAll(async () => {
  db = await startDynalite();
  vendor = await SandboxVendor.start();
  dir = mkdtempSync(join(tmpdir(), 'console-'));
  const table = await startTable(db);
  store = table.store;
  const conn = (id: string, kind: 'digitaleo' | 'jwt', extra = {}) => ({
    id,
    dialect: kind === 'jwt' ? 'oauth2' : 'digitaleo',
    tokenUrl: vendor.tokenUrl(kind),
    secretId: id,
    callers: [CALLER.arn],
    ...extra,
  });
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      connections: [conn('crm-healthy', 'digitaleo', { prewarm: true }), conn('sms-cooling', 'jwt'), conn('erp-failing', 'digitaleo'), conn('docs-never', 'jwt')],
      admins: [],
    }),
  );
  const secrets = {
    'crm-healthy': secretFor(vendor, 'digitaleo'),
    'sms-cooling': secretFor(vendor, 'jwt'),
    'erp-failing': secretFor(vendor, 'digitaleo'),
    'docs-never': secretFor(vendor, 'jwt'),
  };
  for (const s of Object.values(secrets)) registerSecretValue(s);
  writeFileSync(join(dir, 'secrets.json'), JSON.stringify(secrets));
  writeFileSync(join(dir, 'callers.json'), JSON.stringify({ [CALLER.accessKeyId]: { secretAccessKey: CALLER.secretAccessKey, arn: CALLER.arn } }));
  local = await startLocalBroker(
    {
      PORT: '0',
      BROKER_CONFIG: join(dir, 'config.json'),
      BROKER_SECRETS_FILE: join(dir, 'secrets.json'),
      BROKER_CALLERS_FILE: join(dir, 'callers.json'),
      BROKER_DATA_DIR: join(dir, 'data'),
      BROKER_TABLE: table.name,
      AWS_ENDPOINT_URL_DYNAMODB: db.endpoint,
    },
    { clock },
  );
  const client = new TokenBrokerClient({ baseUrl: local.url, region: local.region, credentials: CALLER });
  issued = (await client.getToken('crm-healthy', { minTtl: 60 })).accessToken;
  const now = clock.now();
  const fail = async (id: string, failure: Parameters<DynamoTokenStore['recordFailure']>[2]) => {
    await store.acquireLease(id, { fence: `seed-${id}`, holder: 'instance-b', now, until: now + 15_000 });
    await store.recordFailure(id, `seed-${id}`, failure);
  };
  await fail('sms-cooling', { code: 'vendor_unavailable', vendorStatus: 503, at: now - 5_000, coolUntil: now + 25_000 });
  await fail('erp-failing', { code: 'vendor_rejected_credentials', vendorStatus: 401, at: now - 600_000 });
  await store.addServed('crm-healthy', Math.floor(now / HOUR_MS), 7);
  browser = await openBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await local?.close();
  await vendor?.close();
  await db?.close();
  rmSync(dir, { recursive: true, force: true });
});

const row = (id: string) => browser.page.locator(`tr[data-connection="${id}"]`);

describe('the local console', () => {
  it('shows each connection in its state with its numbers, unhealthy first', async () => {
    const { page } = browser;
    await page.goto(local.consoleUrl);
    expect(await attributes(page, 'tbody tr', 'data-connection')).toEqual([
      'erp-failing',
      'sms-cooling',
      'docs-never',
      'crm-healthy',
    ]);
    await expect.poll(() => row('crm-healthy').getAttribute('data-state')).toBe('serving');
    const healthy = await row('crm-healthy').innerText();
    expect(healthy).toContain('serving');
    expect(healthy).toMatch(/expires in \d+ min/);
    expect(healthy).toContain(`by ${local.broker.instanceId}`);
    expect(healthy).toContain('on');
    expect(await row('crm-healthy').locator('.served').innerText()).toBe('7');
    expect(await row('crm-healthy').locator('.life .window').count()).toBe(1);

    const cooling = await row('sms-cooling').innerText();
    expect(await row('sms-cooling').getAttribute('data-state')).toBe('cooling-down');
    expect(cooling).toContain('vendor_unavailable, 25 s left');
    expect(cooling).toContain('(HTTP 503)');

    const failing = await row('erp-failing').innerText();
    expect(await row('erp-failing').getAttribute('data-state')).toBe('failing');
    expect(failing).toContain('vendor_rejected_credentials since 10 min 0 s ago');
    expect(failing).toContain('(HTTP 401)');

    expect(await row('docs-never').getAttribute('data-state')).toBe('no-token');
    expect(await row('docs-never').innerText()).toContain('no token yet');
    await screenshot(page, 'all');
  });

  it('filters by state, and searches by id', async () => {
    const { page } = browser;
    await page.goto(local.consoleUrl);
    for (const state of ['failing', 'cooling-down', 'no-token', 'serving']) {
      await page.click(`a[data-filter="${state}"]`);
      const states = await attributes(page, 'tbody tr', 'data-state');
      expect(states).toEqual([state]);
      await screenshot(page, state);
    }
    await page.click('a[data-filter="all"]');
    await page.fill('input[name="search"]', 'cool');
    await page.click('form.search button');
    expect(await attributes(page, 'tbody tr', 'data-connection')).toEqual(['sms-cooling']);
    expect(page.url()).toContain('search=cool');
  });

  it('holds no secret, no token and no fingerprint of a token', async () => {
    const { page } = browser;
    await page.goto(local.consoleUrl);
    const html = await page.content();
    const leaked = [...knownSecrets()].filter((s) => html.includes(s)).map((s) => fingerprint(s));
    expect(leaked).toEqual([]);
    expect(html.includes(issued)).toBe(false);
    expect(html.includes(fingerprint(issued))).toBe(false);
  });

  it('reloads itself every few seconds', async () => {
    const { page } = browser;
    await page.goto(local.consoleUrl);
    const first = await page.locator('.read').innerText();
    offset += 60_000;
    await expect.poll(() => page.locator('.read').innerText(), { timeout: 10_000, interval: 500 }).not.toBe(first);
    expect(await row('sms-cooling').getAttribute('data-state')).toBe('failing');
  });

  it('is served without a signature, while the API still wants one', async () => {
    expect((await fetch(local.consoleUrl)).headers.get('content-type')).toContain('text/html');
    expect((await fetch(`${local.url}/v1/connections`)).status).toBe(401);
  });
});
