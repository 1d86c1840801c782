import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import dynalite from 'dynalite';
import { Level } from 'level';
import { ConfigurationError } from '../errors';

// The embedded table of local mode and of the tests: a dynalite server on loopback, in memory or kept on disk.

export interface RunningDynalite {
  endpoint: string;
  port: number;
  close(): Promise<void>;
}

/**
 * dynalite crashes its process on the first request when its LevelDB cannot be opened (another local broker holds
 * the lock): open it once here first, to fail with a message instead.
 */
async function assertUsable(path: string): Promise<void> {
  const db = new Level(path);
  try {
    await db.open();
  } catch {
    throw new ConfigurationError(`the data directory ${path} is in use by another local broker, or unreadable`);
  } finally {
    await db.close().catch(() => undefined);
  }
}

export async function startDynalite(opts: { path?: string; port?: number } = {}): Promise<RunningDynalite> {
  if (opts.path) await assertUsable(opts.path);
  const server: Server = dynalite({
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
    ...(opts.path ? { path: opts.path } : {}),
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
