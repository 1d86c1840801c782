import { generateKeyPairSync } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, exportJWK, jwtVerify } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ASSERTION_LIFETIME_SECONDS } from '../lib/client-auth';
import { ManualClock } from '../lib/clock';
import { parseConfig, type ConnectionInput } from '../lib/config';
import { optionalSecretKeys, requiredSecretKeys } from '../lib/dialects';
import { BrokerError } from '../lib/errors';
import { buildTokenRequest, exchangeToken, readCredentials, type ExchangeOptions } from '../lib/exchange';
import { createHttpClient, type HttpRequest } from '../lib/http';
import { LocalCertificateAuthority } from '../lib/local/certificates';
import { SandboxVendor, newClientKey, sandboxClientCertificate } from '../lib/local/sandbox-vendor';
import { connectionFor, exchanging, secretFor } from './support/connections';
import { expectCode, fp } from './support/expect';
import { registerSecret, registerSecretValue } from './support/secrets-registry';

// The client authentication methods beyond a client secret, against the sandbox vendor, which verifies every
// assertion and certificate itself; the assertions are also checked here with jose, an independent implementation.

const pem = (type: 'rsa' | 'rsa-pss' | 'ec', opts: object) => {
  const key = (generateKeyPairSync as (t: string, o: object) => { privateKey: import('node:crypto').KeyObject })(type, opts)
    .privateKey.export({ type: 'pkcs8', format: 'pem' })
    .toString();
  registerSecret(key);
  return key;
};
const RSA_KEY = pem('rsa', { modulusLength: 2048 });
const SHORT_RSA_KEY = pem('rsa', { modulusLength: 1024 });
const P384_KEY = pem('ec', { namedCurve: 'P-384' });
const WRONG_EC_KEY = newClientKey();
registerSecret(WRONG_EC_KEY, 'wrong-csjwt-secret-value');

const clock = new ManualClock('2026-11-23T10:00:00.000Z', true);
let vendor: SandboxVendor;
const http = () => createHttpClient({ extraCa: [vendor.ca] });
let client: ReturnType<typeof http>;
const opts = (extra: Partial<ExchangeOptions> = {}): ExchangeOptions => ({
  http: client,
  clock,
  backoffBaseMs: 5,
  backoffCapMs: 20,
  ...extra,
});

beforeAll(async () => {
  vendor = await SandboxVendor.start({ clock });
  client = http();
  for (const kind of ['private-key-jwt', 'client-secret-jwt', 'mtls'] as const) registerSecretValue(vendor.account(kind));
});
afterAll(() => vendor.close());
beforeEach(() => {
  vendor.requests.length = 0;
});

function lastForm() {
  const r = vendor.requests.at(-1);
  if (!r) throw new Error('the vendor received nothing');
  return { headers: r.headers, form: Object.fromEntries(new URLSearchParams(r.body)) };
}

async function publicJwks(privatePem: string, kid?: string) {
  const { createPublicKey } = await import('node:crypto');
  const jwk = await exportJWK(createPublicKey(privatePem));
  return createLocalJWKSet({ keys: [{ ...jwk, ...(kid ? { kid } : {}) }] });
}

