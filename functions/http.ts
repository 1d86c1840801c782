import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import type * as z from 'zod/mini';
import type { Broker, ConnectionStatus, IssuedToken } from '../lib/broker';
import type { ConnectionChanges } from '../lib/connection-changes';
import { ConnectionCatalog } from '../lib/connections';
import { systemClock, type Clock } from '../lib/clock';
import { METRICS_FROM_HTTP_LOG, MIN_TTL, REQUEST_FAILED, TOKEN_HANDED_OUT } from '../lib/contract';
import {
  DependencyUnavailableError,
  ForbiddenError,
  InvalidRequestError,
  NotFoundError,
  UnauthenticatedError,
  isBrokerError,
  problemResponse,
} from '../lib/errors';
import { fingerprint } from '../lib/fingerprint';
import { canUse, isAdmin, principalArn } from '../lib/policy';
import type { EmfMetrics } from '../lib/adapters/emf';
import type { JsonLogger } from '../lib/adapters/log';
import { loggerPort, requestLogKeys } from '../lib/adapters/powertools';
import { readHealth } from '../lib/console/health';
import { ServedCounter } from '../lib/console/served';
import { STATUS_LIMIT, statusPage } from '../lib/console/status';
import type { RecordScan, ServedCounts } from '../lib/ports';
import { lambdaEntry, withPowertools } from './entry';
import {
  ConnectionId,
  InvalidateBody,
  LIST_LIMIT,
  ListLimit,
  ListNext,
  ListRole,
  MAX_BODY_BYTES,
  MinTtl,
  StatusLimit,
  StatusNext,
  VerifyBody,
} from './schemas';

// The HTTP API (docs/api.md) as one API Gateway REST proxy handler: identity from the IAM
// authorizer's request context, validation with zod at the edge, one call into the broker, the answer shaped here.

export interface HttpDeps {
  broker: Broker;
  logger: JsonLogger;
  metrics: EmfMetrics;
  /**
   * Where connections come from (the file, and the table) and the admin's changes to registered ones. Without it,
   * the broker's own file is the only source and changes answer 503.
   */
  connections?: { catalog: ConnectionCatalog; changes?: ConnectionChanges };
  /** The table, read by GET /v1/status and told the requests served (issue 21); without it neither happens. */
  store?: RecordScan & ServedCounts;
  clock?: Clock;
}

type Route = 'list' | 'token' | 'invalidate' | 'refresh' | 'verify' | 'status' | 'statusOfAll' | 'put' | 'describe' | 'delete';

const ROUTES: { method: string; pattern: RegExp; route: Route }[] = [
  { method: 'GET', pattern: /^\/v1\/connections\/?$/, route: 'list' },
  { method: 'GET', pattern: /^\/v1\/connections\/([^/]*)\/token\/?$/, route: 'token' },
  { method: 'POST', pattern: /^\/v1\/connections\/([^/]*)\/token\/invalidate\/?$/, route: 'invalidate' },
  { method: 'POST', pattern: /^\/v1\/connections\/([^/]*)\/refresh\/?$/, route: 'refresh' },
  { method: 'POST', pattern: /^\/v1\/connections\/([^/]*)\/verify\/?$/, route: 'verify' },
  { method: 'GET', pattern: /^\/v1\/connections\/([^/]*)\/status\/?$/, route: 'status' },
  { method: 'PUT', pattern: /^\/v1\/connections\/([^/]*)\/?$/, route: 'put' },
  { method: 'GET', pattern: /^\/v1\/connections\/([^/]*)\/?$/, route: 'describe' },
  { method: 'DELETE', pattern: /^\/v1\/connections\/([^/]*)\/?$/, route: 'delete' },
  { method: 'GET', pattern: /^\/v1\/status\/?$/, route: 'statusOfAll' },
];

const JSON_HEADERS = {
  'content-type': 'application/json',
  'cache-control': 'no-store',
  pragma: 'no-cache',
};

