import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { TokenBrokerClient, TokenBrokerError, type ConnectionDefinition, type ConnectionStatus, type StatusPage } from './index';
import { defaultRegion } from './region';

// `token-broker <command>`: the client for operators and scripts. Results go to stdout, errors to stderr, and the
// exit code says what kind of failure it was, so a script can tell "not allowed" from "try again later".

export const EXIT = {
  ok: 0,
  /** The broker failed in another way (misconfigured, internal error, an answer that is not JSON). */
  failed: 1,
  /** The command line is wrong, or the broker found the request malformed. */
  usage: 2,
  /** No credentials, a signature the broker refused, or a connection this identity may not use. */
  forbidden: 3,
  /** The vendor refused the stored credentials or answered something that is not a token. */
  vendorRefused: 4,
  /** The broker or the vendor is unavailable, rate-limits, or did not answer in time: try again later. */
  unavailable: 5,
  /** A change based on an etag (--if-match) that is no longer current: read the connection again. */
  stale: 6,
} as const;

/** The exit code for an error code (see EXIT). */
export function exitCodeFor(code: string): number {
  switch (code) {
    case 'invalid_request':
    case 'not_found':
    case 'conflict':
      return EXIT.usage;
    case 'precondition_failed':
      return EXIT.stale;
    case 'unauthenticated':
    case 'forbidden':
    case 'no_credentials':
      return EXIT.forbidden;
    case 'vendor_rejected_credentials':
    case 'vendor_protocol_error':
      return EXIT.vendorRefused;
    case 'rate_limited':
    case 'vendor_unavailable':
    case 'vendor_timeout':
    case 'service_unavailable':
    case 'unreachable':
    case 'timeout':
      return EXIT.unavailable;
    default:
      return EXIT.failed;
  }
}

const COMMON = `common options:
  --url URL        the broker's base URL (default $TOKEN_BROKER_URL)
  --region REGION  the region requests are signed for (default: the one in an execute-api host name, else the
                   AWS profile's, else $AWS_REGION, else us-east-1)
  --json           print the broker's answer as JSON
  -h, --help       this help
  --version        the client's version
Credentials come from the AWS default chain (environment, AWS_PROFILE, SSO, web identity, container, EC2).`;

const EXITS = `exit codes: 0 ok, 1 other failure, 2 usage or invalid request, 3 no credentials / unauthenticated / forbidden,
            4 the vendor refused, 5 unavailable, rate-limited or timed out (try again later),
            6 the connection changed since --if-match's etag (read it again)`;

const COMMANDS = {
  token: {
    usage: 'token-broker token <connection> [--min-ttl N] [--header | --json]',
    about: 'A token valid for at least N seconds (default 60). --header prints only the Authorization value.',
  },
  connections: {
    usage:
      'token-broker connections [--admin] [--json]\n' +
      '       token-broker connections put <connection> <definition.json | -> [--if-match ETAG] [--json]\n' +
      '       token-broker connections get <connection> [--json]\n' +
      '       token-broker connections delete <connection> [--if-match ETAG] [--json]',
    about:
      'The connections this identity may use (--admin: every connection it administers). Admins: put registers or ' +
      'replaces a connection from a JSON file ("-": stdin), get shows its definition, source and etag, delete removes ' +
      'it; --if-match makes the change only if the etag is still current.',
  },
  invalidate: {
    usage: 'token-broker invalidate <connection> <access-token | -> [--json]',
    about: 'Report a token the vendor rejected early ("-" reads it from stdin); the broker evicts it if still current.',
  },
  refresh: {
    usage: 'token-broker refresh <connection> [--json]',
    about: 'Admins: mint a new token now.',
  },
  verify: {
    usage: 'token-broker verify <connection> [--stage AWSPENDING] [--json]',
    about: "Admins: exchange with that secret version stage, cache nothing, report whether the vendor accepts it.",
  },
  status: {
    usage: 'token-broker status [connection ...] [--json]',
    about: 'Admins: each connection\'s health (token expiry, minting, secret fingerprint, cooldown, last failure); ' +
      'with no connection named, every connection, unhealthy first: the console\'s view as a table.',
  },
} as const;

type Command = keyof typeof COMMANDS;

/** The commands only an admin may run: a 403 there means "not an admin" far more often than "no such connection". */
const ADMIN_ONLY: ReadonlySet<Command> = new Set(['refresh', 'verify', 'status']);

/** The client package's version, read from its package.json (beside src/ and dist/ alike). */
function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

const USAGE = `usage: token-broker <command> [options]

commands:
${Object.values(COMMANDS)
  .map((c) => `  ${c.usage}\n      ${c.about}`)
  .join('\n')}

${COMMON}
${EXITS}
"token-broker <command> --help" shows one command's help.`;

