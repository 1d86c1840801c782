import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalBroker, type LocalBroker } from '../../functions/local';
import { signRequest } from '../../lib/sigv4';
import { ADMIN, CALLER, OTHER, localFiles, type Identity, type LocalFiles } from '../support/local-broker';
import { capturedJsonSince, capturedLogs } from '../support/setup';

// The local server runs overlapping requests in one handler: each audit line must still name its own caller and
// request, not whichever request last touched the logger.

let files: LocalFiles;
let local: LocalBroker;
beforeAll(async () => {
  files = await localFiles();
  local = await startLocalBroker(files.env);
});
afterAll(async () => {
  await local?.close();
  await files?.close();
});

async function signed(path: string, who: Identity): Promise<number> {
  const url = new URL(local.url + path);
  const headers = await signRequest({ url, method: 'GET', credentials: who, region: 'us-east-1' });
  delete headers.host;
  const res = await fetch(url, { headers });
  await res.arrayBuffer();
  return res.status;
}

describe('local mode: the audit line under overlapping requests', () => {
  it('gives every request its own caller and request id: tokens, status reads and refusals', async () => {
    const from = capturedLogs().length;
    const asked: [string, Identity, number][] = [
      ['/v1/connections/jwt/token', CALLER, 200],
      ['/v1/connections/digitaleo/token', CALLER, 200],
      ['/v1/connections/jwt/token', CALLER, 200],
      ['/v1/connections/digitaleo/token', CALLER, 200],
      ['/v1/connections/jwt/status', ADMIN, 200],
      ['/v1/connections/digitaleo/status', ADMIN, 200],
      ['/v1/connections/jwt/token', OTHER, 403],
      ['/v1/connections/digitaleo/token', OTHER, 403],
    ];
    const statuses = await Promise.all(asked.map(([path, who]) => signed(path, who)));
    // A loaded machine may make the local table miss its deadline (503): that request's audit line says so, as its own.
    expect(statuses.map((s, i) => (s === 503 ? asked[i]![2] : s))).toEqual(asked.map(([, , status]) => status));
    const audit = capturedJsonSince(from).filter((l) => l.status !== undefined);
    expect(audit).toHaveLength(asked.length);
    const callerOf: Record<string, string> = { 'token handed out': CALLER.arn, 'status read by an admin': ADMIN.arn, 'request refused': OTHER.arn };
    const attributed = audit.filter((l) => l.message !== 'request failed');
    expect(attributed.map((l) => [l.message, l.caller])).toEqual(attributed.map((l) => [l.message, callerOf[l.message as string]]));
    const count = (arn: string) => audit.filter((l) => l.caller === arn).length;
    expect([count(CALLER.arn), count(ADMIN.arn), count(OTHER.arn)]).toEqual([4, 2, 2]);
    expect(new Set(audit.map((l) => l.requestId)).size).toBe(asked.length);
    expect(audit.every((l) => typeof l.requestId === 'string' && l.requestId !== '')).toBe(true);
  });
});
