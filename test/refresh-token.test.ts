import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../lib/clock';
import { LocalKeyRing, TokenCipher, openToken, sealToken } from '../lib/crypto';
import { mintToken, readCredentials, type ExchangeOptions } from '../lib/exchange';
import { nodeHttpClient } from '../lib/http';
import { SandboxVendor } from '../lib/local/sandbox-vendor';
import { connectionFor, secretFor, vendorConnectionInput } from './support/connections';
import { RecordingMetrics, startWorld } from './support/harness';
import { capturedLogs } from './support/setup';
import { createLogger, loggerPort } from '../lib/adapters/powertools';
import { expectCode, fp } from './support/expect';
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

describe('refresh tokens in the broker', () => {
  const grants = (v: SandboxVendor) =>
    v.requests.filter((r) => r.kind === 'docoon').map((r) => new URLSearchParams(r.body).get('grant_type'));

  async function world() {
    const w = await startWorld(
      clock,
      (v) => [vendorConnectionInput(v, 'docoon', { id: 'docoon' })],
      { refreshTokens: true, lifetime: 3600 },
      (v) => ({ 'broker/docoon-test': secretFor(v, 'docoon') }),
    );
    return { w, connection: w.config.byId.get('docoon')! };
  }

  it('keeps the refresh token sealed with the token, and the second mint uses it', async () => {
    const { w, connection } = await world();
    try {
      const metrics = new RecordingMetrics();
      const broker = w.broker({ metrics });
      const first = await broker.tokenFor(connection);
      clock.advance(3_600_000);
      const second = await broker.tokenFor(connection);
      expect(second.fingerprint).not.toBe(first.fingerprint);
      expect(grants(w.vendor)).toEqual(['password', 'refresh_token']);
      expect(metrics.get('RefreshTokenMints{outcome=used}')).toBe(1);
      // Another instance, with nothing in memory, reads it from the table.
      clock.advance(3_600_000);
      await w.broker().tokenFor(connection);
      expect(grants(w.vendor)).toEqual(['password', 'refresh_token', 'refresh_token']);
    } finally {
      await w.close();
    }
  });

  it('falls back to the password grant once when the vendor revoked it, records it, and keeps the new one', async () => {
    const { w, connection } = await world();
    try {
      const metrics = new RecordingMetrics();
      const warnings: string[] = [];
      const logger = { info: () => undefined, error: () => undefined, warn: (m: string) => void warnings.push(m) };
      const broker = w.broker({ metrics, logger });
      await broker.tokenFor(connection);
      w.vendor.revokeRefreshTokens();
      clock.advance(3_600_000);
      await broker.tokenFor(connection);
      expect(grants(w.vendor)).toEqual(['password', 'refresh_token', 'password']);
      expect(metrics.get('RefreshTokenMints{outcome=refused}')).toBe(1);
      expect(warnings).toEqual(['the vendor refused the refresh token; minted with the connection grant']);
      clock.advance(3_600_000);
      await broker.tokenFor(connection);
      expect(grants(w.vendor)).toEqual(['password', 'refresh_token', 'password', 'refresh_token']);
    } finally {
      await w.close();
    }
  });

  it('drops it on a rotation: the new secret version mints with the connection grant', async () => {
    const { w, connection } = await world();
    try {
      const broker = w.broker();
      await broker.tokenFor(connection);
      // A new version of the secret (same credentials, another VersionId).
      w.writeSecrets({ 'broker/docoon-test': { ...secretFor(w.vendor, 'docoon'), rotated: '2026-11-23' } });
      const outcome = await broker.rotate(connection);
      expect(outcome.minted).toBe(true);
      expect(grants(w.vendor)).toEqual(['password', 'password']);
      clock.advance(3_600_000);
      await broker.tokenFor(connection);
      expect(grants(w.vendor)).toEqual(['password', 'password', 'refresh_token']);
    } finally {
      await w.close();
    }
  });

  it('never shows it in the table or the logs in clear', async () => {
    const issued: string[] = [];
    const previous = SandboxVendor.onIssue;
    SandboxVendor.onIssue = (t) => {
      previous?.(t);
      issued.push(t);
    };
    const { w, connection } = await world();
    try {
      // The production logger, writing to the console the suite captures and scans for every issued token.
      const broker = w.broker({ logger: loggerPort(createLogger()) });
      await broker.tokenFor(connection);
      clock.advance(3_600_000);
      await broker.tokenFor(connection);
      const minted = capturedLogs().filter((l) => l.includes('minted a token'));
      expect(minted.some((l) => l.includes('refresh_token'))).toBe(true);
      for (const t of issued) expect(capturedLogs().some((l) => l.includes(t))).toBe(false);
      const refreshTokens = issued.filter((t) => t.startsWith('docoon-refresh-'));
      expect(refreshTokens.length).toBe(2);
      const { Items = [] } = await w.table.doc.send(new ScanCommand({ TableName: w.table.name }));
      expect(Items.length).toBeGreaterThan(0);
      for (const item of Items) {
        const text = JSON.stringify(item);
        const bytes = Object.values(item).filter((v): v is Uint8Array => v instanceof Uint8Array);
        for (const t of refreshTokens) {
          expect(text).not.toContain(t);
          for (const b of bytes) expect(Buffer.from(b).includes(t)).toBe(false);
        }
      }
    } finally {
      SandboxVendor.onIssue = previous;
      await w.close();
    }
  });
});

describe('the envelope that carries both', () => {
  const meta = {
    connection: 'c',
    tokenType: 'Bearer',
    expiresAt: 2_000_000,
    mintedAt: 1_000_000,
    lifetime: 1000,
    secretVersion: 'v1',
    fingerprint: 'abc',
    mintedBy: 'i-1',
  };
  it('opens to the same access and refresh tokens, and to no refresh token when there was none', async () => {
    const cipher = new TokenCipher(new LocalKeyRing(), clock);
    const both = await sealToken(cipher, { ...meta, accessToken: 'access-1', refreshToken: 'refresh-1' });
    expect(Object.keys(both)).not.toContain('refreshToken');
    // Compared by fingerprint, so that a failure prints no token.
    const opened = async (sealed: typeof both) => {
      const { accessToken, refreshToken, ...rest } = await openToken(cipher, sealed);
      return { ...rest, accessToken: fp(accessToken), ...(refreshToken === undefined ? {} : { refreshToken: fp(refreshToken) }) };
    };
    expect(await opened(both)).toEqual({ ...meta, accessToken: fp('access-1'), refreshToken: fp('refresh-1') });
    const one = await sealToken(cipher, { ...meta, accessToken: 'access-2' });
    expect(await opened(one)).toEqual({ ...meta, accessToken: fp('access-2') });
  });
  it('binds the refresh token to the item like the token: edited metadata does not open', async () => {
    const cipher = new TokenCipher(new LocalKeyRing(), clock);
    const sealed = await sealToken(cipher, { ...meta, accessToken: 'access-1', refreshToken: 'refresh-1' });
    await expect(openToken(cipher, { ...sealed, secretVersion: 'v0' })).rejects.toThrow();
  });
});
