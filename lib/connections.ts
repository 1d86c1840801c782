import type { Clock } from './clock';
import { parseConnection, type BrokerConfig, type ConfigOptions, type Connection } from './config';
import { BrokerError, InvalidRequestError, StoreUnavailableError } from './errors';
import { noLogger, type ConnectionCatalog as CatalogPort, type ConnectionRegistry, type Logger, type RegisteredConnection } from './ports';

// Where connections come from (issue 19): the file first (an id lives in one source only), then the ones admins
// registered in the table. A registered connection is read once per id and kept for `ttlMs` (a miss too), so every
// instance sees a change within that time, and the token path makes one table read per id per `ttlMs`, whatever
// the number of connections. The instance that took a change applies it at once (`applied`).

export interface CatalogOptions {
  /** How long a registered connection (or its absence) is trusted before the table is read again; at most 60 s. */
  ttlMs: number;
  /** At most this many ids are remembered; the least recently used go first. */
  maxEntries: number;
  /** How a stored definition is validated on every read (local mode accepts loopback http). */
  parse: ConfigOptions;
}

export const CATALOG_DEFAULTS: CatalogOptions = { ttlMs: 30_000, maxEntries: 10_000, parse: {} };
export const CATALOG_MAX_TTL_MS = 60_000;
/** A table that failed is asked again this long after, at the soonest: until then the copy held is served. */
const RETRY_FAILED_READ_MS = 5_000;

interface Entry {
  connection?: Connection;
  etag?: string;
  at: number;
}

/** A connection's place in a listing: a file position, or the table key a scan resumes after. */
type Cursor = { file: number } | { table: string };

export interface ConnectionPage {
  connections: Connection[];
  next?: string;
}

export class ConnectionCatalog implements CatalogPort {
  private readonly opts: CatalogOptions;
  private readonly cache = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<Entry>>();
  private readonly listeners: ((id: string) => void)[] = [];

  constructor(
    readonly file: BrokerConfig,
    private readonly registry: ConnectionRegistry | undefined,
    private readonly clock: Clock,
    opts: Partial<CatalogOptions> = {},
    private readonly log: Logger = noLogger,
  ) {
    this.opts = { ...CATALOG_DEFAULTS, ...opts };
    if (!(this.opts.ttlMs >= 0 && this.opts.ttlMs <= CATALOG_MAX_TTL_MS)) throw new RangeError(`ttlMs must be 0 to ${CATALOG_MAX_TTL_MS}`);
  }

  /** The connection with this id, or undefined when unknown or deleted. O(1) in the number of connections. */
  async find(id: string): Promise<Connection | undefined> {
    const own = this.file.byId.get(id);
    if (own || !this.registry) return own;
    const hit = this.cache.get(id);
    if (hit && this.clock.now() - hit.at < this.opts.ttlMs) {
      // Least recently used goes first: a hit moves to the back.
      this.cache.delete(id);
      this.cache.set(id, hit);
      return hit.connection;
    }
    let load = this.loading.get(id);
    if (!load) {
      load = this.load(id, hit).finally(() => this.loading.delete(id));
      this.loading.set(id, load);
    }
    return (await load).connection;
  }

  /** 'file' for an id the file defines: it cannot be changed through the API. */
  inFile(id: string): boolean {
    return this.file.byId.has(id);
  }

  /** Told the id of every registered connection that changed or went away, as this instance learns it. */
  onChange(listener: (id: string) => void): void {
    this.listeners.push(listener);
  }

  /** This instance took a change: it applies it now, without waiting for its copy to lapse. */
  applied(id: string, entry: RegisteredConnection | undefined): void {
    this.remember(id, entry ? this.resolve(entry) : { at: this.clock.now() });
  }

  /** The definitions in the table, validated, for the pre-warm run: every registered connection, page by page. */
  async allRegistered(maxPages = 1_000): Promise<Connection[]> {
    const all: Connection[] = [];
    let after: string | undefined;
    for (let page = 0; page < maxPages && this.registry; page++) {
      const read = await this.registry.list({ limit: 1_000, ...(after === undefined ? {} : { after }) });
      for (const entry of read.items) {
        const { connection } = this.resolve(entry);
        if (connection && !this.file.byId.has(connection.id)) all.push(connection);
      }
      if (read.next === undefined) break;
      after = read.next;
    }
    return all;
  }

  /** Up to `limit` connections for which `keep` holds: the file's first, then the registered ones. */
  async page(keep: (c: Connection) => boolean, limit: number, next?: string): Promise<ConnectionPage> {
    const cursor = next === undefined ? { file: 0 } : decodeCursor(next);
    const connections: Connection[] = [];
    if ('file' in cursor) {
      const file = this.file.connections;
      for (let i = cursor.file; i < file.length; i++) {
        if (!keep(file[i]!)) continue;
        connections.push(file[i]!);
        if (connections.length === limit) return { connections, next: encodeCursor({ file: i + 1 }) };
      }
    }
    if (!this.registry) return { connections };
    const after = 'table' in cursor ? cursor.table : undefined;
    const read = await this.registry.list({
      limit: limit - connections.length,
      ...(after === undefined ? {} : { after }),
      keep: (entry) => {
        const c = this.resolve(entry).connection;
        return c !== undefined && !this.file.byId.has(c.id) && keep(c);
      },
    });
    for (const entry of read.items) connections.push(this.resolve(entry).connection!);
    return read.next === undefined ? { connections } : { connections, next: encodeCursor({ table: read.next }) };
  }

  private async load(id: string, stale: Entry | undefined): Promise<Entry> {
    let entry: Entry;
    try {
      const stored = await this.registry!.get(id);
      entry = stored ? this.resolve(stored) : { at: this.clock.now() };
    } catch (err) {
      // A table that is down: what this instance knew still holds (the token path degrades the same way), and only
      // one request every few seconds spends its time budget finding out whether the table is back.
      if (!stale || !(err instanceof StoreUnavailableError)) throw err;
      const held = { ...stale, at: this.clock.now() - this.opts.ttlMs + RETRY_FAILED_READ_MS };
      this.cache.set(id, held);
      return held;
    }
    this.remember(id, entry);
    return entry;
  }

  /** A stored definition validated as the file's are; one that no longer validates is logged and treated as absent. */
  private resolve(stored: RegisteredConnection): Entry {
    const at = this.clock.now();
    try {
      return { connection: parseConnection(stored.definition, this.opts.parse), etag: stored.etag, at };
    } catch (err) {
      if (!(err instanceof BrokerError)) throw err;
      this.log.error('a registered connection does not validate; it is not served', { connection: stored.id, reason: err.message });
      return { etag: stored.etag, at };
    }
  }

  private remember(id: string, entry: Entry): void {
    const before = this.cache.get(id);
    this.cache.delete(id);
    this.cache.set(id, entry);
    if (before && before.etag !== entry.etag) this.tell(id);
    while (this.cache.size > this.opts.maxEntries) this.cache.delete(this.cache.keys().next().value as string);
  }

  private tell(id: string): void {
    for (const listener of this.listeners) listener(id);
  }
}

function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

function decodeCursor(next: string): Cursor {
  try {
    const c = JSON.parse(Buffer.from(next, 'base64url').toString('utf8')) as Partial<{ file: unknown; table: unknown }>;
    if (typeof c.file === 'number' && Number.isInteger(c.file) && c.file >= 0) return { file: c.file };
    if (typeof c.table === 'string' && c.table.length <= 1024) return { table: c.table };
  } catch {
    // fall through: a malformed token is the caller's mistake
  }
  throw new InvalidRequestError('next must be a token from a previous page of this list');
}
