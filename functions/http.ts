import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import type * as z from 'zod/mini';
import type { Broker, ConnectionStatus, IssuedToken } from '../lib/broker';
import { METRICS_FROM_HTTP_LOG, MIN_TTL, REQUEST_FAILED, TOKEN_HANDED_OUT } from '../lib/contract';
import { ForbiddenError, InvalidRequestError, NotFoundError, UnauthenticatedError, isBrokerError, problemResponse } from '../lib/errors';
import { fingerprint } from '../lib/fingerprint';
import { isAdmin, principalArn } from '../lib/policy';
import { loggerPort } from '../lib/adapters/powertools';
import { systemClock, type Clock } from '../lib/clock';
import { readHealth } from '../lib/console/health';
import { ServedCounter } from '../lib/console/served';
import { STATUS_LIMIT, statusPage } from '../lib/console/status';
import type { RecordScan, ServedCounts } from '../lib/ports';
import { lambdaEntry, withPowertools } from './entry';
import { ConnectionId, InvalidateBody, ListRole, MAX_BODY_BYTES, MinTtl, StatusLimit, StatusNext, VerifyBody } from './schemas';

// The HTTP API (docs/api.md) as one API Gateway REST proxy handler: identity from the IAM
// authorizer's request context, validation with zod at the edge, one call into the broker, the answer shaped here.

export interface HttpDeps {
  broker: Broker;
  logger: Logger;
  metrics: Metrics;
  /** The table, read by GET /v1/status and told the requests served (issue 21); without it neither happens. */
  store?: RecordScan & ServedCounts;
  clock?: Clock;
}

type Route = 'list' | 'token' | 'invalidate' | 'refresh' | 'verify' | 'status' | 'statusOfAll';

