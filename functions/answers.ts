import * as z from 'zod/mini';
import { HEALTH_STATES } from '../lib/console/health';
import { PROBLEM_CODES } from '../lib/contract';
import { described } from './schemas';

// What the HTTP API answers, for openapi.json alone: the handler builds its answers by hand (functions/http.ts), so
// these stay out of the function's bundle (a described schema is registered, so the bundler would keep it).

export const ConnectionList = z.object({
  connections: z.array(z.object({ id: z.string(), dialect: z.string() })),
  next: z.optional(described(z.string(), 'Present when more connections follow: pass it as ?next= for the next page')),
});

/** A connection as in the connections file (lib/config.ts validates it, field by field). */
export const ConnectionDefinition = described(
  z.looseObject({
    id: z.optional(z.string()),
    dialect: z.optional(z.string()),
    tokenUrl: z.optional(z.string()),
    issuer: z.optional(z.string()),
    secretId: z.string(),
    callers: z.optional(z.array(z.string())),
  }),
  "One connection as in the connections file (docs/configuration.md); its id absent or equal to the path's",
);

export const ConnectionChangeAnswer = z.object({
  connection: z.string(),
  etag: described(z.string(), 'The definition now stored: send it as If-Match to change it only if nobody else has'),
});

export const ConnectionDescription = z.object({
  connection: z.string(),
  source: described(z.enum(['file', 'api']), 'file: the connections file (read-only here); api: registered through this API'),
  etag: z.string(),
  definition: ConnectionDefinition,
});

const integer = () => z.number().check(z.int());

export const TokenAnswer = z.object({
  connection: z.string(),
  access_token: z.string(),
  token_type: z.enum(['Bearer', 'Basic']),
  expires_in: described(integer(), 'Seconds handed out, capped by the connection maxTtl'),
  expires_at: described(z.string(), 'ISO 8601: now plus expires_in'),
  authorization: described(z.string(), 'token_type + " " + access_token'),
});

export const InvalidateAnswer = z.object({ invalidated: z.boolean() });
export const RefreshAnswer = z.object({
  connection: z.string(),
  expires_at: described(z.string(), "ISO 8601: when the new token itself expires (the vendor's lifetime)"),
  max_ttl: described(integer(), "Seconds: the most callers are handed it for at a time (the connection's maxTtl), after which they ask again"),
});
export const VerifyAnswer = z.object({ connection: z.string(), versionStage: z.string(), expires_in: integer() });

const instant = () => described(z.string(), 'ISO 8601');

export const StatusAnswer = z.object({
  connection: z.string(),
  dialect: z.string(),
  static: described(z.boolean(), 'A static credential: derived from the secret on each request, never stored'),
  token: z.optional(
    z.object({
      expires_at: instant(),
      minted_at: instant(),
      minted_by: described(z.string(), 'The instance that minted it'),
      fingerprint: described(z.string(), "A SHA-256 fingerprint prefix of the token"),
      secret_version: described(z.string(), 'A SHA-256 fingerprint prefix of the secret version it was minted with'),
    }),
  ),
  cooldown: z.optional(z.object({ code: z.string(), until: instant() })),
  last_failure: z.optional(z.object({ code: z.string(), at: instant(), vendor_status: z.optional(integer()) })),
  lease: z.optional(z.object({ holder: described(z.string(), 'The instance minting now'), until: instant() })),
});

const HealthState = described(z.enum(HEALTH_STATES), 'failing, cooling-down, no-token, refreshing or serving (the order of the list)');

export const StatusListAnswer = z.object({
  connections: z.array(
    z.object({
      connection: z.string(),
      dialect: z.string(),
      static: z.boolean(),
      state: HealthState,
      prewarm: z.boolean(),
      served_last_hour: described(integer(), 'Requests served in the last hour, as the instances flushed them (minutes behind)'),
      token: z.optional(
        z.object({
          minted_at: instant(),
          refresh_from: described(z.string(), 'ISO 8601: the refresh window opens'),
          expires_at: instant(),
          minted_by: described(z.string(), 'The instance that minted it'),
        }),
      ),
      secret_version: z.optional(described(z.string(), 'A SHA-256 fingerprint prefix of the secret version the token was minted with')),
      cooldown: z.optional(z.object({ code: z.string(), until: instant() })),
      last_failure: z.optional(z.object({ code: z.string(), at: instant(), vendor_status: z.optional(integer()) })),
      refreshing_by: z.optional(described(z.string(), 'The instance minting now')),
    }),
  ),
  total: described(integer(), 'Connections in all'),
  next: z.optional(described(z.string(), 'Pass as next for the following page; absent on the last page')),
});

export const ProblemAnswer = z.object({
  type: z.string(),
  title: z.string(),
  status: integer(),
  code: z.enum(PROBLEM_CODES),
  detail: z.optional(z.string()),
  instance: z.optional(z.string()),
});
