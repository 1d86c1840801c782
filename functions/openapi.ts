import * as z from 'zod/mini';
import {
  ConnectionChangeAnswer,
  ConnectionDefinition,
  ConnectionDescription,
  ConnectionList,
  InvalidateAnswer,
  ProblemAnswer,
  RefreshAnswer,
  StatusAnswer,
  StatusListAnswer,
  TokenAnswer,
  VerifyAnswer,
} from './answers';
import { ConnectionId, InvalidateBody, ListLimit, ListNext, ListRole, MinTtl, StatusLimit, StatusNext, VerifyBody } from './schemas';

// The OpenAPI 3 document of the HTTP API, generated from the zod schemas the handler validates with. The CDK stack
// builds the API Gateway definition from it; `npm run openapi` rewrites openapi.json and a test keeps them equal.

const schema = (s: z.ZodMiniType, io: 'input' | 'output' = 'output') => {
  const { $schema: _drop, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any', target: 'openapi-3.0' }) as Record<string, unknown>;
  return rest;
};

const problem = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
});

const json = (description: string, ref: string) => ({
  description,
  headers: {
    'Cache-Control': { schema: { type: 'string', enum: ['no-store'] } },
    Pragma: { schema: { type: 'string', enum: ['no-cache'] } },
  },
  content: { 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } },
});

const retryable = (description: string) => ({
  ...problem(description),
  headers: { 'Retry-After': { schema: { type: 'integer' }, description: 'Seconds to wait' } },
});

const errors = {
  '400': problem('invalid_request: a malformed path, query or body'),
  '401': problem('unauthenticated: no or bad SigV4 signature'),
  '403': problem('forbidden: an unknown connection or one the caller may not use (the same answer for both)'),
};
const vendorErrors = {
  '502': problem('vendor_rejected_credentials or vendor_protocol_error'),
  '503': retryable('vendor_unavailable: 5xx or 429 from the vendor, unreachable, or cooling down'),
  '504': problem('vendor_timeout: no answer within the deadline'),
};

const changeErrors = {
  '400': problem('invalid_request: a malformed path, body or If-Match; a definition the connections file would refuse, naming the field; a secret outside the rule'),
  '401': errors['401'],
  '403': problem('forbidden: not an admin, or (GET, DELETE) an unknown connection'),
  '409': problem('conflict: the connections file defines this id (change it there and deploy)'),
  '412': problem('precondition_failed: If-Match is not the current etag'),
  '503': retryable('service_unavailable: the table did not answer; nothing was written'),
};
const ifMatch = {
  name: 'If-Match',
  in: 'header',
  required: false,
  schema: { type: 'string' },
  description: 'The etag the change is based on (or *): the change is made only if it is still current',
};
const etagHeader = { ETag: { schema: { type: 'string' }, description: 'The definition now stored, quoted' } };

const idParam = { name: 'id', in: 'path', required: true, schema: schema(ConnectionId) };
const iam = [{ sigv4: [] }];

