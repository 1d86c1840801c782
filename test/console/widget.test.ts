import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeHandler, sourceFromEnvironment, type WidgetEvent } from '../../functions/console-widget';
import { DynamoConnectionRegistry } from '../../lib/adapters/connections-table';
import { createDynamoClient } from '../../lib/adapters/dynamodb';
import { ENV } from '../../lib/contract';
import { parseConfig } from '../../lib/config';
import { HOUR_MS } from '../../lib/console/health';
import { startDynalite, type RunningDynalite } from '../../lib/local/dynalite';
import type { DynamoTokenStore } from '../../lib/adapters/dynamodb';
import { startTable } from '../support/harness';
import { attributes, openBrowser, screenshot, type Browser } from './browser';

// The widget function as CloudWatch calls it (the custom widget event: `describe`, or the widget's context with its
// params and forms, and a <cwdb-action>'s params on top), reading a real table on dynalite; its HTML in Chromium.

const NOW = Date.parse('2026-12-04T10:30:00.000Z');
const ARN = 'arn:aws:lambda:eu-west-1:111111111111:function:customWidget-token-broker-test-console';
const config = parseConfig({
  connections: ['billing', 'crm', 'ledger', 'mailer'].map((id) => ({
    id,
    dialect: 'oauth2',
    tokenUrl: 'https://vendor.example/token',
    secretId: `broker/${id}`,
    refreshBefore: 120,
  })),
});

/** CloudWatch's widgetContext, as its documentation shows it. */
function widgetContext(extra: Partial<NonNullable<WidgetEvent['widgetContext']>> = {}): WidgetEvent['widgetContext'] {
  return {
    dashboardName: 'token-broker-test',
    widgetId: 'widget-3',
    accountId: '111111111111',
    locale: 'en',
    timezone: { label: 'UTC', offsetISO: '+00:00', offsetInMinutes: 0 },
    period: 300,
    isAutoPeriod: true,
    timeRange: { mode: 'relative', start: NOW - 3 * HOUR_MS, end: NOW, relativeStart: 3 * HOUR_MS },
    theme: 'light',
    linkCharts: true,
    title: 'Connections: health, unhealthy first',
    forms: { all: {} },
    params: {},
    width: 1200,
    height: 600,
    ...extra,
  } as WidgetEvent['widgetContext'];
}

let db: RunningDynalite;
let store: DynamoTokenStore;
let browser: Browser;
let widget: ReturnType<typeof makeHandler>;
const context = { invokedFunctionArn: ARN };

beforeAll(async () => {
  db = await startDynalite();
  store = (await startTable(db)).store;
  const lease = (id: string) => store.acquireLease(id, { fence: `f-${id}`, holder: 'instance-a', now: NOW - 60_000, until: NOW - 45_000 });
  await lease('crm');
  await store.putToken(
    {
      connection: 'crm',
      ciphertext: new Uint8Array([9, 9, 9]),
      tokenType: 'Bearer',
      mintedAt: NOW - 60_000,
      expiresAt: NOW + 840_000,
      lifetime: 900,
      secretVersion: 'version-one',
      fingerprint: 'tokenfp00001',
      mintedBy: 'instance-a',
    },
    'f-crm',
  );
  await lease('ledger');
  await store.recordFailure('ledger', 'f-ledger', { code: 'vendor_timeout', at: NOW - 30_000 });
  await lease('billing');
  await store.recordFailure('billing', 'f-billing', { code: 'vendor_unavailable', vendorStatus: 429, at: NOW - 10_000, coolUntil: NOW + 50_000 });
  await store.addServed('crm', Math.floor(NOW / HOUR_MS) - 1, 100);
  await store.addServed('crm', Math.floor(NOW / HOUR_MS), 12);
  widget = makeHandler({ source: { connections: () => config.connections, records: store }, clock: { now: () => NOW, sleep: () => Promise.resolve() },
    // dynalite on 2 busy cores is no measure of DynamoDB: the production deadline is the bench's to prove.
    read: { timeoutMs: 20_000 },
  });
  browser = await openBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await db?.close();
});