function commandHelp(command: Command): string {
  return `usage: ${COMMANDS[command].usage}\n  ${COMMANDS[command].about}\n\n${COMMON}\n${EXITS}`;
}

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  readStdin?(): Promise<string>;
  env?: Record<string, string | undefined>;
  /** Options for the client (tests inject credentials or a clock); the command line wins over them. */
  client?: ConstructorParameters<typeof TokenBrokerClient>[0];
}

const processIo: CliIo = {
  stdout: (t) => void process.stdout.write(`${t}\n`),
  stderr: (t) => void process.stderr.write(`${t}\n`),
  readStdin: async () => {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  },
};

class UsageError extends Error {}

/** Aligned columns, for people; --json is for scripts. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

const when = (v: unknown) => (typeof v === 'string' && v ? v : '-');

function statusRow(s: ConnectionStatus): string[] {
  const token = s.token as { expires_at?: string; minted_at?: string; minted_by?: string; secret_version?: string } | undefined;
  const cooldown = s.cooldown as { code?: string; until?: string } | undefined;
  const failure = s.last_failure as { code?: string; at?: string } | undefined;
  return [
    String(s.connection),
    s.static === true ? 'static' : when(token?.expires_at),
    when(token?.minted_at),
    when(token?.minted_by),
    when(token?.secret_version),
    cooldown ? `${when(cooldown.code)} until ${when(cooldown.until)}` : '-',
    failure ? `${when(failure.code)} at ${when(failure.at)}` : '-',
  ];
}

const STATUS_HEADER = ['CONNECTION', 'TOKEN EXPIRES', 'MINTED', 'BY', 'SECRET', 'COOLDOWN', 'LAST FAILURE'];

/** Pages of GET /v1/status, read to the end (bounded: 10,000 pages is far past any broker's connections). */
async function everyConnectionsHealth(client: TokenBrokerClient): Promise<StatusPage['connections']> {
  const all: StatusPage['connections'] = [];
  let next: string | undefined;
  for (let page = 0; page < 10_000; page++) {
    const got = await client.statusPage({ limit: 1000, ...(next === undefined ? {} : { next }) });
    all.push(...got.connections);
    next = got.next;
    if (next === undefined) break;
  }
  return all;
}

const HEALTH_HEADER = ['CONNECTION', 'STATE', 'SINCE / LEFT', 'TOKEN EXPIRES', 'MINTED', 'BY', 'PREWARM', 'SECRET', 'LAST FAILURE', 'REQUESTS 1H'];

/** The console's row as text: the same columns, for admins at a shell. */
function healthRow(h: StatusPage['connections'][number]): string[] {
  const token = h.token as { expires_at?: string; minted_at?: string; minted_by?: string } | undefined;
  const cooldown = h.cooldown as { code?: string; until?: string } | undefined;
  const failure = h.last_failure as { code?: string; at?: string; vendor_status?: number } | undefined;
  const detail = h.state === 'cooling-down' ? `${when(cooldown?.code)} until ${when(cooldown?.until)}` : h.state === 'failing' ? `since ${when(failure?.at)}` : '-';
  return [
    h.connection,
    h.state,
    detail,
    h.static === true ? 'static' : when(token?.expires_at),
    when(token?.minted_at),
    when(token?.minted_by),
    h.prewarm === true ? 'on' : 'off',
    when(h.secret_version),
    failure ? `${when(failure.code)}${failure.vendor_status === undefined ? '' : ` (${failure.vendor_status})`} at ${when(failure.at)}` : '-',
    typeof h.served_last_hour === 'number' ? String(h.served_last_hour) : '-',
  ];
}

