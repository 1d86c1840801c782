import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { CallerKey } from '../../lib/sigv4';
import { verifySigV4 } from '../../lib/sigv4';
import { registerSecretValue } from './secrets-registry';
import { listenOnLoopback } from './loopback';

// KMS and Secrets Manager have no local equivalent: small servers speaking their wire protocol (AWS JSON 1.1 over
// HTTP, SigV4-signed, X-Amz-Target naming the operation), so that the real SDK clients inside the deployed bundles
// can be pointed at them with AWS_ENDPOINT_URL_KMS / AWS_ENDPOINT_URL_SECRETS_MANAGER. Only the operations the
// broker uses, answering (and failing) as the services document.

export const REGION = 'eu-west-1';
export const ACCOUNT = '111111111111';
export interface RoleCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
}

/** What a function's environment gives the SDK, as Lambda does from its execution role: one set per function. */
export function roleCredentials(functionName: string): RoleCredentials {
  const id = functionName.toUpperCase().replace(/[^A-Z0-9]/g, '').padEnd(12, 'X').slice(0, 12);
  return { accessKeyId: `ASIAE2E${id}`, secretAccessKey: `e2e-${functionName}-role-secret-key`, sessionToken: `e2e-${functionName}-session-token` };
}

class ServiceError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

type Operation = (input: Record<string, unknown>, caller: { accessKeyId: string }) => unknown;

export interface AwsJsonServer {
  endpoint: string;
  /** Every operation called, in order, with the caller's access key, and the error it was answered, if any. */
  calls: { operation: string; accessKeyId: string; error?: string }[];
  /** Accepts requests signed with these credentials (each function's role). */
  trust(credentials: RoleCredentials): void;
  count(operation: string): number;
  close(): Promise<void>;
}

async function startAwsJsonServer(service: string, targetPrefix: string, operations: Record<string, Operation>): Promise<AwsJsonServer> {
  const callers = new Map<string, CallerKey>();
  const calls: AwsJsonServer['calls'] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const body = Buffer.concat(chunks);
        const reply = (status: number, doc: unknown, headers: Record<string, string> = {}) => {
          res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID(), ...headers });
          res.end(JSON.stringify(doc));
        };
        try {
          let who;
          try {
            who = await verifySigV4({ method: req.method ?? 'POST', target: req.url ?? '/', headers: req.headers, body }, callers, {
              region: REGION,
              service,
              now: Date.now(),
            });
          } catch {
            throw new ServiceError('UnrecognizedClientException', 'The security token included in the request is invalid.');
          }
          const target = String(req.headers['x-amz-target'] ?? '');
          const operation = target.startsWith(`${targetPrefix}.`) ? target.slice(targetPrefix.length + 1) : '';
          const op = operations[operation];
          if (!op) throw new ServiceError('UnknownOperationException', `unknown operation ${target}`);
          const call: AwsJsonServer['calls'][number] = { operation, accessKeyId: who.accessKeyId };
          calls.push(call);
          try {
            reply(200, op(JSON.parse(body.toString('utf8') || '{}') as Record<string, unknown>, { accessKeyId: who.accessKeyId }));
          } catch (err) {
            if (err instanceof ServiceError) call.error = err.type;
            throw err;
          }
        } catch (err) {
          const e = err instanceof ServiceError ? err : new ServiceError('InternalFailure', 'internal failure', 500);
          reply(e.status, { __type: e.type, message: e.message }, { 'x-amzn-errortype': e.type });
        }
      })();
    });
  });
  const port = await listenOnLoopback(server);
  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    trust: (c) => callers.set(c.accessKeyId, { secretAccessKey: c.secretAccessKey, arn: `arn:aws:sts::${ACCOUNT}:assumed-role/e2e/${c.accessKeyId}` }),
    count: (operation) => calls.filter((c) => c.operation === operation).length,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** KMS: GenerateDataKey and Decrypt under one symmetric key, the encryption context bound as AES-GCM's AAD. */
