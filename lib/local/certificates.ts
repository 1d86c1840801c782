import { X509Certificate, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';

// A certificate authority for local mode and the tests: the sandbox vendor's TLS server certificate and the demo's
// client certificates for mutual TLS. node:crypto signs but cannot build an X.509 certificate, so the few DER
// structures RFC 5280 needs are written here (EC P-256 keys, ecdsa-with-SHA256), rather than a dependency.

function der(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  const n = body.length;
  let length: Buffer;
  if (n < 0x80) length = Buffer.from([n]);
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
    length = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), length, body]);
}

const seq = (...parts: Buffer[]) => der(0x30, ...parts);
const integer = (value: Buffer) => der(0x02, (value[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), value]) : value);
const utf8 = (text: string) => der(0x0c, Buffer.from(text, 'utf8'));
const octets = (value: Buffer) => der(0x04, value);
const bits = (value: Buffer) => der(0x03, Buffer.from([0]), value);
const TRUE = der(0x01, Buffer.from([0xff]));

function oid(dotted: string): Buffer {
  const [a = 0, b = 0, ...rest] = dotted.split('.').map(Number);
  const out = [a * 40 + b];
  for (const n of rest) {
    const chunk = [n & 0x7f];
    for (let v = n >> 7; v > 0; v >>= 7) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return der(0x06, Buffer.from(out));
}

function utcTime(date: Date): Buffer {
  const iso = date.toISOString(); // 2026-11-23T10:00:00.000Z → 261123100000Z
  return der(0x17, Buffer.from(`${iso.slice(2, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`));
}

const name = (commonName: string) => seq(der(0x31, seq(oid('2.5.4.3'), utf8(commonName))));
const extension = (id: string, value: Buffer, critical = false) =>
  seq(oid(id), ...(critical ? [TRUE] : []), octets(value));
const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  const [head = '', tail = ''] = ip.split('::');
  const groups = (s: string) => (s ? s.split(':') : []);
  const h = groups(head);
  const t = groups(tail);
  const all = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return Buffer.from(all.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]));
}

export interface IssuedCertificate {
  /** PEM. */
  certificate: string;
  /** PKCS#8 PEM. */
  privateKey: string;
}

export interface CertificateRequest {
  commonName: string;
  /** DNS names and IP addresses the certificate is valid for (a server's). */
  altNames?: string[];
  usage: 'server' | 'client';
  days?: number;
}

/** A certificate authority living in memory: it issues server and client certificates signed with its key. */
export class LocalCertificateAuthority {
  readonly certificate: string;
  private readonly key: KeyObject;
  private readonly name: Buffer;

  constructor(commonName = 'token-broker local CA', days = 30) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.key = privateKey;
    this.name = name(commonName);
    const extensions = [
      extension('2.5.29.19', seq(TRUE), true), // basicConstraints: CA
      extension('2.5.29.15', bits(Buffer.from([0x06])), true), // keyUsage: keyCertSign, cRLSign
    ];
    this.certificate = this.sign(this.name, publicKey, days, extensions);
  }

  issue(req: CertificateRequest): IssuedCertificate {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const extensions = [
      extension('2.5.29.19', seq()), // basicConstraints: not a CA
      extension('2.5.29.15', bits(Buffer.from([0x80])), true), // keyUsage: digitalSignature
      // extKeyUsage: serverAuth or clientAuth
      extension('2.5.29.37', seq(oid(req.usage === 'server' ? '1.3.6.1.5.5.7.3.1' : '1.3.6.1.5.5.7.3.2'))),
    ];
    if (req.altNames?.length) {
      const names = req.altNames.map((n) => (isIP(n) ? der(0x87, ipBytes(n)) : der(0x82, Buffer.from(n, 'ascii'))));
      extensions.push(extension('2.5.29.17', seq(...names)));
    }
    return {
      certificate: this.sign(name(req.commonName), publicKey, req.days ?? 30, extensions),
      privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    };
  }

  private sign(subject: Buffer, publicKey: KeyObject, days: number, extensions: Buffer[]): string {
    const now = Date.now();
    const serial = randomBytes(16);
    // Positive, and no leading zero byte (DER wants the shortest form).
    serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x40;
    const tbs = seq(
      der(0xa0, integer(Buffer.from([2]))), // v3
      integer(serial),
      ECDSA_SHA256,
      this.name,
      seq(utcTime(new Date(now - 3_600_000)), utcTime(new Date(now + days * 86_400_000))),
      subject,
      publicKey.export({ type: 'spki', format: 'der' }),
      der(0xa3, seq(...extensions)),
    );
    const signature = sign('sha256', tbs, this.key);
    const cert = seq(tbs, ECDSA_SHA256, bits(signature));
    const pem = `-----BEGIN CERTIFICATE-----\n${cert.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END CERTIFICATE-----\n`;
    // Fails here, not in a TLS handshake, if the structure above is ever wrong.
    new X509Certificate(pem);
    return pem;
  }
}
