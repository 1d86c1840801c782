import { describe, expect, it } from 'vitest';
import { matchesAny, principalArn } from '../lib/policy';

describe('caller policy', () => {
  it('matches an assumed-role session as its role', () => {
    expect(principalArn('arn:aws:sts::111111111111:assumed-role/campaigns-api/i-0abc')).toBe(
      'arn:aws:iam::111111111111:role/campaigns-api',
    );
    expect(matchesAny('arn:aws:sts::111111111111:assumed-role/campaigns-api/session', ['arn:aws:iam::111111111111:role/campaigns-*'])).toBe(true);
  });

  it('lets * match within one segment only, never across / or :', () => {
    const p = ['arn:aws:iam::111111111111:role/campaigns-*'];
    expect(matchesAny('arn:aws:iam::111111111111:role/campaigns-api', p)).toBe(true);
    expect(matchesAny('arn:aws:iam::111111111111:role/campaigns-', p)).toBe(true);
    expect(matchesAny('arn:aws:iam::111111111111:role/campaigns-x/nested', p)).toBe(false);
    expect(matchesAny('arn:aws:iam::111111111111:role/other', p)).toBe(false);
    expect(matchesAny('arn:aws:iam::*:role/ops', ['arn:aws:iam::*:role/ops'])).toBe(true);
    expect(matchesAny('arn:aws:iam::222222222222:role/ops', ['arn:aws:iam::*:role/ops'])).toBe(true);
    expect(matchesAny('arn:aws:iam::222222222222:role/x:y/ops', ['arn:aws:iam::*:role/*/ops'])).toBe(false);
  });

  it('treats regex characters in patterns literally, and denies by default', () => {
    expect(matchesAny('arn:aws:iam::111111111111:role/aXb', ['arn:aws:iam::111111111111:role/a.b'])).toBe(false);
    expect(matchesAny('arn:aws:iam::111111111111:role/a', [])).toBe(false);
    expect(matchesAny('arn:aws:iam::111111111111:user/alice', ['arn:aws:iam::111111111111:role/alice'])).toBe(false);
  });
});
