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
