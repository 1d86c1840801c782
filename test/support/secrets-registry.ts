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

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const lowerPercent = (s: string) => s.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase());

/** The part of base64(prefix + value) that depends on the value alone: what any offset's encoding contains. */
function base64Cores(value: string): string[] {
  if (Buffer.byteLength(value) < 12) return [];
  return [0, 1, 2].map((pad) => {
    const encoded = b64('\0'.repeat(pad) + value);
    return encoded.slice(Math.ceil((pad * 4) / 3), -4);
  });
}

/**
 * Spellings of a secret that a vendor's echo (or a careless log line) could carry, each found by a plain search:
 * percent-encoded in either case and twice, JSON with `\/`, hex, HTML entities, base64 of it or of a form body
 * holding it at any offset. Case, zero-width characters and NFD are undone on the log's side (see `leaks`).
 */
export function leakSpellings(value: string): string[] {
  const form = new URLSearchParams({ v: value }).toString().slice(2);
  const uri = encodeURIComponent(value);
  return [
    value,
    form,
    uri,
    lowerPercent(uri),
    encodeURIComponent(uri),
    lowerPercent(encodeURIComponent(uri)),
    JSON.stringify(value).slice(1, -1),
    JSON.stringify(value).slice(1, -1).replace(/\//g, '\\/'),
    Buffer.from(value, 'utf8').toString('hex'),
    Buffer.from(value, 'utf8').toString('hex').toUpperCase(),
    [...value].map((c) => `&#${c.codePointAt(0)};`).join(''),
    [...value].map((c) => `&#x${c.codePointAt(0)!.toString(16)};`).join(''),
    ...base64Cores(value),
    ...base64Cores(form),
    ...base64Cores(value).map((c) => c.replace(/\+/g, '-').replace(/\//g, '_')),
  ].filter((s, i, all) => s.length >= 6 && all.indexOf(s) === i);
}

// Invisible characters and compatibility forms, removed from a log before it is searched case-insensitively.
const folded = (text: string) => text.normalize('NFKC').replace(/[\p{Cf}]/gu, '').toLowerCase();
const LONG_SECRET = 24;
/** How much of a long secret's start counts as the secret (a long prefix leaks most of it). */
const prefixOf = (value: string) => value.slice(0, Math.max(8, Math.ceil(value.length / 2)));

/** The secrets (of those given) that some spelling of reaches the text. */
export function leaks(text: string, secrets: Iterable<string>): string[] {
  const lowered = folded(text);
  const found: string[] = [];
  for (const secret of secrets) {
    const plain = leakSpellings(secret).some((s) => text.includes(s));
    // A prefix only of a long secret: a short one's first half is often a readable name (demo-digitaleo-…).
    const forms = secret.length >= LONG_SECRET ? [secret, prefixOf(secret)] : [secret];
    const folding = secret.length >= 8 && forms.some((s) => lowered.includes(folded(s)));
    if (plain || folding) found.push(secret);
  }
  return found;
}

for (const account of Object.values(DEMO_ACCOUNTS)) registerSecretValue(account);
SandboxVendor.onIssue = (token) => registerSecret(token);
