import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SandboxVendor } from '../../lib/local/sandbox-vendor';
import { secretFor } from './connections';
import { registerSecret } from './secrets-registry';

// A local broker's files (connections, secrets, callers) in a temp dir, against a sandbox vendor: what the client,
// CLI and local-mode tests start the real server on.

export interface Identity {
  accessKeyId: string;
  secretAccessKey: string;
  arn: string;
}

export const CALLER: Identity = {
  accessKeyId: 'AKIALOCALTESTCALLER1',
  secretAccessKey: 'local-test-secret-key-0123456789',
  arn: 'arn:aws:iam::111111111111:role/app',
};
export const OTHER: Identity = {
  accessKeyId: 'AKIALOCALTESTOTHER01',
  secretAccessKey: 'other-test-secret-key-0123456789',
  arn: 'arn:aws:iam::111111111111:role/other',
};
export const ADMIN: Identity = {
  accessKeyId: 'AKIALOCALTESTADMIN01',
  secretAccessKey: 'admin-test-secret-key-0123456789',
  arn: 'arn:aws:iam::111111111111:role/ops',
};
registerSecret(CALLER.secretAccessKey, OTHER.secretAccessKey, ADMIN.secretAccessKey);

export interface LocalFiles {
  dir: string;
  vendor: SandboxVendor;
  /** The variables startLocalBroker and `npm start` read (PORT 0). */
  env: Record<string, string>;
  paths: { config: string; secrets: string; callers: string; data: string };
  close(): Promise<void>;
}

/** Connections `digitaleo` and `jwt` for CALLER, ADMIN as the admin, each secret in the secrets file. */
export async function localFiles(): Promise<LocalFiles> {
  const dir = mkdtempSync(join(tmpdir(), 'local-broker-'));
  const vendor = await SandboxVendor.start();
  const paths = {
    config: join(dir, 'broker.config.json'),
    secrets: join(dir, 'secrets.json'),
    callers: join(dir, 'callers.json'),
    data: join(dir, 'data'),
  };
  writeFileSync(
    paths.config,
    JSON.stringify({
      connections: [
        { id: 'digitaleo', dialect: 'digitaleo', tokenUrl: vendor.tokenUrl('digitaleo'), secretId: 'digitaleo', callers: [CALLER.arn] },
        { id: 'jwt', dialect: 'oauth2', tokenUrl: vendor.tokenUrl('jwt'), secretId: 'jwt', callers: [CALLER.arn] },
      ],
      admins: [ADMIN.arn],
    }),
  );
  writeFileSync(paths.secrets, JSON.stringify({ digitaleo: secretFor(vendor, 'digitaleo'), jwt: secretFor(vendor, 'jwt') }));
  writeFileSync(
    paths.callers,
    JSON.stringify(Object.fromEntries([CALLER, OTHER, ADMIN].map((i) => [i.accessKeyId, { secretAccessKey: i.secretAccessKey, arn: i.arn }]))),
  );
  return {
    dir,
    vendor,
    paths,
    env: {
      PORT: '0',
      BROKER_CONFIG: paths.config,
      BROKER_SECRETS_FILE: paths.secrets,
      BROKER_CALLERS_FILE: paths.callers,
      BROKER_DATA_DIR: paths.data,
    },
    close: async () => {
      await vendor.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
