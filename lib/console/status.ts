import type { ConnectionHealth } from './health';

// The admin route GET /v1/status (docs/api.md): every connection's health as JSON, unhealthy first, a page at a
// time. `next` is where the following page starts; the order is the console's, read afresh for each page.

export const STATUS_LIMIT = { default: 100, max: 1000 } as const;

const iso = (ms: number) => new Date(ms).toISOString();

export function healthAnswer(h: ConnectionHealth) {
  return {
    connection: h.id,
    dialect: h.dialect,
    static: h.static,
    state: h.state,
    prewarm: h.prewarm,
    served_last_hour: h.servedLastHour,
    ...(h.token
      ? {
          token: {
            minted_at: iso(h.token.mintedAt),
            refresh_from: iso(h.token.refreshFrom),
            expires_at: iso(h.token.expiresAt),
            minted_by: h.token.mintedBy,
          },
        }
      : {}),
    ...(h.secretVersion ? { secret_version: h.secretVersion } : {}),
    ...(h.cooldown ? { cooldown: { code: h.cooldown.code, until: iso(h.cooldown.until) } } : {}),
    ...(h.lastFailure
      ? {
          last_failure: {
            code: h.lastFailure.code,
            at: iso(h.lastFailure.at),
            ...(h.lastFailure.vendorStatus === undefined ? {} : { vendor_status: h.lastFailure.vendorStatus }),
          },
        }
      : {}),
    ...(h.refreshingBy === undefined ? {} : { refreshing_by: h.refreshingBy }),
  };
}

/** One page of the answer: `start` is the offset a previous page's `next` gave (0 for the first). */
export function statusPage(healths: readonly ConnectionHealth[], limit: number, start: number) {
  const page = healths.slice(start, start + limit);
  const next = start + page.length < healths.length ? String(start + page.length) : undefined;
  return { connections: page.map(healthAnswer), total: healths.length, ...(next === undefined ? {} : { next }) };
}
