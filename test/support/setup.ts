import { createHash } from 'node:crypto';
import { inspect } from 'node:util';
import { afterAll, vi } from 'vitest';
import { BrokerError } from '../../lib/errors';
import { knownSecrets } from './secrets-registry';

// Runs in every test file: whatever the code logs (Powertools writes through console when POWERTOOLS_DEV is set)
// and every error it makes are captured instead of printed, and at the end searched for every secret, password
// and token literal the file used or saw issued.

const captured: string[] = [];
for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) {
  vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
    captured.push(args.map((a) => (typeof a === 'string' ? a : inspect(a, { depth: 8 }))).join(' '));
  });
}

// Every error the code makes, as a caller or an operator could see it: its message and its context.
BrokerError.observer = (err) => captured.push(`${err.name}: ${err.message} ${JSON.stringify(err.context)}`);

export function capturedLogs(): readonly string[] {
  return captured;
}

/** The JSON lines captured since `from` (an earlier length of capturedLogs()), parsed; other lines left out. */
export function capturedJsonSince(from: number): Record<string, unknown>[] {
  return captured.slice(from).flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

afterAll(() => {
  const leaks: string[] = [];
  for (const secret of knownSecrets()) {
    if (captured.some((line) => line.includes(secret))) {
      leaks.push(createHash('sha256').update(secret).digest('hex').slice(0, 12));
    }
  }
  if (leaks.length > 0) {
    throw new Error(`secrets reached a log line or an error message (fingerprints ${leaks.join(', ')})`);
  }
});
