import { HEALTH_STATES, type ConnectionHealth, type HealthState } from './health';

// What one look at the console shows: the connections a filter and a search keep, one page of them, and how many
// are in each state. Pure: the same for the local page, the CloudWatch widget and the admin status route.

export interface ConsoleQuery {
  state?: HealthState;
  /** Part of a connection id. */
  search?: string;
  /** From 1. */
  page: number;
}

export interface ConsoleView {
  /** Epoch ms the view was read at. */
  now: number;
  query: ConsoleQuery;
  rows: ConnectionHealth[];
  /** Connections in all. */
  total: number;
  /** Connections the filter and the search keep. */
  matching: number;
  counts: Record<HealthState, number>;
  pages: number;
  pageSize: number;
}

export const PAGE_SIZE = 50;
/** A search is a piece of a connection id: the same characters, so nothing else reaches the page. */
const SEARCH = /^[A-Za-z0-9._-]{1,128}$/;
const MAX_PAGE = 10_000;

/** A query from untrusted strings (a URL's, a widget's form): what does not parse is dropped, not echoed. */
export function parseQuery(raw: { state?: unknown; search?: unknown; q?: unknown; page?: unknown }): ConsoleQuery {
  const query: ConsoleQuery = { page: 1 };
  if (typeof raw.state === 'string' && (HEALTH_STATES as readonly string[]).includes(raw.state)) query.state = raw.state as HealthState;
  const search = typeof raw.search === 'string' ? raw.search : typeof raw.q === 'string' ? raw.q : undefined;
  const trimmed = search?.trim();
  if (trimmed && SEARCH.test(trimmed)) query.search = trimmed;
  const page = typeof raw.page === 'number' ? raw.page : typeof raw.page === 'string' && /^\d{1,5}$/.test(raw.page) ? Number(raw.page) : 1;
  if (Number.isInteger(page) && page >= 1 && page <= MAX_PAGE) query.page = page;
  return query;
}


/** The page the query asks for (the last one when it asks past the end), from connections already sorted. */
export function viewOf(all: readonly ConnectionHealth[], query: ConsoleQuery, now: number, pageSize = PAGE_SIZE): ConsoleView {
  const counts = Object.fromEntries(HEALTH_STATES.map((s) => [s, 0])) as Record<HealthState, number>;
  for (const c of all) counts[c.state]++;
  const needle = query.search?.toLowerCase();
  const kept = all.filter((c) => (!query.state || c.state === query.state) && (!needle || c.id.toLowerCase().includes(needle)));
  const pages = Math.max(1, Math.ceil(kept.length / pageSize));
  const page = Math.min(query.page, pages);
  return {
    now,
    query: { ...query, page },
    rows: kept.slice((page - 1) * pageSize, page * pageSize),
    total: all.length,
    matching: kept.length,
    counts,
    pages,
    pageSize,
  };
}
