import type { Connection } from '../config';
import { Cooldowns } from '../cooldowns';
import { fingerprint } from '../fingerprint';
import type { RecordScan, RecordSummary } from '../ports';

// One connection's health as the console shows it (issue 21), from its definition and its record in the table:
// codes, times, counts and fingerprints of secret versions; never a token, a token's fingerprint or a vendor's words.

/** The states, unhealthy first: the order the console sorts by. */
export const HEALTH_STATES = ['failing', 'cooling-down', 'no-token', 'refreshing', 'serving'] as const;
export type HealthState = (typeof HEALTH_STATES)[number];

export const STATE_LABELS: Record<HealthState, string> = {
  failing: 'failing',
  'cooling-down': 'cooling down',
  'no-token': 'no token yet',
  refreshing: 'refreshing',
  serving: 'serving',
};

export interface ConnectionHealth {
  id: string;
  dialect: string;
  /** A static credential: derived from the secret on each request, never minted. */
  static: boolean;
  state: HealthState;
  prewarm: boolean;
  /** The current token's life, in epoch ms: minted, the refresh window's start, expiry. */
  token?: { mintedAt: number; refreshFrom: number; expiresAt: number; mintedBy: string; expired: boolean };
  /** A SHA-256 fingerprint prefix of the secret version the current token was minted with. */
  secretVersion?: string;
  cooldown?: { code: string; until: number };
  lastFailure?: { code: string; at: number; vendorStatus?: number };
  /** The instance minting now, while its lease lasts. */
  refreshingBy?: string;
  /** Requests served in the last hour, as the instances flushed them (lib/console/served.ts says how close). */
  servedLastHour: number;
}

export const HOUR_MS = 3_600_000;

/**
 * Requests in the hour before `now`: this hour's count, and the share of the last hour's that still falls inside
 * the window (the counts are hourly, so the older hour is taken as spread evenly).
 */
export function servedLastHour(served: RecordSummary['served'], now: number): number {
  const hour = Math.floor(now / HOUR_MS);
  const of = (h: number) => served.find((s) => s.hour === h)?.count ?? 0;
  const left = 1 - (now - hour * HOUR_MS) / HOUR_MS;
  return of(hour) + Math.round(of(hour - 1) * left);
}

function stateOf(h: Omit<ConnectionHealth, 'state'>, record: RecordSummary | undefined, now: number): HealthState {
  if (h.cooldown) return 'cooling-down';
  const failure = record?.failure;
  // A failure after the last mint: the connection's latest exchange failed (a later mint would have cleared it).
  if (failure && failure.at > (record?.mintedAt ?? -Infinity)) return 'failing';
  if (h.refreshingBy !== undefined) return 'refreshing';
  if (h.static || (h.token && h.token.expiresAt > now)) return 'serving';
  return 'no-token';
}

/** A connection's health at `now`, from its definition and its record (none: never written). */
export function healthOf(connection: Connection, record: RecordSummary | undefined, now: number): ConnectionHealth {
  const h: Omit<ConnectionHealth, 'state'> = {
    id: connection.id,
    dialect: connection.dialectName,
    static: connection.kind === 'static',
    prewarm: connection.prewarm,
    servedLastHour: servedLastHour(record?.served ?? [], now),
  };
  const t = record?.token;
  if (t) {
    const refreshFrom = Math.max(t.mintedAt, t.expiresAt - connection.refreshBefore * 1000);
    h.token = { mintedAt: t.mintedAt, refreshFrom, expiresAt: t.expiresAt, mintedBy: t.mintedBy, expired: t.expiresAt <= now };
    h.secretVersion = fingerprint(t.secretVersion);
  }
  // Believed within the broker's own bounds, and only its codes and numbers (Cooldowns.fromTable).
  const cooldown = new Cooldowns({ now: () => now, sleep: () => Promise.resolve() }).fromTable(connection.id, record?.failure);
  if (cooldown) h.cooldown = { code: cooldown.code, until: cooldown.until };
  const f = record?.failure;
  if (f) h.lastFailure = { code: f.code, at: f.at, ...(f.vendorStatus === undefined ? {} : { vendorStatus: f.vendorStatus }) };
  if (record?.lease && record.lease.until > now) h.refreshingBy = record.lease.holder;
  return { ...h, state: stateOf(h, record, now) };
}

/** Unhealthy first (HEALTH_STATES' order), the longest failing first within a state, then by id. */
export function unhealthyFirst(a: ConnectionHealth, b: ConnectionHealth): number {
  const byState = HEALTH_STATES.indexOf(a.state) - HEALTH_STATES.indexOf(b.state);
  if (byState !== 0) return byState;
  if (a.state === 'failing' || a.state === 'cooling-down') {
    const since = (a.lastFailure?.at ?? 0) - (b.lastFailure?.at ?? 0);
    if (since !== 0) return since;
  }
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * What the console reads: every connection definition (the file's, and, once they exist, the registered ones:
 * `connections` is where they come in) and the table's records, read in one parallel scan.
 */
export interface ConsoleSource {
  connections(): Promise<readonly Connection[]> | readonly Connection[];
  records: RecordScan;
}

/** Every connection's health at `now`, unhealthy first. Records of connections no longer defined are left out. */
export async function readHealth(source: ConsoleSource, now: number, opts: { segments?: number; timeoutMs?: number } = {}): Promise<ConnectionHealth[]> {
  const [connections, records] = await Promise.all([
    source.connections(),
    source.records.scanRecords({
      servedHours: [Math.floor(now / HOUR_MS) - 1, Math.floor(now / HOUR_MS)],
      ...(opts.segments === undefined ? {} : { segments: opts.segments }),
      ...(opts.timeoutMs === undefined ? {} : { call: { timeoutMs: opts.timeoutMs } }),
    }),
  ]);
  const byId = new Map(records.map((r) => [r.connection, r]));
  return connections.map((c) => healthOf(c, byId.get(c.id), now)).sort(unhealthyFirst);
}
