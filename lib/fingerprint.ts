import { createHash } from 'node:crypto';

/** How a token is named in logs and records: the first 12 hex digits of its SHA-256, never the token itself. */
export function fingerprint(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex').slice(0, 12);
}
