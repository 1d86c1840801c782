import { MetricUnit, type EmfMetrics } from '../lib/adapters/emf';
import type { JsonLogger } from '../lib/adapters/log';
import type { Broker } from '../lib/broker';
import { systemClock, type Clock } from '../lib/clock';
import type { ConnectionCatalog } from '../lib/connections';
import { ROTATION_EVENTS, SECRET_EVENT_SOURCE, type MetricName } from '../lib/contract';
import { StoreUnavailableError, isBrokerError } from '../lib/errors';
import { SecretUsers } from '../lib/secret-users';
import { lambdaEntry, withPowertools } from './entry';

// Two ways in:
// - EventBridge delivers Secrets Manager's CloudTrail events (PutSecretValue, UpdateSecret, RotateSecret,
//   UpdateSecretVersionStage, RotationSucceeded): the connections using that secret have their tokens of other
//   secret versions evicted and a new one minted. Idempotent; a secret no connection uses is logged and ignored.
// - A Secrets Manager rotation function's `testSecret` step ({Step, SecretId, ClientRequestToken}): every
//   connection using the secret exchanges with its AWSPENDING version, nothing cached; a failure fails the step,
//   so a bad secret never becomes current.
// Both reach the file's connections and the registered ones (issue 19) whose secretId names the secret.

export interface RotationDeps {
  broker: Broker;
  logger: JsonLogger;
  metrics: EmfMetrics;
  /** The registered connections (issue 19): listed once per catalog window, not once per event. */
  connections?: { catalog: Pick<ConnectionCatalog, 'allRegistered'> };
  clock?: Clock;
}

interface CloudTrailEvent {
  source?: string;
  'detail-type'?: string;
  resources?: string[];
  detail?: {
    eventSource?: string;
    eventName?: string;
    requestParameters?: { secretId?: string; SecretId?: string } | null;
    responseElements?: { arn?: string; aRN?: string; name?: string } | null;
    additionalEventData?: { SecretId?: string } | null;
  };
}

interface RotationStepEvent {
  Step: string;
  SecretId: string;
  ClientRequestToken: string;
}

export type RotationReport =
  | { ignored: true; reason: string }
  | { secret: string; connections: Record<string, { evicted: boolean; minted: boolean } | { error: string }> }
  | { step: 'testSecret'; verified: string[] };

function isRotationStep(e: unknown): e is RotationStepEvent {
  const r = e as Partial<RotationStepEvent>;
  return typeof r?.Step === 'string' && typeof r.SecretId === 'string';
}

/** Every secret id or ARN a CloudTrail event names. */
function secretsNamed(e: CloudTrailEvent): string[] {
  const d = e.detail ?? {};
  const ids = [
    d.requestParameters?.secretId,
    d.requestParameters?.SecretId,
    d.responseElements?.arn,
    d.responseElements?.aRN,
    d.additionalEventData?.SecretId,
    ...(e.resources ?? []),
  ];
  return [...new Set(ids.filter((x): x is string => typeof x === 'string' && x.length > 0))];
}

export function makeRotationHandler(deps: RotationDeps) {
  const { broker, logger, metrics } = deps;
  const users = new SecretUsers(broker.config.connections, deps.connections?.catalog, deps.clock ?? systemClock);

  return async (event: unknown): Promise<RotationReport> => {
    if (isRotationStep(event)) {
      if (event.Step !== 'testSecret') {
        throw new Error(`the broker implements only the testSecret step of a rotation, not ${event.Step}`);
      }
      // Once a rotation, and it decides whether a secret becomes current: the table is read afresh.
      const connections = await users.of([event.SecretId], { fresh: true });
      for (const c of connections) {
        try {
          await broker.verifyConnection(c, 'AWSPENDING');
        } catch (err) {
          const code = isBrokerError(err) ? err.code : 'internal_error';
          logger.error('testSecret failed', { connection: c.id, code, reason: isBrokerError(err) ? err.message : undefined });
          // eslint-disable-next-line preserve-caught-error -- the vendor's answer stays out of what Lambda prints; the code is logged above
          throw new Error(`testSecret failed for ${c.id}: ${code}`);
        }
      }
      logger.info('testSecret passed', { secret: event.SecretId, connections: connections.map((c) => c.id) });
      return { step: 'testSecret', verified: connections.map((c) => c.id) };
    }

    const e = event as CloudTrailEvent;
    const name = e.detail?.eventName;
    if (e.detail?.eventSource !== SECRET_EVENT_SOURCE || !name || !ROTATION_EVENTS.includes(name)) {
      logger.warn('not a Secrets Manager change event; ignored', { eventName: name, source: e.source });
      return { ignored: true, reason: 'not a Secrets Manager change event' };
    }
    const named = secretsNamed(e);
    const connections = await users.of(named);
    if (connections.length === 0) {
      logger.info('a secret no connection uses changed; ignored', { eventName: name, secrets: named });
      return { ignored: true, reason: 'no connection uses this secret' };
    }
    const results: Record<string, { evicted: boolean; minted: boolean } | { error: string }> = {};
    let storeDown: StoreUnavailableError | undefined;
    for (const c of connections) {
      try {
        const r = await broker.rotate(c);
        results[c.id] = { evicted: r.evicted, minted: r.minted };
        if (r.evicted) metrics.addMetric('RotationEvictions' satisfies MetricName, MetricUnit.Count, 1);
      } catch (err) {
        results[c.id] = { error: isBrokerError(err) ? err.code : 'internal_error' };
        if (err instanceof StoreUnavailableError) storeDown = err;
        logger.warn('rotation could not mint with the new secret', {
          connection: c.id,
          code: isBrokerError(err) ? err.code : 'internal_error',
        });
      }
    }
    logger.info('secret change handled', { eventName: name, secrets: named, results });
    // Without the table nothing was evicted: fail, so EventBridge retries (and the DLQ keeps it if it never can).
    if (storeDown) throw storeDown;
    return { secret: named[0]!, connections: results };
  };
}

export const makeHandler = (deps: RotationDeps) => withPowertools(makeRotationHandler(deps), deps);

export const handler = lambdaEntry(makeHandler);
