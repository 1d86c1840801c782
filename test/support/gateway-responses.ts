import { expect } from 'vitest';
import { GATEWAY_RESPONSES, NOT_FOUND_METHOD, type GatewayResponse } from '../../infra/constructs/broker-api';

// API Gateway's own answers, rendered as API Gateway renders them: the mapping templates of
// x-amazon-apigateway-gateway-responses (and of the not-found mock integration) with their $context variables
// substituted, the static header values unquoted. Tests feed these to JSON.parse and to the client SDK.

export interface GatewayVariables {
  /** $context.error.message; $context.error.messageString is the same text as a quoted JSON string. */
  message: string;
  requestId: string;
  responseType: string;
}

/** A message with the characters that break hand-quoted JSON: quotes, a backslash, a newline. */
export const SAMPLE_VARIABLES: GatewayVariables = {
  message: 'The request signature we calculated does not match the signature you provided: "GET\n/v1/connections" \\ check the key',
  requestId: 'c6af9ac6-7b61-11e6-9a41-93e8deadbeef',
  responseType: 'INVALID_SIGNATURE',
};

export interface RenderedAnswer {
  /** The gateway response type, or NOT_FOUND for the catch-all routes' mock integration. */
  type: string;
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Substitutes the $context variables API Gateway fills in; any other variable fails, so none slips by. */
export function renderTemplate(template: string, vars: GatewayVariables): string {
  const values: Record<string, string> = {
    '$context.error.messageString': JSON.stringify(vars.message),
    '$context.error.message': vars.message,
    '$context.error.responseType': vars.responseType,
    '$context.requestId': vars.requestId,
  };
  return template.replace(/\$context(?:\.[A-Za-z]+)+/g, (name) => {
    const value = values[name];
    if (value === undefined) throw new Error(`the template uses ${name}, which this renderer does not know`);
    return value;
  });
}

/** Header values in responseParameters are static strings in single quotes. */
function staticHeaders(parameters: Record<string, string>, prefix: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [key, value] of Object.entries(parameters)) {
    if (!key.startsWith(prefix)) throw new Error(`unexpected response parameter ${key}`);
    const m = /^'(.*)'$/.exec(value);
    if (!m) throw new Error(`${key}: only static header values are rendered here`);
    headers[key.slice(prefix.length).toLowerCase()] = m[1]!;
  }
  return headers;
}

export function renderGatewayResponse(type: string, response: GatewayResponse, vars: GatewayVariables = SAMPLE_VARIABLES): RenderedAnswer {
  return {
    type,
    status: Number(response.statusCode),
    headers: staticHeaders(response.responseParameters, 'gatewayresponse.header.'),
    body: renderTemplate(response.responseTemplates['application/json'], { ...vars, responseType: type }),
  };
}

type MockIntegration = {
  responses: { default: { statusCode: string; responseParameters: Record<string, string>; responseTemplates: { 'application/json': string } } };
};

/** The answer of a path or method that is no route (the catch-all's mock integration). */
export function renderNotFound(method: Record<string, unknown> = NOT_FOUND_METHOD, vars: GatewayVariables = SAMPLE_VARIABLES): RenderedAnswer {
  const answer = (method['x-amazon-apigateway-integration'] as MockIntegration).responses.default;
  return {
    type: 'NOT_FOUND',
    status: Number(answer.statusCode),
    headers: staticHeaders(answer.responseParameters, 'method.response.header.'),
    body: renderTemplate(answer.responseTemplates['application/json'], vars),
  };
}

/** Every answer API Gateway writes itself for this API (from a synthesized body, or the construct's own). */
export function renderGatewayAnswers(
  responses: Record<string, GatewayResponse> = GATEWAY_RESPONSES,
  notFound: Record<string, unknown> = NOT_FOUND_METHOD,
  vars: GatewayVariables = SAMPLE_VARIABLES,
): RenderedAnswer[] {
  return [...Object.entries(responses).map(([type, r]) => renderGatewayResponse(type, r, vars)), renderNotFound(notFound, vars)];
}

/** The answers, ready for a client test: status, headers, body. */
export const GATEWAY_ANSWERS: readonly RenderedAnswer[] = renderGatewayAnswers();

/** The status and code each answer must carry (NOT_FOUND: the catch-all routes). */
export const EXPECTED: Record<string, { status: number; code: string }> = {
  MISSING_AUTHENTICATION_TOKEN: { status: 401, code: 'unauthenticated' },
  INVALID_SIGNATURE: { status: 401, code: 'unauthenticated' },
  EXPIRED_TOKEN: { status: 401, code: 'unauthenticated' },
  UNAUTHORIZED: { status: 401, code: 'unauthenticated' },
  ACCESS_DENIED: { status: 403, code: 'forbidden' },
  WAF_FILTERED: { status: 403, code: 'forbidden' },
  INVALID_API_KEY: { status: 403, code: 'forbidden' },
  RESOURCE_NOT_FOUND: { status: 404, code: 'not_found' },
  NOT_FOUND: { status: 404, code: 'not_found' },
  BAD_REQUEST_BODY: { status: 400, code: 'invalid_request' },
  BAD_REQUEST_PARAMETERS: { status: 400, code: 'invalid_request' },
  REQUEST_TOO_LARGE: { status: 413, code: 'invalid_request' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, code: 'invalid_request' },
  DEFAULT_4XX: { status: 400, code: 'invalid_request' },
  THROTTLED: { status: 429, code: 'rate_limited' },
  QUOTA_EXCEEDED: { status: 429, code: 'rate_limited' },
  INTEGRATION_FAILURE: { status: 502, code: 'service_unavailable' },
  INTEGRATION_TIMEOUT: { status: 504, code: 'service_unavailable' },
  DEFAULT_5XX: { status: 500, code: 'service_unavailable' },
};

/** Checks one rendered answer the way a caller reads it. */
export function expectProblem(answer: RenderedAnswer, requestId = SAMPLE_VARIABLES.requestId): void {
  const expected = EXPECTED[answer.type];
  expect(expected, `${answer.type} has an expected code`).toBeDefined();
  expect(answer.status).toBe(expected!.status);
  expect(answer.headers['content-type']).toBe('application/problem+json');
  expect(answer.headers['cache-control']).toBe('no-store');
  const body = JSON.parse(answer.body) as Record<string, unknown>;
  expect(body).toMatchObject({
    type: `https://token-broker.internal/problems/${expected!.code.replace(/_/g, '-')}`,
    status: expected!.status,
    code: expected!.code,
    instance: requestId,
  });
  expect(typeof body.title).toBe('string');
  if (answer.type !== 'NOT_FOUND') expect(body.detail).toBe(SAMPLE_VARIABLES.message);
  if (expected!.code === 'rate_limited' || expected!.code === 'service_unavailable') {
    expect(Number(answer.headers['retry-after'])).toBeGreaterThan(0);
  } else {
    expect(answer.headers['retry-after']).toBeUndefined();
  }
}