export async function runCli(argv: string[], io: CliIo = processIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        url: { type: 'string' },
        region: { type: 'string' },
        json: { type: 'boolean' },
        header: { type: 'boolean' },
        admin: { type: 'boolean' },
        'min-ttl': { type: 'string' },
        stage: { type: 'string' },
        'if-match': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
  } catch (err) {
    // An unknown option after a command gets that command's help, not the whole list.
    const named = argv.find((a) => !a.startsWith('-'));
    const help = named !== undefined && Object.hasOwn(COMMANDS, named) ? commandHelp(named as Command) : USAGE;
    io.stderr(`token-broker${named !== undefined && help !== USAGE ? ` ${named}` : ''}: ${(err as Error).message}\n\n${help}`);
    return EXIT.usage;
  }
  const { values, positionals } = parsed;
  if (values.version) {
    io.stdout(version());
    return EXIT.ok;
  }
  const [name, ...args] = positionals;
  if (name === 'help' || (!name && values.help)) {
    io.stdout(USAGE);
    return EXIT.ok;
  }
  if (!name || !Object.hasOwn(COMMANDS, name)) {
    io.stderr(`${name ? `token-broker: unknown command "${name}"\n\n` : ''}${USAGE}`);
    return EXIT.usage;
  }
  const command = name as Command;
  if (values.help) {
    io.stdout(commandHelp(command));
    return EXIT.ok;
  }
  const env = io.env ?? process.env;
  try {
    const baseUrl = values.url ?? env.TOKEN_BROKER_URL;
    if (!baseUrl) throw new UsageError('the broker URL is missing: pass --url or set TOKEN_BROKER_URL');
    if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(baseUrl)) {
      throw new UsageError(`the broker URL ${baseUrl} has no scheme: did you mean http://${baseUrl} (local mode) or https://${baseUrl}?`);
    }
    const region = values.region ?? io.client?.region ?? defaultRegion(baseUrl, env);
    let client: TokenBrokerClient;
    try {
      client = new TokenBrokerClient({ ...(io.client ?? {}), baseUrl, region });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const needId = (n: number) => {
      if (args.length !== n) throw new UsageError(`expected ${n === 1 ? 'a connection id' : `${n} arguments`}`);
      return args[0]!;
    };
    const print = (json: unknown, text: string) => io.stdout(values.json ? JSON.stringify(json, null, 2) : text);

    switch (command) {
      case 'token': {
        const id = needId(1);
        const raw = values['min-ttl'] ?? '60';
        const minTtl = /^\d{1,4}$/.test(raw) ? Number(raw) : NaN;
        if (!(minTtl >= 0 && minTtl <= 3600)) throw new UsageError('--min-ttl must be an integer from 0 to 3600');
        if (values.header && values.json) throw new UsageError('--header and --json exclude each other');
        const t = await client.getToken(id, { minTtl });
        const expiresAt = new Date(t.expiresAt).toISOString();
        if (values.header) io.stdout(t.authorization);
        else
          print(
            { connection: t.connection, access_token: t.accessToken, token_type: t.tokenType, expires_in: t.expiresIn, expires_at: expiresAt, authorization: t.authorization },
            table([
              ['connection', t.connection],
              ['token_type', t.tokenType],
              ['expires_in', `${t.expiresIn} s (${expiresAt})`],
              ['authorization', t.authorization],
            ]),
          );
        return EXIT.ok;
      }
      case 'connections': {
        const sub = args[0];
        if (sub === 'put' || sub === 'get' || sub === 'delete') {
          return await connectionChange(client, sub, args.slice(1), { ifMatch: values['if-match'], print, readStdin: () => io.readStdin?.() ?? Promise.resolve('') });
        }
        if (values['if-match'] !== undefined) throw new UsageError('--if-match goes with connections put or delete');
        if (args.length !== 0) throw new UsageError('connections takes no argument, or put, get or delete');
        const list = await client.listConnections(values.admin ? { admin: true } : {});
        // --json prints what the broker answered, { "connections": [...] }, as the API documents it.
        print({ connections: list }, list.length === 0 ? '(none)' : table([['ID', 'DIALECT'], ...list.map((c) => [c.id, c.dialect])]));
        return EXIT.ok;
      }
      case 'invalidate': {
        if (args.length !== 2) throw new UsageError('expected a connection id and the access token (or - to read it from stdin)');
        let token = args[1]!;
        if (token === '-') token = ((await io.readStdin?.()) ?? '').trim();
        if (!token) throw new UsageError('the access token is empty');
        const invalidated = await client.invalidate(args[0]!, token);
        print({ invalidated }, invalidated ? 'invalidated: the broker will mint a new token' : 'not invalidated: it is not the current token');
        return EXIT.ok;
      }
      case 'refresh': {
        const r = await client.refresh(needId(1));
        print(
          r,
          `refreshed ${r.connection}: the new token itself expires at ${r.expires_at}; callers are handed it for at ` +
            `most ${r.max_ttl === undefined ? "the connection's maxTtl" : `${r.max_ttl} s at a time (the connection's maxTtl)`}, then ask again`,
        );
        return EXIT.ok;
      }
      case 'verify': {
        const stage = values.stage ?? 'AWSPENDING';
        const r = await client.verify(needId(1), stage);
        print(r, `verified ${r.connection}: the vendor accepts the ${r.versionStage} secret (token lifetime ${r.expires_in} s)`);
        return EXIT.ok;
      }
      case 'status': {
        if (args.length === 0) {
          const all = await everyConnectionsHealth(client);
          print(all, all.length === 0 ? '(none)' : table([HEALTH_HEADER, ...all.map(healthRow)]));
          return EXIT.ok;
        }
        const ids = args;
        const results = await mapBounded(ids, 4, (id) =>
          client.status(id).then(
            (s) => ({ id, s }),
            (err: unknown) => ({ id, err }),
          ),
        );
        const failed = results.filter((r): r is { id: string; err: unknown } => 'err' in r);
        for (const f of failed) io.stderr(`token-broker: ${f.id}: ${describe(f.err, 'status')}`);
        const ok = results.flatMap((r) => ('s' in r ? [r.s] : []));
        // Nothing on stdout when every one failed: a script's $(...) captures no stand-in for an answer.
        if (ok.length > 0) print(ok, table([STATUS_HEADER, ...ok.map(statusRow)]));
        return failed.length > 0 ? exitCodeOf(failed[0]!.err) : EXIT.ok;
      }
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`token-broker ${command}: ${err.message}\n\n${commandHelp(command)}`);
      return EXIT.usage;
    }
    io.stderr(`token-broker: ${describe(err, adminCommand(command, values.admin, args[0]))}`);
    return exitCodeOf(err);
  }
}

