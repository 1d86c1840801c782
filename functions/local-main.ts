import { isBrokerError } from '../lib/errors';
import { startLocalBroker } from './local';

// `npm start`: the broker on http://127.0.0.1:${PORT:-8080}; a demo when nothing is configured.

// Local mode keeps EMF metrics off stdout unless asked for; the structured logs (with the audit lines) stay on,
// indented for a person to read (Powertools' dev mode) unless BROKER_LOG_FORMAT=json asks for one JSON line each.
process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';
if (process.env.BROKER_LOG_FORMAT === 'json') process.env.POWERTOOLS_DEV = 'false';
else process.env.POWERTOOLS_DEV ??= 'true';

async function main() {
  const local = await startLocalBroker(process.env);
  console.log(`listening on ${local.url}`);
  console.log(`the console (every connection's health, this machine only): ${local.consoleUrl}`);
  if (local.demo) {
    const { caller, admin, connections } = local.demo;
    const sigv4 = `--aws-sigv4 "aws:amz:${local.region}:execute-api"`;
    console.log(`
Demo mode: a sandbox vendor speaks every dialect; nothing here reaches the Internet.
Connections: ${connections.join(', ')}

A demo caller (${caller.arn}):
  export AWS_ACCESS_KEY_ID=${caller.accessKeyId} AWS_SECRET_ACCESS_KEY=${caller.secretAccessKey}

Ask for a token:
  curl -s ${sigv4} --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "${local.url}/v1/connections/demo-digitaleo/token?min_ttl=300"
List what this caller may use:
  curl -s ${sigv4} --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" ${local.url}/v1/connections

The same from code (the client is not on the public npm registry: in this repository run npm pack in packages/client,
  then npm install that tarball in your project; the default AWS credential chain):
  import { TokenBrokerClient } from '@token-broker/client';
  const broker = new TokenBrokerClient({ baseUrl: '${local.url}', region: '${local.region}' });
  const { authorization } = await broker.getToken('demo-digitaleo', { minTtl: 300 });
Or the CLI:  npx token-broker token demo-digitaleo --url ${local.url}   (npx token-broker --help)

An admin (${admin.arn}) may refresh and verify:
  curl -s ${sigv4} --user "${admin.accessKeyId}:${admin.secretAccessKey}" -X POST ${local.url}/v1/connections/demo-oauth2-jwt/refresh
  curl -s ${sigv4} --user "${admin.accessKeyId}:${admin.secretAccessKey}" -X POST -H 'content-type: application/json' \\
       -d '{"versionStage":"AWSPENDING"}' ${local.url}/v1/connections/demo-oauth2-jwt/verify

Ctrl-C stops it.`);
  }
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await local.close();
    console.log('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

main().catch((err: unknown) => {
  console.error(`token-broker: ${isBrokerError(err) ? err.message : err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