describe('the console widget function', () => {
  it("answers CloudWatch's describe call with its documentation", async () => {
    const doc = await widget({ describe: true, widgetContext: widgetContext() }, context);
    expect(doc).toContain('## token-broker connections');
    expect(doc).toContain('`state`');
  });

  it('returns the view as HTML that a browser renders, unhealthy first, with the numbers', async () => {
    const html = await widget({ widgetContext: widgetContext() }, context);
    expect(html).not.toContain('could not be read');
    const { page } = browser;
    await page.setContent(html);
    expect(await attributes(page, 'tbody tr', 'data-connection')).toEqual(['ledger', 'billing', 'mailer', 'crm']);
    expect(await attributes(page, 'tbody tr', 'data-state')).toEqual(['failing', 'cooling-down', 'no-token', 'serving']);
    const crm = await page.locator('tr[data-connection="crm"]').innerText();
    expect(crm).toContain('expires in 14 min 0 s');
    expect(crm).toContain('by instance-a');
    // 12 this hour, and half of the last hour's 100 (the window still covers half of it).
    expect(await page.locator('tr[data-connection="crm"] .served').innerText()).toBe('62');
    expect(await page.locator('tr[data-connection="billing"]').innerText()).toContain('vendor_unavailable, 50 s left');
    expect(html).not.toContain('tokenfp00001');
    expect(html).not.toContain('<script');
    await screenshot(page, 'widget');
  });

  it("links call the function again with their query, CloudWatch's <cwdb-action> way", async () => {
    const html = await widget({ widgetContext: widgetContext() }, context);
    await browser.page.setContent(html);
    const actions = await browser.page.locator('a[data-filter="failing"] + cwdb-action').all();
    expect(actions).toHaveLength(1);
    expect(await actions[0]!.getAttribute('endpoint')).toBe(ARN);
    expect(await actions[0]!.getAttribute('action')).toBe('call');
    const params = JSON.parse(await actions[0]!.innerText()) as WidgetEvent;
    expect(params).toEqual({ state: 'failing', page: 1 });
    const filtered = await widget({ ...params, widgetContext: widgetContext() }, context);
    await browser.page.setContent(filtered);
    expect(await attributes(browser.page, 'tbody tr', 'data-connection')).toEqual(['ledger']);
  });

  it("searches with the widget's form, and takes its params from the dashboard", async () => {
    await browser.page.setContent(await widget({ page: 1, widgetContext: widgetContext({ forms: { all: { search: 'mail' } } }) }, context));
    expect(await attributes(browser.page, 'tbody tr', 'data-connection')).toEqual(['mailer']);
    await browser.page.setContent(await widget({ widgetContext: widgetContext({ params: { state: 'serving' } }) }, context));
    expect(await attributes(browser.page, 'tbody tr', 'data-connection')).toEqual(['crm']);
  });

  it('drops a query it cannot parse instead of echoing it', async () => {
    const html = await widget({ state: '<img src=x>', search: '"><script>', page: 'x', widgetContext: widgetContext() }, context);
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<script');
    await browser.page.setContent(html);
    expect(await attributes(browser.page, 'tbody tr', 'data-connection')).toHaveLength(4);
  });
});

describe("the deployed widget's source", () => {
  it('lists the connections registered through the API beside the file\'s, from the same table', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'widget-source-'));
    const file = join(dir, 'broker.config.json');
    writeFileSync(file, JSON.stringify({ connections: [{ id: 'billing', dialect: 'oauth2', tokenUrl: 'https://vendor.example/token', secretId: 'broker/billing' }] }));
    const table = await startTable(db);
    const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
    const registry = new DynamoConnectionRegistry(createDynamoClient({ endpoint: db.endpoint, region: 'us-east-1', credentials }), table.name);
    const definition = { id: 'tenant-42', dialect: 'oauth2', tokenUrl: 'https://vendor.example/token', secretId: 'token-broker/test/tenant-42' };
    await registry.put({ id: 'tenant-42', definition, etag: 'etag-1', changedAt: NOW, changedBy: 'arn:aws:iam::111111111111:role/admin' });
    const env = { [ENV.config]: file, [ENV.table]: table.name, AWS_ENDPOINT_URL_DYNAMODB: db.endpoint, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local' };
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    Object.assign(process.env, env);
    try {
      const ids = (await sourceFromEnvironment().connections()).map((c) => c.id);
      expect(ids).toEqual(['billing', 'tenant-42']);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});
