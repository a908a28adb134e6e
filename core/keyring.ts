import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ConfigError, keyringSetting, type KeyringSetting } from './config';

const PREFIX = 'tcenc:v1:';
const KEY_ID = /^[A-Za-z0-9_.-]{1,64}$/;
// AES-GCM's standard nonce and full-length tag, for the binary form of encryptBytes.
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Raised for keyring configuration and decryption problems; never carries key material or plaintext. */
export class KeyringError extends Error {
  override name = 'KeyringError';
}

/**
 * AES-256-GCM encryption of sensitive connector fields. Every ciphertext names the id of the key
 * that made it, so keys rotate without downtime: add a new key first in the list (it encrypts from
 * then on), run `rotate-key` to re-encrypt, then drop the old key.
 */
export class Keyring {
  private readonly keys: ReadonlyMap<string, Buffer>;
  /** Id of the key new ciphertexts are made with: the first one configured. */
  readonly primaryId: string;

  constructor(keys: ReadonlyArray<{ id: string; key: Buffer }>) {
    if (keys.length === 0) throw new KeyringError('a keyring needs at least one key');
    const map = new Map<string, Buffer>();
    for (const { id, key } of keys) {
      if (!KEY_ID.test(id)) throw new KeyringError(`key id "${id}" is invalid: use 1-64 of A-Z a-z 0-9 _ . -`);
      if (key.length !== 32) throw new KeyringError(`key "${id}" is ${key.length} bytes; AES-256 needs exactly 32 (base64 of 32 random bytes)`);
      if (map.has(id)) throw new KeyringError(`key id "${id}" appears twice`);
      map.set(id, key);
    }
    this.keys = map;
    this.primaryId = keys[0].id;
  }

  /**
   * Parses `id:base64key` entries separated by commas, semicolons or new lines; the first is primary.
   * Lines starting with `#` are comments.
   */
  static parse(text: string, source = 'keyring'): Keyring {
    const entries = text
      .split('\n')
      .filter((line) => !line.trim().startsWith('#'))
      .flatMap((line) => line.split(/[,;]/))
      .map((s) => s.trim())
      .filter(Boolean);
    return new Keyring(
      entries.map((entry, i) => {
        const colon = entry.indexOf(':');
        if (colon <= 0) throw new KeyringError(`${source} entry ${i + 1} is not of the form id:base64key`);
        return { id: entry.slice(0, colon), key: Buffer.from(entry.slice(colon + 1), 'base64') };
      }),
    );
  }

  /**
   * The keyring configured by `TC_KEYRING` (entries as in {@link Keyring.parse}) or `TC_KEYRING_FILE`
   * (a file of such entries) in `env` (default: this process's environment); undefined when neither is set.
   */
  static fromEnv(env?: NodeJS.ProcessEnv): Keyring | undefined {
    try {
      return Keyring.fromSetting(keyringSetting(env));
    } catch (err) {
      // Callers have always caught KeyringError for every keyring problem, an unreadable file included.
      throw err instanceof ConfigError ? new KeyringError(err.message) : err;
    }
  }

  /** The keyring of a configured setting (`loadConfig().keyring` or `.payloadKeyring`); undefined for none. */
  static fromSetting(setting: KeyringSetting | undefined): Keyring | undefined {
    return setting === undefined ? undefined : Keyring.parse(setting.text, setting.source);
  }

  /** A new random key entry, `id:base64key`, for configuration. */
  static generateEntry(id = `k${new Date().toISOString().slice(0, 10).replace(/-/g, '')}`): string {
    return `${id}:${randomBytes(32).toString('base64')}`;
  }

  static isCiphertext(value: unknown): value is string {
    return typeof value === 'string' && value.startsWith(PREFIX);
  }

  /** Id of the key that made `ciphertext`. */
  static keyIdOf(ciphertext: string): string {
    return ciphertext.slice(PREFIX.length).split(':')[0];
  }