function json(statusCode: number, body: unknown): APIGatewayProxyResult {
  return { statusCode, headers: { ...JSON_HEADERS }, body: JSON.stringify(body) };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** The IAM principal API Gateway authenticated (AWS_IAM); assumed-role sessions are matched as their role. */
function callerOf(event: APIGatewayProxyEvent): { arn: string; caller: string | undefined; account: string | undefined } {
  const identity = event.requestContext?.identity;
  const arn = identity?.userArn;
  if (!arn || typeof arn !== 'string') throw new UnauthenticatedError();
  return { arn, caller: identity.caller ?? undefined, account: identity.accountId ?? undefined };
}

function route(event: APIGatewayProxyEvent): { route: Route; connectionId?: string } {
  const method = (event.httpMethod ?? '').toUpperCase();
  const path = event.path ?? '';
  for (const r of ROUTES) {
    const m = r.pattern.exec(path);
    if (!m) continue;
    if (r.method !== method) continue;
    if (m[1] === undefined) return { route: r.route };
    let raw: string;
    try {
      raw = decodeURIComponent(m[1]);
    } catch {
      throw new InvalidRequestError('the connection id is not a valid URL path segment');
    }
    const id = ConnectionId.safeParse(raw);
    if (!id.success) throw new InvalidRequestError('the connection id must be 1-128 characters of A-Z a-z 0-9 . _ -');
    return { route: r.route, connectionId: id.data };
  }
  throw new NotFoundError(`there is no route ${method} ${path.slice(0, 200)}`);
}

/** `?role=admin`: the list of connections an admin administers, rather than those it may get tokens from. */
function listsAdministered(event: APIGatewayProxyEvent): boolean {
  if ((event.multiValueQueryStringParameters?.role?.length ?? 0) > 1) throw new InvalidRequestError('role is given more than once');
  const raw = event.queryStringParameters?.role;
  if (raw === undefined || raw === null) return false;
  if (!ListRole.safeParse(raw).success) throw new InvalidRequestError('role must be "admin"');
  return true;
}

/** One query parameter, given at most once; undefined when absent. */
function queryOf(event: APIGatewayProxyEvent, name: string): string | undefined {
  if ((event.multiValueQueryStringParameters?.[name]?.length ?? 0) > 1) throw new InvalidRequestError(`${name} is given more than once`);
  return event.queryStringParameters?.[name] ?? undefined;
}

function minTtlOf(event: APIGatewayProxyEvent): number {
  const raw = queryOf(event, 'min_ttl');
  if (raw === undefined) return MIN_TTL.default;
  const parsed = MinTtl.safeParse(raw);
  if (!parsed.success) throw new InvalidRequestError(`min_ttl must be an integer from ${MIN_TTL.min} to ${MIN_TTL.max}`);
  return parsed.data;
}

/** `?limit=` and `?next=` of a listing. */
function pageOf(event: APIGatewayProxyEvent): { limit: number; next?: string } {
  const rawLimit = queryOf(event, 'limit');
  const limit = rawLimit === undefined ? { success: true as const, data: LIST_LIMIT.default } : ListLimit.safeParse(rawLimit);
  if (!limit.success) throw new InvalidRequestError(`limit must be an integer from ${LIST_LIMIT.min} to ${LIST_LIMIT.max}`);
  const rawNext = queryOf(event, 'next');
  if (rawNext === undefined) return { limit: limit.data };
  if (!ListNext.safeParse(rawNext).success) throw new InvalidRequestError('next must be a token from a previous page of this list');
  return { limit: limit.data, next: rawNext };
}

/** The If-Match header (one strong etag, or `*`), undefined when absent. */
function ifMatchOf(event: APIGatewayProxyEvent): string | undefined {
  const found = Object.entries(event.headers ?? {}).filter(([k]) => k.toLowerCase() === 'if-match');
  if (found.length === 0 || found[0]![1] === undefined) return undefined;
  const raw = found[0]![1].trim();
  if (raw === '*') return raw;
  const m = /^"([A-Za-z0-9_-]{1,64})"$/.exec(raw) ?? /^([A-Za-z0-9_-]{1,64})$/.exec(raw);
  if (found.length > 1 || !m) throw new InvalidRequestError('If-Match must be one etag this API gave (or *)');
  return m[1];
}

/** One query parameter, given at most once, checked against its schema. */
function checkedQueryOf<T extends z.ZodMiniType>(event: APIGatewayProxyEvent, name: string, schema: T): z.output<T> | undefined {
  const raw = queryOf(event, name);
  if (raw === undefined) return undefined;
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new InvalidRequestError(`${name} is not valid`);
  return parsed.data;
}

function jsonOf(event: APIGatewayProxyEvent, optional = false): unknown {
  let text = event.body ?? '';
  if (event.isBase64Encoded && text) text = Buffer.from(text, 'base64').toString('utf8');
  if (Buffer.byteLength(text, 'utf8') > MAX_BODY_BYTES) throw new InvalidRequestError('the body is larger than 64 KB');
  if (text.trim() === '') {
    if (!optional) throw new InvalidRequestError('a JSON body is required');
    return {};
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new InvalidRequestError('the body is not valid JSON');
  }
}

function bodyOf<T extends z.ZodMiniType>(event: APIGatewayProxyEvent, schema: T, optional = false): z.output<T> {
  const parsed = schema.safeParse(jsonOf(event, optional));
  if (!parsed.success) {
    const fields = [...new Set(parsed.error.issues.map((i) => i.path.join('.') || '(body)'))].join(', ');
    throw new InvalidRequestError(`the body is not valid: ${fields}`);
  }
  return parsed.data;
}

function tokenAnswer(t: IssuedToken) {
  return {
    connection: t.connection,
    access_token: t.accessToken,
    token_type: t.tokenType,
    expires_in: t.expiresIn,
    expires_at: iso(t.expiresAt),
    authorization: `${t.tokenType} ${t.accessToken}`,
  };
}

/** An admin's view of a connection, as the API answers it: times in ISO 8601, fingerprints only, nothing secret. */
function statusAnswer(s: ConnectionStatus) {
  return {
    connection: s.connection,
    dialect: s.dialect,
    static: s.static,
    ...(s.token
      ? {
          token: {
            expires_at: iso(s.token.expiresAt),
            minted_at: iso(s.token.mintedAt),
            minted_by: s.token.mintedBy,
            fingerprint: s.token.fingerprint,
            secret_version: s.token.secretVersion,
          },
        }
      : {}),
    ...(s.cooldown ? { cooldown: { code: s.cooldown.code, until: iso(s.cooldown.until) } } : {}),
    ...(s.lastFailure
      ? {
          last_failure: {
            code: s.lastFailure.code,
            at: iso(s.lastFailure.at),
            ...(s.lastFailure.vendorStatus === undefined ? {} : { vendor_status: s.lastFailure.vendorStatus }),
          },
        }
      : {}),
    ...(s.lease ? { lease: { holder: s.lease.holder, until: iso(s.lease.until) } } : {}),
  };
}

/**
 * The request handler without middleware: what the local server and the tests call through the middleware too. Every
 * request on a connection leaves one audit line, the one with a `status`: who (`caller`) in which request (API
 * Gateway's `requestId`), which connection, what happened (a fingerprint, never a token) and the `status`; a refusal or a
 * failure is that request's audit line. The token's is counted into TokensServed by a metric filter. Who and which
 * request come from the request itself, never from the logger's shared keys: the local server runs requests side
 * by side in one handler, and the broker's own lines get them from the request's async context (requestLogKeys).
 */
export function makeRequestHandler(deps: HttpDeps) {
  const { broker, logger, store } = deps;
  const clock = deps.clock ?? systemClock;
  const served = store ? new ServedCounter(store, clock, undefined, loggerPort(logger)) : undefined;
  // Without the table's connections, the list pages over the file's alone.
  const catalog = deps.connections?.catalog ?? new ConnectionCatalog(broker.config, undefined, systemClock);
  const changes = deps.connections?.changes;
  return (event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> => {
    const requestId = event.requestContext?.requestId;
    const who: { caller?: string; requestId?: string } = {};
    return requestLogKeys.run(who, async () => {
      let audited: { caller?: string; requestId?: string; connection: string } | undefined;
      let callerArn: string | undefined;
      try {
        const caller = callerOf(event);
        callerArn = caller.arn;
        who.caller = principalArn(caller.arn);
        if (requestId) who.requestId = requestId;
        const r = route(event);
        const id = r.connectionId as string;
        if (r.connectionId !== undefined) audited = { ...who, connection: r.connectionId };
        switch (r.route) {
          case 'list': {
            // Every connection an admin administers (?role=admin): what `token-broker status` walks over.
            const administered = listsAdministered(event);
            if (administered && !isAdmin(caller.arn, broker.config)) throw new ForbiddenError();
            const { limit, next } = pageOf(event);
            const page = await catalog.page((c) => administered || canUse(caller.arn, c), limit, next);
            const connections = page.connections.map((c) => ({ id: c.id, dialect: c.dialectName }));
            return json(200, { connections, ...(page.next === undefined ? {} : { next: page.next }) });
          }
          case 'put':
          case 'describe':
          case 'delete':
            return await connectionRoute(r.route, event, caller.arn, id, changes, logger, audited);
          case 'token': {
            const minTtl = minTtlOf(event);
            const token = await broker.getToken(caller.arn, id, minTtl);
            logger.info(TOKEN_HANDED_OUT, { ...audited, fingerprint: token.fingerprint, source: token.source, status: 200 });
            await served?.served(id);
            return json(200, tokenAnswer(token));
          }
          case 'invalidate': {
            const body = bodyOf(event, InvalidateBody);
            const invalidated = await broker.invalidate(caller.arn, id, body.access_token);
            logger.info('invalidation reported', { ...audited, fingerprint: fingerprint(body.access_token), invalidated, status: 200 });
            return json(200, { invalidated });
          }
          case 'refresh': {
            const token = await broker.refresh(caller.arn, id);
            logger.info('refreshed by an admin', { ...audited, fingerprint: token.fingerprint, status: 200 });
            // The token's own expiry, and the cap on what callers are handed of it (they ask again after that).
            return json(200, { connection: id, expires_at: iso(token.tokenExpiresAt), max_ttl: token.maxTtl });
          }
          case 'status': {
            const status = await broker.status(caller.arn, id);
            logger.info('status read by an admin', { ...audited, status: 200 });
            return json(200, statusAnswer(status));
          }
          case 'statusOfAll': {
            // Every connection an admin administers, file and registered, from one parallel scan of the table.
            if (!isAdmin(caller.arn, broker.config) || !store) throw new ForbiddenError();
            const limit = checkedQueryOf(event, 'limit', StatusLimit) ?? STATUS_LIMIT.default;
            const start = Number(checkedQueryOf(event, 'next', StatusNext) ?? 0);
            const all = async () => [...broker.config.connections, ...(await catalog.allRegistered())];
            const healths = await readHealth({ connections: all, records: store }, clock.now());
            logger.info('status of all read by an admin', { ...who, status: 200 });
            return json(200, statusPage(healths, limit, start));
          }
          case 'verify': {
            const body = bodyOf(event, VerifyBody, true);
            const outcome = await broker.verify(caller.arn, id, body.versionStage);
            logger.info('secret verified', { ...audited, versionStage: body.versionStage, status: 200 });
            return json(200, { connection: id, versionStage: body.versionStage, expires_in: outcome.expiresIn });
          }
        }
      } catch (err) {
        const known = isBrokerError(err);
        const fields = {
          ...who,
          ...(requestId ? { requestId } : {}),
          ...audited,
          code: known ? err.code : 'internal_error',
          status: known ? err.status : 500,
          ...(known ? { reason: err.message } : { errorName: err instanceof Error ? err.name : typeof err }),
        };
        if (!known || err.status >= 500) logger.error(REQUEST_FAILED, fields);
        else logger.info('request refused', fields);
        // Only an admin is told what a misconfigured connection lacks; a caller learns nothing of the internals.
        const admin = known && err.code === 'misconfigured' && callerArn !== undefined && isAdmin(callerArn, broker.config);
        return problemResponse(err, requestId, { admin });
      }
    });
  };
}

/** An admin's PUT, GET and DELETE of /v1/connections/{id}: the change's audit line is written by the use case. */
async function connectionRoute(
  route: 'put' | 'describe' | 'delete',
  event: APIGatewayProxyEvent,
  arn: string,
  id: string,
  changes: ConnectionChanges | undefined,
  logger: JsonLogger,
  audited: Record<string, unknown> | undefined,
): Promise<APIGatewayProxyResult> {
  if (!changes) throw new DependencyUnavailableError('this broker has no table of registered connections');
  const etagHeader = (etag: string) => ({ etag: `"${etag}"` });
  if (route === 'describe') {
    const d = await changes.describe(arn, id);
    logger.info('connection read by an admin', { ...audited, source: d.source, status: 200 });
    const res = json(200, d);
    return { ...res, headers: { ...res.headers, ...etagHeader(d.etag) } };
  }
  const ifMatch = ifMatchOf(event);
  if (route === 'delete') {
    await changes.remove(arn, id, ifMatch);
    return { statusCode: 204, headers: { 'cache-control': 'no-store' }, body: '' };
  }
  const body = jsonOf(event);
  const { created, etag } = await changes.put(arn, id, body, ifMatch);
  const res = json(created ? 201 : 200, { connection: id, etag });
  return { ...res, headers: { ...res.headers, ...etagHeader(etag) } };
}

export const makeHandler = (deps: HttpDeps) =>
  withPowertools<APIGatewayProxyEvent, APIGatewayProxyResult>(makeRequestHandler(deps), deps);

/** Lambda's entry point: the broker is built once per instance, on the first invocation. */
export const handler = lambdaEntry(makeHandler, { metricsFromLogs: METRICS_FROM_HTTP_LOG });
