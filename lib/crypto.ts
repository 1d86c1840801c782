import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { Clock } from './clock';
import { ENCRYPTION_CONTEXT } from './contract';
import { BrokerError } from './errors';
import type { HeldToken, KeyRing, StoredToken } from './ports';

// Envelope encryption of tokens: AES-256-GCM under a data key from the key ring (KMS GenerateDataKey in AWS;
// KMS Encrypt takes 4 KB and tokens reach 50 KB). The additional authenticated data binds a ciphertext to its
// item and metadata, so a ciphertext copied to another item, or metadata edited in the table, fails to decrypt.
//
// One data key serves the whole fleet for a while: an instance seals under the oldest data key it knows (made by
// itself or unwrapped from a token it read) that is younger than the maximum age, so instances converge on one key
// and each unwraps it once, instead of one KMS Decrypt per key per minting instance. A key's birth time travels in
// the envelope and is part of the data key's KMS encryption context: KMS Decrypt fails for any other birth time, so
// even whoever holds one data key cannot re-date it, keep it sealing past its age, or have it read past its window.
//
// Layout v3: version (1) | key born at, epoch ms (6, BE) | encrypted data key length (2, BE) | encrypted data key |
//            IV (12) | tag (16) | ciphertext
// v1 and v2 envelopes (birth time not bound by KMS) are refused: the broker mints such a token again.

const VERSION = 3;
/** A birth time this far ahead of this clock is not believed. */
const BIRTH_SKEW_MS = 60_000;

export class DecryptionError extends BrokerError {
  constructor(message: string, cause?: unknown) {
    super('internal_error', 500, message, cause === undefined ? {} : { cause });
  }
}

/** How long one data key seals tokens, from its birth, before a new one is asked for. */
export const DATA_KEY_MAX_AGE_MS = 24 * 3_600_000;

/** How long after a data key's birth an envelope sealed under it is still read: a token sealed at the end of the key's life is served a day more. */
export const ENVELOPE_MAX_AGE_MS = 2 * DATA_KEY_MAX_AGE_MS;

export interface TokenCipherOptions {
  /** How long one data key seals tokens, from its birth, before a new one is asked for. */
  dataKeyMaxAgeMs?: number;
  /** How long after a data key's birth an envelope sealed under it is still read. */
  envelopeMaxAgeMs?: number;
  /** How many decrypted data keys are remembered. */
  decryptedKeyCacheSize?: number;
}

/** A data key's KMS encryption context: the broker's, and the key's birth time, which KMS then vouches for. */
export function dataKeyContext(bornAt: number): Record<string, string> {
  return { ...ENCRYPTION_CONTEXT, bornAt: String(bornAt) };
}

type DataKey = { plaintext: Buffer; encrypted: Buffer; bornAt: number };

export class TokenCipher {
  /** Data keys this instance can seal with (generated here or unwrapped from an envelope), by their id. */
  private readonly sealable = new Map<string, DataKey>();
  private pendingKey: Promise<DataKey> | undefined;
  private readonly decrypted = new Map<string, Buffer>();
  private readonly maxAge: number;
  private readonly envelopeMaxAge: number;
  private readonly cacheSize: number;

  constructor(
    private readonly keyRing: KeyRing,
    private readonly clock: Clock,
    opts: TokenCipherOptions = {},
  ) {
    this.maxAge = opts.dataKeyMaxAgeMs ?? DATA_KEY_MAX_AGE_MS;
    this.envelopeMaxAge = opts.envelopeMaxAgeMs ?? Math.max(ENVELOPE_MAX_AGE_MS, this.maxAge);
    this.cacheSize = opts.decryptedKeyCacheSize ?? 64;
  }

