import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { Clock } from './clock';
import { ENCRYPTION_CONTEXT } from './contract';
import { BrokerError } from './errors';
import type { HeldToken, KeyRing, StoredToken } from './ports';

// Envelope encryption of tokens: AES-256-GCM under a data key from the key ring (KMS GenerateDataKey in AWS;
// KMS Encrypt takes 4 KB and tokens reach 50 KB). The additional authenticated data binds a ciphertext to its
// item and metadata, so a ciphertext copied to another item, or metadata edited in the table, fails to decrypt.
//
// Layout: version (1) | encrypted data key length (2, BE) | encrypted data key | IV (12) | tag (16) | ciphertext

const VERSION = 1;

export class DecryptionError extends BrokerError {
  constructor(message: string, cause?: unknown) {
    super('internal_error', 500, message, cause === undefined ? {} : { cause });
  }
}

export interface TokenCipherOptions {
  /** How long one data key encrypts before a new one is asked for. */
  dataKeyMaxAgeMs?: number;
  /** How many decrypted data keys are remembered. */
  decryptedKeyCacheSize?: number;
}

export class TokenCipher {
  private dataKey: { plaintext: Buffer; encrypted: Buffer; createdAt: number } | undefined;
  private pendingKey: Promise<void> | undefined;
  private readonly decrypted = new Map<string, Buffer>();
  private readonly maxAge: number;
  private readonly cacheSize: number;

  constructor(
    private readonly keyRing: KeyRing,
    private readonly clock: Clock,
    opts: TokenCipherOptions = {},
  ) {
    this.maxAge = opts.dataKeyMaxAgeMs ?? 5 * 60_000;
    this.cacheSize = opts.decryptedKeyCacheSize ?? 64;
  }

  async encrypt(plaintext: string, aad: string): Promise<Uint8Array> {
    const key = await this.currentKey();
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key.plaintext, iv);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const header = Buffer.alloc(3);
    header.writeUInt8(VERSION, 0);
    header.writeUInt16BE(key.encrypted.length, 1);
    return Buffer.concat([header, key.encrypted, iv, cipher.getAuthTag(), body]);
  }

  async decrypt(envelope: Uint8Array, aad: string): Promise<string> {
    const buf = Buffer.from(envelope.buffer, envelope.byteOffset, envelope.byteLength);
    if (buf.length < 3 + 12 + 16 || buf.readUInt8(0) !== VERSION) throw new DecryptionError('unknown envelope format');
    const keyLength = buf.readUInt16BE(1);
    const keyEnd = 3 + keyLength;
    if (buf.length < keyEnd + 28) throw new DecryptionError('truncated envelope');
    const encryptedKey = buf.subarray(3, keyEnd);
    const iv = buf.subarray(keyEnd, keyEnd + 12);
    const tag = buf.subarray(keyEnd + 12, keyEnd + 28);
    const key = await this.dataKeyFor(encryptedKey);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAAD(Buffer.from(aad, 'utf8'));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(buf.subarray(keyEnd + 28)), decipher.final()]).toString('utf8');
    } catch (err) {
      throw new DecryptionError('the ciphertext does not belong to this item', err);
    }
  }

  private async currentKey() {
    const k = this.dataKey;
    if (k && this.clock.now() - k.createdAt < this.maxAge) return k;
    // One GenerateDataKey at a time, however many encryptions wait for it.
    this.pendingKey ??= (async () => {
      try {
        const fresh = await this.keyRing.generateDataKey({ ...ENCRYPTION_CONTEXT });
        const entry = {
          plaintext: Buffer.from(fresh.plaintext),
          encrypted: Buffer.from(fresh.encrypted),
          createdAt: this.clock.now(),
        };
        this.dataKey = entry;
        this.remember(entry.encrypted, entry.plaintext);
      } finally {
        this.pendingKey = undefined;
      }
    })();
    await this.pendingKey;
    return this.dataKey as NonNullable<typeof this.dataKey>;
  }

  private async dataKeyFor(encrypted: Buffer): Promise<Buffer> {
    const id = createHash('sha256').update(encrypted).digest('base64');
    const hit = this.decrypted.get(id);
    if (hit) return hit;
    let plaintext: Buffer;
    try {
      plaintext = Buffer.from(await this.keyRing.decryptDataKey(encrypted, { ...ENCRYPTION_CONTEXT }));
    } catch (err) {
      throw new DecryptionError('the data key could not be decrypted', err);
    }
    this.remember(encrypted, plaintext);
    return plaintext;
  }

  private remember(encrypted: Buffer, plaintext: Buffer) {
    const id = createHash('sha256').update(encrypted).digest('base64');
    this.decrypted.delete(id);
    this.decrypted.set(id, plaintext);
    while (this.decrypted.size > this.cacheSize) {
      const oldest = this.decrypted.keys().next().value as string;
      this.decrypted.delete(oldest);
    }
  }
}

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
