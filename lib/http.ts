import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { rootCertificates } from 'node:tls';
import { abortReason } from './clock';

// The one outbound HTTP client: a deadline on every call (through the signal), a cap on the response size, no
// redirects followed (the caller sees the 3xx), keep-alive sockets reused across calls of one instance. Mutual
// TLS goes through the same code with an agent of its own per client certificate.

export interface HttpRequest {
  url: URL;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
  /** Aborting it abandons the call at once; its reason is what the call rejects with. */
  signal: AbortSignal;
  maxResponseBytes: number;
  /** Mutual TLS (https only): the client certificate and its key, PEM, presented for `owner` (a connection). */
  clientCertificate?: { owner: string; certificate: string; privateKey: string };
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export type HttpTransportFailure = 'connect' | 'reset' | 'too_large';

/** A call that got no complete answer. Its message holds only the failure kind and a system error code. */
export class HttpTransportError extends Error {
  constructor(
    readonly kind: HttpTransportFailure,
    readonly systemCode?: string,
  ) {
    super(systemCode ? `${kind} (${systemCode})` : kind);
    this.name = 'HttpTransportError';
  }
}

export type HttpClient = (req: HttpRequest) => Promise<HttpResponse>;

const AGENT_OPTIONS = { keepAlive: true, maxSockets: 50 };
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

export interface HttpClientOptions {
  /** Certificate authorities (PEM) trusted beside the system's, e.g. the local sandbox vendor's. */
  extraCa?: string[];
}

interface CertificateAgent {
  fingerprint: string;
  agent: https.Agent;
  active: number;
  retired: boolean;
}

/**
 * One keep-alive agent per owner's client certificate: a new certificate (a new secret version) replaces its
 * owner's agent, and the old one is closed once its last request ends, so the number of agents is bounded by the
 * number of connections using mutual TLS.
 */
class CertificateAgents {
  private readonly byOwner = new Map<string, CertificateAgent>();
  constructor(private readonly ca: string[] | undefined) {}

  acquire(cert: NonNullable<HttpRequest['clientCertificate']>): CertificateAgent {
    const fingerprint = createHash('sha256').update(cert.certificate).update('\0').update(cert.privateKey).digest('hex');
    const current = this.byOwner.get(cert.owner);
    let entry = current;
    if (!entry || entry.fingerprint !== fingerprint) {
      if (current) this.retire(current);
      const agent = new https.Agent({
        ...AGENT_OPTIONS,
        cert: cert.certificate,
        key: cert.privateKey,
        ...(this.ca ? { ca: this.ca } : {}),
      });
      entry = { fingerprint, agent, active: 0, retired: false };
      this.byOwner.set(cert.owner, entry);
    }
    entry.active += 1;
    return entry;
  }

  release(entry: CertificateAgent): void {
    entry.active -= 1;
    if (entry.retired && entry.active === 0) entry.agent.destroy();
  }

  private retire(entry: CertificateAgent): void {
    entry.retired = true;
    if (entry.active === 0) entry.agent.destroy();
  }

  get size(): number {
    return this.byOwner.size;
  }
}

export interface NodeHttpClient extends HttpClient {
  /** How many mutual-TLS agents this client holds (one per connection at most). */
  readonly certificateAgents: () => number;
}

/** A client with its own keep-alive agents; `nodeHttpClient` is the one an instance shares. */
export function createHttpClient(opts: HttpClientOptions = {}): NodeHttpClient {
  const ca = opts.extraCa?.length ? [...rootCertificates, ...opts.extraCa] : undefined;
  const agents = {
    'http:': new http.Agent(AGENT_OPTIONS),
    'https:': new https.Agent({ ...AGENT_OPTIONS, ...(ca ? { ca } : {}) }),
  };
  const certificateAgents = new CertificateAgents(ca);
  const client: HttpClient = (req) => {
    if (!req.clientCertificate) return send(req, agents[req.url.protocol === 'https:' ? 'https:' : 'http:']);
    if (req.url.protocol !== 'https:') {
      return Promise.reject(new HttpTransportError('connect', 'MTLS_NEEDS_HTTPS'));
    }
    const entry = certificateAgents.acquire(req.clientCertificate);
    return send(req, entry.agent).finally(() => certificateAgents.release(entry));
  };
  return Object.assign(client, { certificateAgents: () => certificateAgents.size });
}

const send = (req: HttpRequest, agent: http.Agent): Promise<HttpResponse> =>
  new Promise<HttpResponse>((resolve, reject) => {
    if (req.signal.aborted) return reject(abortReason(req.signal));
    const transport = req.url.protocol === 'https:' ? https : http;
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      req.signal.removeEventListener('abort', onAbort);
      fn();
    };
    const headers: Record<string, string | number> = { ...req.headers };
    if (req.body !== undefined) headers['content-length'] = Buffer.byteLength(req.body);
    const outgoing = transport.request(
      req.url,
      { method: req.method, headers, agent },
      (res) => {
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > req.maxResponseBytes) {
          finish(() => reject(new HttpTransportError('too_large')));
          res.destroy();
          outgoing.destroy();
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > req.maxResponseBytes) {
            // Settle first: destroying emits 'aborted' synchronously.
            finish(() => reject(new HttpTransportError('too_large')));
            res.destroy();
            outgoing.destroy();
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () =>
          finish(() => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) })),
        );
        res.on('error', (err: NodeJS.ErrnoException) =>
          finish(() => reject(new HttpTransportError('reset', err.code))),
        );
        res.on('aborted', () => finish(() => reject(new HttpTransportError('reset', 'ECONNRESET'))));
      },
    );
    const onAbort = () => {
      finish(() => reject(abortReason(req.signal)));
      outgoing.destroy();
    };
    req.signal.addEventListener('abort', onAbort, { once: true });
    outgoing.on('error', (err: NodeJS.ErrnoException) => {
      const kind: HttpTransportFailure = err.code && CONNECT_CODES.has(err.code) ? 'connect' : 'reset';
      finish(() => reject(new HttpTransportError(kind, err.code)));
    });
    if (req.body !== undefined) outgoing.write(req.body);
    outgoing.end();
  });

export const nodeHttpClient: NodeHttpClient = createHttpClient();
