import { DecryptCommand, GenerateDataKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { DependencyUnavailableError } from '../errors';
import type { KeyRing } from '../ports';

/** KMS as the key ring of envelope encryption: GenerateDataKey for new data keys, Decrypt for stored ones. */
export class KmsKeyRing implements KeyRing {
  constructor(
    private readonly client: Pick<KMSClient, 'send'>,
    private readonly keyId: string,
  ) {}

  async generateDataKey(context: Record<string, string>) {
    try {
      const out = await this.client.send(
        new GenerateDataKeyCommand({ KeyId: this.keyId, KeySpec: 'AES_256', EncryptionContext: context }),
      );
      if (!out.Plaintext || !out.CiphertextBlob) throw new Error('GenerateDataKey returned no key');
      return { plaintext: out.Plaintext, encrypted: out.CiphertextBlob };
    } catch (err) {
      throw new DependencyUnavailableError(`KMS could not generate a data key (${(err as Error).name})`, { cause: err });
    }
  }

  async decryptDataKey(encrypted: Uint8Array, context: Record<string, string>) {
    try {
      // KeyId pins the key: a ciphertext made under another key is refused rather than decrypted with it.
      const out = await this.client.send(
        new DecryptCommand({ CiphertextBlob: encrypted, EncryptionContext: context, KeyId: this.keyId }),
      );
      if (!out.Plaintext) throw new Error('Decrypt returned no plaintext');
      return out.Plaintext;
    } catch (err) {
      throw new DependencyUnavailableError(`KMS could not decrypt a data key (${(err as Error).name})`, { cause: err });
    }
  }
}
