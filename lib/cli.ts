import { parseArgs } from 'node:util';
import { TokenBrokerClient, TokenBrokerError } from './client';

// `npx token-broker token <connection>`: the client SDK for operators. Prints the token answer as JSON, or just
// the Authorization header value with --header. Credentials come from the default AWS chain.

const USAGE = `usage:
  token-broker token <connection> [--min-ttl N] [--header] [--url URL] [--region REGION]
  token-broker connections [--url URL] [--region REGION]

  --url defaults to $TOKEN_BROKER_URL; --region to $AWS_REGION or us-east-1.`;

export async function runCli(argv: string[], out: (line: string) => void = console.log): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        url: { type: 'string' },
        region: { type: 'string' },
        'min-ttl': { type: 'string' },
        header: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    out(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, connection] = positionals;
  const url = values.url ?? process.env.TOKEN_BROKER_URL;
  if (values.help || !command) {
    out(USAGE);
    return values.help ? 0 : 2;
  }
  if (!url) {
    out(`the broker URL is missing: pass --url or set TOKEN_BROKER_URL\n${USAGE}`);
    return 2;
  }
  const client = new TokenBrokerClient({ baseUrl: url, ...(values.region ? { region: values.region } : {}) });
  try {
    if (command === 'connections') {
      out(JSON.stringify(await client.listConnections(), null, 2));
      return 0;
    }
    if (command === 'token' && connection) {
      const minTtl = values['min-ttl'] === undefined ? 60 : Number(values['min-ttl']);
      if (!Number.isInteger(minTtl) || minTtl < 0 || minTtl > 3600) {
        out('--min-ttl must be an integer from 0 to 3600');
        return 2;
      }
      const t = await client.getToken(connection, { minTtl });
      out(
        values.header
          ? t.authorization
          : JSON.stringify(
              {
                connection: t.connection,
                access_token: t.accessToken,
                token_type: t.tokenType,
                expires_in: t.expiresIn,
                expires_at: new Date(t.expiresAt).toISOString(),
                authorization: t.authorization,
              },
              null,
              2,
            ),
      );
      return 0;
    }
    out(USAGE);
    return 2;
  } catch (err) {
    out(err instanceof TokenBrokerError ? err.message : `token broker unreachable: ${(err as Error).message}`);
    return 1;
  }
}
