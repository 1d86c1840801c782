import { describe, expect, it } from 'vitest';
import { parseConfig } from '../lib/config';
import { ConfigurationError } from '../lib/errors';
import { matchesAny, principalArn, principalPatternProblem } from '../lib/policy';

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
    const users = ['arn:aws:iam::111111111111:user/team/*'];
    expect(matchesAny('arn:aws:iam::111111111111:user/team/alice', users)).toBe(true);
    expect(matchesAny('arn:aws:iam::111111111111:user/team/sub/alice', users)).toBe(false);
    expect(matchesAny('arn:aws:iam::111111111111:user/team/x:y', users)).toBe(false);
  });

  it('treats regex characters in patterns literally, and denies by default', () => {
    expect(matchesAny('arn:aws:iam::111111111111:role/aXb', ['arn:aws:iam::111111111111:role/a.b'])).toBe(false);
    expect(matchesAny('arn:aws:iam::111111111111:role/a', [])).toBe(false);
    expect(matchesAny('arn:aws:iam::111111111111:user/alice', ['arn:aws:iam::111111111111:role/alice'])).toBe(false);
  });
});

describe('caller and admin patterns', () => {
  const config = (callers: string[], admins: string[] = []) => () =>
    parseConfig({ connections: [{ id: 'c', dialect: 'digishare-pat', secretId: 'broker/c', callers }], admins });

  it('a role pattern with an IAM path can never match: callers arrive as sessions whose ARN has no path', () => {
    const session = 'arn:aws:sts::111111111111:assumed-role/AWSReservedSSO_Admin_0123456789abcdef/alice@example.com';
    expect(matchesAny(session, ['arn:aws:iam::111111111111:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_*'])).toBe(false);
    expect(matchesAny(session, ['arn:aws:iam::111111111111:role/AWSReservedSSO_Admin_*'])).toBe(true);
  });

  it('rejects a role pattern with a path, saying what to write instead', () => {
    const withPath = 'arn:aws:iam::111111111111:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_*';
    expect(config([withPath])).toThrow(ConfigurationError);
    expect(config([withPath])).toThrow(/connections\[0\]\.callers\[0\]: a role pattern has no IAM path/);
    expect(config([withPath])).toThrow('write arn:aws:iam::111111111111:role/AWSReservedSSO_Admin_*');
    expect(config([withPath])).toThrow('role/AWSReservedSSO_PermissionSet_*');
    expect(config([], ['arn:aws:iam::111111111111:role/service-role/rotation'])).toThrow(
      /admins\[0\]: .*write arn:aws:iam::111111111111:role\/rotation/,
    );
  });

  it('rejects an account that is not 12 digits, * included', () => {
    for (const account of ['*', '11111111111*', '1111', 'abcdefghijkl']) {
      expect(config([`arn:aws:iam::${account}:role/ops`])).toThrow(/callers\[0\]: the account must be 12 digits, without \*/);
    }
  });

  it('accepts role names with * and user patterns with a path', () => {
    const ok = ['arn:aws:iam::111111111111:role/campaigns-*', 'arn:aws:iam::111111111111:user/team/*', 'arn:aws-us-gov:iam::111111111111:role/ops'];
    for (const p of ok) expect(principalPatternProblem(p), p).toBeUndefined();
    expect(config(ok)().connections[0]!.callers).toEqual(ok);
  });

  it('rejects what is not a role or user ARN, or has an empty segment', () => {
    for (const p of ['arn:aws:iam::111111111111:group/ops', 'arn:aws:sts::111111111111:assumed-role/ops/s', 'ops', 'arn:aws:iam::111111111111:user/team//alice']) {
      expect(config([p]), p).toThrow(ConfigurationError);
    }
  });
});
