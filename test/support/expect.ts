import { expect } from 'vitest';
import { BrokerError } from '../../lib/errors';
import { fingerprint } from '../../lib/fingerprint';

/** Awaits a promise that must reject with a BrokerError of this problem code, and returns the error. */
export async function expectCode(p: Promise<unknown>, code: string): Promise<BrokerError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeInstanceOf(BrokerError);
  expect((err as BrokerError).code).toBe(code);
  return err as BrokerError;
}

/** What an assertion compares instead of a token: its fingerprint, so that a failure never prints the token. */
export const fp = (token: unknown): string => fingerprint(String(token));