export async function startKms(keyId = `arn:aws:kms:${REGION}:${ACCOUNT}:key/${randomUUID()}`) {
  const master = randomBytes(32);
  // The key's own policy (everything is allowed until `authorize` is given), decided per call with its context.
  let authorize: KeyAuthorizer = () => true;
  const check = (caller: { accessKeyId: string }, action: string, context: unknown) => {
    if (!authorize(caller.accessKeyId, action, (context ?? {}) as Record<string, string>)) {
      throw new ServiceError('AccessDeniedException', `not authorized to perform: ${action} on this key with this encryption context`);
    }
  };
  const aad = (context: unknown) =>
    Buffer.from(JSON.stringify(Object.entries((context ?? {}) as Record<string, string>).sort(([a], [b]) => a.localeCompare(b))));
  const checkKey = (given: unknown) => {
    if (given !== undefined && given !== keyId) throw new ServiceError('IncorrectKeyException', 'The key ID in the request does not identify the key used to encrypt the ciphertext.');
  };
  const server = await startAwsJsonServer('kms', 'TrentService', {
    GenerateDataKey: (input, caller) => {
      if (input.KeyId !== keyId) throw new ServiceError('NotFoundException', 'Key does not exist');
      check(caller, 'kms:GenerateDataKey', input.EncryptionContext);
      if (input.KeySpec !== 'AES_256') throw new ServiceError('ValidationException', 'KeySpec must be AES_256 here');
      const plaintext = randomBytes(32);
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', master, iv).setAAD(aad(input.EncryptionContext));
      const blob = Buffer.concat([iv, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
      return { KeyId: keyId, Plaintext: plaintext.toString('base64'), CiphertextBlob: blob.toString('base64') };
    },
    Decrypt: (input, caller) => {
      checkKey(input.KeyId);
      check(caller, 'kms:Decrypt', input.EncryptionContext);
      const blob = Buffer.from(typeof input.CiphertextBlob === 'string' ? input.CiphertextBlob : '', 'base64');
      try {
        const decipher = createDecipheriv('aes-256-gcm', master, blob.subarray(0, 12)).setAAD(aad(input.EncryptionContext));
        decipher.setAuthTag(blob.subarray(blob.length - 16));
        const plaintext = Buffer.concat([decipher.update(blob.subarray(12, blob.length - 16)), decipher.final()]);
        return { KeyId: keyId, Plaintext: plaintext.toString('base64'), EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
      } catch {
        throw new ServiceError('InvalidCiphertextException', '');
      }
    },
  });
  return {
    ...server,
    keyId,
    authorize: (fn: KeyAuthorizer) => {
      authorize = fn;
    },
  };
}

/** Whether the key's policy lets the caller (by access key) perform `action` with this encryption context. */
export type KeyAuthorizer = (accessKeyId: string, action: string, context: Record<string, string>) => boolean;

interface SecretVersion {
  id: string;
  text: string;
  stages: Set<string>;
}

/** Whether the caller's role allows `action` on `resource` (an ARN, or `*` for an action that takes none). */
export type Authorizer = (accessKeyId: string, action: string, resource: string) => boolean;

/** Secrets Manager takes at most this many ids in one BatchGetSecretValue (SecretIdList). */
const BATCH_GET_LIMIT = 20;

/**
 * Secrets Manager: JSON secrets with versions and staging labels, addressed by name, partial ARN or full ARN. Each
 * call is authorized as IAM would (everything is allowed until `authorize` is given): GetSecretValue on the
 * secret's ARN; BatchGetSecretValue on `*`, then GetSecretValue on each secret, a denied one reported in Errors.
 */
export async function startSecretsManager() {
  const secrets = new Map<string, { arn: string; versions: SecretVersion[] }>();
  let authorize: Authorizer = () => true;
  const find = (secretId: unknown) => {
    const id = typeof secretId === 'string' ? secretId : '';
    for (const [name, s] of secrets) {
      if (id === name || id === s.arn || s.arn.startsWith(`${id}-`)) return { name, ...s };
    }
    throw new ServiceError('ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
  };
  const denied = (action: string) => new ServiceError('AccessDeniedException', `not authorized to perform: ${action}`);
  /** Stores a new AWSCURRENT version (the previous one becomes AWSPREVIOUS); returns its VersionId. */
  const put = (name: string, value: unknown, versionId: string = randomUUID()): string => {
    registerSecretValue(value);
    let s = secrets.get(name);
    if (!s) {
      const suffix = randomBytes(4).toString('base64url').replace(/[^A-Za-z0-9]/g, 'x').slice(0, 6);
      s = { arn: `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${name}-${suffix}`, versions: [] };
      secrets.set(name, s);
    }
    for (const v of s.versions) {
      v.stages.delete('AWSPREVIOUS');
      if (v.stages.delete('AWSCURRENT')) v.stages.add('AWSPREVIOUS');
    }
    s.versions.push({ id: versionId, text: typeof value === 'string' ? value : JSON.stringify(value), stages: new Set(['AWSCURRENT']) });
    return versionId;
  };
  const entry = (s: ReturnType<typeof find>, v: SecretVersion) => ({
    ARN: s.arn,
    Name: s.name,
    VersionId: v.id,
    SecretString: v.text,
    VersionStages: [...v.stages],
    CreatedDate: Date.now() / 1000,
  });
  const server = await startAwsJsonServer('secretsmanager', 'secretsmanager', {
    GetSecretValue: (input, caller) => {
      const s = find(input.SecretId);
      if (!authorize(caller.accessKeyId, 'secretsmanager:GetSecretValue', s.arn)) throw denied('secretsmanager:GetSecretValue');
      const stage = input.VersionId === undefined ? (typeof input.VersionStage === 'string' ? input.VersionStage : 'AWSCURRENT') : undefined;
      const v = s.versions.find((x) => (stage ? x.stages.has(stage) : x.id === input.VersionId));
      if (!v) throw new ServiceError('ResourceNotFoundException', "Secrets Manager can't find the specified secret value for staging label: " + stage);
      return entry(s, v);
    },
    BatchGetSecretValue: (input, caller) => {
      if (!authorize(caller.accessKeyId, 'secretsmanager:BatchGetSecretValue', '*')) throw denied('secretsmanager:BatchGetSecretValue');
      const ids = Array.isArray(input.SecretIdList) ? (input.SecretIdList as unknown[]) : [];
      if (input.Filters !== undefined || ids.length === 0) throw new ServiceError('InvalidParameterException', 'this stand-in answers SecretIdList only');
      if (ids.length > BATCH_GET_LIMIT) throw new ServiceError('InvalidParameterException', `SecretIdList takes at most ${BATCH_GET_LIMIT} ids`);
      const SecretValues: ReturnType<typeof entry>[] = [];
      const Errors: { SecretId: string; ErrorCode: string; Message: string }[] = [];
      for (const id of ids) {
        const secretId = typeof id === 'string' ? id : '';
        let s;
        try {
          s = find(secretId);
        } catch (err) {
          Errors.push({ SecretId: secretId, ErrorCode: (err as ServiceError).type, Message: (err as ServiceError).message });
          continue;
        }
        if (authorize(caller.accessKeyId, 'secretsmanager:GetSecretValue', s.arn)) SecretValues.push(entry(s, s.versions.find((v) => v.stages.has('AWSCURRENT'))!));
        else Errors.push({ SecretId: secretId, ErrorCode: 'AccessDeniedException', Message: 'not authorized to perform: secretsmanager:GetSecretValue' });
      }
      return { SecretValues, Errors };
    },
  });
  return {
    ...server,
    put,
    arnOf: (name: string) => find(name).arn,
    /** From now on, each call is authorized by this (the role's policy). */
    authorize: (by: Authorizer) => {
      authorize = by;
    },
  };
}
