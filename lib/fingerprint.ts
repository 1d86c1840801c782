import { createHash } from 'node:crypto';

/** How a token is named in logs and records: the first 12 hex digits of its SHA-256, never the token itself. */
export function fingerprint(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex').slice(0, 12);
}

/**
 * Replaces every occurrence of the given secret values in a text (a vendor's error_description can echo what it
 * was sent). Values shorter than 4 characters are left alone: they would redact ordinary words.
 */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) {
    if (s.length >= 4) out = out.split(s).join('[redacted]');
  }
  return out;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/**
 * Every way a credential can be spelled in what a vendor echoes back: raw, form- and URI-encoded, JSON-escaped,
 * and inside the base64 of `id:secret` (HTTP Basic) in both alphabets. Longest first, so that redacting one
 * spelling never leaves part of a longer one behind.
 */
export function secretSpellings(creds: Readonly<Record<string, string>>): string[] {
  const values = Object.values(creds).filter((v) => v.length >= 4);
  const pairs = [
    [creds.client_id, creds.client_secret],
    [creds.login, creds.password],
  ].filter((p): p is [string, string] => typeof p[0] === 'string' && typeof p[1] === 'string');
  const spellings = new Set<string>();
  for (const v of values) {
    spellings.add(v);
    spellings.add(new URLSearchParams({ v }).toString().slice(2));
    spellings.add(encodeURIComponent(v));
    spellings.add(JSON.stringify(v).slice(1, -1));
    spellings.add(b64(v));
  }
  for (const [id, secret] of pairs) {
    const basic = b64(`${id}:${secret}`);
    spellings.add(basic);
    spellings.add(Buffer.from(`${id}:${secret}`, 'utf8').toString('base64url'));
    spellings.add(encodeURIComponent(basic));
  }
  return [...spellings].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
}
