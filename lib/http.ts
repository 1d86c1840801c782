import http from 'node:http';
import https from 'node:https';

// The one outbound HTTP client: a deadline on every call (through the signal), a cap on the response size, no
// redirects followed (the caller sees the 3xx), keep-alive sockets reused across calls of one instance.

export interface HttpRequest {
  url: URL;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
  /** Aborting it abandons the call at once; its reason is what the call rejects with. */
  signal: AbortSignal;
  maxResponseBytes: number;
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

const agents = {
  'http:': new http.Agent({ keepAlive: true, maxSockets: 50 }),
  'https:': new https.Agent({ keepAlive: true, maxSockets: 50 }),
};

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

export const nodeHttpClient: HttpClient = (req) =>
  new Promise<HttpResponse>((resolve, reject) => {
    if (req.signal.aborted) return reject(req.signal.reason);
    const isHttps = req.url.protocol === 'https:';
    const transport = isHttps ? https : http;
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
      { method: req.method, headers, agent: agents[isHttps ? 'https:' : 'http:'] },
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
      finish(() => reject(req.signal.reason));
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
