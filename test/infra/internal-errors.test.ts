import { describe, expect, it } from 'vitest';
import { createLogger, createMetrics } from '../../lib/adapters/powertools';
import { makeHandler } from '../../functions/http';
import { INTERNAL_ERRORS } from '../../infra/constructs/broker-alarms';
import type { Broker } from '../../lib/broker';
import { VendorProtocolError, VendorTimeoutError, VendorUnavailableError } from '../../lib/errors';
import { lambdaContext, restEvent } from '../support/events';
import { matchesFilter } from '../support/log-filter';
import { capturedLogs } from '../support/setup';

// The InternalErrors alarm counts the HTTP function's log lines through a CloudWatch Logs metric filter. These
// tests feed the filter the lines functions/http.ts really writes: its own 500s count, the vendor's 502/503/504
// that it passes on do not.

async function logLinesFor(failure: () => Error, status: number): Promise<Record<string, unknown>[]> {
  const broker = { getToken: async () => Promise.reject(failure()) } as unknown as Broker;
  const handle = makeHandler({ broker, logger: createLogger(), metrics: createMetrics() });
  const from = capturedLogs().length;
  const res = await handle(restEvent({ method: 'GET', path: '/v1/connections/digitaleo-prod/token' }), lambdaContext());
  expect(res.statusCode).toBe(status);
  return capturedLogs()
    .slice(from)
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
}

describe('the InternalErrors metric filter', () => {
  const pattern = INTERNAL_ERRORS.filterPattern().logPatternString;

  it('counts the line the HTTP function writes when it answers 500 internal_error', async () => {
    const lines = await logLinesFor(() => new TypeError('cannot read properties of undefined'), 500);
    const counted = lines.filter((l) => matchesFilter(pattern, l));
    expect(counted).toHaveLength(1);
    expect(counted[0]).toMatchObject({ message: 'request failed', code: 'internal_error', status: 500 });
  });

  for (const [name, failure, status] of [
    ['vendor_protocol_error', () => new VendorProtocolError('c: the vendor answered no token'), 502],
    ['vendor_unavailable', () => new VendorUnavailableError('c: the vendor answered 503'), 503],
    ['vendor_timeout', () => new VendorTimeoutError('c: no answer within 10 s'), 504],
  ] as const) {
    it(`does not count a ${status} ${name} passed on from the vendor`, async () => {
      const lines = await logLinesFor(failure, status);
      // The line is there (the function logs it as a failure), and the filter leaves it out.
      expect(lines.some((l) => l.message === INTERNAL_ERRORS.message && l.status === status)).toBe(true);
      expect(lines.filter((l) => matchesFilter(pattern, l))).toEqual([]);
    });
  }
});
