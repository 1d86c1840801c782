import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, createMetrics, loggerPort } from '../lib/adapters/powertools';
import { makeHandler } from '../functions/http';
import { ManualClock } from '../lib/clock';
import { vendorConnectionInput } from './support/connections';
import { lambdaContext, restEvent } from './support/events';
import { startWorld, type World } from './support/harness';
import { capturedLogs } from './support/setup';
import { registerSecret } from './support/secrets-registry';
import { WITHHELD } from '../lib/vendor-text';

// A vendor that echoes what it was sent in its error_description (some do, in "invalid credentials: ..." texts):
// no spelling of the secret may reach the caller's problem detail, a log line or the table.

const CALLER = 'arn:aws:iam::111111111111:role/caller';
const CLIENT_ID = 'echo-client-id';
// Characters that each encoding spells differently: form (+, /, =, &), JSON (", \), base64 of id:secret.
const SECRET = 'ec+ho/Se"cr\\et=1&two';
registerSecret(SECRET);

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const SPELLINGS = {
  raw: SECRET,
  form: new URLSearchParams({ s: SECRET }).toString().slice(2),
  uri: encodeURIComponent(SECRET),
  json: JSON.stringify(SECRET).slice(1, -1),
  basic: b64(`${CLIENT_ID}:${SECRET}`),
  basicUrl: Buffer.from(`${CLIENT_ID}:${SECRET}`).toString('base64url'),
};
for (const s of Object.values(SPELLINGS)) registerSecret(s);

let world: World | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

describe('a vendor that echoes the secret in its error_description', () => {
  it.each(['digitaleo', 'docoon'] as const)(
    '%s: the detail names the connection, HTTP status and RFC 6749 code; the log no description; the table codes',
    async (kind) => {
      const clock = new ManualClock('2026-11-23T10:00:00.000Z');
      world = await startWorld(
        clock,
        (v) => [vendorConnectionInput(v, kind, { id: kind })],
        {},
        () => ({ [`broker/${kind}-test`]: { client_id: CLIENT_ID, client_secret: SECRET, login: 'echo-login', password: SECRET } }),
      );
      const echoed = Object.entries(SPELLINGS).map(([k, v]) => `${k}=${v}`).join(' ');
      world.vendor.fail(kind, (_req, res) => {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'invalid_client', error_description: `Bad client: Basic ${SPELLINGS.basic}; got ${echoed}` }));
      });
      const logger = createLogger();
      const handle = makeHandler({ broker: world.broker({ logger: loggerPort(logger) }), logger, metrics: createMetrics() });
      const before = capturedLogs().length;
      const res = await handle(restEvent({ method: 'GET', path: `/v1/connections/${kind}/token`, userArn: CALLER }), lambdaContext());
      const problem = JSON.parse(res.body) as { code: string; detail: string };
      expect(res.statusCode).toBe(502);
      expect(problem.code).toBe('vendor_rejected_credentials');
      expect(problem.detail).toContain(kind);
      expect(problem.detail).toContain('HTTP 401');
      expect(problem.detail).toContain('invalid_client');
      expect(problem.detail).not.toContain('Bad client');

      const logs = capturedLogs().slice(before).join('\n');
      const item = (await world.table.doc.send(new GetCommand({ TableName: world.table.name, Key: { pk: `token#${kind}` } }))).Item;
      const table = JSON.stringify(item);
      for (const spelling of Object.values(SPELLINGS)) {
        expect(res.body).not.toContain(spelling);
        expect(logs).not.toContain(spelling);
        expect(table).not.toContain(spelling);
      }
      // The description that echoes the secret is withheld whole; the table has codes and a status.
      const described = /"vendorDescription": "([^"]*)"/.exec(logs)?.[1];
      expect(described).toBe(WITHHELD);
      expect(item).toMatchObject({ failureCode: 'vendor_rejected_credentials', failureStatus: 401, failureError: 'invalid_client' });
      expect(table).not.toContain('Bad client');
    },
  );
});
