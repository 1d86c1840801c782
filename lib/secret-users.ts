import type { Clock } from './clock';
import type { Connection } from './config';
import { CATALOG_DEFAULTS, CATALOG_MAX_TTL_MS, type ConnectionCatalog } from './connections';
import { sameSecret } from './secrets';

// Which connections use a secret that changed: the file's, and the ones admins registered (issue 19). The registered
// ones are listed from the table once per `ttlMs` (at most 60 s, as long as the catalog trusts its copies), not once
// per event: a burst of secret changes costs one paged scan, and a connection registered since is seen within the
// same window every instance takes to see a change. A rotation's testSecret step reads the table afresh.

export class SecretUsers {
  private held?: { connections: Connection[]; at: number };
  private loading?: Promise<Connection[]>;

  constructor(
    private readonly file: readonly Connection[],
    private readonly catalog: Pick<ConnectionCatalog, 'allRegistered'> | undefined,
    private readonly clock: Clock,
    private readonly ttlMs: number = CATALOG_DEFAULTS.ttlMs,
  ) {
    if (!(ttlMs >= 0 && ttlMs <= CATALOG_MAX_TTL_MS)) throw new RangeError(`ttlMs must be 0 to ${CATALOG_MAX_TTL_MS}`);
  }

  /** The connections whose secretId names one of these secrets (by name or ARN): the file's first. */
  async of(secrets: readonly string[], opts: { fresh?: boolean } = {}): Promise<Connection[]> {
    const uses = (c: Connection) => secrets.some((s) => sameSecret(c.secretId, s));
    return [...this.file.filter(uses), ...(await this.registered(opts.fresh ?? false)).filter(uses)];
  }

  /** Every registered connection, listed at most once per `ttlMs` unless `fresh`; concurrent callers share a read. */
  private async registered(fresh: boolean): Promise<Connection[]> {
    if (!this.catalog) return [];
    const held = this.held;
    if (!fresh && held && this.clock.now() - held.at < this.ttlMs) return held.connections;
    if (!this.loading) {
      // The listing's start is its age: a change made while it pages is picked up by the next one.
      const at = this.clock.now();
      this.loading = this.catalog
        .allRegistered()
        .then((connections) => {
          this.held = { connections, at };
          return connections;
        })
        .finally(() => {
          this.loading = undefined;
        });
    }
    return this.loading;
  }
}
