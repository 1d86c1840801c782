import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { LocalCertificateAuthority } from '../../lib/local/certificates';

// The local certificate authority writes DER by hand: every certificate it issues must parse and chain to it.

describe('local certificate authority', () => {
  const ca = new LocalCertificateAuthority('test CA');
  const root = new X509Certificate(ca.certificate);

  it('is a CA that signed itself', () => {
    expect(root.ca).toBe(true);
    expect(root.subject).toBe('CN=test CA');
    expect(root.verify(root.publicKey)).toBe(true);
  });

  it('issues certificates that parse and chain to it, whatever their random serial (500 of them)', () => {
    for (let i = 0; i < 500; i++) {
      const issued = ca.issue({ commonName: `client-${i}`, usage: 'client' });
      const cert = new X509Certificate(issued.certificate);
      expect(cert.checkIssued(root)).toBe(true);
      expect(cert.verify(root.publicKey)).toBe(true);
      expect(cert.ca).toBe(false);
    }
  });

  it('names a server by its addresses', () => {
    const cert = new X509Certificate(ca.issue({ commonName: '127.0.0.1', altNames: ['127.0.0.1', '::1', 'localhost'], usage: 'server' }).certificate);
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.checkIP('::1')).toBe('::1');
    expect(cert.checkHost('localhost')).toBe('localhost');
    expect(cert.checkHost('elsewhere.example')).toBeUndefined();
  });
});
