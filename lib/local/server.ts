import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import type { Clock } from '../clock';
import { isLoopbackHost } from '../config';
import { InvalidRequestError, isBrokerError, problemResponse } from '../errors';
import { verifySigV4, type CallerKey } from '../sigv4';

// The local stand-in for API Gateway: it checks each request's SigV4 signature as AWS_IAM does, turns the request
// into an API Gateway REST proxy event with the caller's IAM identity, and calls the very handler Lambda runs.

export type ProxyHandler = (event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>;

export interface LocalServerOptions {
  handler: ProxyHandler;
  callers: ReadonlyMap<string, CallerKey>;
  region: string;
  clock: Clock;
  port?: number;
  host?: string;
  /** Bodies beyond this are refused before anything else (the API's limit is 64 KB). */
  maxBodyBytes?: number;
  /** Told why a signature was refused (the caller only ever sees 401). */
  onRefused?: (reason: string) => void;
  /**
   * The operator's console (GET /console): HTML for the page's query. Served without SigV4 (a browser cannot sign),
   * so only on a loopback listener and only to a loopback peer.
   */
  console?: (query: URLSearchParams) => Promise<string>;
}

const CONSOLE_PATH = '/console';

/** GET /console for a loopback peer: the page, or undefined when this request is not the console's. */
async function consoleAnswer(req: http.IncomingMessage, opts: LocalServerOptions, host: string): Promise<APIGatewayProxyResult | undefined> {
  const [path = '/', query = ''] = (req.url ?? '/').split('?', 2);
  if (!opts.console || req.method !== 'GET' || (path !== CONSOLE_PATH && path !== `${CONSOLE_PATH}/`)) return undefined;
  if (!isLoopbackHost(host) || !isLoopbackHost(req.socket.remoteAddress?.replace(/^::ffff:/, '') ?? '')) return undefined;
  const html = await opts.console(new URLSearchParams(query));
  return {
    statusCode: 200,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      // The page's one inline script reloads it; nothing else may run, load or frame it.
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
      'x-content-type-options': 'nosniff',
    },
    body: html,
  };
}

export interface RunningServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

function send(res: http.ServerResponse, result: APIGatewayProxyResult): void {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(result.headers ?? {})) headers[k] = String(v);
  res.writeHead(result.statusCode, headers);
  res.end(result.body);
}

function lambdaContext(requestId: string): Context {
  const deadline = Date.now() + 29_000;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: 'token-broker-local',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:local:000000000000:function:token-broker-local',
    memoryLimitInMB: '512',
    awsRequestId: requestId,
    logGroupName: 'local',
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

function toEvent(
  req: http.IncomingMessage,
  target: string,
  body: Buffer,
  identity: { accessKeyId: string; arn: string },
  requestId: string,
  now: number,
): APIGatewayProxyEvent {
  const [path = '/', rawQuery = ''] = target.split('?', 2);
  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const k = req.rawHeaders[i]!;
    const v = req.rawHeaders[i + 1]!;
    headers[k] = v;
    (multiValueHeaders[k] ??= []).push(v);
  }
  const query: Record<string, string> = {};
  const multiQuery: Record<string, string[]> = {};
  for (const [k, v] of new URLSearchParams(rawQuery)) {
    query[k] = v;
    (multiQuery[k] ??= []).push(v);
  }
  const hasQuery = Object.keys(query).length > 0;
  const account = /^arn:aws[a-z-]*:(?:iam|sts)::(\d{12}):/.exec(identity.arn)?.[1] ?? null;
  return {
    resource: path,
    path,
    httpMethod: req.method ?? 'GET',
    headers,
    multiValueHeaders,
    queryStringParameters: hasQuery ? query : null,
    multiValueQueryStringParameters: hasQuery ? multiQuery : null,
    pathParameters: null,
    stageVariables: null,
    body: body.length > 0 ? body.toString('utf8') : null,
    isBase64Encoded: false,
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      authorizer: null,
      protocol: `HTTP/${req.httpVersion}`,
      httpMethod: req.method ?? 'GET',
      path,
      stage: 'local',
      requestId,
      requestTimeEpoch: now,
      resourceId: 'local',
      resourcePath: path,
      identity: {
        accessKey: identity.accessKeyId,
        accountId: account,
        apiKey: null,
        apiKeyId: null,
        caller: identity.accessKeyId,
        clientCert: null,
        cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null,
        cognitoIdentityId: null,
        cognitoIdentityPoolId: null,
        principalOrgId: null,
        sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
        user: identity.accessKeyId,
        userAgent: String(req.headers['user-agent'] ?? ''),
        userArn: identity.arn,
      },
    },
  };
}

export async function startLocalServer(opts: LocalServerOptions): Promise<RunningServer> {
  const maxBody = opts.maxBodyBytes ?? 64 * 1024;
  const server = http.createServer((req, res) => {
    const requestId = randomUUID();
    const chunks: Buffer[] = [];
    let size = 0;
    // The body is not authenticated yet: past the limit, answer and close the connection instead of reading on.
    let refused = false;
    const refuse = () => {
      refused = true;
      req.removeAllListeners('data');
      req.pause();
      res.setHeader('connection', 'close');
      send(res, problemResponse(new InvalidRequestError('the body is larger than 64 KB'), requestId));
      // FIN after the answer so the client reads it; the socket goes a second later whatever the client does.
      res.once('finish', () => {
        req.socket.end();
        setTimeout(() => req.socket.destroy(), 1_000).unref();
      });
    };
    if (Number(req.headers['content-length'] ?? 0) > maxBody) return refuse();
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBody) refuse();
      else chunks.push(c);
    });
    req.on('error', () => res.destroy());
    req.on('end', () => {
      if (refused) return;
      void (async () => {
        try {
          const page = await consoleAnswer(req, opts, opts.host ?? '127.0.0.1');
          if (page) return send(res, page);
          const body = Buffer.concat(chunks);
          const target = req.url ?? '/';
          const now = opts.clock.now();
          let identity;
          try {
            identity = await verifySigV4({ method: req.method ?? 'GET', target, headers: req.headers, body }, opts.callers, {
              region: opts.region,
              now,
            });
          } catch (err) {
            if (isBrokerError(err)) opts.onRefused?.(String(err.context.reason ?? 'refused'));
            throw err;
          }
          const event = toEvent(req, target, body, identity, requestId, now);
          send(res, await opts.handler(event, lambdaContext(requestId)));
        } catch (err) {
          send(res, problemResponse(err, requestId));
        }
      })();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${opts.host ?? '127.0.0.1'}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
