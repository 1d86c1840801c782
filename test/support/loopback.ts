import { once } from 'node:events';
import type { Server } from 'node:net';

/** Starts a server on a free port of 127.0.0.1 (the only network here) and answers the port. */
export async function listenOnLoopback(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}
