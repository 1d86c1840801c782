import * as z from 'zod/mini';
import type { Connection } from './config';
import { VendorProtocolError } from './errors';
import type { TokenSet } from './exchange';
import type { HttpResponse } from './http';

// The vendor's answer when it says yes (HTTP 2xx): the token, checked field by field, and how long it lives.
// lib/exchange.ts reads the other answers.

/** Longest lifetime believed: past this an `expires_in` is a vendor bug, not a token to keep. */
export const MAX_LIFETIME_SECONDS = 2 * 366 * 86_400;

// Everything is optional and loosely typed on purpose: the checks below give each defect its own message.
const TokenResponseBody = z.looseObject({
  access_token: z.optional(z.unknown()),
  refresh_token: z.optional(z.unknown()),
  token_type: z.optional(z.unknown()),
  expires_in: z.optional(z.unknown()),
  scope: z.optional(z.unknown()),
});

export function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** The `exp` claim of a JWT, in epoch seconds, or undefined when the token is not a JWT with a numeric exp. */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    if (typeof payload === 'object' && payload !== null) {
      const exp = (payload as { exp?: unknown }).exp;
      if (typeof exp === 'number' && Number.isFinite(exp)) return exp;
    }
  } catch {
    // not a JWT
  }
  return undefined;
}

function lifetimeOf(connection: Connection, raw: unknown, accessToken: string, now: number): number {
  const id = connection.id;
  const ctx = { context: { connection: id } };
  const jwtExp = jwtExpiry(accessToken);
  const jwtLifetime = jwtExp === undefined ? undefined : Math.floor(jwtExp - now / 1000);
  let lifetime: number | undefined;
  if (raw !== undefined && raw !== null) {
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isFinite(n)) throw new VendorProtocolError(`${id}: the vendor's expires_in is not a number`, ctx);
    lifetime = Math.floor(n);
    // A JWT that says it dies sooner than expires_in is believed.
    if (jwtLifetime !== undefined && jwtLifetime < lifetime) lifetime = jwtLifetime;
  } else if (jwtLifetime !== undefined) {
    lifetime = jwtLifetime;
  } else if (connection.kind === 'exchanging' && connection.dialect.defaultLifetime !== undefined) {
    lifetime = connection.dialect.defaultLifetime;
  } else {
    throw new VendorProtocolError(
      `${id}: the vendor sent no expires_in and the token is not a JWT with exp; set defaultLifetime on the connection`,
      ctx,
    );
  }
  if (lifetime <= 0) throw new VendorProtocolError(`${id}: the vendor issued a token that is already expired`, ctx);
  if (lifetime > MAX_LIFETIME_SECONDS) {
    throw new VendorProtocolError(`${id}: the vendor's token lifetime (${lifetime} s) is beyond belief`, ctx);
  }
  return lifetime;
}

/** A token from a 2xx answer, or a VendorProtocolError saying what is wrong with it. */
export function acceptedToken(connection: Connection, res: HttpResponse, now: number): TokenSet {
  const id = connection.id;
  const status = res.status;
  const ctx = { connection: id, vendorStatus: status };
  const json = parseJson(res.body);
  const parsed = TokenResponseBody.safeParse(json);
  if (!parsed.success) {
    throw new VendorProtocolError(`${id}: the vendor's answer (HTTP ${status}) is not a JSON object`, { context: ctx });
  }
  const body = parsed.data;
  if (typeof body.access_token !== 'string' || body.access_token.length === 0) {
    throw new VendorProtocolError(`${id}: the vendor's answer has no access_token`, { context: ctx });
  }
  const accessToken = body.access_token;
  if (!/^[\x21-\x7E]+$/.test(accessToken)) {
    throw new VendorProtocolError(`${id}: the access_token has characters an HTTP header cannot carry`, {
      context: ctx,
    });
  }
  const tokenType = 'Bearer';
  if (body.token_type !== undefined && body.token_type !== null) {
    if (typeof body.token_type !== 'string' || body.token_type.toLowerCase() !== 'bearer') {
      throw new VendorProtocolError(`${id}: the vendor's token_type is not supported (only Bearer)`, {
        context: ctx,
      });
    }
  }
  const lifetime = lifetimeOf(connection, body.expires_in, accessToken, now);
  const token: TokenSet = { accessToken, tokenType, expiresAt: now + lifetime * 1000, lifetime };
  if (typeof body.scope === 'string') token.scope = body.scope;
  // Kept only when a header could carry it back; a malformed one is dropped, not fatal: the token is good.
  if (typeof body.refresh_token === 'string' && /^[\x21-\x7E]{1,8192}$/.test(body.refresh_token)) {
    token.refreshToken = body.refresh_token;
  }
  return token;
}
