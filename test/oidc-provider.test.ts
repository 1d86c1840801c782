import { createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { exportJWK } from 'jose';
import Provider from 'oidc-provider';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock, systemClock } from '../lib/clock';
import { parseConfig, type ConnectionInput } from '../lib/config';
import { buildTokenRequest, exchangeToken, processTokenResponse, readCredentials, type ExchangeOptions } from '../lib/exchange';
import { createHttpClient, type NodeHttpClient } from '../lib/http';
import { IssuerMetadataCache } from '../lib/issuer';
import { LocalCertificateAuthority } from '../lib/local/certificates';
import { exchanging } from './support/connections';
import { expectCode } from './support/expect';
import { registerSecret } from './support/secrets-registry';

// Proof against a real authorization server: panva's oidc-provider, over TLS on 127.0.0.1, verifying every client
// assertion and client certificate itself. Each connection names only its `issuer`: the token endpoint and the
// accepted methods come from the provider's discovery document. oidc-provider checks assertions against the
// wall clock, so the exchanges here run on the system clock (nothing is timed).

const pkcs8 = (key: KeyObject) => {
  const text = key.export({ type: 'pkcs8', format: 'pem' }).toString();
  registerSecret(text);
  return text;
};
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const CS_SECRET = `csjwt-${randomBytes(24).toString('hex')}`;
const BASIC_SECRET = `basic-${randomBytes(24).toString('hex')}`;
registerSecret(CS_SECRET, BASIC_SECRET);

const ca = new LocalCertificateAuthority('oidc-provider test CA');
const serverTls = ca.issue({ commonName: '127.0.0.1', altNames: ['127.0.0.1'], usage: 'server' });
const clientTls = ca.issue({ commonName: 'mtls-client', usage: 'client' });
const outsiderTls = new LocalCertificateAuthority('outsider CA').issue({ commonName: 'mtls-client', usage: 'client' });
registerSecret(clientTls.privateKey, outsiderTls.privateKey, serverTls.privateKey);

let server: https.Server;
let issuer: string;
let http: NodeHttpClient;
const metadataRequests: string[] = [];

beforeAll(async () => {
  server = https.createServer({
    key: serverTls.privateKey,
    cert: serverTls.certificate,
    ca: [ca.certificate],
    requestCert: true,
    rejectUnauthorized: false,
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  issuer = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const publicJwk = async (key: KeyObject, kid: string, alg: string) => ({ ...(await exportJWK(createPublicKey(key))), kid, alg, use: 'sig' });
  const peer = (ctx: { socket: unknown }) => (ctx.socket as TLSSocket).getPeerX509Certificate?.();
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'pkjwt-client',
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: {
          keys: [
            await publicJwk(rsa, 'rsa-rs', 'RS256'),
            await publicJwk(rsa, 'rsa-ps', 'PS256'),
            await publicJwk(ec, 'ec-1', 'ES256'),
          ],
        },
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
      },
      {
        client_id: 'csjwt-client',
        client_secret: CS_SECRET,
        token_endpoint_auth_method: 'client_secret_jwt',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
      },
      {
        client_id: 'mtls-client',
        token_endpoint_auth_method: 'tls_client_auth',
        tls_client_auth_subject_dn: 'CN=mtls-client',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
      },
      {
        client_id: 'basic-client',
        client_secret: BASIC_SECRET,
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
      },
    ],
    // client_secret_post is left out on purpose: a connection asking for it must be told.
    clientAuthMethods: ['private_key_jwt', 'client_secret_jwt', 'tls_client_auth', 'client_secret_basic'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      mTLS: {
        enabled: true,
        tlsClientAuth: true,
        getCertificate: (ctx) => peer(ctx)?.toString(),
        certificateAuthorized: (ctx) => (ctx.socket as TLSSocket).authorized === true,
        certificateSubjectMatches: (ctx, property, expected) =>
          property === 'tls_client_auth_subject_dn' && peer(ctx)?.subject === expected,
      },
    },
  });
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url?.startsWith('/.well-known/')) metadataRequests.push(req.url);
    // Koa's callback answers its own errors; nothing is left to await.
    void callback(req, res);
  });
  http = createHttpClient({ extraCa: [ca.certificate] });
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

const connection = (clientAuth: ConnectionInput['clientAuth'], extra: Partial<ConnectionInput> = {}) =>
  exchanging(parseConfig({ connections: [{ id: `op-${clientAuth}`, issuer, clientAuth, secretId: 's', ...extra }] }).connections[0]);
const opts = (extra: Partial<ExchangeOptions> = {}): ExchangeOptions => ({
  http,
  clock: systemClock,
  issuerMetadata: new IssuerMetadataCache(),
  retries: 0,
  ...extra,
});

