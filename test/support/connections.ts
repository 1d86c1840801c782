import { parseConfig, type Connection, type ConnectionInput, type ExchangingConnection } from '../../lib/config';
import type { SandboxVendor, VendorKind } from '../../lib/local/sandbox-vendor';

/** The connection (as the config file would give it) that talks to one sandbox vendor in its own dialect. */
export const DIALECT_OF: Record<VendorKind, string> = {
  digitaleo: 'digitaleo',
  docoon: 'docoon',
  digishare: 'digishare',
  'usage-engine': 'usage-engine',
  jwt: 'oauth2',
  'private-key-jwt': 'oauth2',
  'client-secret-jwt': 'oauth2',
  mtls: 'oauth2',
};

/** The client authentication each sandbox vendor asks for, when it is not its dialect's own. */
export const CLIENT_AUTH_OF: Partial<Record<VendorKind, ConnectionInput['clientAuth']>> = {
  'private-key-jwt': 'private_key_jwt',
  'client-secret-jwt': 'client_secret_jwt',
  mtls: 'tls_client_auth',
};

export function vendorConnectionInput(
  vendor: SandboxVendor,
  kind: VendorKind,
  extra: Partial<ConnectionInput> = {},
): ConnectionInput {
  return {
    id: `${kind}-test`,
    dialect: DIALECT_OF[kind] as ConnectionInput['dialect'],
    tokenUrl: vendor.tokenUrl(kind),
    secretId: `broker/${kind}-test`,
    callers: ['arn:aws:iam::111111111111:role/caller'],
    ...(kind === 'usage-engine' ? { audience: vendor.account(kind).audiences?.[0] } : {}),
    ...(CLIENT_AUTH_OF[kind] ? { clientAuth: CLIENT_AUTH_OF[kind] } : {}),
    ...extra,
  };
}

/** The connection, known to call a vendor (the type the engine's exchange takes). */
export function exchanging(connection: Connection | undefined): ExchangingConnection {
  if (connection?.kind !== 'exchanging') throw new Error('expected a connection that exchanges with a vendor');
  return connection;
}

export function connectionFor(
  vendor: SandboxVendor,
  kind: VendorKind,
  extra: Partial<ConnectionInput> = {},
): ExchangingConnection {
  const config = parseConfig({ connections: [vendorConnectionInput(vendor, kind, extra)] }, { allowLoopbackHttp: true });
  return exchanging(config.connections[0]);
}

/** The secret JSON a connection to that sandbox vendor needs. */
export function secretFor(vendor: SandboxVendor, kind: VendorKind): Record<string, string> {
  const { audiences: _a, ...secret } = vendor.account(kind);
  return secret;
}