describe('private_key_jwt', () => {
  it('sends a client assertion signed with the private key: iss = sub = client_id, aud = the token URL, kid, jti, iat, exp', async () => {
    const conn = connectionFor(vendor, 'private-key-jwt');
    const secret = secretFor(vendor, 'private-key-jwt');
    const token = await exchangeToken(conn, readCredentials(conn, secret), opts());
    expect(token.accessToken).toMatch(/^private-key-jwt-/);
    const { headers, form } = lastForm();
    expect(headers.authorization).toBeUndefined();
    expect(Object.keys(form).sort()).toEqual(['client_assertion', 'client_assertion_type', 'client_id', 'grant_type']);
    expect(form.client_assertion_type).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    const assertion = form.client_assertion as string;
    expect(decodeProtectedHeader(assertion)).toEqual({ alg: 'ES256', typ: 'JWT', kid: 'demo-key-1' });
    const { payload } = await jwtVerify(assertion, await publicJwks(secret.private_key as string, 'demo-key-1'), {
      currentDate: new Date(clock.now()),
      audience: vendor.tokenUrl('private-key-jwt'),
      issuer: secret.client_id,
      subject: secret.client_id,
    });
    expect(payload.iat).toBe(Math.floor(clock.now() / 1000));
    expect((payload.exp as number) - (payload.iat as number)).toBe(ASSERTION_LIFETIME_SECONDS);
    expect(ASSERTION_LIFETIME_SECONDS).toBeLessThanOrEqual(300);
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('signs every exchange with a fresh jti', async () => {
    const conn = connectionFor(vendor, 'private-key-jwt');
    const creds = readCredentials(conn, secretFor(vendor, 'private-key-jwt'));
    await exchangeToken(conn, creds, opts());
    const first = decodeJwt(lastForm().form.client_assertion as string).jti;
    await exchangeToken(conn, creds, opts());
    const second = decodeJwt(lastForm().form.client_assertion as string).jti;
    expect(first).not.toBe(second);
  });

  it.each([
    { name: 'RS256 by default for an RSA key', key: () => RSA_KEY, alg: undefined, expected: 'RS256' },
    { name: 'PS256 when the secret asks for it', key: () => RSA_KEY, alg: 'PS256', expected: 'PS256' },
    { name: 'ES256 for a P-256 key', key: () => WRONG_EC_KEY, alg: 'ES256', expected: 'ES256' },
  ])('signs $name, and the vendor verifies it', async ({ key, alg, expected }) => {
    const account = { client_id: 'pk-client', private_key: key(), ...(alg ? { alg } : {}) };
    const saved = vendor.account('private-key-jwt');
    vendor.setAccount('private-key-jwt', account);
    try {
      const conn = connectionFor(vendor, 'private-key-jwt');
      await exchangeToken(conn, readCredentials(conn, account), opts());
      const assertion = lastForm().form.client_assertion as string;
      expect(decodeProtectedHeader(assertion).alg).toBe(expected);
      await jwtVerify(assertion, await publicJwks(account.private_key), { currentDate: new Date(clock.now()) });
    } finally {
      vendor.setAccount('private-key-jwt', saved);
    }
  });

  it('maps an assertion signed with a key the vendor does not know to vendor_rejected_credentials', async () => {
    const conn = connectionFor(vendor, 'private-key-jwt');
    const creds = readCredentials(conn, { ...secretFor(vendor, 'private-key-jwt'), private_key: WRONG_EC_KEY });
    await expectCode(exchangeToken(conn, creds, opts()), 'vendor_rejected_credentials');
  });

  it('sends the connection assertionAudience as aud instead of the token URL', async () => {
    const conn = connectionFor(vendor, 'private-key-jwt', { assertionAudience: 'https://issuer.example' });
    const creds = readCredentials(conn, secretFor(vendor, 'private-key-jwt'));
    // The sandbox wants its token URL: it refuses, and the aud shows what was sent.
    await expectCode(exchangeToken(conn, creds, opts()), 'vendor_rejected_credentials');
    expect(decodeJwt(lastForm().form.client_assertion as string).aud).toBe('https://issuer.example');
  });

  const misconfigured: { name: string; secret: () => Record<string, string>; message: RegExp }[] = [
    { name: 'a private key that does not parse', secret: () => ({ private_key: 'not a key at all' }), message: /private_key is not a private key/ },
    { name: 'a truncated PEM', secret: () => ({ private_key: RSA_KEY.slice(0, 200) }), message: /private_key is not a private key/ },
    { name: 'an alg that does not fit an RSA key', secret: () => ({ private_key: RSA_KEY, alg: 'ES256' }), message: /alg ES256 does not fit its rsa private_key/ },
    { name: 'an alg that does not fit an EC key', secret: () => ({ private_key: WRONG_EC_KEY, alg: 'RS256' }), message: /alg RS256 does not fit its ec private_key/ },
    { name: 'an alg the broker does not sign with', secret: () => ({ private_key: RSA_KEY, alg: 'HS256' }), message: /alg must be one of RS256, PS256, ES256/ },
    { name: 'an RSA key shorter than 2048 bits', secret: () => ({ private_key: SHORT_RSA_KEY }), message: /cannot sign with/ },
    { name: 'an EC key on another curve than P-256', secret: () => ({ private_key: P384_KEY }), message: /cannot sign with/ },
  ];
  it.each(misconfigured)('refuses $name as misconfigured, naming the connection and never the key', ({ secret, message }) => {
    const conn = connectionFor(vendor, 'private-key-jwt');
    const value = { client_id: 'pk-client', ...secret() };
    let caught: unknown;
    try {
      readCredentials(conn, value);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(BrokerError);
    const err = caught as BrokerError;
    expect(err.code).toBe('misconfigured');
    expect(err.message).toMatch(/^private-key-jwt-test: /);
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain('PRIVATE KEY');
  });
});

describe('client_secret_jwt', () => {
  it('sends an HS256 assertion made with the client secret, which the vendor verifies', async () => {
    const conn = connectionFor(vendor, 'client-secret-jwt');
    const secret = secretFor(vendor, 'client-secret-jwt');
    await exchangeToken(conn, readCredentials(conn, secret), opts());
    const { headers, form } = lastForm();
    expect(headers.authorization).toBeUndefined();
    expect(form.client_secret).toBeUndefined();
    const assertion = form.client_assertion as string;
    expect(decodeProtectedHeader(assertion)).toEqual({ alg: 'HS256', typ: 'JWT' });
    const { payload } = await jwtVerify(assertion, Buffer.from(secret.client_secret as string), {
      currentDate: new Date(clock.now()),
      audience: vendor.tokenUrl('client-secret-jwt'),
      issuer: secret.client_id,
      subject: secret.client_id,
    });
    expect((payload.exp as number) - (payload.iat as number)).toBeLessThanOrEqual(300);
  });

  it('maps an assertion made with the wrong secret to vendor_rejected_credentials', async () => {
    const conn = connectionFor(vendor, 'client-secret-jwt');
    const creds = readCredentials(conn, { ...secretFor(vendor, 'client-secret-jwt'), client_secret: 'wrong-csjwt-secret-value' });
    const err = await expectCode(exchangeToken(conn, creds, opts()), 'vendor_rejected_credentials');
    expect(err.message).not.toContain('wrong-csjwt-secret-value');
  });
});

describe('tls_client_auth', () => {
  it('presents the client certificate over mutual TLS and sends client_id in the body', async () => {
    const conn = connectionFor(vendor, 'mtls');
    const token = await exchangeToken(conn, readCredentials(conn, secretFor(vendor, 'mtls')), opts());
    expect(token.accessToken).toMatch(/^mtls-/);
    const { headers, form } = lastForm();
    expect(headers.authorization).toBeUndefined();
    expect(form).toEqual({ grant_type: 'client_credentials', client_id: 'demo-mtls-client' });
  });

  it('maps a certificate from another authority to vendor_rejected_credentials', async () => {
    const other = new LocalCertificateAuthority('someone else').issue({ commonName: 'demo-mtls-client', usage: 'client' });
    registerSecret(other.privateKey);
    const conn = connectionFor(vendor, 'mtls');
    const creds = readCredentials(conn, {
      client_id: 'demo-mtls-client',
      client_certificate: other.certificate,
      client_private_key: other.privateKey,
    });
    await expectCode(exchangeToken(conn, creds, opts()), 'vendor_rejected_credentials');
  });

  it('refuses as misconfigured a certificate that does not parse, or a key that is not the certificate’s', () => {
    const conn = connectionFor(vendor, 'mtls');
    const good = secretFor(vendor, 'mtls');
    const stranger = sandboxClientCertificate('stranger');
    registerSecret(stranger.client_private_key);
    expect(() => readCredentials(conn, { ...good, client_certificate: 'garbage' })).toThrow(
      /^mtls-test: the secret's client_certificate is not an X.509 certificate/,
    );
    expect(() => readCredentials(conn, { ...good, client_private_key: stranger.client_private_key })).toThrow(
      /^mtls-test: the secret's client_private_key is not the key of its client_certificate/,
    );
    expect(() => readCredentials(conn, { client_id: 'x', client_certificate: good.client_certificate as string })).toThrow(
      /lacks client_private_key/,
    );
  });

  it('refuses a plain http token URL at configuration time', () => {
    expect(() =>
      parseConfig(
        { connections: [{ id: 'm', clientAuth: 'tls_client_auth', tokenUrl: 'http://127.0.0.1:1/token', secretId: 's' }] },
        { allowLoopbackHttp: true },
      ),
    ).toThrow(/tls_client_auth needs an https token URL/);
  });
});

/** An https server asking for a client certificate, whose answers the test writes. */
async function mtlsServer(handler: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void) {
  const ca = new LocalCertificateAuthority('scripted CA');
  const tls = ca.issue({ commonName: '127.0.0.1', altNames: ['127.0.0.1'], usage: 'server' });
  const server = https.createServer(
    { key: tls.privateKey, cert: tls.certificate, ca: [ca.certificate], requestCert: true, rejectUnauthorized: false },
    handler,
  );
  const sessions: TLSSocket[] = [];
  server.on('secureConnection', (s: TLSSocket) => sessions.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  const clientCert = (cn: string) => {
    const issued = ca.issue({ commonName: cn, usage: 'client' });
    registerSecret(issued.privateKey);
    return { client_id: cn, client_certificate: issued.certificate, client_private_key: issued.privateKey };
  };
  return {
    url: `https://127.0.0.1:${port}/token`,
    ca: ca.certificate,
    sessions,
    clientCert,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('mutual TLS in the outbound client', () => {
  const conn = (url: string, id = 'mtls-scripted') =>
    exchanging(
      parseConfig({ connections: [{ id, clientAuth: 'tls_client_auth', tokenUrl: url, secretId: 's' } satisfies ConnectionInput] })
        .connections[0],
    );
  const answer = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
    const peer = (req.socket as TLSSocket).getPeerX509Certificate();
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: `tok-${peer?.subject ?? 'none'}`.replace(/[^\x21-\x7e]/g, '_'), expires_in: 600 }));
    });
  };

  it('keeps one keep-alive connection per certificate, and replaces it when the certificate changes', async () => {
    const server = await mtlsServer(answer);
    const c = createHttpClient({ extraCa: [server.ca] });
    try {
      const first = server.clientCert('client-one');
      const connection = conn(server.url);
      const o = opts({ http: c });
      expect(fp((await exchangeToken(connection, readCredentials(connection, first), o)).accessToken)).toBe(fp('tok-CN=client-one'));
      await exchangeToken(connection, readCredentials(connection, first), o);
      expect(server.sessions).toHaveLength(1);
      expect(c.certificateAgents()).toBe(1);

      // A new secret version with a new certificate: a new agent, and the old one's socket is closed.
      const second = server.clientCert('client-two');
      expect(fp((await exchangeToken(connection, readCredentials(connection, second), o)).accessToken)).toBe(fp('tok-CN=client-two'));
      expect(server.sessions).toHaveLength(2);
      expect(c.certificateAgents()).toBe(1);
      await new Promise<void>((resolve) => {
        const old = server.sessions[0]!;
        if (old.destroyed || old.closed) resolve();
        else old.once('close', () => resolve());
      });
    } finally {
      await server.close();
    }
  });

  it('holds at most one agent per connection, however many certificates go by', async () => {
    const server = await mtlsServer(answer);
    const c = createHttpClient({ extraCa: [server.ca] });
    try {
      for (const [i, id] of ['a', 'b', 'a', 'b', 'a'].entries()) {
        const connection = conn(server.url, `mtls-${id}`);
        await exchangeToken(connection, readCredentials(connection, server.clientCert(`client-${i}`)), opts({ http: c }));
      }
      expect(c.certificateAgents()).toBe(2);
    } finally {
      await server.close();
    }
  });

  it('keeps the deadline, the size cap and the no-redirect rule', async () => {
    let mode: 'hang' | 'huge' | 'redirect' = 'hang';
    const server = await mtlsServer((req, res) => {
      req.resume();
      if (mode === 'hang') return;
      if (mode === 'huge') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(Buffer.alloc(1024 * 1024 + 10, 0x20));
        return;
      }
      res.writeHead(302, { location: 'https://elsewhere.example/token' });
      res.end();
    });
    const c = createHttpClient({ extraCa: [server.ca] });
    const connection = conn(server.url);
    const creds = readCredentials(connection, server.clientCert('client-limits'));
    try {
      await expectCode(exchangeToken(connection, creds, opts({ http: c, deadlineMs: 300 })), 'vendor_timeout');
      mode = 'huge';
      await expectCode(exchangeToken(connection, creds, opts({ http: c })), 'vendor_protocol_error');
      mode = 'redirect';
      const err = await expectCode(exchangeToken(connection, creds, opts({ http: c })), 'vendor_protocol_error');
      expect(err.message).toMatch(/redirect/);
    } finally {
      await server.close();
    }
  });

  it('never sends a client certificate over plain http', async () => {
    const request: HttpRequest = {
      url: new URL('http://127.0.0.1:1/token'),
      method: 'POST',
      headers: {},
      signal: new AbortController().signal,
      maxResponseBytes: 1024,
      clientCertificate: { owner: 'x', certificate: 'c', privateKey: 'k' },
    };
    await expect(createHttpClient()(request)).rejects.toThrow(/MTLS_NEEDS_HTTPS/);
  });
});