  async encrypt(plaintext: string, aad: string): Promise<Uint8Array> {
    const key = await this.currentKey();
    const header = Buffer.alloc(9);
    header.writeUInt8(VERSION, 0);
    header.writeUIntBE(key.bornAt, 1, 6);
    header.writeUInt16BE(key.encrypted.length, 7);
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key.plaintext, iv);
    cipher.setAAD(Buffer.concat([header, Buffer.from(aad, 'utf8')]));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return Buffer.concat([header, key.encrypted, iv, cipher.getAuthTag(), body]);
  }

  async decrypt(envelope: Uint8Array, aad: string): Promise<string> {
    const buf = Buffer.from(envelope.buffer, envelope.byteOffset, envelope.byteLength);
    const headerLength = 9;
    if (buf.length < headerLength + 28 || buf.readUInt8(0) !== VERSION) throw new DecryptionError('unknown envelope format');
    const bornAt = buf.readUIntBE(1, 6);
    const age = this.clock.now() - bornAt;
    // Checked before KMS is asked: a genuine envelope is never this old or from the future.
    if (age >= this.envelopeMaxAge || age < -BIRTH_SKEW_MS) throw new DecryptionError('the envelope is sealed under a data key outside its window');
    const keyLength = buf.readUInt16BE(headerLength - 2);
    const keyEnd = headerLength + keyLength;
    if (buf.length < keyEnd + 28) throw new DecryptionError('truncated envelope');
    const encryptedKey = buf.subarray(headerLength, keyEnd);
    const iv = buf.subarray(keyEnd, keyEnd + 12);
    const tag = buf.subarray(keyEnd + 12, keyEnd + 28);
    const { id, plaintext: key } = await this.dataKeyFor(encryptedKey, bornAt);
    let plaintext: string;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAAD(Buffer.concat([buf.subarray(0, headerLength), Buffer.from(aad, 'utf8')]));
      decipher.setAuthTag(tag);
      plaintext = Buffer.concat([decipher.update(buf.subarray(keyEnd + 28)), decipher.final()]).toString('utf8');
    } catch (err) {
      throw new DecryptionError('the ciphertext does not belong to this item', err);
    }
    // KMS vouched for the birth time (it is in the data key's context): the key may seal this instance's tokens.
    this.offer(id, bornAt, () => ({ plaintext: key, encrypted: Buffer.from(encryptedKey) }));
    return plaintext;
  }

  /** The oldest data key known here that is still young enough: the fleet converges on it. */
  private usableKey(): DataKey | undefined {
    const now = this.clock.now();
    let best: DataKey | undefined;
    for (const [id, k] of this.sealable) {
      if (now - k.bornAt >= this.maxAge) {
        this.sealable.delete(id);
        continue;
      }
      if (!best || k.bornAt < best.bornAt) best = k;
    }
    return best;
  }

  /** A key this instance may seal with; `material` is copied only for a key it does not hold yet (reads are hot). */
  private offer(id: string, bornAt: number, material: () => Omit<DataKey, 'bornAt'>) {
    const now = this.clock.now();
    // A birth time ahead of this clock by more than a little is not trusted to date the key.
    if (now - bornAt >= this.maxAge || bornAt > now + BIRTH_SKEW_MS) return;
    // A key keeps the earliest birth time this instance has seen for it: an envelope that claims a later one (which
    // only someone holding the key can write) does not extend the key's life.
    const known = this.sealable.get(id);
    if (known && known.bornAt <= bornAt) return;
    this.sealable.set(id, { ...(known ?? material()), bornAt });
    while (this.sealable.size > 4) {
      const youngest = [...this.sealable].reduce((a, b) => (b[1].bornAt > a[1].bornAt ? b : a));
      this.sealable.delete(youngest[0]);
    }
  }

  private async currentKey(): Promise<DataKey> {
    const known = this.usableKey();
    if (known) return known;
    // One GenerateDataKey at a time, however many encryptions wait for it.
    this.pendingKey ??= (async () => {
      try {
        // Whole milliseconds: the envelope holds an integer, and KMS compares the context as a string.
        const bornAt = Math.floor(this.clock.now());
        const fresh = await this.keyRing.generateDataKey(dataKeyContext(bornAt));
        const key = { plaintext: Buffer.from(fresh.plaintext), encrypted: Buffer.from(fresh.encrypted), bornAt };
        const id = keyId(key.encrypted, bornAt);
        this.remember(id, key.plaintext);
        this.offer(id, key.bornAt, () => key);
        return key;
      } finally {
        this.pendingKey = undefined;
      }
    })();
    return this.pendingKey;
  }

  private async dataKeyFor(encrypted: Buffer, bornAt: number): Promise<{ id: string; plaintext: Buffer }> {
    const id = keyId(encrypted, bornAt);
    const hit = this.decrypted.get(id);
    if (hit) return { id, plaintext: hit };
    let plaintext: Buffer;
    try {
      plaintext = Buffer.from(await this.keyRing.decryptDataKey(encrypted, dataKeyContext(bornAt)));
    } catch (err) {
      throw new DecryptionError('the data key could not be decrypted', err);
    }
    this.remember(id, plaintext);
    return { id, plaintext };
  }

  private remember(id: string, plaintext: Buffer) {
    this.decrypted.delete(id);
    this.decrypted.set(id, plaintext);
    while (this.decrypted.size > this.cacheSize) {
      const oldest = this.decrypted.keys().next().value as string;
      this.decrypted.delete(oldest);
    }
  }
}

