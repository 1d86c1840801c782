import { DYNAMODB_BUDGET } from '../../lib/adapters/aws';
import { checkTimeLeft } from '../../lib/budget';
import type { Clock } from '../../lib/clock';
import { StoreUnavailableError } from '../../lib/errors';
import type { StoreCallOptions, TokenStore } from '../../lib/ports';

// A table that answers, but slowly: every call takes `delayMs()` of the clock's time before the store behind it
// answers. It keeps the deadlines the DynamoDB store keeps: its own 2 s per call, or the shorter one the call is
// given; a call that would run past it fails with StoreUnavailableError at that deadline, as a timeout does.

export function slowTable(inner: TokenStore, clock: Clock, delayMs: () => number): TokenStore {
  const slow = async <T>(what: string, call: StoreCallOptions | undefined, run: () => Promise<T>): Promise<T> => {
    checkTimeLeft(call, what);
    const deadline = Math.min(DYNAMODB_BUDGET.totalMs, call?.timeoutMs ?? Infinity);
    const delay = delayMs();
    if (delay > deadline) {
      await clock.sleep(deadline);
      throw new StoreUnavailableError(`the token table failed to ${what} (TimeoutError)`);
    }
    await clock.sleep(delay);
    return run();
  };
  return {
    read: (c, call) => slow('read a token', call, () => inner.read(c)),
    acquireLease: (c, claim, call) => slow('take a lease', call, () => inner.acquireLease(c, claim)),
    putToken: (t, fence, call) => slow('write a token', call, () => inner.putToken(t, fence)),
    recordFailure: (c, fence, f, call) => slow('record a failure', call, () => inner.recordFailure(c, fence, f)),
    releaseLease: (c, fence, call) => slow('release a lease', call, () => inner.releaseLease(c, fence)),
    deleteToken: (c, match, call) => slow('delete a token', call, () => inner.deleteToken(c, match)),
  };
}
