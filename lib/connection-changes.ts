import { createHash } from 'node:crypto';
import type { Clock } from './clock';
import { parseConnection, type BrokerConfig, type ConfigOptions, type Connection } from './config';
import { ConnectionCatalog, type CatalogOptions } from './connections';
import { ConfigurationError, ConflictError, ForbiddenError, InvalidRequestError, PreconditionFailedError } from './errors';
import { isAdmin, principalArn } from './policy';
import {
  noLogger,
  noMetrics,
  type ConnectionRegistry,
  type Logger,
  type Metrics,
  type RegisteredConnection,
} from './ports';

// An admin's changes to registered connections (PUT, GET, DELETE /v1/connections/{id}): authorize, validate as the
// file is, check the secret against the deployment's rule, one conditional write, then apply it here at once (this
// instance's copy, its tokens) and leave an audit line and a metric. Nothing secret is read or written.

/** Whether a registered connection may use its secret here: a problem naming the rule, or undefined. */
export interface SecretRule {
  problem(connection: Connection): Promise<string | undefined>;
}

export interface ConnectionChangesDeps {
  file: BrokerConfig;
  catalog: ConnectionCatalog;
  registry: ConnectionRegistry;
  rule: SecretRule;
  clock: Clock;
  /** Drops every token of the connection: this instance's memory and the table's copy. */
  evictTokens: (id: string) => Promise<void>;
  parse?: ConfigOptions;
  logger?: Logger;
  metrics?: Metrics;
}

export interface ConnectionDescription {
  connection: string;
  source: 'file' | 'api';
  etag: string;
  definition: Record<string, unknown>;
}

/** The audit line of every change: who, which id, the etag before and after. */
export const CONNECTION_CHANGED = 'connection changed';

export class ConnectionChanges {
  private readonly log: Logger;
  private readonly metrics: Metrics;

  constructor(private readonly deps: ConnectionChangesDeps) {
    this.log = deps.logger ?? noLogger;
    this.metrics = deps.metrics ?? noMetrics;
  }

  /** Registers or replaces a connection. `created` is false when it replaced one. */
  async put(adminArn: string, id: string, body: unknown, ifMatch?: string): Promise<{ created: boolean; etag: string }> {
    this.authorize(adminArn, id);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidRequestError('the body must be one connection object');
    const given = (body as Record<string, unknown>).id;
    if (given !== undefined && given !== id) throw new InvalidRequestError(`id: must be absent or equal to the path's id (${id})`);
    const definition = { ...(body as Record<string, unknown>), id };
    let connection: Connection;
    try {
      connection = parseConnection(definition, this.deps.parse ?? {});
    } catch (err) {
      if (err instanceof ConfigurationError) throw new InvalidRequestError(err.message, { context: { connection: id } });
      throw err;
    }
    const problem = await this.deps.rule.problem(connection);
    if (problem) throw new InvalidRequestError(problem, { context: { connection: id } });
    const entry: RegisteredConnection = {
      id,
      definition,
      etag: etagOf(definition),
      changedAt: this.deps.clock.now(),
      changedBy: principalArn(adminArn),
    };
    const expected = await this.expectedEtag(id, ifMatch);
    const { written, previous } = await this.deps.registry.put(entry, expected);
    if (!written) throw this.stale(id);
    await this.applied(adminArn, id, previous, entry, previous ? 'replaced' : 'created');
    return { created: previous === undefined, etag: entry.etag };
  }

  /** The definition, where it comes from and its etag: nothing secret (a connection names its secret, never holds it). */
  async describe(adminArn: string, id: string): Promise<ConnectionDescription> {
    if (!isAdmin(adminArn, this.deps.file)) throw new ForbiddenError({ context: { connection: id } });
    const own = this.deps.file.byId.get(id);
    if (own) {
      const definition = definitionOf(own);
      return { connection: id, source: 'file', etag: etagOf(definition), definition };
    }
    const stored = await this.deps.registry.get(id);
    if (!stored) throw new ForbiddenError({ context: { connection: id } });
    return { connection: id, source: 'api', etag: stored.etag, definition: stored.definition };
  }