/** A data key as KMS knows it: its wrapped form and the birth time it was wrapped with (one is useless without the other). */
const keyId = (encrypted: Buffer, bornAt: number) => `${createHash('sha256').update(encrypted).digest('base64')}@${bornAt}`;

/**
 * What a stored token's ciphertext is bound to: its item and every attribute a reader acts on (expiry, mint time,
 * secret version, who minted it). Edit any of them in the table and the token no longer decrypts; the mint time
 * being bound is what lets a reader refuse an authentic but older item put back (see the broker's high-water mark).
 */
export function tokenBinding(t: Omit<StoredToken, 'ciphertext'>): string {
  return ['tb2', `token#${t.connection}`, t.tokenType, t.expiresAt, t.mintedAt, t.lifetime, t.secretVersion, t.fingerprint, t.mintedBy].join('|');
}

/**
 * A token ready for the table: the token, and the vendor's refresh token when there is one, encrypted in one
 * envelope bound to its metadata. Neither can hold a line break (both are header-safe ASCII), which separates them.
 */
export async function sealToken(cipher: TokenCipher, held: HeldToken): Promise<StoredToken> {
  const { accessToken, refreshToken, ...meta } = held;
  const plaintext = refreshToken === undefined ? accessToken : `${accessToken}\n${refreshToken}`;
  return { ...meta, ciphertext: await cipher.encrypt(plaintext, tokenBinding(meta)) };
}

/** A stored token decrypted; a DecryptionError when its ciphertext does not belong to this item and metadata. */
export async function openToken(cipher: TokenCipher, stored: StoredToken): Promise<HeldToken> {
  const { ciphertext, ...meta } = stored;
  const [accessToken = '', refreshToken] = (await cipher.decrypt(ciphertext, tokenBinding(meta))).split('\n', 2);
  return { ...meta, accessToken, ...(refreshToken ? { refreshToken } : {}) };
}

/** The local stand-in for KMS: data keys wrapped with AES-256-GCM under one local master key. */
export class LocalKeyRing implements KeyRing {
  private readonly master: Buffer;

  constructor(masterKey?: Uint8Array) {
    this.master = masterKey ? Buffer.from(masterKey) : randomBytes(32);
    if (this.master.length !== 32) throw new Error('the local master key must be 32 bytes');
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- KeyRing is async (KMS); async turns a throw into a rejection
  async generateDataKey(context: Record<string, string>) {
    const plaintext = randomBytes(32);
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.master, iv);
    cipher.setAAD(Buffer.from(JSON.stringify(sorted(context))));
    const wrapped = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return { plaintext, encrypted: Buffer.concat([iv, cipher.getAuthTag(), wrapped]) };
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- KeyRing is async (KMS); a wrong key must reject, not throw
  async decryptDataKey(encrypted: Uint8Array, context: Record<string, string>) {
    const buf = Buffer.from(encrypted);
    const decipher = createDecipheriv('aes-256-gcm', this.master, buf.subarray(0, 12));
    decipher.setAAD(Buffer.from(JSON.stringify(sorted(context))));
    decipher.setAuthTag(buf.subarray(12, 28));
    return Buffer.concat([decipher.update(buf.subarray(28)), decipher.final()]);
  }
}

function sorted(context: Record<string, string>) {
  return Object.fromEntries(Object.entries(context).sort(([a], [b]) => a.localeCompare(b)));
}
