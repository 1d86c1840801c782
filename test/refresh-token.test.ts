import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../lib/clock';
import { mintToken, readCredentials, type ExchangeOptions } from '../lib/exchange';
import { nodeHttpClient } from '../lib/http';
import { SandboxVendor } from '../lib/local/sandbox-vendor';
import { connectionFor, secretFor } from './support/connections';
import { expectCode } from './support/expect';
import { registerSecret } from './support/secrets-registry';

// Refresh tokens against the sandbox's docoon (a password grant that answers a refresh token, used once each).

registerSecret('not-the-docoon-client-secret');
const clock = new ManualClock('2026-11-23T10:00:00.000Z', true);
let vendor: SandboxVendor;
const opts = (): ExchangeOptions => ({ http: nodeHttpClient, clock, backoffBaseMs: 1, backoffCapMs: 2 });

beforeAll(async () => {
  vendor = await SandboxVendor.start({ clock, refreshTokens: true });
});
afterAll(() => vendor.close());
beforeEach(() => {
  vendor.requests.length = 0;
});

const form = (i: number) => Object.fromEntries(new URLSearchParams(vendor.requests[i]?.body ?? ''));

describe('refresh tokens in the exchange', () => {
  it('keeps the refresh token of an answer, and the next mint asks with it, authenticated as the grant was', async () => {
    const conn = connectionFor(vendor, 'docoon');
    const creds = readCredentials(conn, secretFor(vendor, 'docoon'));
    const first = await mintToken(conn, creds, opts());
    expect(first.refreshToken).toMatch(/^docoon-refresh-/);
    expect(first.refresh).toBeUndefined();

    const second = await mintToken(conn, creds, opts(), { refreshToken: first.refreshToken! });
    expect(second.refresh).toBe('used');
    expect(form(1)).toEqual({ grant_type: 'refresh_token', refresh_token: first.refreshToken });
    expect(vendor.requests[1]?.headers.authorization).toBe(vendor.requests[0]?.headers.authorization);
    // The vendor rotates it: the new one is kept.
    expect(second.refreshToken).toMatch(/^docoon-refresh-/);
    expect(second.refreshToken).not.toBe(first.refreshToken);
  });

  it('falls back to the connection grant once when the vendor refuses the refresh token (invalid_grant)', async () => {
    const conn = connectionFor(vendor, 'docoon');
    const creds = readCredentials(conn, secretFor(vendor, 'docoon'));
    const first = await mintToken(conn, creds, opts());
    vendor.revokeRefreshTokens();
    vendor.requests.length = 0;
    const next = await mintToken(conn, creds, opts(), { refreshToken: first.refreshToken! });
    expect(next.refresh).toBe('refused');
    expect(vendor.requests.map((r) => Object.fromEntries(new URLSearchParams(r.body)).grant_type)).toEqual([
      'refresh_token',
      'password',
    ]);
    expect(next.refreshToken).toMatch(/^docoon-refresh-/);
  });

  it('does not fall back when the vendor refuses the client itself', async () => {
    const conn = connectionFor(vendor, 'docoon');
    const good = readCredentials(conn, secretFor(vendor, 'docoon'));
    const { refreshToken } = await mintToken(conn, good, opts());
    vendor.requests.length = 0;
    const bad = readCredentials(conn, { ...secretFor(vendor, 'docoon'), client_secret: 'not-the-docoon-client-secret' });
    await expectCode(mintToken(conn, bad, opts(), { refreshToken: refreshToken! }), 'vendor_rejected_credentials');
    expect(vendor.requests).toHaveLength(1);
  });
});
