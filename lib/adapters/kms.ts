import type { KMSClient, KMSClientConfig } from '@aws-sdk/client-kms';
import { DependencyUnavailableError } from '../errors';
import { KMS_BUDGET, clientSettings, withinDeadline } from './aws';
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
    /** Merged over the budget's settings (endpoint, region, credentials for tests and local runs). */
    private readonly clientConfig: KMSClientConfig = {},
    /** The whole of one call, SDK retries included. */
    private readonly totalMs = KMS_BUDGET.totalMs,
  ) {
    this.client = client;
  }

  private async ready() {
    this.sdk ??= import('@aws-sdk/client-kms');
    const sdk = await this.sdk;
    this.client ??= new sdk.KMSClient({ ...clientSettings(KMS_BUDGET), ...this.clientConfig });
    return { sdk, client: this.client };
  }

  async generateDataKey(context: Record<string, string>) {
    try {
      const { sdk, client } = await this.ready();
      const out = await withinDeadline('KMS GenerateDataKey', this.totalMs, (abortSignal) =>
        client.send(new sdk.GenerateDataKeyCommand({ KeyId: this.keyId, KeySpec: 'AES_256', EncryptionContext: context }), {
          abortSignal,
        }),
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
      const out = await withinDeadline('KMS Decrypt', this.totalMs, (abortSignal) =>
        client.send(new sdk.DecryptCommand({ CiphertextBlob: encrypted, EncryptionContext: context, KeyId: this.keyId }), {
          abortSignal,
        }),
      );
      if (!out.Plaintext) throw new Error('Decrypt returned no plaintext');
      return out.Plaintext;
    } catch (err) {
      throw new DependencyUnavailableError(`KMS could not decrypt a data key (${(err as Error).name})`, { cause: err });
    }
  }
}
