import * as z from 'zod/mini';
import { CONNECTION_ID } from '../lib/config';
import { STATUS_LIMIT } from '../lib/console/status';
import { MIN_TTL } from '../lib/contract';

export const described = <T extends z.ZodMiniType>(schema: T, description: string): T => {
  z.globalRegistry.add(schema, { description });
  return schema;
};

// What the HTTP API accepts, in one place: the handler validates with these and openapi.json is generated from them.
// The answers' shapes are in answers.ts, which only openapi.ts loads, so the function's bundle carries none of them.

export const MAX_BODY_BYTES = 64 * 1024;

export const ConnectionId = described(
  z.string().check(z.regex(CONNECTION_ID)),
  'A connection id: 1-128 characters of A-Z a-z 0-9 . _ -',
);

export const MinTtl = described(
  z.pipe(
    z.pipe(z.string().check(z.regex(/^\d{1,4}$/)), z.transform(Number)),
    z.number().check(z.int(), z.minimum(MIN_TTL.min), z.maximum(MIN_TTL.max)),
  ),
  `Seconds the token must stay valid at least (${MIN_TTL.min}-${MIN_TTL.max}, default ${MIN_TTL.default})`,
);

export const ListRole = described(
  z.literal('admin'),
  'admin: every connection this admin administers (for the status of each), instead of those it may get tokens from',
);

/** Connections in one page of GET /v1/connections. */
export const LIST_LIMIT = { min: 1, max: 1000, default: 100 } as const;

export const ListLimit = described(
  z.pipe(
    z.pipe(z.string().check(z.regex(/^\d{1,4}$/)), z.transform(Number)),
    z.number().check(z.int(), z.minimum(LIST_LIMIT.min), z.maximum(LIST_LIMIT.max)),
  ),
  `Connections in one page (${LIST_LIMIT.min}-${LIST_LIMIT.max}, default ${LIST_LIMIT.default})`,
);

export const ListNext = described(
  z.string().check(z.minLength(1), z.maxLength(2048)),
  'The next token of the previous page: the page after it',
);

export const InvalidateBody = z.looseObject({
  access_token: described(z.string().check(z.minLength(1), z.maxLength(MAX_BODY_BYTES)), 'The token the vendor rejected'),
});

export const VerifyBody = z.looseObject({
  versionStage: described(
    z._default(z.string().check(z.regex(/^[A-Za-z0-9_-]{1,256}$/)), 'AWSPENDING'),
    'The secret version stage to exchange with (default AWSPENDING)',
  ),
});

export const StatusLimit = described(
  z.pipe(z.pipe(z.string().check(z.regex(/^\d{1,4}$/)), z.transform(Number)), z.number().check(z.int(), z.minimum(1), z.maximum(STATUS_LIMIT.max))),
  `Connections on one page (1-${STATUS_LIMIT.max}, default ${STATUS_LIMIT.default})`,
);

export const StatusNext = described(z.string().check(z.regex(/^\d{1,7}$/)), "The previous page's next: where this page starts");

