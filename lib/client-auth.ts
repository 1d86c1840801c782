import {
  X509Certificate,
  constants,
  createHmac,
  createPrivateKey,
  randomUUID,
  sign,
  type KeyObject,
} from 'node:crypto';
import type { Connection } from './config';
import { ASSERTION_ALGS, type AssertionAlg } from './dialects';
import { ConfigurationError } from './errors';

// The client authentication methods that need more than a string from the secret: the client assertions of
// RFC 7523 (private_key_jwt, client_secret_jwt) and the client certificate of RFC 8705 (tls_client_auth). Signed
// with node:crypto: the few lines below cost the function bundles nothing (see docs/client-authentication.md).

/** Longest an assertion may live: vendors refuse longer ones, and a short one bounds what a leak could replay. */
export const ASSERTION_LIFETIME_SECONDS = 300;
export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export type SigningAlg = AssertionAlg | 'HS256';

export interface AssertionKey {
  alg: SigningAlg;
  key: KeyObject | Buffer;
  kid?: string;
}

const b64url = (value: Buffer | string) => Buffer.from(value).toString('base64url');

function misconfigured(connection: Connection, what: string, cause?: unknown): ConfigurationError {
  return new ConfigurationError(`${connection.id}: ${what}`, {
    context: { connection: connection.id },
    ...(cause === undefined ? {} : { cause }),
  });
}

function parsePrivateKey(connection: Connection, pem: string, field: string): KeyObject {
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    // Node's message names the decoder's complaint, never the key; it stays as the cause.
    throw misconfigured(connection, `the secret's ${field} is not a private key in PEM form (PKCS#8, RSA or EC)`, err);
  }
}

/** The algorithms a key can sign with, the first being the default. */
function algsFor(key: KeyObject): readonly AssertionAlg[] {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return (details.modulusLength ?? 0) >= 2048 ? ['RS256', 'PS256'] : [];
    case 'rsa-pss':
      return (details.modulusLength ?? 0) >= 2048 ? ['PS256'] : [];
    case 'ec':
      return details.namedCurve === 'prime256v1' ? ['ES256'] : [];
    default:
      return [];
  }
}

/**
 * The key and algorithm a connection's assertions are signed with, checked once: a key that does not parse, or an
 * `alg` that does not fit it, is a `misconfigured` naming the connection (so `verify` refuses it before a rotation).
 */
export function assertionKeyOf(connection: Connection, creds: Readonly<Record<string, string>>): AssertionKey {
  if (connection.kind !== 'exchanging') throw misconfigured(connection, 'a static credential signs nothing');
  const kid = creds.kid ? { kid: creds.kid } : {};
  if (connection.dialect.clientAuth === 'client_secret_jwt') {
    return { alg: 'HS256', key: Buffer.from(creds.client_secret ?? '', 'utf8') };
  }
  const key = parsePrivateKey(connection, creds.private_key ?? '', 'private_key');
  const usable = algsFor(key);
  if (usable.length === 0) {
    throw misconfigured(
      connection,
      `the secret's private_key is a ${key.asymmetricKeyType ?? 'unknown'} key the broker cannot sign with ` +
        '(RSA of 2048 bits or more, or EC P-256)',
    );
  }
  const wanted = creds.alg;
  if (wanted !== undefined) {
    if (!(ASSERTION_ALGS as readonly string[]).includes(wanted)) {
      throw misconfigured(connection, `the secret's alg must be one of ${ASSERTION_ALGS.join(', ')}`);
    }
    if (!usable.includes(wanted as AssertionAlg)) {
      throw misconfigured(
        connection,
        `the secret's alg ${wanted} does not fit its ${key.asymmetricKeyType} private_key (it fits ${usable.join(', ')})`,
      );
    }
  }
  return { alg: (wanted as AssertionAlg | undefined) ?? (usable[0] as AssertionAlg), key, ...kid };
}

function signature(alg: SigningAlg, key: KeyObject | Buffer, input: Buffer): Buffer {
  switch (alg) {
    case 'HS256':
      return createHmac('sha256', key).update(input).digest();
    case 'RS256':
      return sign('sha256', input, key);
    case 'PS256':
      // RFC 7518 §3.5: the salt is as long as the hash.
      return sign('sha256', input, { key: key as KeyObject, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
    case 'ES256':
      // JWS wants r||s, not the DER that node produces by default.
      return sign('sha256', input, { key: key as KeyObject, dsaEncoding: 'ieee-p1363' });
  }
}

export interface AssertionClaims {
  clientId: string;
  audience: string;
  /** Epoch milliseconds. */
  now: number;
}

/** A client assertion (RFC 7523 §3): iss = sub = client_id, the audience, a fresh jti, iat, exp 5 minutes later. */
export function signClientAssertion(key: AssertionKey, claims: AssertionClaims): string {
  const iat = Math.floor(claims.now / 1000);
  const header = { alg: key.alg, typ: 'JWT', ...(key.kid ? { kid: key.kid } : {}) };
  const payload = {
    iss: claims.clientId,
    sub: claims.clientId,
    aud: claims.audience,
    jti: randomUUID(),
    iat,
    exp: iat + ASSERTION_LIFETIME_SECONDS,
  };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  return `${input}.${b64url(signature(key.alg, key.key, Buffer.from(input, 'ascii')))}`;
}

export interface ClientCertificate {
  certificate: string;
  privateKey: string;
}

/** The client certificate and its key, checked to parse and to belong together. */
export function clientCertificateOf(connection: Connection, creds: Readonly<Record<string, string>>): ClientCertificate {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(creds.client_certificate ?? '');
  } catch (err) {
    throw misconfigured(connection, "the secret's client_certificate is not an X.509 certificate in PEM form", err);
  }
  const key = parsePrivateKey(connection, creds.client_private_key ?? '', 'client_private_key');
  if (!cert.checkPrivateKey(key)) {
    throw misconfigured(connection, "the secret's client_private_key is not the key of its client_certificate");
  }
  return { certificate: creds.client_certificate as string, privateKey: creds.client_private_key as string };
}

/** Checks what the client authentication method reads from the secret beyond its presence. */
export function checkClientCredentials(connection: Connection, creds: Readonly<Record<string, string>>): void {
  if (connection.kind !== 'exchanging') return;
  switch (connection.dialect.clientAuth) {
    case 'private_key_jwt':
      assertionKeyOf(connection, creds);
      return;
    case 'tls_client_auth':
      clientCertificateOf(connection, creds);
      return;
    default:
      return;
  }
}
