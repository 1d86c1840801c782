import type { KMSClient, KMSClientConfig } from '@aws-sdk/client-kms';
import { DependencyUnavailableError } from '../errors';
import { awsCallTimeouts } from './aws';
import type { KeyRing } from '../ports';

type Sdk = typeof import('@aws-sdk/client-kms');

/**
 * KMS as the key ring of envelope encryption: GenerateDataKey for new data keys, Decrypt for stored ones. The SDK
 * module is loaded on first use (data keys are cached for minutes), so it costs nothing at cold start.
 */
export class KmsKeyRing implements KeyRing {
  private sdk: Promise<Sdk> | undefined;
  private client: Pick<KMSClient, 'send'> | undefined;

  constructor(
    private readonly keyId: string,
    client?: Pick<KMSClient, 'send'>,
    private readonly clientConfig: KMSClientConfig = { maxAttempts: 3, requestHandler: awsCallTimeouts() },
  ) {
    this.client = client;
  }

  private async ready() {
    this.sdk ??= import('@aws-sdk/client-kms');
    const sdk = await this.sdk;
    this.client ??= new sdk.KMSClient(this.clientConfig);
    return { sdk, client: this.client };
  }

  async generateDataKey(context: Record<string, string>) {
    try {
      const { sdk, client } = await this.ready();
      const out = await client.send(
        new sdk.GenerateDataKeyCommand({ KeyId: this.keyId, KeySpec: 'AES_256', EncryptionContext: context }),
      );
      if (!out.Plaintext || !out.CiphertextBlob) throw new Error('GenerateDataKey returned no key');
      return { plaintext: out.Plaintext, encrypted: out.CiphertextBlob };
    } catch (err) {
      throw new DependencyUnavailableError(`KMS could not generate a data key (${(err as Error).name})`, { cause: err });
    }
  }

  async decryptDataKey(encrypted: Uint8Array, context: Record<string, string>) {
    try {
      const { sdk, client } = await this.ready();
      // KeyId pins the key: a ciphertext made under another key is refused rather than decrypted with it.
      const out = await client.send(
        new sdk.DecryptCommand({ CiphertextBlob: encrypted, EncryptionContext: context, KeyId: this.keyId }),
      );
      if (!out.Plaintext) throw new Error('Decrypt returned no plaintext');
      return out.Plaintext;
    } catch (err) {
      throw new DependencyUnavailableError(`KMS could not decrypt a data key (${(err as Error).name})`, { cause: err });
    }
  }
}
