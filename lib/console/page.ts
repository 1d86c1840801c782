import { readHealth, type ConsoleSource } from './health';
import { renderConsole, type ConsoleNav, type RenderOptions } from './render';
import { parseQuery, viewOf } from './view';

// One look at the console, start to end: read every connection's health, keep the page the query asks for, render.

export interface ConsoleRequest {
  /** The query as it came (a URL's parameters, a widget's params and form): parsed here, what does not parse dropped. */
  query: Record<string, unknown>;
  now: number;
  nav: ConsoleNav;
  render?: RenderOptions;
  /** Parallel scan segments and the scan's deadline. */
  read?: { segments?: number; timeoutMs?: number };
}

export async function consolePage(source: ConsoleSource, req: ConsoleRequest): Promise<string> {
  const healths = await readHealth(source, req.now, req.read ?? {});
  return renderConsole(viewOf(healths, parseQuery(req.query), req.now), req.nav, req.render ?? {});
}