describe('the secret keys each client authentication needs', () => {
  const dialect = (clientAuth: ConnectionInput['clientAuth'], extra: Partial<ConnectionInput> = {}) =>
    exchanging(parseConfig({ connections: [{ id: 'c', tokenUrl: 'https://x.example/t', secretId: 's', clientAuth, ...extra }] }).connections[0])
      .dialect;
  it('lists the required and optional keys', () => {
    expect(requiredSecretKeys(dialect('basic'))).toEqual(['client_id', 'client_secret']);
    expect(requiredSecretKeys(dialect('client_secret_jwt'))).toEqual(['client_id', 'client_secret']);
    expect(requiredSecretKeys(dialect('private_key_jwt'))).toEqual(['client_id', 'private_key']);
    expect(optionalSecretKeys(dialect('private_key_jwt'))).toEqual(['kid', 'alg']);
    expect(requiredSecretKeys(dialect('tls_client_auth'))).toEqual(['client_id', 'client_certificate', 'client_private_key']);
    expect(requiredSecretKeys(dialect('private_key_jwt', { dialect: 'docoon' }))).toEqual([
      'client_id',
      'private_key',
      'login',
      'password',
    ]);
  });
});

describe('an assertion built for each attempt', () => {
  it('carries the time of the attempt', () => {
    const conn = connectionFor(vendor, 'client-secret-jwt');
    const creds = readCredentials(conn, secretFor(vendor, 'client-secret-jwt'));
    const at = Date.parse('2026-11-23T12:00:00Z');
    const req = buildTokenRequest(conn, creds, { tokenUrl: new URL('https://x.example/token'), now: at });
    const claims = decodeJwt(new URLSearchParams(req.body).get('client_assertion') as string);
    expect(claims).toMatchObject({ iat: at / 1000, exp: at / 1000 + 300, aud: 'https://x.example/token' });
  });
});

