import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config';
import { ConfigurationError } from '../../lib/errors';

// What a connection may say about its secret, as the CDK app grants it: the secret's name or ARN, and the customer
// KMS key that encrypts it.

const KEY = 'arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const parse = (extra: Record<string, unknown>) => () =>
  parseConfig({ connections: [{ id: 'c', dialect: 'digishare-pat', secretId: 'broker/c', callers: [], ...extra }] });

describe('a connection’s secret', () => {
  it('may name the customer KMS key that encrypts it (secretKmsKeyArn), kept on the connection', () => {
    expect(parse({ secretKmsKeyArn: KEY })().connections[0]!.secretKmsKeyArn).toBe(KEY);
    expect(parse({})().connections[0]).not.toHaveProperty('secretKmsKeyArn');
    expect(parse({ secretKmsKeyArn: 'arn:aws:kms:eu-west-1:111111111111:key/mrk-1234abcd12ab34cd56ef1234567890ab' })().connections[0]!.secretKmsKeyArn).toMatch(/mrk-/);
  });

  it('refuses a key alias, a key id or another service in secretKmsKeyArn: IAM grants on the key ARN', () => {
    for (const bad of ['arn:aws:kms:eu-west-1:111111111111:alias/secrets', '1234abcd-12ab-34cd-56ef-1234567890ab', 'arn:aws:kms:eu-west-1:*:key/x']) {
      expect(parse({ secretKmsKeyArn: bad }), bad).toThrow(/connections\[0\]\.secretKmsKeyArn: must be a KMS key ARN/);
    }
  });

  it('is a name or an ARN of Secrets Manager’s characters, so no IAM wildcard reaches a grant', () => {
    for (const ok of ['broker/c', 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:broker/c-AbC123', 'a+b=c.d@e_f-g']) {
      expect(parse({ secretId: ok })().connections[0]!.secretId).toBe(ok);
    }
    for (const bad of ['broker/*', 'broker/c-??????', 'arn:aws:secretsmanager:eu-west-1:*:secret:x', 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:', '']) {
      expect(parse({ secretId: bad }), bad).toThrow(ConfigurationError);
    }
  });
});
