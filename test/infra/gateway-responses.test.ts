import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addNotFoundRoutes, GATEWAY_RESPONSES, NOT_FOUND_METHOD, problemTemplate } from '../../infra/constructs/broker-api';
import { TokenBrokerClient, TokenBrokerError } from '../../lib/client';
import { EXPECTED, expectProblem, GATEWAY_ANSWERS, renderGatewayResponse, renderTemplate, SAMPLE_VARIABLES, type RenderedAnswer } from '../support/gateway-responses';
import { registerSecret } from '../support/secrets-registry';

registerSecret('gateway-test-secret-key');

// The answers API Gateway writes itself (bad or missing signature, access denied, throttled, too large, no route,
// its own failures) are problem+json with the API's codes, like the function's.

// Every response type API Gateway has; those not named fall to DEFAULT_4XX or DEFAULT_5XX.
const ALL_TYPES = [
  'ACCESS_DENIED', 'API_CONFIGURATION_ERROR', 'AUTHORIZER_CONFIGURATION_ERROR', 'AUTHORIZER_FAILURE', 'BAD_REQUEST_PARAMETERS',
  'BAD_REQUEST_BODY', 'DEFAULT_4XX', 'DEFAULT_5XX', 'EXPIRED_TOKEN', 'INTEGRATION_FAILURE', 'INTEGRATION_TIMEOUT', 'INVALID_API_KEY',
  'INVALID_SIGNATURE', 'MISSING_AUTHENTICATION_TOKEN', 'QUOTA_EXCEEDED', 'REQUEST_TOO_LARGE', 'RESOURCE_NOT_FOUND', 'THROTTLED',
  'UNAUTHORIZED', 'UNSUPPORTED_MEDIA_TYPE', 'WAF_FILTERED',
];

describe("API Gateway's own answers", () => {
  it('cover every response type, by name or by a default', () => {
    const named = Object.keys(GATEWAY_RESPONSES);
    expect(named).toEqual(expect.arrayContaining(['DEFAULT_4XX', 'DEFAULT_5XX']));
    for (const type of named) expect(ALL_TYPES).toContain(type);
    expect(GATEWAY_ANSWERS.map((a) => a.type).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  for (const answer of GATEWAY_ANSWERS) {
    it(`${answer.type}: ${answer.status} application/problem+json that parses, with its code, the request id and the message`, () => {
      expectProblem(answer);
    });
  }

  it('take $context.error.messageString as the quoted JSON string API Gateway renders, never quoting it again', () => {
    const template = GATEWAY_RESPONSES.INVALID_SIGNATURE!.responseTemplates['application/json'];
    expect(template).toContain('"detail":$context.error.messageString,');
    for (const message of ['plain', 'with "quotes"', 'a \\ backslash', 'a\nnewline and a tab\t', 'unicode ✓']) {
      const rendered = renderGatewayResponse('THROTTLED', GATEWAY_RESPONSES.THROTTLED!, { ...SAMPLE_VARIABLES, message });
      expect(JSON.parse(rendered.body).detail).toBe(message);
    }
  });

  it('would not parse with the message quoted twice (the fault this replaces)', () => {
    const doubled = problemTemplate(401, 'unauthenticated', 'Unauthenticated', '"$context.error.messageString"');
    expect(() => JSON.parse(renderTemplate(doubled, SAMPLE_VARIABLES))).toThrow();
  });
});

describe('paths and methods that are no route', () => {
  const paths = (): Record<string, Record<string, unknown>> => ({
    '/v1/connections': { get: {} },
    '/v1/connections/{id}/token': { get: {} },
    '/v1/connections/{id}/token/invalidate': { post: {} },
  });

  it('answer 404 not_found from every resource and below it, so MISSING_AUTHENTICATION_TOKEN only ever means unsigned', () => {
    const p = paths();
    addNotFoundRoutes(p);
    const resources = ['/', '/v1', '/v1/connections', '/v1/connections/{id}', '/v1/connections/{id}/token', '/v1/connections/{id}/token/invalidate'];
    for (const r of resources) expect(p[r]!['x-amazon-apigateway-any-method'], r).toBe(NOT_FOUND_METHOD);
    // A greedy child under every resource but one that already has a variable child ({id} under /v1/connections).
    for (const r of ['/{proxy+}', '/v1/{proxy+}', '/v1/connections/{id}/{proxy+}', '/v1/connections/{id}/token/{proxy+}', '/v1/connections/{id}/token/invalidate/{proxy+}']) {
      expect(p[r]!['x-amazon-apigateway-any-method'], r).toMatchObject({ 'x-amazon-apigateway-auth': { type: 'AWS_IAM' } });
    }
    expect(p['/v1/connections/{proxy+}']).toBeUndefined();
    expect(Object.keys(p)).toHaveLength(resources.length + 5);
    // The routes keep their own methods, which API Gateway prefers over ANY.
    expect(p['/v1/connections']!.get).toEqual({});
    expect(p['/v1/connections/{id}/token/invalidate']!.post).toEqual({});
  });

  it('are signed like the routes (AWS_IAM) and answered by a mock integration, never the function', () => {
    const integration = NOT_FOUND_METHOD['x-amazon-apigateway-integration'] as Record<string, any>;
    expect(integration.type).toBe('mock');
    expect(integration.requestTemplates['application/json']).toBe('{"statusCode": 404}');
    expect(Object.keys(NOT_FOUND_METHOD.responses as object)).toEqual(['404']);
  });
});

describe('the client SDK reads these answers', () => {
  let server: Server;
  let baseUrl: string;
  let current: RenderedAnswer = GATEWAY_ANSWERS[0]!;

  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      res.writeHead(current.status, current.headers);
      res.end(current.body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/test`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  for (const answer of GATEWAY_ANSWERS) {
    it(`${answer.type}: TokenBrokerError with code ${EXPECTED[answer.type]?.code}, status ${answer.status}${answer.headers['retry-after'] ? ' and Retry-After' : ''}`, async () => {
      current = answer;
      const client = new TokenBrokerClient({
        baseUrl,
        region: 'eu-west-1',
        credentials: { accessKeyId: 'AKIDGATEWAYTEST', secretAccessKey: 'gateway-test-secret-key' },
        timeoutMs: 5_000,
      });
      const err = await client.listConnections().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(TokenBrokerError);
      const e = err as TokenBrokerError;
      expect(e.code).toBe(EXPECTED[answer.type]!.code);
      expect(e.status).toBe(answer.status);
      expect(e.retryAfter).toBe(answer.headers['retry-after'] ? Number(answer.headers['retry-after']) : undefined);
    });
  }
});