  /** Deletes a registered connection and evicts its tokens; afterwards it answers like an unknown one. */
  async remove(adminArn: string, id: string, ifMatch?: string): Promise<void> {
    this.authorize(adminArn, id);
    const expected = await this.expectedEtag(id, ifMatch);
    const { written, previous } = await this.deps.registry.delete(id, expected);
    if (!written) {
      if (!previous) throw new ForbiddenError({ context: { connection: id } });
      throw this.stale(id);
    }
    if (!previous) throw new ForbiddenError({ context: { connection: id } });
    await this.applied(adminArn, id, previous, undefined, 'deleted');
  }

  private authorize(adminArn: string, id: string): void {
    if (!isAdmin(adminArn, this.deps.file)) throw new ForbiddenError({ context: { connection: id } });
    if (this.deps.catalog.inFile(id)) {
      throw new ConflictError(`${id} is defined in the connections file: change it there and deploy`, { context: { connection: id } });
    }
  }

  /** If-Match as the write's condition: `*` stands for whatever is there now, and fails when nothing is. */
  private async expectedEtag(id: string, ifMatch: string | undefined): Promise<string | undefined> {
    if (ifMatch !== '*') return ifMatch;
    const current = await this.deps.registry.get(id);
    if (!current) throw this.stale(id);
    return current.etag;
  }

  private stale(id: string): PreconditionFailedError {
    return new PreconditionFailedError(`${id} has changed since that etag: read it again (GET) and retry with its etag`, { context: { connection: id } });
  }

  private async applied(
    adminArn: string,
    id: string,
    before: RegisteredConnection | undefined,
    after: RegisteredConnection | undefined,
    action: 'created' | 'replaced' | 'deleted',
  ): Promise<void> {
    this.deps.catalog.applied(id, after);
    this.log.info(CONNECTION_CHANGED, {
      admin: principalArn(adminArn),
      connection: id,
      action,
      etagBefore: before?.etag ?? null,
      etagAfter: after?.etag ?? null,
    });
    this.metrics.count('ConnectionChanges', 1, { action });
    // The change stands once written; tokens minted under the old definition go after it (a table that fails now
    // leaves them to expire, and says so).
    try {
      await this.deps.evictTokens(id);
    } catch (err) {
      this.log.warn('the change is made but its cached tokens could not be evicted', { connection: id, reason: (err as Error).message });
    }
  }
}

/** A definition's etag: a hash of its canonical JSON (keys sorted), so the same definition has the same etag. */
export function etagOf(definition: Record<string, unknown>): string {
  return createHash('sha256').update(canonicalJson(definition)).digest('base64url').slice(0, 22);
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** A file connection as a definition in the file's own shape: the effective values, preset and overrides merged. */
export function definitionOf(c: Connection): Record<string, unknown> {
  const { kind: _kind, dialectName, dialect: _dialect, ...rest } = c;
  const { endpoint: _endpoint, ...own } = rest as typeof rest & { endpoint?: unknown };
  const common = { ...own, dialect: dialectName };
  if (c.kind === 'static') return { ...common, grantType: 'static', staticScheme: c.dialect.staticScheme };
  const { requires: _requires, ...engine } = c.dialect;
  const endpoint = 'tokenUrl' in c.endpoint ? { tokenUrl: c.endpoint.tokenUrl.href } : { issuer: c.endpoint.issuer.href };
  return { ...common, ...endpoint, ...engine };
}

/**
 * The two sources wired for one instance: the catalog (the broker's `connections`), then, once the broker exists,
 * the admin's changes, which drop the broker's copy of a changed connection's token.
 */
export function wireConnections(parts: {
  file: BrokerConfig;
  registry: ConnectionRegistry;
  clock: Clock;
  rule: SecretRule;
  parse?: ConfigOptions;
  catalog?: Partial<Omit<CatalogOptions, 'parse'>>;
  logger?: Logger;
  metrics?: Metrics;
}) {
  const parse = parts.parse ?? {};
  const catalog = new ConnectionCatalog(parts.file, parts.registry, parts.clock, { ...parts.catalog, parse }, parts.logger);
  return {
    catalog,
    changes(broker: { forget(id: string): void; evictTokens(id: string): Promise<boolean> }): ConnectionChanges {
      catalog.onChange((id) => broker.forget(id));
      return new ConnectionChanges({
        ...parts,
        parse,
        catalog,
        evictTokens: async (id) => {
          await broker.evictTokens(id);
        },
      });
    },
  };
}
