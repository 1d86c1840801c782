import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config';
import { HOUR_MS, healthOf, servedLastHour, unhealthyFirst, type ConnectionHealth } from '../../lib/console/health';
import { renderConsole } from '../../lib/console/render';
import { parseQuery, viewOf } from '../../lib/console/view';
import { fingerprint } from '../../lib/fingerprint';
import type { RecordSummary } from '../../lib/ports';

// A connection's state from its record, at an exact time, and what the renderer makes of anything a record holds.

const NOW = Date.parse('2026-12-04T10:15:00.000Z');
const [oauth, basic] = parseConfig({
  connections: [
    { id: 'crm', dialect: 'oauth2', tokenUrl: 'https://vendor.example/token', secretId: 's/crm', refreshBefore: 120, prewarm: true },
    { id: 'basic', dialect: 'docoon-basic', secretId: 's/basic' },
  ],
}).connections as [never, never];

const token = (extra: Partial<NonNullable<RecordSummary['token']>> = {}): NonNullable<RecordSummary['token']> => ({
  connection: 'crm',
  tokenType: 'Bearer',
  mintedAt: NOW - 600_000,
  expiresAt: NOW + 300_000,
  lifetime: 900,
  secretVersion: 'version-7',
  fingerprint: 'tokenfp00001',
  mintedBy: 'instance-a',
  ...extra,
});
const record = (r: Partial<RecordSummary>): RecordSummary => ({ connection: 'crm', served: [], ...r });

describe('a connection’s state', () => {
  it('serving: a live token, its refresh window from refreshBefore, the secret version fingerprinted', () => {
    const h = healthOf(oauth, record({ token: token(), mintedAt: NOW - 600_000 }), NOW);
    expect(h).toMatchObject({ state: 'serving', prewarm: true, secretVersion: fingerprint('version-7') });
    expect(h.token).toEqual({ mintedAt: NOW - 600_000, refreshFrom: NOW + 180_000, expiresAt: NOW + 300_000, mintedBy: 'instance-a', expired: false });
  });

  it('refreshing while a lease lasts, no token once the last one expired, no token yet when never written', () => {
    expect(healthOf(oauth, record({ token: token(), lease: { fence: 'f', holder: 'instance-b', until: NOW + 1 } }), NOW)).toMatchObject({ state: 'refreshing', refreshingBy: 'instance-b' });
    expect(healthOf(oauth, record({ token: token(), lease: { fence: 'f', holder: 'instance-b', until: NOW } }), NOW).state).toBe('serving');
    expect(healthOf(oauth, record({ token: token({ expiresAt: NOW }) }), NOW)).toMatchObject({ state: 'no-token', token: { expired: true } });
    expect(healthOf(oauth, undefined, NOW).state).toBe('no-token');
  });

  it('cooling down while a believable cooldown runs; failing when the last exchange failed after the last mint', () => {
    const failure = { code: 'vendor_unavailable', at: NOW - 1_000, coolUntil: NOW + 29_000 };
    expect(healthOf(oauth, record({ failure }), NOW)).toMatchObject({ state: 'cooling-down', cooldown: { code: 'vendor_unavailable', until: NOW + 29_000 } });
    // A cooldown no broker would write (beyond the longest) is not believed: the failure still shows.
    expect(healthOf(oauth, record({ failure: { ...failure, coolUntil: NOW + 3_600_000 } }), NOW).state).toBe('failing');
    expect(healthOf(oauth, record({ token: token(), mintedAt: NOW - 600_000, failure: { code: 'vendor_timeout', at: NOW - 60_000 } }), NOW).state).toBe('failing');
    expect(healthOf(oauth, record({ token: token(), mintedAt: NOW - 600_000, failure: { code: 'vendor_timeout', at: NOW - 700_000 } }), NOW).state).toBe('serving');
  });

  it('a static credential serves without a token', () => {
    expect(healthOf(basic, undefined, NOW)).toMatchObject({ state: 'serving', static: true });
  });

  it('sorts unhealthy first, the longest failing first', () => {
    const h = (id: string, state: ConnectionHealth['state'], at?: number): ConnectionHealth => ({
      id, dialect: 'oauth2', static: false, state, prewarm: false, servedLastHour: 0, ...(at === undefined ? {} : { lastFailure: { code: 'vendor_timeout', at } }),
    });
    const sorted = [h('a', 'serving'), h('b', 'failing', 5), h('c', 'no-token'), h('d', 'failing', 1), h('e', 'cooling-down', 3), h('f', 'refreshing')].sort(unhealthyFirst);
    expect(sorted.map((x) => x.id)).toEqual(['d', 'b', 'e', 'c', 'f', 'a']);
  });
});

describe('requests served in the last hour', () => {
  it("is this hour's count and the part of the last hour's still inside the window", () => {
    const hour = Math.floor(NOW / HOUR_MS);
    expect(servedLastHour([{ hour: hour - 1, count: 100 }, { hour, count: 10 }], NOW)).toBe(85);
    expect(servedLastHour([{ hour: hour - 2, count: 100 }], NOW)).toBe(0);
  });
});

describe('the view and its HTML', () => {
  it('escapes whatever a record holds, and parses a query it is given into known values only', () => {
    const h = healthOf(oauth, record({ token: token({ mintedBy: '<img src=x onerror=alert(1)>' }), failure: { code: '"><b>', at: NOW - 5 } }), NOW);
    const html = renderConsole(viewOf([h], parseQuery({}), NOW), { kind: 'page', path: '/console' });
    expect(html).not.toContain('<img');
    expect(html).not.toContain('"><b>');
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(html).not.toContain('tokenfp00001');
    expect(parseQuery({ state: 'failing', search: ' crm ', page: '3' })).toEqual({ state: 'failing', search: 'crm', page: 3 });
    expect(parseQuery({ state: 'broken', search: 'a b', page: '0' })).toEqual({ page: 1 });
  });
});
