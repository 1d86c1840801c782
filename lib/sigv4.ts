import { createHash, timingSafeEqual } from 'node:crypto';
import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { decodeSegments } from '../packages/client/src/index';
import { UnauthenticatedError } from './errors';

// SigV4 as API Gateway checks it (the local server) and as an SDK signs (the client SDK, tests) for AWS_IAM routes (service execute-api): the Authorization header's scope,
// the signed headers (host and x-amz-date at least), the payload hash, a 5-minute clock-skew limit, and the
// signature recomputed with @smithy/signature-v4 over exactly the headers the client signed.

// Signing lives once, in the client package; the tests and the local tools sign through it too.
export { signRequest } from '../packages/client/src/index';

export interface CallerKey {
  secretAccessKey: string;
  /** The IAM principal these keys belong to (a role or user ARN). */
  arn: string;
}

export interface SignedRequest {
  method: string;
  /** The request target as received: path and query string, still percent-encoded. */
  target: string;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface VerifyOptions {
  region: string;
  now: number;
  maxSkewMs?: number;
  service?: string;
}

const AUTH =
  /^AWS4-HMAC-SHA256 Credential=([A-Za-z0-9]{1,128})\/(\d{8})\/([a-z0-9-]{1,32})\/([a-z0-9-]{1,32})\/aws4_request,\s*SignedHeaders=([a-z0-9;._-]{1,2048}),\s*Signature=([0-9a-f]{64})$/;

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(',') : v;
}

function parseAmzDate(v: string | undefined): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(v ?? '');
  if (!m) return undefined;
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
}

/** Returns the caller's access key id and ARN, or throws UnauthenticatedError (saying which check failed only for the region, as API Gateway does). */
export async function verifySigV4(
  req: SignedRequest,
  callers: ReadonlyMap<string, CallerKey>,
  opts: VerifyOptions,
): Promise<{ accessKeyId: string; arn: string }> {
  const fail = (why: string): never => {
    // The reason is for the operator's log; the caller sees one answer for every failure.
    throw new UnauthenticatedError(undefined, { context: { reason: why } });
  };
  const m = AUTH.exec(one(req.headers.authorization) ?? '');
  if (!m) return fail('no or malformed Authorization header');
  const [, accessKeyId, scopeDate, region, service, signedList, signature] = m as unknown as string[];
  // As API Gateway answers it (its words, which the client recognises), before the key is looked at: the region is the
  // one thing a caller may be told, and the answer is the same whether the key exists or not.
  if (region !== opts.region) {
    throw new UnauthenticatedError(`Credential should be scoped to a valid region, not '${region}'.`, { context: { reason: 'wrong region' } });
  }
  const key = callers.get(accessKeyId!);
  if (!key) return fail('unknown access key');
  if (service !== (opts.service ?? 'execute-api')) return fail('wrong credential scope');
  const amzDate = one(req.headers['x-amz-date']);
  const signedAt = parseAmzDate(amzDate);
  if (signedAt === undefined || amzDate?.slice(0, 8) !== scopeDate) return fail('missing or inconsistent x-amz-date');
  if (Math.abs(opts.now - signedAt) > (opts.maxSkewMs ?? 5 * 60_000)) return fail('signature expired or from the future');
  const signed = signedList!.split(';');
  if (!signed.includes('host') || !signed.includes('x-amz-date')) return fail('host and x-amz-date must be signed');

  const bodyHash = createHash('sha256').update(req.body).digest('hex');
  const declared = one(req.headers['x-amz-content-sha256']);
  if (declared !== undefined && declared !== bodyHash) return fail('payload hash mismatch');

  const headers: Record<string, string> = {};
  for (const h of signed) {
    const v = one(req.headers[h]);
    if (v === undefined) return fail(`signed header ${h} is missing`);
    headers[h] = v;
  }
  const expected = await resign(req, { accessKeyId: accessKeyId!, secretAccessKey: key.secretAccessKey, region, service }, headers, signedAt);
  const a = Buffer.from(expected, 'hex');
  const b = Buffer.from(signature!, 'hex');
  if (a.length !== b.length || !timingSafeEqual(a, b)) return fail('signature mismatch');
  return { accessKeyId: accessKeyId!, arn: key.arn };
}

/** The signature the request should carry: signed again with the caller's key over the headers it says it signed. */
async function resign(
  req: SignedRequest,
  scope: { accessKeyId: string; secretAccessKey: string; region: string; service: string },
  headers: Record<string, string>,
  signedAt: number,
): Promise<string> {
  const [rawPath, rawQuery = ''] = req.target.split('?', 2) as [string, string?];
  const query: Record<string, string | string[]> = {};
  for (const [k, v] of new URLSearchParams(rawQuery)) {
    const prev = query[k];
    query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  const signer = new SignatureV4({
    credentials: { accessKeyId: scope.accessKeyId, secretAccessKey: scope.secretAccessKey },
    region: scope.region,
    service: scope.service,
    sha256: Sha256,
    applyChecksum: false,
  });
  const request = new HttpRequest({
    method: req.method.toUpperCase(),
    protocol: 'http:',
    hostname: headers.host?.split(':')[0] ?? 'localhost',
    path: decodeSegments(rawPath),
    query,
    headers,
    body: req.body.length > 0 ? req.body : undefined,
  });
  const resigned = await signer.sign(request, {
    signingDate: new Date(signedAt),
    signableHeaders: new Set(Object.keys(headers)),
    unsignableHeaders: new Set(),
  });
  return /Signature=([0-9a-f]{64})/.exec(String(resigned.headers.authorization))?.[1] ?? '';
}
