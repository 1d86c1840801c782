import { spawn, type ChildProcess } from 'node:child_process';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { listenOnLoopback } from './loopback';

// Endpoints that never answer, for proving that AWS calls abort at their deadline: a loopback TCP server that
// accepts and stays silent, a port nothing listens on, and a dynalite in its own process that can be SIGSTOPped.

export interface HungEndpoint {
  endpoint: string;
  /** Connections accepted so far, and how many of them the client has since closed (aborted). */
  accepted(): number;
  closedByClient(): number;
  close(): Promise<void>;
}

export async function startHungEndpoint(): Promise<HungEndpoint> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  let closed = 0;
  const server: Server = createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed += 1;
      sockets.delete(socket);
    });
    // Read and never answer.
    socket.resume();
  });
  const port = await listenOnLoopback(server);
  return {
    endpoint: `http://127.0.0.1:${port}`,
    accepted: () => accepted,
    closedByClient: () => closed,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** An endpoint whose port refuses connections (it was free a moment ago). */
export async function refusedEndpoint(): Promise<string> {
  const server = createServer();
  const port = await listenOnLoopback(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

export interface DynaliteProcess {
  endpoint: string;
  child: ChildProcess;
  /** SIGSTOP: the kernel still accepts connections; nothing answers them. */
  stop(): void;
  /** SIGCONT. */
  resume(): void;
  close(): Promise<void>;
}

const DYNALITE_MAIN = `
import dynalite from 'dynalite';
const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
server.listen(0, '127.0.0.1', () => console.log(String(server.address().port)));
`;

/** dynalite in a child process (cwd: the repository, so it resolves from node_modules). */
export async function startDynaliteProcess(): Promise<DynaliteProcess> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', DYNALITE_MAIN], {
    cwd: new URL('../..', import.meta.url).pathname,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('dynalite did not start within 15 s')), 15_000);
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /^(\d+)\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`dynalite exited with ${code}`));
    });
  });
  let stopped = false;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    child,
    stop: () => {
      child.kill('SIGSTOP');
      stopped = true;
    },
    resume: () => {
      if (stopped) child.kill('SIGCONT');
      stopped = false;
    },
    close: async () => {
      if (stopped) child.kill('SIGCONT');
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface DelayingProxy {
  endpoint: string;
  /** The delay added to everything the client sends, in ms; change it between calls. */
  delay: { ms: number };
  close(): Promise<void>;
}

/**
 * A loopback TCP proxy that holds back each chunk a client sends for `delay.ms` before passing it on: a server
 * that answers, but slowly (a table browning out). Chunks keep their order (one delay for all of them at a time).
 */
export async function startDelayingProxy(target: string): Promise<DelayingProxy> {
  const { hostname, port: targetPort } = new URL(target);
  const delay = { ms: 0 };
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: hostname, port: Number(targetPort) });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (chunk: Buffer) => {
      setTimeout(() => upstream.write(chunk), delay.ms);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    upstream.pipe(client);
  });
  const port = await listenOnLoopback(server);
  return {
    endpoint: `http://127.0.0.1:${port}`,
    delay,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