  /** Whether key `id` is in the ring. */
  has(id: string): boolean {
    return this.keys.has(id);
  }

  /**
   * Encrypts `plaintext` under the primary key, or under key `keyId` of the ring. `context` (e.g.
   * `connector/field`) is bound as associated data, so a ciphertext copied to another connector or
   * field does not decrypt. `label`, when given, travels in clear after the ciphertext and is bound
   * as associated data too: readable without the key ({@link Keyring.labelOf}), but a changed label
   * makes the ciphertext fail to decrypt. The store keeps there the destinations a secret was written for.
   */
  encrypt(plaintext: string, context: string, keyId = this.primaryId, label?: string): string {
    const key = this.keys.get(keyId);
    if (!key) throw new KeyringError(`no key "${keyId}" in the keyring to encrypt ${context} with`);
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(associatedData(context, label));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    const labelled = label === undefined ? '' : `:${Buffer.from(label, 'utf8').toString('base64url')}`;
    return `${PREFIX}${keyId}:${iv.toString('base64')}:${body.toString('base64')}:${tag.toString('base64')}${labelled}`;
  }

  /** The label `ciphertext` was made with (see {@link Keyring.encrypt}), read without decrypting; undefined for none. */
  static labelOf(ciphertext: string): string | undefined {
    const label = ciphertext.slice(PREFIX.length).split(':')[4];
    return label === undefined ? undefined : Buffer.from(label, 'base64url').toString('utf8');
  }

  /** `ciphertext` encrypted again under key `keyId` (default: the primary), with the same context and label. */
  reencrypt(ciphertext: string, context: string, keyId = this.primaryId): string {
    return this.encrypt(this.decrypt(ciphertext, context), context, keyId, Keyring.labelOf(ciphertext));
  }

  /**
   * Encrypts bytes under the primary key, for binary payloads (the payload codec): the result is
   * `iv (12 bytes) | ciphertext | tag (16 bytes)` and the id of the key, which the caller stores beside
   * it. `context` is bound as associated data, as in {@link Keyring.encrypt}.
   */
  encryptBytes(plain: Uint8Array, context: string): { keyId: string; data: Uint8Array } {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.primaryId)!, iv);
    cipher.setAAD(Buffer.from(context));
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return { keyId: this.primaryId, data: Buffer.concat([iv, body, cipher.getAuthTag()]) };
  }

  /** Decrypts what {@link Keyring.encryptBytes} made with key `keyId`, which must still be in the ring. */
  decryptBytes(keyId: string, data: Uint8Array, context: string): Uint8Array {
    const key = this.keys.get(keyId);
    if (!key) throw new KeyringError(`no key "${keyId}" in the keyring (it encrypted a ${context}); add it back to decrypt`);
    if (data.length < IV_BYTES + TAG_BYTES) throw new KeyringError(`a ${context} encrypted with key "${keyId}" is truncated`);
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
      return Buffer.concat([decipher.update(bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new KeyringError(`a ${context} does not decrypt with key "${keyId}": wrong key or tampered ciphertext`);
    }
  }

  decrypt(ciphertext: string, context: string): string {
    const [keyId, iv, body, tag] = ciphertext.slice(PREFIX.length).split(':');
    const label = Keyring.labelOf(ciphertext);
    const key = this.keys.get(keyId);
    if (!key) throw new KeyringError(`no key "${keyId}" in the keyring (it encrypted ${context}); add it back to decrypt`);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'));
      decipher.setAAD(associatedData(context, label));
      decipher.setAuthTag(Buffer.from(tag, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64')), decipher.final()]).toString('utf8');
    } catch {
      throw new KeyringError(`${context} does not decrypt with key "${keyId}": wrong key or tampered ciphertext`);
    }
  }
}

// Without a label, exactly the context, as ciphertexts made before labels existed were bound.
function associatedData(context: string, label: string | undefined): Buffer {
  return Buffer.from(label === undefined ? context : `${context}\u0000${label}`, 'utf8');
}
