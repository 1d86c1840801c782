import type { Context } from 'aws-lambda';
import { MetricUnit, type EmfMetrics } from '../lib/adapters/emf';
import type { JsonLogger } from '../lib/adapters/log';
import type { Broker } from '../lib/broker';
import type { Connection } from '../lib/config';
import type { ConnectionCatalog } from '../lib/connections';
import type { MetricName } from '../lib/contract';
import { isBrokerError } from '../lib/errors';
import type { ConnectionRecord, SecretRead, SecretSource, TokenStore } from '../lib/ports';
import { readCurrentSecrets } from '../lib/secrets';
import { lambdaEntry, withPowertools } from './entry';

// EventBridge Scheduler, every minute: every connection with `prewarm: true` gets a new token when its cached one
// is missing or would enter its refreshBefore window before the next run. Connections are warmed concurrently with a bound; one failing vendor does
// not stop the others; no connection is started without time left for its exchange.
// The same run catches secret changes no event announced (no CloudTrail trail, a lost event): for every connection
// whose stored token was minted with another secret version than the current one, the token is replaced at once.

export interface PrewarmDeps {
  broker: Broker;
  logger: JsonLogger;
  metrics: EmfMetrics;
  /**
   * Where the current secret versions are read and the stored tokens' versions compared: the broker's own cached
   * source, so that what the run reads serves the mints that follow.
   */
  secrets?: SecretSource;
  store?: TokenStore;
  /** The registered connections (issue 19) are checked and warmed like the file's. */
  connections?: { catalog: ConnectionCatalog };
  /** How many connections are warmed at once. */
  concurrency?: number;
  /** No connection is started with less time left than this (an exchange's deadline and some). */
  reserveMs?: number;
}

export type PrewarmReport = { outcomes: Record<string, string> };

const codeOf = (err: unknown) => (isBrokerError(err) ? err.code : 'internal_error');

export function makePrewarmHandler(deps: PrewarmDeps) {
  const concurrency = deps.concurrency ?? 4;
  const reserveMs = deps.reserveMs ?? 12_000;
  /**
   * Whether the stored token was minted with another version of the secret than its current one. A secret that
   * could not be read (its own error, or its batch call's) is reported and counts as "no change": warming goes on
   * with what is stored.
   */
  const secretChanged = async (
    connection: Connection,
    current: Promise<Map<string, SecretRead>> | undefined,
  ): Promise<{ changed: boolean; record?: ConnectionRecord }> => {
    const { store } = deps;
    if (!current || !store || connection.dialect.grantType === 'static') return { changed: false };
    let record: ConnectionRecord | undefined;
    try {
      const [read, r] = await Promise.all([current, store.read(connection.id)]);
      record = r;
      const secret = read.get(connection.secretId);
      if (!secret || secret instanceof Error) throw secret ?? new Error('the secret was not read');
      return { changed: record.token !== undefined && record.token.secretVersion !== secret.versionId, record };
    } catch (err) {
      deps.logger.warn('could not compare the secret version', { connection: connection.id, code: codeOf(err) });
      return { changed: false, ...(record ? { record } : {}) };
    }
  };

  return async (_event: unknown, context: Context): Promise<PrewarmReport> => {
    // Every connection that caches tokens is checked for a changed secret; only pre-warmed ones are warmed.
    const all = [...deps.broker.config.connections, ...(await registered(deps))];
    const connections = all.filter((c) => c.prewarm || (deps.secrets && c.dialect.grantType !== 'static'));
    // One batch read of every checked secret per run (Secrets Manager: 20 a call), however many connections share one.
    const checked = deps.secrets && deps.store ? connections.filter((c) => c.dialect.grantType !== 'static') : [];
    const current = deps.secrets && checked.length > 0 ? readCurrentSecrets(deps.secrets, checked.map((c) => c.secretId)) : undefined;
    // Handled where it is awaited; a run that starts no connection (no time left) must not leave it unobserved.
    void current?.catch(() => undefined);
    const outcomes: Record<string, string> = {};
    let next = 0;
    const worker = async () => {
      while (next < connections.length) {
        const connection = connections[next++]!;
        if (context.getRemainingTimeInMillis() < reserveMs) {
          outcomes[connection.id] = 'skipped-no-time';
          continue;
        }
        try {
          const look = await secretChanged(connection, current);
          if (look.changed) {
            await deps.broker.rotate(connection);
            deps.logger.info('the secret changed without an event; token replaced', { connection: connection.id });
            outcomes[connection.id] = 'rotated';
          } else if (connection.prewarm) {
            // The record just read for the version check will do: one table read per connection per run.
            outcomes[connection.id] = await deps.broker.prewarm(connection, look.record);
          }
        } catch (err) {
          outcomes[connection.id] = codeOf(err);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, connections.length) }, worker));
    const tally: Record<string, number> = {};
    for (const o of Object.values(outcomes)) tally[o] = (tally[o] ?? 0) + 1;
    for (const [outcome, n] of Object.entries(tally)) {
      const m = deps.metrics.singleMetric();
      m.addDimensions({ outcome });
      m.addMetric('PrewarmOutcomes' satisfies MetricName, MetricUnit.Count, n);
    }
    const failed = Object.values(outcomes).some((o) => !['minted', 'fresh', 'busy', 'static', 'rotated'].includes(o));
    (failed ? deps.logger.warn.bind(deps.logger) : deps.logger.info.bind(deps.logger))('prewarm run', { outcomes, tally });
    return { outcomes };
  };
}

/** The registered connections, read once a run; a table that fails here leaves the run to the file's. */
async function registered(deps: PrewarmDeps): Promise<Connection[]> {
  try {
    return (await deps.connections?.catalog.allRegistered()) ?? [];
  } catch (err) {
    deps.logger.warn('could not list the registered connections', { code: codeOf(err) });
    return [];
  }
}

export const makeHandler = (deps: PrewarmDeps) => withPowertools(makePrewarmHandler(deps), deps);

export const handler = lambdaEntry(makeHandler);