describe('verify, before a rotation promotes a secret version', () => {
  it('refuses a pending private key that does not parse, naming the connection, without calling the vendor', async () => {
    const { startWorld } = await import('./support/harness');
    const world = await startWorld(
      clock,
      (v) => [{ id: 'pk', clientAuth: 'private_key_jwt', tokenUrl: v.tokenUrl('private-key-jwt'), secretId: 'broker/pk' }],
      {},
      (v) => ({
        'broker/pk': {
          stages: {
            AWSCURRENT: secretFor(v, 'private-key-jwt'),
            AWSPENDING: { ...secretFor(v, 'private-key-jwt'), private_key: '-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n' },
          },
        },
      }),
    );
    try {
      const broker = world.broker();
      const connection = world.config.byId.get('pk')!;
      await expect(broker.verifyConnection(connection, 'AWSPENDING')).rejects.toThrow(
        /^pk: the secret's private_key is not a private key in PEM form/,
      );
      expect(world.vendor.received()).toBe(0);
      await expect(broker.verifyConnection(connection, 'AWSCURRENT')).resolves.toMatchObject({ expiresIn: 3600 });
    } finally {
      await world.close();
    }
  });
});

describe('the sandbox as an issuer', () => {
  it('publishes RFC 8414 metadata: private_key_jwt at its token endpoint, mutual TLS at its alias', async () => {
    const pk = exchanging(
      parseConfig(
        { connections: [{ id: 'pk-issuer', clientAuth: 'private_key_jwt', issuer: vendor.url, secretId: 's' }] },
        { allowLoopbackHttp: true },
      ).connections[0],
    );
    await exchangeToken(pk, readCredentials(pk, secretFor(vendor, 'private-key-jwt')), opts());
    expect(vendor.requests.map((r) => r.kind)).toEqual(['private-key-jwt']);

    const mtls = exchanging(
      parseConfig({ connections: [{ id: 'mtls-issuer', clientAuth: 'tls_client_auth', issuer: vendor.tlsUrl, secretId: 's' }] })
        .connections[0],
    );
    const token = await exchangeToken(mtls, readCredentials(mtls, secretFor(vendor, 'mtls')), opts());
    expect(token.accessToken).toMatch(/^mtls-/);
  });
});
