import type { Context } from 'aws-lambda';
import type { CallBudget } from '../lib/adapters/aws';
import { DynamoConnectionRegistry } from '../lib/adapters/connections-table';
import { DynamoTokenStore, createDynamoClient } from '../lib/adapters/dynamodb';
import { systemClock, type Clock } from '../lib/clock';
import type { ConsoleSource } from '../lib/console/health';
import { consolePage } from '../lib/console/page';
import { esc } from '../lib/console/render';
import { loadConfig } from '../lib/config';
import { ConnectionCatalog } from '../lib/connections';
import { BUNDLED_CONFIG_FILE, ENV } from '../lib/contract';
import { ConfigurationError } from '../lib/errors';

// The operator's console as a CloudWatch custom widget (docs/operations.md): CloudWatch invokes this function with
// the widget's params and its context, and shows the HTML it returns. It only reads the token table (one parallel
// scan); it decrypts nothing and shows nothing secret. A link in the view calls it again with its query as params.

/** What CloudWatch sends a custom widget's function (the fields this one reads). */
export interface WidgetEvent {
  /** CloudWatch asks for the widget's documentation (markdown) when a user opens the widget's settings. */
  describe?: boolean;
  /** From a <cwdb-action> in the view: the query it carries. */
  state?: unknown;
  search?: unknown;
  page?: unknown;
  widgetContext?: {
    dashboardName?: string;
    widgetId?: string;
    /** The widget's own params, set in the dashboard. */
    params?: Record<string, unknown>;
    /** The values of the forms in the widget, when an action was chosen: the search box's. */
    forms?: { all?: Record<string, unknown> };
  };
}

export interface WidgetDeps {
  source: ConsoleSource;
  clock?: Clock;
  /** The scan: parallel segments, and its deadline (READ_DEFAULTS). */
  read?: { segments?: number; timeoutMs?: number };
}

/** The scan's share of CloudWatch's wait (the view must come back within 2 s at 10,000 connections), in 16 segments. */
const READ_DEFAULTS = { segments: 16, timeoutMs: 1_500 };

/**
 * The widget's table client: a scan page is up to 1 MB, not a GetItem, so one attempt may take the whole read
 * budget; a retry would not fit in it, so there is none (the dashboard's next refresh is the retry).
 */
export const SCAN_BUDGET: CallBudget = { connectMs: 500, attemptMs: READ_DEFAULTS.timeoutMs, maxAttempts: 1, totalMs: READ_DEFAULTS.timeoutMs };

export const DESCRIPTION = `## token-broker connections
Every connection's health, unhealthy first: its state (failing, cooling down, no token yet, refreshing, serving),
where its token is in its life, who minted it, pre-warm, the secret version's fingerprint, the last failure and
the requests served in the last hour. Read from the token table; nothing secret is shown.

Params (all optional): \`state\` (one of the states above, as failing, cooling-down, no-token, refreshing, serving),
\`search\` (part of a connection id), \`page\`.`;

export function makeHandler(deps: WidgetDeps) {
  const clock = deps.clock ?? systemClock;
  return async (event: WidgetEvent, context: Pick<Context, 'invokedFunctionArn'>): Promise<string> => {
    if (event.describe) return DESCRIPTION;
    const ctx = event.widgetContext ?? {};
    const query = {
      ...(ctx.params ?? {}),
      ...Object.fromEntries((['state', 'search', 'page'] as const).flatMap((k) => (event[k] === undefined ? [] : [[k, event[k]]]))),
      ...(typeof ctx.forms?.all?.search === 'string' ? { search: ctx.forms.all.search } : {}),
    };
    try {
      return await consolePage(deps.source, {
        query,
        now: clock.now(),
        nav: { kind: 'widget', endpoint: context.invokedFunctionArn },
        read: { ...READ_DEFAULTS, ...deps.read },
      });
    } catch (err) {
      // The error's name only: the widget is no place for a stack, and CloudWatch shows what it is given.
      console.error(JSON.stringify({ message: 'console not read', errorName: err instanceof Error ? err.name : typeof err }));
      return `<p class="error">The token table could not be read (${esc(err instanceof Error ? err.name : 'error')}). Try again in a moment.</p>`;
    }
  };
}

function required(name: string): string {
  const v = process.env[name];
  if (!v) throw new ConfigurationError(`the environment variable ${name} is not set`);
  return v;
}

let built: ReturnType<typeof makeHandler> | undefined;

/**
 * What the deployed widget reads, from its environment: the bundled connections file and the token table, whose
 * items hold the connections registered through the API too (read by a scan, which the widget's grant covers).
 */
export function sourceFromEnvironment(): ConsoleSource {
  const config = loadConfig(process.env[ENV.config] ?? BUNDLED_CONFIG_FILE);
  const dynamo = createDynamoClient({}, SCAN_BUDGET);
  const table = required(ENV.table);
  const catalog = new ConnectionCatalog(config, new DynamoConnectionRegistry(dynamo, table, SCAN_BUDGET.totalMs), systemClock);
  return {
    connections: async () => [...config.connections, ...(await catalog.allRegistered())],
    records: new DynamoTokenStore(dynamo, table, SCAN_BUDGET.totalMs),
  };
}

/** Lambda's entry point: the connections file and the table client are read once per instance. */
export const handler = async (event: WidgetEvent, context: Context): Promise<string> => {
  built ??= makeHandler({ source: sourceFromEnvironment() });
  return built(event, context);
};
