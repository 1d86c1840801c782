import { randomBytes } from 'node:crypto';
import { DecryptCommand, GenerateDataKeyCommand } from '@aws-sdk/client-kms';
import { describe, expect, it } from 'vitest';
import { KmsKeyRing } from '../lib/adapters/kms';
import { ManualClock } from '../lib/clock';
import { ENCRYPTION_CONTEXT } from '../lib/contract';
import { LocalKeyRing, TokenCipher } from '../lib/crypto';
import type { KeyRing } from '../lib/ports';

class CountingKeyRing implements KeyRing {
  generated = 0;
  decrypted = 0;
  constructor(private readonly inner: KeyRing) {}
  async generateDataKey(ctx: Record<string, string>) {
    this.generated += 1;
    return this.inner.generateDataKey(ctx);
  }
  async decryptDataKey(e: Uint8Array, ctx: Record<string, string>) {
    this.decrypted += 1;
    return this.inner.decryptDataKey(e, ctx);
  }
}

describe('token encryption', () => {
  it('round-trips a 50,000-character token', async () => {
    const cipher = new TokenCipher(new LocalKeyRing(), new ManualClock());
    const token = 'x'.repeat(50_000);
    const ct = await cipher.encrypt(token, 'item-a');
    expect(Buffer.from(ct).toString('latin1')).not.toContain('xxxxxxxx');
    expect(await cipher.decrypt(ct, 'item-a')).toBe(token);
  });

  it('refuses a ciphertext under another item or edited metadata', async () => {
    const cipher = new TokenCipher(new LocalKeyRing(), new ManualClock());
    const ct = await cipher.encrypt('secret-token-value', 'tb1|token#a|1000');
    await expect(cipher.decrypt(ct, 'tb1|token#b|1000')).rejects.toThrow(/does not belong/);
    await expect(cipher.decrypt(ct, 'tb1|token#a|2000')).rejects.toThrow(/does not belong/);
    const flipped = Buffer.from(ct);
    flipped.writeUInt8(flipped.readUInt8(flipped.length - 1) ^ 1, flipped.length - 1);
    await expect(cipher.decrypt(flipped, 'tb1|token#a|1000')).rejects.toThrow(/does not belong/);
  });

  it('asks the key ring for a data key once per 5 minutes, and remembers decrypted ones', async () => {
    const clock = new ManualClock();
    const ring = new CountingKeyRing(new LocalKeyRing());
    const writer = new TokenCipher(ring, clock);
    const cts = await Promise.all(Array.from({ length: 10 }, (_, i) => writer.encrypt(`t${i}`, 'aad')));
    expect(ring.generated).toBe(1);
    clock.advance(5 * 60_000);
    await writer.encrypt('later', 'aad');
    expect(ring.generated).toBe(2);
    const reader = new TokenCipher(ring, clock);
    for (const ct of cts) await reader.decrypt(ct, 'aad');
    expect(ring.decrypted).toBe(1);
  });

  it('a data key of another master key is refused', async () => {
    const ct = await new TokenCipher(new LocalKeyRing(randomBytes(32)), new ManualClock()).encrypt('t', 'aad');
    await expect(new TokenCipher(new LocalKeyRing(randomBytes(32)), new ManualClock()).decrypt(ct, 'aad')).rejects.toThrow(
      /data key could not be decrypted/,
    );
  });
});

describe('KMS key ring', () => {
  it('asks GenerateDataKey and Decrypt with the key id and the broker encryption context', async () => {
    const sent: unknown[] = [];
    const client = {
      send: (cmd: unknown) => {
        sent.push(cmd);
        if (cmd instanceof GenerateDataKeyCommand) return Promise.resolve({ Plaintext: new Uint8Array(32).fill(7), CiphertextBlob: new Uint8Array([1, 2, 3]) });
        if (cmd instanceof DecryptCommand) return Promise.resolve({ Plaintext: new Uint8Array(32).fill(7) });
        return Promise.reject(new Error('unexpected'));
      },
    };
    const ring = new KmsKeyRing('arn:aws:kms:eu-west-1:111111111111:key/k', client);
    const cipher = new TokenCipher(ring, new ManualClock());
    const ct = await cipher.encrypt('tok', 'aad');
    expect(await new TokenCipher(ring, new ManualClock()).decrypt(ct, 'aad')).toBe('tok');
    const [gen, dec] = sent as [GenerateDataKeyCommand, DecryptCommand];
    expect(gen.input).toEqual({ KeyId: 'arn:aws:kms:eu-west-1:111111111111:key/k', KeySpec: 'AES_256', EncryptionContext: ENCRYPTION_CONTEXT });
    expect(dec.input).toMatchObject({ KeyId: 'arn:aws:kms:eu-west-1:111111111111:key/k', EncryptionContext: ENCRYPTION_CONTEXT });
  });

  it('turns a KMS failure into service_unavailable', async () => {
    const err = Object.assign(new Error('denied'), { name: 'AccessDeniedException' });
    const ring = new KmsKeyRing('k', { send: async () => Promise.reject(err) });
    await expect(ring.generateDataKey({})).rejects.toMatchObject({ code: 'service_unavailable' });
  });
});