const ROUTES: { method: string; pattern: RegExp; route: Route }[] = [
  { method: 'GET', pattern: /^\/v1\/connections\/?$/, route: 'list' },
  { method: 'GET', pattern: /^\/v1\/connections\/([^/]*)\/token\/?$/, route: 'token' },
  { method: 'POST', pattern: /^\/v1\/connections\/([^/]*)\/token\/invalidate\/?$/, route: 'invalidate' },
  { method: 'POST', pattern: /^\/v1\/connections\/([^/]*)\/refresh\/?$/, route: 'refresh' },
  { method: 'POST', pattern: /^\/v1\/connections\/([^/]*)\/verify\/?$/, route: 'verify' },
  { method: 'GET', pattern: /^\/v1\/connections\/([^/]*)\/status\/?$/, route: 'status' },
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

function minTtlOf(event: APIGatewayProxyEvent): number {
  const multi = event.multiValueQueryStringParameters?.min_ttl;
  if (multi && multi.length > 1) throw new InvalidRequestError('min_ttl is given more than once');
  const raw = event.queryStringParameters?.min_ttl;
  if (raw === undefined || raw === null) return MIN_TTL.default;
  const parsed = MinTtl.safeParse(raw);
  if (!parsed.success) throw new InvalidRequestError(`min_ttl must be an integer from ${MIN_TTL.min} to ${MIN_TTL.max}`);
  return parsed.data;
}

/** One query parameter, given at most once, checked against its schema. */
function queryOf<T extends z.ZodMiniType>(event: APIGatewayProxyEvent, name: string, schema: T): z.output<T> | undefined {
  if ((event.multiValueQueryStringParameters?.[name]?.length ?? 0) > 1) throw new InvalidRequestError(`${name} is given more than once`);
  const raw = event.queryStringParameters?.[name];
  if (raw === undefined || raw === null) return undefined;
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new InvalidRequestError(`${name} is not valid`);
  return parsed.data;
}

function bodyOf<T extends z.ZodMiniType>(event: APIGatewayProxyEvent, schema: T, optional = false): z.output<T> {
  let text = event.body ?? '';
  if (event.isBase64Encoded && text) text = Buffer.from(text, 'base64').toString('utf8');
  if (Buffer.byteLength(text, 'utf8') > MAX_BODY_BYTES) throw new InvalidRequestError('the body is larger than 64 KB');
  let value: unknown;
  if (text.trim() === '') {
    if (!optional) throw new InvalidRequestError('a JSON body is required');
    value = {};
  } else {
    try {
      value = JSON.parse(text);
    } catch {
      throw new InvalidRequestError('the body is not valid JSON');
    }
  }
  const parsed = schema.safeParse(value);
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
 * The request handler without middleware: what the local server and the tests call through middy too. Every
 * request on a connection leaves one audit line (`audit: true`): who (`caller`, on every line of the request, with
 * API Gateway's `requestId`), which connection, what happened (a fingerprint, never a token) and the `status`;
 * a refusal or a failure is that request's audit line. The token's is counted into TokensServed by a metric filter.
 */
export function makeRequestHandler(deps: HttpDeps) {
  const { broker, logger, store } = deps;
  const clock = deps.clock ?? systemClock;
  const served = store ? new ServedCounter(store, clock, undefined, loggerPort(logger)) : undefined;
  return async (event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> => {
    const requestId = event.requestContext?.requestId;
    let audited: { audit: true; connection: string } | undefined;
    try {
      const who = callerOf(event);
      const principal = principalArn(who.arn);
      logger.appendKeys({ caller: principal, ...(requestId ? { requestId } : {}) });
      const r = route(event);
      const id = r.connectionId as string;
      if (r.connectionId !== undefined) audited = { audit: true, connection: r.connectionId };
      switch (r.route) {
        case 'list': {
          if (!listsAdministered(event)) return json(200, { connections: broker.listConnections(who.arn) });
          // Every connection an admin administers: what `token-broker status` walks over.
          if (!isAdmin(who.arn, broker.config)) throw new ForbiddenError();
          return json(200, { connections: broker.config.connections.map((c) => ({ id: c.id, dialect: c.dialectName })) });
        }
        case 'token': {
          const minTtl = minTtlOf(event);
          const token = await broker.getToken(who.arn, id, minTtl);
          logger.info(TOKEN_HANDED_OUT, { ...audited, fingerprint: token.fingerprint, source: token.source, status: 200 });
          await served?.served(id);
          return json(200, tokenAnswer(token));
        }
        case 'invalidate': {
          const body = bodyOf(event, InvalidateBody);
          const invalidated = await broker.invalidate(who.arn, id, body.access_token);
          logger.info('invalidation reported', { ...audited, fingerprint: fingerprint(body.access_token), invalidated, status: 200 });
          return json(200, { invalidated });
        }
        case 'refresh': {
          const token = await broker.refresh(who.arn, id);
          logger.info('refreshed by an admin', { ...audited, fingerprint: token.fingerprint, status: 200 });
          return json(200, { connection: id, expires_at: iso(token.expiresAt) });
        }
        case 'status': {
          const status = await broker.status(who.arn, id);
          logger.info('status read by an admin', { ...audited, status: 200 });
          return json(200, statusAnswer(status));
        }
        case 'statusOfAll': {
          // Every connection an admin administers, from one parallel scan of the table: the console's view as JSON.
          if (!isAdmin(who.arn, broker.config) || !store) throw new ForbiddenError();
          const limit = queryOf(event, 'limit', StatusLimit) ?? STATUS_LIMIT.default;
          const start = Number(queryOf(event, 'next', StatusNext) ?? 0);
          const healths = await readHealth({ connections: () => broker.config.connections, records: store }, clock.now());
          logger.info('status of all read by an admin', { status: 200 });
          return json(200, statusPage(healths, limit, start));
        }
        case 'verify': {
          const body = bodyOf(event, VerifyBody, true);
          const outcome = await broker.verify(who.arn, id, body.versionStage);
          logger.info('secret verified', { ...audited, versionStage: body.versionStage, status: 200 });
          return json(200, { connection: id, versionStage: body.versionStage, expires_in: outcome.expiresIn });
        }
      }
    } catch (err) {
      const known = isBrokerError(err);
      const fields = {
        ...audited,
        code: known ? err.code : 'internal_error',
        status: known ? err.status : 500,
        ...(known ? { reason: err.message } : { errorName: err instanceof Error ? err.name : typeof err }),
      };
      if (!known || err.status >= 500) logger.error(REQUEST_FAILED, fields);
      else logger.info('request refused', fields);
      return problemResponse(err, requestId);
    } finally {
      logger.removeKeys(['caller']);
    }
  };
}

export const makeHandler = (deps: HttpDeps) =>
  withPowertools<APIGatewayProxyEvent, APIGatewayProxyResult>(makeRequestHandler(deps), deps);

/** Lambda's entry point: the broker is built once per instance, on the first invocation. */
export const handler = lambdaEntry(makeHandler, { metricsFromLogs: METRICS_FROM_HTTP_LOG });
