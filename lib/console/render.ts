import { HEALTH_STATES, STATE_LABELS, type ConnectionHealth, type HealthState } from './health';
import type { ConsoleQuery, ConsoleView } from './view';

// The console's HTML, from a view to a string: no framework, every value escaped. One renderer for two places: the
// local page (links and a GET form, reloading itself) and the CloudWatch custom widget (no script runs there:
// each link is followed by a <cwdb-action> that calls the widget function again with the query as JSON).

export type ConsoleNav =
  | { kind: 'page'; path: string }
  /** The widget function's ARN: CloudWatch calls it with the query a link or the search button carries. */
  | { kind: 'widget'; endpoint: string };

export interface RenderOptions {
  /** A whole HTML document (the local page) rather than a fragment (the widget's answer). */
  document?: boolean;
  /** The local page reloads itself this often (unless someone is typing a search). */
  refreshSeconds?: number;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const esc = (value: unknown): string => String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]!);

function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
const clockTime = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, ' UTC');
const ago = (now: number, at: number) => `<time datetime="${esc(new Date(at).toISOString())}" title="${esc(clockTime(at))}">${esc(duration(now - at))} ago</time>`;

function link(nav: ConsoleNav, query: ConsoleQuery, text: string, attrs = ''): string {
  if (nav.kind === 'page') {
    const params = new URLSearchParams();
    if (query.state) params.set('state', query.state);
    if (query.search) params.set('search', query.search);
    if (query.page > 1) params.set('page', String(query.page));
    const qs = params.toString();
    return `<a href="${esc(`${nav.path}${qs ? `?${qs}` : ''}`)}"${attrs}>${text}</a>`;
  }
  const params = JSON.stringify({ ...(query.state ? { state: query.state } : {}), ...(query.search ? { search: query.search } : {}), page: query.page });
  return `<a${attrs}>${text}</a><cwdb-action action="call" display="widget" endpoint="${esc(nav.endpoint)}">${esc(params)}</cwdb-action>`;
}

function stateCell(c: ConnectionHealth, now: number): string {
  const badge = `<span class="badge ${esc(c.state)}">${esc(STATE_LABELS[c.state])}</span>`;
  switch (c.state) {
    case 'cooling-down':
      return `${badge} <span class="detail">${esc(c.cooldown!.code)}, <b class="left">${esc(duration(c.cooldown!.until - now))} left</b></span>`;
    case 'failing':
      return `${badge} <span class="detail">${esc(c.lastFailure!.code)} since ${ago(now, c.lastFailure!.at)}</span>`;
    case 'refreshing':
      return `${badge} <span class="detail">by ${esc(c.refreshingBy)}</span>`;
    case 'serving':
      return c.static ? `${badge} <span class="detail">static credential</span>` : badge;
    case 'no-token':
      return c.token?.expired ? `${badge} <span class="detail">the last one expired</span>` : badge;
  }
}

/** Where the token is in its life: minted, fresh, the refresh window, expiry; a mark for now. */
function lifeBar(c: ConnectionHealth, now: number): string {
  const t = c.token;
  if (!t) return '<span class="none">-</span>';
  const span = Math.max(1, t.expiresAt - t.mintedAt);
  const pct = (ms: number) => `${Math.min(100, Math.max(0, (ms / span) * 100)).toFixed(1)}%`;
  const title = `minted ${clockTime(t.mintedAt)} · refresh from ${clockTime(t.refreshFrom)} · expires ${clockTime(t.expiresAt)}`;
  const left = t.expired ? `expired ${duration(now - t.expiresAt)} ago` : `expires in ${duration(t.expiresAt - now)}`;
  return (
    `<div class="life${t.expired ? ' expired' : ''}" title="${esc(title)}">` +
    `<span class="fresh" style="width:${pct(t.refreshFrom - t.mintedAt)}"></span>` +
    `<span class="window" style="width:${pct(t.expiresAt - t.refreshFrom)}"></span>` +
    `<span class="now" style="left:${pct(now - t.mintedAt)}"></span></div><span class="expires">${esc(left)}</span>`
  );
}

function failureCell(c: ConnectionHealth, now: number): string {
  const f = c.lastFailure;
  if (!f) return '<span class="none">-</span>';
  return `${esc(f.code)}${f.vendorStatus === undefined ? '' : ` (HTTP ${esc(f.vendorStatus)})`}<br>${ago(now, f.at)}`;
}