export function openApiDocument() {
  return {
    openapi: '3.0.3',
    info: {
      title: 'token-broker',
      version: '1',
      description: 'Vendor OAuth access tokens for internal services. Every route is signed with SigV4 (execute-api).',
    },
    security: iam,
    paths: {
      '/v1/connections': {
        get: {
          operationId: 'listConnections',
          summary: 'The connections this caller may use (role=admin: every connection this admin administers)',
          parameters: [
            { name: 'role', in: 'query', required: false, schema: schema(ListRole, 'input') },
            { name: 'limit', in: 'query', required: false, schema: schema(ListLimit, 'input') },
            { name: 'next', in: 'query', required: false, schema: schema(ListNext, 'input') },
          ],
          responses: {
            '200': json('ids and dialects, no secrets', 'ConnectionList'),
            '400': errors['400'],
            '401': errors['401'],
            '403': problem('forbidden: role=admin from a caller that is not an admin'),
          },
        },
      },
      '/v1/connections/{id}': {
        put: {
          operationId: 'putConnection',
          summary: 'Admins: register or replace a connection (not one the file defines)',
          parameters: [idParam, ifMatch],
          requestBody: { required: true, content: { 'application/json': { schema: schema(ConnectionDefinition, 'input') } } },
          responses: {
            '200': { ...json('replaced', 'ConnectionChangeAnswer'), headers: { ...json('', 'ConnectionChangeAnswer').headers, ...etagHeader } },
            '201': { ...json('created', 'ConnectionChangeAnswer'), headers: { ...json('', 'ConnectionChangeAnswer').headers, ...etagHeader } },
            ...changeErrors,
          },
        },
        get: {
          operationId: 'describeConnection',
          summary: 'Admins: the definition, its source (file or api) and etag; nothing secret',
          parameters: [idParam],
          responses: {
            '200': { ...json('the definition', 'ConnectionDescription'), headers: { ...json('', 'ConnectionDescription').headers, ...etagHeader } },
            ...errors,
          },
        },
        delete: {
          operationId: 'deleteConnection',
          summary: 'Admins: delete a registered connection and evict its tokens',
          parameters: [idParam, ifMatch],
          responses: { '204': { description: 'deleted' }, ...changeErrors },
        },
      },
      '/v1/connections/{id}/token': {
        get: {
          operationId: 'getToken',
          summary: 'A token valid for at least min_ttl seconds',
          parameters: [idParam, { name: 'min_ttl', in: 'query', required: false, schema: schema(MinTtl, 'input') }],
          responses: { '200': json('the token', 'TokenAnswer'), ...errors, ...vendorErrors },
        },
      },
      '/v1/connections/{id}/token/invalidate': {
        post: {
          operationId: 'invalidateToken',
          summary: 'The vendor rejected this token early: evict it if it is still the current one',
          parameters: [idParam],
          requestBody: { required: true, content: { 'application/json': { schema: schema(InvalidateBody, 'input') } } },
          responses: {
            '200': json('whether it was evicted', 'InvalidateAnswer'),
            ...errors,
            '429': retryable('rate_limited: the token was minted moments ago'),
          },
        },
      },
      '/v1/connections/{id}/refresh': {
        post: {
          operationId: 'refresh',
          summary: 'Admins: mint a new token now',
          parameters: [idParam],
          responses: { '200': json('the new token is stored', 'RefreshAnswer'), ...errors, ...vendorErrors },
        },
      },
      '/v1/connections/{id}/status': {
        get: {
          operationId: 'connectionStatus',
          summary: "Admins: the connection's health (token expiry and minting, secret version fingerprint, cooldown, last failure), nothing secret",
          parameters: [idParam],
          responses: { '200': json('the status', 'StatusAnswer'), ...errors },
        },
      },
      '/v1/status': {
        get: {
          operationId: 'statusOfAll',
          summary: "Admins: every connection's health, unhealthy first, a page at a time (the console's view), nothing secret",
          parameters: [
            { name: 'limit', in: 'query', required: false, schema: schema(StatusLimit, 'input') },
            { name: 'next', in: 'query', required: false, schema: schema(StatusNext, 'input') },
          ],
          responses: {
            '200': json('one page of connections', 'StatusListAnswer'),
            '400': errors['400'],
            '401': errors['401'],
            '403': problem('forbidden: the caller is not an admin'),
          },
        },
      },
      '/v1/connections/{id}/verify': {
        post: {
          operationId: 'verify',
          summary: 'Admins: exchange with a secret version stage, cache nothing, report the outcome',
          parameters: [idParam],
          requestBody: { required: false, content: { 'application/json': { schema: schema(VerifyBody, 'input') } } },
          responses: { '200': json('the exchange succeeded', 'VerifyAnswer'), ...errors, ...vendorErrors },
        },
      },
    },
    components: {
      securitySchemes: {
        sigv4: { type: 'apiKey', name: 'Authorization', in: 'header', 'x-amazon-apigateway-authtype': 'awsSigv4' },
      },
      schemas: {
        ConnectionList: schema(ConnectionList),
        TokenAnswer: schema(TokenAnswer),
        InvalidateAnswer: schema(InvalidateAnswer),
        RefreshAnswer: schema(RefreshAnswer),
        VerifyAnswer: schema(VerifyAnswer),
        StatusAnswer: schema(StatusAnswer),
        ConnectionChangeAnswer: schema(ConnectionChangeAnswer),
        ConnectionDescription: schema(ConnectionDescription),
        StatusListAnswer: schema(StatusListAnswer),
        Problem: schema(ProblemAnswer),
      },
    },
  };
}

export function openApiText(): string {
  return `${JSON.stringify(openApiDocument(), null, 2)}\n`;
}
