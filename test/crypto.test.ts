import { createCipheriv, randomBytes } from 'node:crypto';
import { DecryptCommand, GenerateDataKeyCommand } from '@aws-sdk/client-kms';
import { describe, expect, it } from 'vitest';
import { KmsKeyRing } from '../lib/adapters/kms';
import { ManualClock } from '../lib/clock';
import { ENCRYPTION_CONTEXT } from '../lib/contract';
import { DATA_KEY_MAX_AGE_MS, LocalKeyRing, TokenCipher, dataKeyContext } from '../lib/crypto';
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

  it('asks the key ring for a data key once per day, and remembers decrypted ones', async () => {
    const clock = new ManualClock();
    const ring = new CountingKeyRing(new LocalKeyRing());
    const writer = new TokenCipher(ring, clock);
    const cts = await Promise.all(Array.from({ length: 10 }, (_, i) => writer.encrypt(`t${i}`, 'aad')));
    expect(ring.generated).toBe(1);
    clock.advance(DATA_KEY_MAX_AGE_MS - 1);
    await writer.encrypt('still the same key', 'aad');
    expect(ring.generated).toBe(1);
    clock.advance(1);
    await writer.encrypt('later', 'aad');
    expect(ring.generated).toBe(2);
    const reader = new TokenCipher(ring, clock);
    for (const ct of cts) await reader.decrypt(ct, 'aad');
    expect(ring.decrypted).toBe(1);
  });

  it('a fleet converges on one data key: each instance unwraps it once and seals under it', async () => {
    const clock = new ManualClock();
    const ring = new CountingKeyRing(new LocalKeyRing());
    const first = new TokenCipher(ring, clock);
    let latest = await first.encrypt('t0', 'aad');
    // Twenty instances, each reading the latest token and then minting one of its own.
    for (let i = 1; i <= 20; i++) {
      const instance = new TokenCipher(ring, clock);
      await instance.decrypt(latest, 'aad');
      latest = await instance.encrypt(`t${i}`, 'aad');
      clock.advance(60_000);
    }
    expect(ring.generated).toBe(1);
    expect(ring.decrypted).toBe(20);
  });

  it('an instance with a key of its own moves to an older one it reads, so parallel keys die out', async () => {
    const clock = new ManualClock();
    const ring = new CountingKeyRing(new LocalKeyRing());
    const a = new TokenCipher(ring, clock);
    const fromA = await a.encrypt('a', 'aad');
    clock.advance(1000);
    const b = new TokenCipher(ring, clock);
    const fromB = await b.encrypt('b', 'aad');
    await b.decrypt(fromA, 'aad');
    const c = new TokenCipher(ring, clock);
    await c.decrypt(await b.encrypt('b2', 'aad'), 'aad');
    // b now seals under a's key: c, having unwrapped a's key for b2, needs no other.
    await c.decrypt(await a.encrypt('a2', 'aad'), 'aad');
    expect(ring.generated).toBe(2);
    expect(ring.decrypted).toBe(2);
    await expect(c.decrypt(fromB, 'aad')).resolves.toBe('b');
  });

  it('a key too old to seal is not taken up from an envelope; a new one is made', async () => {
    const clock = new ManualClock();
    const ring = new CountingKeyRing(new LocalKeyRing());
    const old = await new TokenCipher(ring, clock).encrypt('old', 'aad');
    clock.advance(DATA_KEY_MAX_AGE_MS);
    const reader = new TokenCipher(ring, clock);
    expect(await reader.decrypt(old, 'aad')).toBe('old');
    await reader.encrypt('new', 'aad');
    expect(ring.generated).toBe(2);
  });

  it("binds the key's birth time: an envelope with it edited does not decrypt", async () => {
    const clock = new ManualClock();
    const ring = new LocalKeyRing();
    const ct = Buffer.from(await new TokenCipher(ring, clock).encrypt('tok', 'aad'));
    const older = Buffer.from(ct);
    older.writeUIntBE(ct.readUIntBE(1, 6) - 3_600_000, 1, 6);
    // The birth time is in the data key's encryption context: KMS (here the local ring) refuses another one.
    await expect(new TokenCipher(ring, clock).decrypt(older, 'aad')).rejects.toThrow(/data key could not be decrypted/);
    const future = Buffer.from(ct);
    future.writeUIntBE(ct.readUIntBE(1, 6) + DATA_KEY_MAX_AGE_MS, 1, 6);
    await expect(new TokenCipher(ring, clock).decrypt(future, 'aad')).rejects.toThrow(/outside its window/);
  });

  it('an envelope that re-dates a known key is refused, and does not extend its life here', async () => {
    const clock = new ManualClock();
    const local = new LocalKeyRing();
    const ring = new CountingKeyRing(local);
    const reader = new TokenCipher(ring, clock);
    const first = await new TokenCipher(ring, clock).encrypt('a', 'aad');
    await reader.decrypt(first, 'aad');
    clock.advance(DATA_KEY_MAX_AGE_MS - 60_000);
    // Someone holding the key's plaintext writes an envelope under it claiming it was born just now.
    const buf = Buffer.from(first);
    const keyLength = buf.readUInt16BE(7);
    const dk = Buffer.from(await local.decryptDataKey(buf.subarray(9, 9 + keyLength), dataKeyContext(buf.readUIntBE(1, 6))));
    const header = Buffer.from(buf.subarray(0, 9));
    header.writeUIntBE(clock.now(), 1, 6);
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', dk, iv);
    c.setAAD(Buffer.concat([header, Buffer.from('aad')]));
    const body = Buffer.concat([c.update('b'), c.final()]);
    const redated = Buffer.concat([header, buf.subarray(9, 9 + keyLength), iv, c.getAuthTag(), body]);
    await expect(reader.decrypt(redated, 'aad')).rejects.toThrow(/data key could not be decrypted/);
    clock.advance(60_000);
    await reader.encrypt('next', 'aad');
    expect(ring.generated).toBe(2);
  });

  it('refuses the earlier envelope layouts, whose birth time KMS did not vouch for (the token is minted again)', async () => {
    const clock = new ManualClock();
    const local = new LocalKeyRing();
    const ring = new CountingKeyRing(local);
    const dk = await local.generateDataKey({ ...ENCRYPTION_CONTEXT });
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', Buffer.from(dk.plaintext), iv);
    c.setAAD(Buffer.from('aad'));
    const body = Buffer.concat([c.update('v1-token'), c.final()]);
    const header = Buffer.alloc(3);
    header.writeUInt8(1, 0);
    header.writeUInt16BE(dk.encrypted.length, 1);
    const v1 = Buffer.concat([header, Buffer.from(dk.encrypted), iv, c.getAuthTag(), body]);
    const cipher = new TokenCipher(ring, clock);
    await expect(cipher.decrypt(v1, 'aad')).rejects.toThrow(/unknown envelope format/);
    const v2 = Buffer.from(await cipher.encrypt('next', 'aad'));
    v2.writeUInt8(2, 0);
    await expect(new TokenCipher(ring, clock).decrypt(v2, 'aad')).rejects.toThrow(/unknown envelope format/);
    expect(ring.generated).toBe(1);
  });

  it('a data key of another master key is refused', async () => {
    const ct = await new TokenCipher(new LocalKeyRing(randomBytes(32)), new ManualClock()).encrypt('t', 'aad');
    await expect(new TokenCipher(new LocalKeyRing(randomBytes(32)), new ManualClock()).decrypt(ct, 'aad')).rejects.toThrow(
      /data key could not be decrypted/,
    );
  });
});

describe('KMS key ring', () => {
  it("asks GenerateDataKey and Decrypt with the key id and the broker encryption context, the key's birth time in it", async () => {
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
    const clock = new ManualClock();
    const cipher = new TokenCipher(ring, clock);
    const ct = await cipher.encrypt('tok', 'aad');
    expect(await new TokenCipher(ring, clock).decrypt(ct, 'aad')).toBe('tok');
    const [gen, dec] = sent as [GenerateDataKeyCommand, DecryptCommand];
    const context = { ...ENCRYPTION_CONTEXT, bornAt: String(clock.now()) };
    expect(gen.input).toEqual({ KeyId: 'arn:aws:kms:eu-west-1:111111111111:key/k', KeySpec: 'AES_256', EncryptionContext: context });
    expect(dec.input).toMatchObject({ KeyId: 'arn:aws:kms:eu-west-1:111111111111:key/k', EncryptionContext: context });
  });

  it('turns a KMS failure into service_unavailable', async () => {
    const err = Object.assign(new Error('denied'), { name: 'AccessDeniedException' });
    const ring = new KmsKeyRing('k', { send: async () => Promise.reject(err) });
    await expect(ring.generateDataKey({})).rejects.toMatchObject({ code: 'service_unavailable' });
  });
});