describe('oidc-provider as the vendor, found through its issuer', () => {
  it.each([
    { kid: 'rsa-rs', alg: 'RS256', key: () => rsa },
    { kid: 'rsa-ps', alg: 'PS256', key: () => rsa },
    { kid: 'ec-1', alg: 'ES256', key: () => ec },
  ])('accepts a private_key_jwt assertion signed $alg', async ({ kid, alg, key }) => {
    const conn = connection('private_key_jwt');
    const creds = readCredentials(conn, { client_id: 'pkjwt-client', private_key: pkcs8(key()), kid, alg });
    const token = await exchangeToken(conn, creds, opts());
    expect(token.tokenType).toBe('Bearer');
    expect(token.lifetime).toBeGreaterThan(0);
  });

  it('accepts a client_secret_jwt assertion', async () => {
    const conn = connection('client_secret_jwt');
    const token = await exchangeToken(conn, readCredentials(conn, { client_id: 'csjwt-client', client_secret: CS_SECRET }), opts());
    expect(token.accessToken.length).toBeGreaterThan(10);
  });

  it('accepts tls_client_auth with the client certificate presented over TLS', async () => {
    const conn = connection('tls_client_auth');
    const creds = readCredentials(conn, {
      client_id: 'mtls-client',
      client_certificate: clientTls.certificate,
      client_private_key: clientTls.privateKey,
    });
    const token = await exchangeToken(conn, creds, opts());
    expect(token.accessToken.length).toBeGreaterThan(10);
  });

  it('refuses a certificate from another authority: vendor_rejected_credentials', async () => {
    const conn = connection('tls_client_auth');
    const creds = readCredentials(conn, {
      client_id: 'mtls-client',
      client_certificate: outsiderTls.certificate,
      client_private_key: outsiderTls.privateKey,
    });
    await expectCode(exchangeToken(conn, creds, opts()), 'vendor_rejected_credentials');
  });

  describe('refused assertions map to vendor_rejected_credentials', () => {
    const good = () => ({ client_id: 'pkjwt-client', private_key: pkcs8(ec), kid: 'ec-1' });

    it('signed with a key the provider does not know', async () => {
      const conn = connection('private_key_jwt');
      const creds = readCredentials(conn, { ...good(), private_key: pkcs8(stranger) });
      await expectCode(exchangeToken(conn, creds, opts()), 'vendor_rejected_credentials');
    });

    it('expired', async () => {
      const conn = connection('private_key_jwt');
      // Signed as if ten minutes ago: its exp (iat + 5 min) has passed.
      const past = new ManualClock(systemClock.now() - 600_000);
      await expectCode(exchangeToken(conn, readCredentials(conn, good()), opts({ clock: past })), 'vendor_rejected_credentials');
    });

    it('replayed (the same jti twice)', async () => {
      const conn = connection('private_key_jwt');
      const tokenUrl = new URL(`${issuer}/token`);
      const request = buildTokenRequest(conn, readCredentials(conn, good()), { tokenUrl, now: systemClock.now() });
      const send = () =>
        http({
          url: request.url,
          method: 'POST',
          headers: request.headers,
          body: request.body,
          signal: AbortSignal.timeout(5_000),
          maxResponseBytes: 1 << 20,
        });
      expect((await send()).status).toBe(200);
      const replay = await send();
      expect(() => processTokenResponse(conn, replay, systemClock.now())).toThrow(
        expect.objectContaining({ code: 'vendor_rejected_credentials' }),
      );
    });

    it('for another audience', async () => {
      const conn = connection('private_key_jwt', { assertionAudience: 'https://someone-else.example/token' });
      await expectCode(exchangeToken(conn, readCredentials(conn, good()), opts()), 'vendor_rejected_credentials');
    });
  });

  it('reads the token endpoint from the discovery document once a day', async () => {
    const cache = new IssuerMetadataCache();
    const clock = new ManualClock(systemClock.now());
    // client_secret_basic: nothing time-bound is signed, so the cache's clock may run ahead of the provider's.
    const conn = connection('basic');
    const creds = readCredentials(conn, { client_id: 'basic-client', client_secret: BASIC_SECRET });
    metadataRequests.length = 0;
    await exchangeToken(conn, creds, opts({ issuerMetadata: cache, clock }));
    await exchangeToken(conn, creds, opts({ issuerMetadata: cache, clock }));
    expect(metadataRequests).toEqual(['/.well-known/oauth-authorization-server']);
    clock.advance(86_399_000);
    await exchangeToken(conn, creds, opts({ issuerMetadata: cache, clock }));
    expect(metadataRequests).toHaveLength(1);
    clock.advance(1_000);
    await exchangeToken(conn, creds, opts({ issuerMetadata: cache, clock }));
    expect(metadataRequests).toHaveLength(2);
  });

  it('says clearly when the issuer does not accept the connection clientAuth', async () => {
    const conn = connection('body');
    const err = await expectCode(
      exchangeToken(conn, readCredentials(conn, { client_id: 'basic-client', client_secret: BASIC_SECRET }), opts()),
      'misconfigured',
    );
    expect(err.message).toMatch(/^op-body: the issuer does not accept client_secret_post at its token endpoint/);
    expect(err.message).toMatch(/private_key_jwt, client_secret_jwt, tls_client_auth, client_secret_basic/);
    const basic = connection('basic');
    await exchangeToken(basic, readCredentials(basic, { client_id: 'basic-client', client_secret: BASIC_SECRET }), opts());
  });
});
