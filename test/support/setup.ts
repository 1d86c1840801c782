import { createHash } from 'node:crypto';
import { inspect } from 'node:util';
import { afterAll, vi } from 'vitest';
import { BrokerError } from '../../lib/errors';
import { knownSecrets, leaks } from './secrets-registry';

// Runs in every test file: whatever the code logs (the logger writes through console when POWERTOOLS_DEV is set)
// and every error it makes are captured instead of printed, and at the end searched for every secret, password
// and token literal the file used or saw issued, in every spelling a vendor's echo could carry.

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
  // One search over everything captured, for every spelling of every secret (secrets-registry.ts: leakSpellings).
  const found = leaks(captured.join('\n'), knownSecrets()).map((s) => createHash('sha256').update(s).digest('hex').slice(0, 12));
  if (found.length > 0) {
    throw new Error(`secrets reached a log line or an error message (fingerprints ${found.join(', ')})`);
  }
});
