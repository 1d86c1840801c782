import { createHash } from 'node:crypto';
import { inspect } from 'node:util';
import { afterAll, vi } from 'vitest';
import { knownSecrets } from './secrets-registry';

// Runs in every test file: whatever the code logs (Powertools writes through console when POWERTOOLS_DEV is set)
// is captured instead of printed, and at the end searched for every secret and token literal the file used.

const captured: string[] = [];
for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) {
  vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
    captured.push(args.map((a) => (typeof a === 'string' ? a : inspect(a, { depth: 8 }))).join(' '));
  });
}

export function capturedLogs(): readonly string[] {
  return captured;
}

afterAll(() => {
  const leaks: string[] = [];
  for (const secret of knownSecrets()) {
    if (captured.some((line) => line.includes(secret))) {
      leaks.push(createHash('sha256').update(secret).digest('hex').slice(0, 12));
    }
  }
  if (leaks.length > 0) {
    throw new Error(`secrets reached a log line (fingerprints ${leaks.join(', ')})`);
  }
});
