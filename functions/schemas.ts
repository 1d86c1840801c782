import { z } from 'zod';
import { CONNECTION_ID } from '../lib/config';

// The HTTP API's shapes, in one place: the handlers validate with them and openapi.json is generated from them.

export const MAX_BODY_BYTES = 64 * 1024;

export const ConnectionId = z.string().regex(CONNECTION_ID).meta({
  description: 'A connection id: 1-128 characters of A-Z a-z 0-9 . _ -',
});

export const MinTtl = z
  .string()
  .regex(/^\d{1,4}$/)
  .transform(Number)
  .pipe(z.number().int().min(0).max(3600))
  .meta({ description: 'Seconds the token must stay valid at least (0-3600, default 60)' });

export const InvalidateBody = z.looseObject({
  access_token: z.string().min(1).max(MAX_BODY_BYTES).meta({ description: 'The token the vendor rejected' }),
});

export const VerifyBody = z.looseObject({
  versionStage: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,256}$/)
    .default('AWSPENDING')
    .meta({ description: 'The secret version stage to exchange with (default AWSPENDING)' }),
});

export const ConnectionList = z.object({
  connections: z.array(z.object({ id: z.string(), dialect: z.string() })),
});

export const TokenAnswer = z.object({
  connection: z.string(),
  access_token: z.string(),
  token_type: z.enum(['Bearer', 'Basic']),
  expires_in: z.number().int().meta({ description: 'Seconds handed out, capped by the connection maxTtl' }),
  expires_at: z.string().meta({ description: 'ISO 8601: now plus expires_in' }),
  authorization: z.string().meta({ description: 'token_type + " " + access_token' }),
});

export const InvalidateAnswer = z.object({ invalidated: z.boolean() });
export const RefreshAnswer = z.object({ connection: z.string(), expires_at: z.string() });
export const VerifyAnswer = z.object({ connection: z.string(), versionStage: z.string(), expires_in: z.number().int() });

export const ProblemAnswer = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  code: z.enum([
    'invalid_request',
    'unauthenticated',
    'forbidden',
    'vendor_rejected_credentials',
    'vendor_protocol_error',
    'rate_limited',
    'vendor_unavailable',
    'vendor_timeout',
    'misconfigured',
    'service_unavailable',
    'internal_error',
  ]),
  detail: z.string().optional(),
  instance: z.string().optional(),
});
