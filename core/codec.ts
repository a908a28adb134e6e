// Opt-in encryption of every payload the workflows of a worker or client write: workflow and
// activity inputs and results, overrides given in workflow code, signals, queries, memos, summaries
// and, with the encoded failure converter, failure messages and stack traces. Search attributes are
// never encoded: Temporal must read them to index them.
import type { Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { Keyring } from './keyring';

/** `encoding` metadata of a payload this codec made. */
export const ENCRYPTED_ENCODING = 'binary/encrypted';
/** Metadata key naming the keyring key a payload was encrypted with. */
export const ENCRYPTION_KEY_ID = 'encryption-key-id';
/**
 * Associated data of every payload ciphertext. It keeps payload ciphertexts and stored connector
 * secrets (bound to `connector/field`) apart when both use the same keyring.
 */
export const PAYLOAD_CONTEXT = 'temporal-payload';

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/**
 * A PayloadCodec that encrypts each whole payload (metadata and data, serialized as the protobuf
 * message) with AES-256-GCM under the keyring's primary key, so not even the original encoding is
 * visible. Decoding uses the key the payload names, so payloads written before a key rotation stay
 * readable as long as their key remains in the ring; payloads that are not `binary/encrypted`
 * (written before encryption was turned on) pass through unchanged.
 */
export function createEncryptionCodec(keyring: Keyring): PayloadCodec {
  return {
    async encode(payloads: Payload[]): Promise<Payload[]> {
      return payloads.map((payload) => {
        const { keyId, data } = keyring.encryptBytes(temporal.api.common.v1.Payload.encode(payload).finish(), PAYLOAD_CONTEXT);
        return { metadata: { encoding: utf8.encode(ENCRYPTED_ENCODING), [ENCRYPTION_KEY_ID]: utf8.encode(keyId) }, data };
      });
    },
    async decode(payloads: Payload[]): Promise<Payload[]> {
      return payloads.map((payload) => {
        if (!isEncryptedPayload(payload)) return payload;
        const keyIdBytes = payload.metadata?.[ENCRYPTION_KEY_ID];
        if (!keyIdBytes) throw new Error(`a ${ENCRYPTED_ENCODING} payload has no ${ENCRYPTION_KEY_ID} metadata, so no key can decrypt it`);
        const plain = keyring.decryptBytes(fromUtf8.decode(keyIdBytes), payload.data ?? new Uint8Array(), PAYLOAD_CONTEXT);
        const decoded = temporal.api.common.v1.Payload.decode(plain);
        return { metadata: decoded.metadata, data: decoded.data };
      });
    },
  };
}

/** True when `payload` was made by {@link createEncryptionCodec}. */
export function isEncryptedPayload(payload: Payload): boolean {
  const encoding = payload.metadata?.encoding;
  return encoding !== undefined && encoding !== null && fromUtf8.decode(encoding) === ENCRYPTED_ENCODING;
}