/** `connections put|get|delete`: an admin's change to a registered connection (docs/cli.md). */
async function connectionChange(
  client: TokenBrokerClient,
  sub: 'put' | 'get' | 'delete',
  args: string[],
  opts: { ifMatch: string | undefined; print: (json: unknown, text: string) => void; readStdin: () => Promise<string> },
): Promise<number> {
  const [id, source] = args;
  if (!id || args.length !== (sub === 'put' ? 2 : 1)) {
    throw new UsageError(sub === 'put' ? 'expected a connection id and a definition file (or - for stdin)' : 'expected a connection id');
  }
  if (sub === 'get' && opts.ifMatch !== undefined) throw new UsageError('--if-match goes with put or delete');
  const change = opts.ifMatch === undefined ? {} : { ifMatch: opts.ifMatch };
  if (sub === 'get') {
    const d = await client.getConnection(id);
    opts.print(d, `${d.connection} (source ${d.source}, etag ${d.etag})\n${JSON.stringify(d.definition, null, 2)}`);
    return EXIT.ok;
  }
  if (sub === 'delete') {
    await client.deleteConnection(id, change);
    opts.print({ connection: id, deleted: true }, `deleted ${id}: its cached tokens are evicted`);
    return EXIT.ok;
  }
  const r = await client.putConnection(id, await readDefinition(source!, opts.readStdin), change);
  opts.print(r, `${r.created ? 'registered' : 'replaced'} ${r.connection} (etag ${r.etag})`);
  return EXIT.ok;
}

/** A connection definition from a JSON file, or stdin for "-". */
async function readDefinition(source: string, readStdin: () => Promise<string>): Promise<ConnectionDefinition> {
  let text: string;
  try {
    text = source === '-' ? await readStdin() : await readFile(source, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${source} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError(`${source === '-' ? 'stdin' : source} is not valid JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UsageError('the definition must be one JSON object');
  return value as ConnectionDefinition;
}

/** The command as named in a message, when only an admin may run it. */
function adminCommand(command: Command, admin: boolean | undefined, sub: string | undefined): string | undefined {
  if (command === 'connections') {
    // Registered connections are changed and described by admins only (docs/cli.md).
    if (sub === 'put' || sub === 'get' || sub === 'delete') return `connections ${sub}`;
    return admin ? 'connections --admin' : undefined;
  }
  return ADMIN_ONLY.has(command) ? command : undefined;
}

/** An error for a person: what happened, what an admin-only command needs, and the request id to quote. */
function describe(err: unknown, admin?: string): string {
  if (err instanceof TokenBrokerError) {
    // The API answers "unknown" and "not yours" alike; for an admin-only command the likely reading is "not an admin".
    const text =
      err.code === 'forbidden' && admin !== undefined
        ? `token broker: forbidden: ${admin} needs an admin of the broker (this identity is not one of its admins, or the connection does not exist)`
        : err.message;
    return `${text}${err.retryAfter !== undefined ? ` (retry after ${err.retryAfter} s)` : ''}${err.requestId ? ` [request id ${err.requestId}]` : ''}`;
  }
  if (err instanceof RangeError || err instanceof TypeError) return err.message;
  return `unexpected failure: ${err instanceof Error ? err.message : String(err)}`;
}

function exitCodeOf(err: unknown): number {
  return err instanceof TokenBrokerError ? exitCodeFor(err.code) : EXIT.failed;
}

async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
