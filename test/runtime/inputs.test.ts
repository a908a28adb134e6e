import { parseRetryAfter } from '../../connectors/errors';
import { hasUrlCredentials, MASK, mapSensitive, mergeLayers, Redactor, sensitiveValues } from '../../core/inputs';
import { Keyring, KeyringError } from '../../core/keyring';

describe('input layers', () => {
  test('later layers win; objects merge key by key; arrays and scalars are replaced', () => {
    const { value, sources } = mergeLayers([
      { source: 'profile', value: { url: 'a', headers: { accept: 'json', 'x-env': 'prod' }, tags: [1, 2], auth: { type: 'basic', username: 'u' } } },
      { source: 'vault:secret/data/x', value: { auth: { password: 'p' } } },
      { source: 'override', value: { headers: { 'x-env': 'dev' }, tags: [3] } },
    ]);
    expect(value).toEqual({ url: 'a', headers: { accept: 'json', 'x-env': 'dev' }, tags: [3], auth: { type: 'basic', username: 'u', password: 'p' } });
    expect(sources).toEqual({
      url: 'profile',
      'headers.accept': 'profile',
      'headers.x-env': 'override',
      tags: 'override',
      'auth.type': 'profile',
      'auth.username': 'profile',
      'auth.password': 'vault:secret/data/x',
    });
  });

  test('a subtree one layer gave whole is reported once, at its top', () => {
    const { sources } = mergeLayers([
      { source: 'profile', value: { headers: { a: '1', b: '2' } } },
      { source: 'override', value: { headers: { a: '3' } } },
      { source: 'override', value: { query: { q: 'x', page: 2 } } },
    ]);
    expect(sources).toEqual({ 'headers.a': 'override', 'headers.b': 'profile', query: 'override' });
  });

  test('a scalar replacing an object drops the object’s provenance', () => {
    const { value, sources } = mergeLayers([
      { source: 'profile', value: { data: { a: 1 } } },
      { source: 'override', value: { data: 'text' } },
    ]);
    expect(value).toEqual({ data: 'text' });
    expect(sources).toEqual({ data: 'override' });
  });

  test('sensitive paths match case-insensitively and with wildcards', () => {
    const masked = mapSensitive({ headers: { Authorization: 'Bearer x', Accept: 'json' }, auth: { token: 't' } }, ['headers.authorization', 'auth.*'], () => MASK);
    expect(masked).toEqual({ headers: { Authorization: MASK, Accept: 'json' }, auth: { token: MASK } });
  });

  test('the redactor replaces every secret inside strings, deep in values, longest first', () => {
    const redactor = new Redactor(['sk-live-abc', 'sk-live-abcdef', 'ab', { nested: 'pw-123' }]);
    expect(redactor.text('key sk-live-abcdef and sk-live-abc, pw pw-123')).toBe(`key ${MASK} and ${MASK}, pw ${MASK}`);
    expect(redactor.value({ list: ['x pw-123 y'], n: 1, ab: 'ab' })).toEqual({ list: [`x ${MASK} y`], n: 1, ab: 'ab' });
  });
});

describe('retry-after', () => {
  test('seconds and HTTP dates become milliseconds; zero, past and garbage mean "use the policy"', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('2', now)).toBe(2000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('0', now)).toBeUndefined();
    expect(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});

describe('keyring', () => {
  const entry = Keyring.generateEntry('k1');

  test('round-trips under the primary key, and the ciphertext names its key', () => {
    const keyring = Keyring.parse(entry);
    const ciphertext = keyring.encrypt('secret', 'connector:a:api_key');
    expect(Keyring.keyIdOf(ciphertext)).toBe('k1');
    expect(ciphertext).not.toContain('secret');
    expect(keyring.decrypt(ciphertext, 'connector:a:api_key')).toBe('secret');
  });

  test('a ciphertext moved to another connector or field does not decrypt', () => {
    const keyring = Keyring.parse(entry);
    const ciphertext = keyring.encrypt('secret', 'connector:a:api_key');
    expect(() => keyring.decrypt(ciphertext, 'connector:b:api_key')).toThrow(/does not decrypt/);
  });

  test('configuration errors name the key, never its bytes', () => {
    expect(() => Keyring.parse('short:AAAA')).toThrow(/key "short" is 3 bytes/);
    expect(() => Keyring.parse('nokey')).toThrow(/entry 1 is not of the form id:base64key/);
    expect(() => Keyring.parse(`${entry}\n${entry}`)).toThrow(/appears twice/);
    const err = (() => {
      try {
        Keyring.parse('# comment; with, separators\nbad id:AAAA');
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err).toBeInstanceOf(KeyringError);
    expect(err!.message).toContain('bad id');
  });

  test('a missing key is named when decrypting', () => {
    const old = Keyring.parse(entry);
    const ciphertext = old.encrypt('v', 'c');
    expect(() => Keyring.parse(Keyring.generateEntry('k2')).decrypt(ciphertext, 'c')).toThrow(/no key "k1"/);
  });
});

describe('what counts as a secret', () => {
  test('a URL with credentials is a secret wherever it stands; one without is not', () => {
    expect(hasUrlCredentials('https://alice:pw-123@api.example.com/v1')).toBe(true);
    expect(hasUrlCredentials('postgres://svc@db.internal/app')).toBe(true);
    expect(hasUrlCredentials('https://api.example.com/v1?email=a@b.c')).toBe(false);
    expect(hasUrlCredentials('mailto:someone@example.com')).toBe(false);
    const masked = mapSensitive({ url: 'https://alice:pw-123@h/x', nested: { mirror: 'http://tok-abc@h' }, base_url: 'https://h/v1' }, [], () => MASK);
    expect(masked).toEqual({ url: MASK, nested: { mirror: MASK }, base_url: 'https://h/v1' });
  });

  test('the parts of a secret URL an echo may show alone are secrets too; a URL with credentials keeps its path', () => {
    const values = sensitiveValues({ url: 'https://alice:p%40ss-123@h/orders' }, []);
    expect(values).toEqual(expect.arrayContaining(['https://alice:p%40ss-123@h/orders', 'p%40ss-123', 'p@ss-123']));
    expect(values).not.toContain('alice'); // beside a password a user name is a name
    expect(values).not.toContain('/orders');
    const token = sensitiveValues({ url: 'https://ghp-token-1@h/' }, []);
    expect(token).toContain('ghp-token-1');
    const hook = sensitiveValues({ headers: { authorization: 'https://hooks.example.com/services/T0/B0/XYZ' } }, ['headers.authorization']);
    expect(hook).toContain('/services/T0/B0/XYZ');
  });

  test('redaction replaces only what it was given: ordinary text around a secret stays intact', () => {
    const redactor = new Redactor(['s3cr3t-value']);
    expect(redactor.text('application/json; key=s3cr3t-value')).toBe(`application/json; key=${MASK}`);
  });
});