function row(c: ConnectionHealth, now: number): string {
  const cells = [
    `<b class="id">${esc(c.id)}</b><br><span class="dialect">${esc(c.dialect)}</span>`,
    stateCell(c, now),
    lifeBar(c, now),
    c.token ? `${ago(now, c.token.mintedAt)}<br>by <span class="instance">${esc(c.token.mintedBy)}</span>` : '<span class="none">-</span>',
    c.prewarm ? 'on' : 'off',
    c.secretVersion ? `<code>${esc(c.secretVersion)}</code>` : '<span class="none">-</span>',
    failureCell(c, now),
    `<span class="served">${esc(c.servedLastHour)}</span>`,
  ];
  return `<tr data-connection="${esc(c.id)}" data-state="${esc(c.state)}">${cells.map((x) => `<td>${x}</td>`).join('')}</tr>`;
}

function filters(view: ConsoleView, nav: ConsoleNav): string {
  const q = view.query;
  const chip = (state: HealthState | undefined, label: string, count: number) => {
    const current = q.state === state ? ' aria-current="true"' : '';
    return link(nav, { ...(state ? { state } : {}), ...(q.search ? { search: q.search } : {}), page: 1 }, `${esc(label)} <span class="count">${esc(count)}</span>`, ` class="chip${current ? ' current' : ''}" data-filter="${esc(state ?? 'all')}"${current}`);
  };
  const chips = [chip(undefined, 'all', view.total), ...HEALTH_STATES.map((s) => chip(s, STATE_LABELS[s], view.counts[s]))].join(' ');
  const value = esc(q.search ?? '');
  const search =
    nav.kind === 'page'
      ? `<form method="get" action="${esc(nav.path)}" class="search">${q.state ? `<input type="hidden" name="state" value="${esc(q.state)}">` : ''}` +
        `<input type="search" name="search" value="${value}" placeholder="connection id" aria-label="search by connection id" maxlength="128"><button type="submit">Search</button></form>`
      : `<form class="search"><input name="search" value="${value}" placeholder="connection id" maxlength="128"></form>` +
        link(nav, { ...(q.state ? { state: q.state } : {}), page: 1 }, 'Search', ' class="btn"');
  return `<nav class="filters">${chips}</nav>${search}`;
}

function pager(view: ConsoleView, nav: ConsoleNav): string {
  const q = view.query;
  const to = (page: number, text: string, rel: string) => link(nav, { ...q, page }, esc(text), ` rel="${rel}" class="pager-${rel}"`);
  return (
    `<p class="pager">${view.matching} of ${view.total} connections · page ${q.page} of ${view.pages} ` +
    `${q.page > 1 ? to(q.page - 1, '← previous', 'prev') : ''} ${q.page < view.pages ? to(q.page + 1, 'next →', 'next') : ''}</p>`
  );
}

const STYLE = `<style>
.console{font:13px/1.4 system-ui,sans-serif;color:#16191f}
.console table{border-collapse:collapse;width:100%}
.console th,.console td{border-bottom:1px solid #e9ebed;padding:4px 8px;text-align:left;vertical-align:top}
.console .badge{display:inline-block;border-radius:8px;padding:0 8px;font-weight:600;color:#fff}
.console .failing{background:#d13212}.console .cooling-down{background:#c45500}.console .no-token{background:#687078}
.console .refreshing{background:#0073bb}.console .serving{background:#1d8102}
.console .life{position:relative;width:160px;height:10px;background:#e9ebed;display:flex}
.console .life .fresh{background:#1d8102}.console .life .window{background:#ff9900}.console .life.expired span{background:#aab7b8}
.console .life .now{position:absolute;top:-3px;width:2px;height:16px;background:#16191f}
.console .none,.console .dialect,.console .expires{color:#687078}.console .id{white-space:nowrap}
.console .chip{margin-right:6px}.console .chip.current{font-weight:700;text-decoration:none}
.console .search{display:inline-block;margin:6px 0}
</style>`;

const HEADER = ['Connection', 'State', 'Token life', 'Last minted', 'Pre-warm', 'Secret version', 'Last failure', 'Requests (1 h)'];

/** The console as HTML: a whole document for the local page, a fragment for the widget. */
export function renderConsole(view: ConsoleView, nav: ConsoleNav, opts: RenderOptions = {}): string {
  const rows = view.rows.map((c) => row(c, view.now)).join('');
  const body =
    `<div class="console">${STYLE}<h1>token-broker connections</h1>` +
    `<p class="read">read ${esc(clockTime(view.now))}</p>${filters(view, nav)}` +
    `<table><thead><tr>${HEADER.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows}</tbody></table>` +
    `${view.rows.length === 0 ? '<p class="empty">No connection matches.</p>' : ''}${pager(view, nav)}</div>`;
  if (!opts.document) return body;
  const refresh = opts.refreshSeconds
    ? `<script>setInterval(function(){var a=document.activeElement;if(!a||a.name!=="search")location.reload()},${Math.round(opts.refreshSeconds * 1000)})</script>`
    : '';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>token-broker console</title>` +
    `<meta name="viewport" content="width=device-width,initial-scale=1"></head><body>${body}${refresh}</body></html>`;
}
