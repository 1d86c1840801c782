import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryTokenStore } from '../../lib/adapters/memory-store';
import { parseConfig } from '../../lib/config';
import { consolePage } from '../../lib/console/page';
import { startLocalServer, type RunningServer } from '../../lib/local/server';
import { attributes, openBrowser, screenshot, type Browser } from './browser';

// 10,000 connections, a generated set: the page stays a page (50 rows), and paging, the state filter and the search
// reach any of them.

const NOW = Date.parse('2026-12-04T10:00:00.000Z');
const COUNT = 10_000;
const id = (i: number) => `conn-${String(i).padStart(5, '0')}`;

let server: RunningServer;
let browser: Browser;

beforeAll(async () => {
  const config = parseConfig({
    connections: Array.from({ length: COUNT }, (_, i) => ({ id: id(i), dialect: 'oauth2', tokenUrl: 'https://vendor.example/token', secretId: `broker/${id(i)}` })),
  });
  const store = new MemoryTokenStore();
  // Every 100th connection failing (100), the other even ones holding a token (4,900), the odd ones never minted.
  for (let i = 0; i < COUNT; i += 2) {
    await store.acquireLease(id(i), { fence: `f${i}`, holder: 'instance-a', now: NOW - 60_000, until: NOW - 50_000 });
    if (i % 100 === 0) await store.recordFailure(id(i), `f${i}`, { code: 'vendor_rejected_credentials', vendorStatus: 401, at: NOW - i });
    else {
      await store.putToken(
        { connection: id(i), ciphertext: new Uint8Array([1]), tokenType: 'Bearer', mintedAt: NOW - 60_000, expiresAt: NOW + 840_000, lifetime: 900, secretVersion: 'v1', fingerprint: `fp${i}`, mintedBy: 'instance-a' },
        `f${i}`,
      );
    }
  }
  const source = { connections: () => config.connections, records: store };
  server = await startLocalServer({
    handler: () => Promise.resolve({ statusCode: 404, body: '' }),
    callers: new Map(),
    region: 'us-east-1',
    clock: { now: () => NOW, sleep: () => Promise.resolve() },
    console: (query) => consolePage(source, { query: Object.fromEntries(query), now: NOW, nav: { kind: 'page', path: '/console' }, render: { document: true } }),
  });
  browser = await openBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe('the console with 10,000 connections', () => {
  it('shows one page of 50, the failing first, and pages on', async () => {
    const { page } = browser;
    await page.goto(`${server.url}/console`);
    const first = await attributes(page, 'tbody tr', 'data-connection');
    expect(first).toHaveLength(50);
    expect(await page.locator('.pager').innerText()).toContain('10000 of 10000 connections · page 1 of 200');
    expect(await page.locator('a[data-filter="failing"] .count').innerText()).toBe('100');
    expect(new Set(await attributes(page, 'tbody tr', 'data-state'))).toEqual(new Set(['failing']));
    await screenshot(page, 'ten-thousand');
    await page.click('a.pager-next');
    const second = await attributes(page, 'tbody tr', 'data-connection');
    expect(second).toHaveLength(50);
    expect(second.filter((c) => first.includes(c))).toEqual([]);
    expect(await page.locator('.pager').innerText()).toContain('page 2 of 200');
  });

  it('filters to a state and finds one connection by id among them all', async () => {
    const { page } = browser;
    await page.goto(`${server.url}/console?state=serving&page=99`);
    expect(await page.locator('.pager').innerText()).toContain('4900 of 10000 connections · page 98 of 98');
    expect(new Set(await attributes(page, 'tbody tr', 'data-state'))).toEqual(new Set(['serving']));
    await page.click('a[data-filter="all"]');
    await page.fill('input[name="search"]', 'conn-09999');
    await page.click('form.search button');
    expect(await attributes(page, 'tbody tr', 'data-connection')).toEqual(['conn-09999']);
    expect(await attributes(page, 'tbody tr', 'data-state')).toEqual(['no-token']);
  });
});
