import { DEMO_ACCOUNTS, SandboxVendor } from '../../lib/local/sandbox-vendor';

// Every secret, password and token literal the tests use or see issued, so that the log capture (setup.ts) can
// prove none of them ever reached a log line.

const known = new Set<string>();

export function registerSecret(...values: (string | undefined)[]): void {
  for (const v of values) {
    if (!v || v.length < 6) continue;
    known.add(v);
    // A PEM key logged as JSON has its newlines escaped: each base64 line of its body is looked for on its own.
    if (v.includes('-----BEGIN')) {
      for (const line of v.split('\n')) if (line.length >= 40 && !line.startsWith('-----')) known.add(line);
    }
  }
}

/** Registers the secret-bearing fields of a secret JSON value (client_secret, password, token). */
export function registerSecretValue(value: unknown): void {
  if (typeof value !== 'object' || value === null) return;
  const v = value as Record<string, unknown>;
  if ('stages' in v && typeof v.stages === 'object' && v.stages) {
    for (const stage of Object.values(v.stages as Record<string, unknown>)) registerSecretValue(stage);
    return;
  }
  for (const k of ['client_secret', 'password', 'token', 'secretAccessKey', 'private_key', 'client_private_key', 'refresh_token']) {
    if (typeof v[k] === 'string') registerSecret(v[k]);
  }
}

export function knownSecrets(): ReadonlySet<string> {
  return known;
}

for (const account of Object.values(DEMO_ACCOUNTS)) registerSecretValue(account);
SandboxVendor.onIssue = (token) => registerSecret(token);
