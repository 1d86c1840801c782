import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../lib/clock';
import { parseConfig, type ConnectionInput } from '../lib/config';
import { exchangeToken, readCredentials, type ExchangeOptions } from '../lib/exchange';
import { nodeHttpClient } from '../lib/http';
import { IssuerMetadataCache, metadataUrls } from '../lib/issuer';
import { exchanging } from './support/connections';
import { expectCode, fp } from './support/expect';
import { registerSecret } from './support/secrets-registry';

// `issuer` instead of `tokenUrl`: the token endpoint read from RFC 8414 metadata, else OpenID Connect discovery,
// kept a day by the injected clock, https only (loopback http only locally), and the connection's clientAuth
// checked against what the issuer accepts.

registerSecret('issuer-test-secret');
const SECRET = { client_id: 'issuer-client', client_secret: 'issuer-test-secret' };

type Route = (req: http.IncomingMessage, res: http.ServerResponse, base: string) => void;
const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

/** An issuer on loopback: `routes` by path; every request's path is recorded. */
async function issuerServer(routes: Record<string, Route>) {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    const path = req.url ?? '/';
    seen.push(path);
    req.resume();
    req.on('end', () => {
      const route = routes[path];
      if (route) return route(req, res, base);
      res.writeHead(404).end();
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { base, seen };
}

const json = (status: number, body: unknown): Route => (_req, res) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};
const metadata = (extra: Record<string, unknown> = {}, path = ''): Route => (_req, res, base) =>
  json(200, { issuer: `${base}${path}`, token_endpoint: `${base}/oauth/token`, ...extra })(_req, res, base);
const token: Route = json(200, { access_token: 'issued-by-discovered-endpoint', token_type: 'Bearer', expires_in: 600 });

const connection = (issuer: string, extra: Partial<ConnectionInput> = {}) =>
  exchanging(parseConfig({ connections: [{ id: 'disc', issuer, secretId: 's', ...extra }] }, { allowLoopbackHttp: true }).connections[0]);
const clock = new ManualClock('2026-11-23T10:00:00.000Z', true);
const opts = (cache = new IssuerMetadataCache(), extra: Partial<ExchangeOptions> = {}): ExchangeOptions => ({
  http: nodeHttpClient,
  clock,
  issuerMetadata: cache,
  backoffBaseMs: 1,
  backoffCapMs: 2,
  ...extra,
});

describe('issuer discovery', () => {
  it('reads the token endpoint from /.well-known/oauth-authorization-server', async () => {
    const s = await issuerServer({ '/.well-known/oauth-authorization-server': metadata(), '/oauth/token': token });
    const conn = connection(s.base);
    const t = await exchangeToken(conn, readCredentials(conn, SECRET), opts());
    expect(fp(t.accessToken)).toBe(fp('issued-by-discovered-endpoint'));
    expect(s.seen).toEqual(['/.well-known/oauth-authorization-server', '/oauth/token']);
  });

  it('falls back to /.well-known/openid-configuration when there is no RFC 8414 document', async () => {
    const s = await issuerServer({ '/.well-known/openid-configuration': metadata(), '/oauth/token': token });
    const conn = connection(s.base);
    await exchangeToken(conn, readCredentials(conn, SECRET), opts());
    expect(s.seen).toEqual(['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration', '/oauth/token']);
  });

  it('places the well-known segment as each specification says for an issuer with a path', async () => {
    expect(metadataUrls(new URL('https://login.example/tenant-1/')).map(String)).toEqual([
      'https://login.example/.well-known/oauth-authorization-server/tenant-1',
      'https://login.example/tenant-1/.well-known/openid-configuration',
    ]);
    const s = await issuerServer({
      '/tenant-1/.well-known/openid-configuration': metadata({}, '/tenant-1'),
      '/oauth/token': token,
    });
    const conn = connection(`${s.base}/tenant-1`);
    await exchangeToken(conn, readCredentials(conn, SECRET), opts());
    expect(s.seen.at(-1)).toBe('/oauth/token');
  });

  it('keeps the metadata a day by the injected clock, then reads it again', async () => {
    const s = await issuerServer({ '/.well-known/oauth-authorization-server': metadata(), '/oauth/token': token });
    const conn = connection(s.base);
    const cache = new IssuerMetadataCache();
    const creds = readCredentials(conn, SECRET);
    const discoveries = () => s.seen.filter((p) => p.startsWith('/.well-known/')).length;
    await exchangeToken(conn, creds, opts(cache));
    clock.advance(86_400_000 - 1);
    await exchangeToken(conn, creds, opts(cache));
    expect(discoveries()).toBe(1);
    clock.advance(1);
    await exchangeToken(conn, creds, opts(cache));
    expect(discoveries()).toBe(2);
  });

  it('does not keep a failed discovery: the next exchange asks again', async () => {
    let up = false;
    const s = await issuerServer({
      '/.well-known/oauth-authorization-server': (req, res, base) =>
        up ? metadata()(req, res, base) : json(503, { error: 'temporarily_unavailable' })(req, res, base),
      '/oauth/token': token,
    });
    const conn = connection(s.base);
    const cache = new IssuerMetadataCache();
    await expectCode(exchangeToken(conn, readCredentials(conn, SECRET), opts(cache, { retries: 0 })), 'vendor_unavailable');
    up = true;
    await exchangeToken(conn, readCredentials(conn, SECRET), opts(cache));
  });

  it('says clearly when the issuer does not accept the connection clientAuth, naming what it accepts', async () => {
    const s = await issuerServer({
      '/.well-known/oauth-authorization-server': metadata({
        token_endpoint_auth_methods_supported: ['private_key_jwt', 'tls_client_auth'],
      }),
      '/oauth/token': token,
    });
    const conn = connection(s.base, { clientAuth: 'client_secret_jwt' });
    const err = await expectCode(exchangeToken(conn, readCredentials(conn, SECRET), opts()), 'misconfigured');
    expect(err.message).toBe(
      'disc: the issuer does not accept client_secret_jwt at its token endpoint (it accepts private_key_jwt, tls_client_auth); change clientAuth',
    );
    expect(s.seen).not.toContain('/oauth/token');
  });

  it('says clearly when the issuer does not verify the assertion algorithm', async () => {
    const s = await issuerServer({
      '/.well-known/oauth-authorization-server': metadata({
        token_endpoint_auth_methods_supported: ['client_secret_jwt'],
        token_endpoint_auth_signing_alg_values_supported: ['HS512'],
      }),
    });
    const conn = connection(s.base, { clientAuth: 'client_secret_jwt' });
    const err = await expectCode(exchangeToken(conn, readCredentials(conn, SECRET), opts()), 'misconfigured');
    expect(err.message).toMatch(/^disc: the issuer does not verify HS256 client assertions \(it verifies HS512\)/);
  });

  it('refuses metadata that names another issuer', async () => {
    const s = await issuerServer({
      '/.well-known/oauth-authorization-server': json(200, { issuer: 'https://evil.example', token_endpoint: 'https://evil.example/t' }),
    });
    const conn = connection(s.base);
    const err = await expectCode(exchangeToken(conn, readCredentials(conn, SECRET), opts()), 'vendor_protocol_error');
    expect(err.message).toMatch(/names another issuer/);
  });

  it('refuses a discovered plain http token endpoint off loopback', async () => {
    const s = await issuerServer({
      '/.well-known/oauth-authorization-server': metadata({ token_endpoint: 'http://vendor.example/token' }),
    });
    const conn = connection(s.base);
    const err = await expectCode(exchangeToken(conn, readCredentials(conn, SECRET), opts()), 'vendor_protocol_error');
    expect(err.message).toMatch(/token_endpoint must be an https URL/);
  });

  it('maps an issuer without metadata to vendor_protocol_error', async () => {
    const s = await issuerServer({});
    const conn = connection(s.base);
    await expectCode(exchangeToken(conn, readCredentials(conn, SECRET), opts()), 'vendor_protocol_error');
  });
});

describe('issuer in the configuration', () => {
  const parse = (c: Record<string, unknown>, local = false) =>
    parseConfig({ connections: [{ id: 'c', secretId: 's', ...c }] }, { allowLoopbackHttp: local });
  it('stands instead of tokenUrl', () => {
    const c = exchanging(parse({ issuer: 'https://login.example/tenant' }).connections[0]);
    expect('issuer' in c.endpoint && c.endpoint.issuer.href).toBe('https://login.example/tenant');
  });
  it('is https, or loopback http in local mode only', () => {
    expect(() => parse({ issuer: 'http://login.example' }, true)).toThrow(/issuer.*must be an https URL/);
    expect(() => parse({ issuer: 'http://127.0.0.1:9/' })).toThrow(/only for loopback addresses in local mode/);
    expect(() => parse({ issuer: 'http://127.0.0.1:9/' }, true)).not.toThrow();
    expect(() => parse({ issuer: 'https://login.example/?tenant=1' })).toThrow(/no query or fragment/);
  });
  it('is given alone: not with tokenUrl, and one of the two is required', () => {
    expect(() => parse({ issuer: 'https://a.example', tokenUrl: 'https://a.example/t' })).toThrow(/tokenUrl or issuer, not both/);
    expect(() => parse({})).toThrow(/tokenUrl \(c\): is required .*\(or issuer\)/);
  });
  it('is ignored by static dialects, like tokenUrl', () => {
    expect(parse({ dialect: 'digishare-pat', issuer: 'https://a.example' }).connections[0]?.kind).toBe('static');
  });
});
