import { execFileSync } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { listenOnLoopback } from './loopback';

// A vendor over https on loopback, as a deployed broker requires: a self-signed certificate for 127.0.0.1 made with
// openssl (trusted by the functions through NODE_EXTRA_CA_CERTS), and a TLS front that passes each request on to a
// plain-http sandbox vendor.

export function selfSignedCertificate(dir: string): { certPath: string; cert: string; key: string } {
  const keyPath = join(dir, 'vendor.key');
  const certPath = join(dir, 'vendor.crt');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyPath, '-out', certPath, '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: 'ignore', timeout: 15_000 });
  return { certPath, cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') };
}

export async function startHttpsFront(target: string, tls: { cert: string; key: string }) {
  const upstream = new URL(target);
  const server = https.createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    const forward = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  const port = await listenOnLoopback(server);
  return {
    /** The https URL for a plain-http URL of the target. */
    url: (plain: string) => {
      const u = new URL(plain);
      return `https://127.0.0.1:${port}${u.pathname}${u.search}`;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
