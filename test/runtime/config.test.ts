import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { codecServerOptionsFromEnv } from '../../api/codec-server';
import { allowedHostsFromEnv, tokensFromEnv } from '../../api/server';
import { ConfigError, loadConfig } from '../../core/config';
import { Keyring, KeyringError } from '../../core/keyring';
import { connectorServicesFromEnv, openDatabaseFromEnv } from '../../core/services';
import { VaultSecretSource } from '../../core/vault';

// The environment is turned into configuration by one function; these are its rules, without servers.
describe('configuration from the environment', () => {
  test('an empty environment gets the defaults the README documents', () => {
    expect(loadConfig({})).toEqual({
      temporal: { address: '127.0.0.1:7233', namespace: 'default', taskQueue: 'connectors', shutdownGraceMs: 25_000 },
      store: { databaseUrl: undefined, dataDir: path.resolve('.data', 'store') },
      keyring: undefined,
      payloadKeyring: undefined,
      vault: undefined,
      vaultPaths: ['secret/'],
      mcpStdio: false,
      logLevel: 'INFO',
      api: { tokens: { readWrite: [], readOnly: [] }, allowedHosts: [] },
      codec: { tokens: [], corsOrigins: ['http://127.0.0.1:8233', 'http://localhost:8233'], allowedHosts: [], port: undefined },
    });
  });

  test('TC_MCP_STDIO is on or off; anything else stops the process at start, naming it', () => {
    expect(loadConfig({ TC_MCP_STDIO: 'off' }).mcpStdio).toBe(false);
    expect(loadConfig({ TC_MCP_STDIO: ' ON ' }).mcpStdio).toBe(true);
    expect(() => loadConfig({ TC_MCP_STDIO: 'yes' })).toThrow(new ConfigError('TC_MCP_STDIO must be on or off, not "yes"'));
  });

  test('every variable is read into its typed field', () => {
    const config = loadConfig({
      TEMPORAL_ADDRESS: 'temporal.internal:7233',
      TEMPORAL_NAMESPACE: 'billing',
      TC_TASK_QUEUE: 'connectors-eu',
      DATABASE_URL: 'postgres://store.internal/connectors',
      TC_DATA_DIR: 'memory',
      TC_KEYRING: 'k1:AAAA',
      TC_PAYLOAD_KEYRING: 'p1:BBBB',
      VAULT_ADDR: 'http://vault.internal:8200',
      VAULT_ROLE_ID: 'role',
      VAULT_SECRET_ID: 'secret-id',
      VAULT_APPROLE_MOUNT: 'ci-approle',
      VAULT_NAMESPACE: 'team',
      TC_VAULT_CACHE_TTL_MS: '0',
      TC_VAULT_PATHS: ' secret/data/connectors/ ,kv/billing',
      TC_LOG_LEVEL: 'debug',
      TC_MCP_STDIO: 'On',
      TC_API_TOKENS: ' rw1-0123456789abcdef , rw2-0123456789abcdef,',
      TC_API_READ_TOKENS: 'ro1-0123456789abcdef',
      TC_API_ALLOWED_HOSTS: 'Connectors.Example.com',
      TC_TEMPORAL_UI_URL: 'https://Temporal.Example.com/ui/',
      TC_CODEC_TOKENS: 'c1',
      TC_CODEC_CORS_ORIGINS: 'https://ui.example.com',
      TC_CODEC_ALLOWED_HOSTS: '[fd00::5]',
      TC_CODEC_PORT: '9999',
      TC_WORKER_SHUTDOWN_GRACE_MS: '5000',
    });
    expect(config).toEqual({
      temporal: { address: 'temporal.internal:7233', namespace: 'billing', taskQueue: 'connectors-eu', shutdownGraceMs: 5000 },
      store: { databaseUrl: 'postgres://store.internal/connectors', dataDir: 'memory' },
      keyring: { text: 'k1:AAAA', source: 'TC_KEYRING' },
      payloadKeyring: { text: 'p1:BBBB', source: 'TC_PAYLOAD_KEYRING' },
      vault: {
        address: 'http://vault.internal:8200',
        token: undefined,
        appRole: { roleId: 'role', secretId: 'secret-id', mountPoint: 'ci-approle' },
        namespace: 'team',
        cacheTtlMs: 0,
      },
      vaultPaths: ['secret/data/connectors/', 'kv/billing'],
      mcpStdio: true,
      logLevel: 'DEBUG',
      api: { tokens: { readWrite: ['rw1-0123456789abcdef', 'rw2-0123456789abcdef'], readOnly: ['ro1-0123456789abcdef'] }, allowedHosts: ['connectors.example.com'], temporalUiUrl: 'https://temporal.example.com/ui' },
      codec: { tokens: ['c1'], corsOrigins: ['https://ui.example.com'], allowedHosts: ['fd00::5'], port: 9999 },
    });
    expect(loadConfig({ TC_TEMPORAL_UI_URL: 'http://127.0.0.1:8233' }).api.temporalUiUrl).toBe('http://127.0.0.1:8233');
  });

  test('an empty variable counts as unset, except TC_CODEC_CORS_ORIGINS, where empty means no origin', () => {
    const blank = loadConfig({ TEMPORAL_ADDRESS: '', TC_TASK_QUEUE: '', DATABASE_URL: '', TC_KEYRING: '', TC_KEYRING_FILE: '', VAULT_ADDR: '', TC_CODEC_PORT: '', TC_CODEC_CORS_ORIGINS: '' });
    expect(blank).toMatchObject({ temporal: { address: '127.0.0.1:7233', taskQueue: 'connectors' }, store: { databaseUrl: undefined }, keyring: undefined, vault: undefined });
    expect(blank.codec).toEqual({ tokens: [], corsOrigins: [], allowedHosts: [], port: undefined });
  });

  test('TC_KEYRING_FILE is read when TC_KEYRING is unset, and an unreadable one is named', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tc-config-'));
    try {
      const file = path.join(dir, 'keyring');
      writeFileSync(file, '# store keys\nk2:CCCC\n');
      expect(loadConfig({ TC_KEYRING_FILE: file }).keyring).toEqual({ text: '# store keys\nk2:CCCC\n', source: `TC_KEYRING_FILE ${file}` });
      expect(loadConfig({ TC_KEYRING: 'k1:AAAA', TC_KEYRING_FILE: file }).keyring?.source).toBe('TC_KEYRING');
      const missing = path.join(dir, 'missing');
      expect(() => loadConfig({ TC_KEYRING_FILE: missing })).toThrow(new ConfigError(`TC_KEYRING_FILE ${missing} cannot be read: ENOENT`));
      // Keyring.fromEnv has always raised KeyringError for every keyring problem.
      expect(() => Keyring.fromEnv({ TC_KEYRING_FILE: missing })).toThrow(KeyringError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a bad value is refused with a ConfigError naming the variable and the problem', () => {
    const refused: Array<[Record<string, string>, RegExp]> = [
      [{ TC_LOG_LEVEL: 'loud' }, /^TC_LOG_LEVEL must be one of TRACE, DEBUG, INFO, WARN, ERROR; got "loud"$/],
      [{ TC_CODEC_PORT: '70000' }, /^TC_CODEC_PORT must be a port number \(0-65535\), not "70000"$/],
      [{ TC_CODEC_PORT: 'http' }, /^TC_CODEC_PORT must be a port number/],
      [{ VAULT_ADDR: 'http://vault:8200', VAULT_TOKEN: 't', TC_VAULT_CACHE_TTL_MS: '1 minute' }, /^TC_VAULT_CACHE_TTL_MS must be a whole number of milliseconds \(0 or more\), not "1 minute"$/],
      [{ VAULT_ADDR: 'http://vault:8200', VAULT_TOKEN: 't', TC_VAULT_CACHE_TTL_MS: '-5' }, /^TC_VAULT_CACHE_TTL_MS must be a whole number/],
      [{ TC_WORKER_SHUTDOWN_GRACE_MS: '30s' }, /^TC_WORKER_SHUTDOWN_GRACE_MS must be a whole number of milliseconds \(0 or more\), not "30s"$/],
      [{ TC_API_ALLOWED_HOSTS: 'https://connectors.example.com' }, /^TC_API_ALLOWED_HOSTS: "https:\/\/connectors.example.com" is not a host name/],
      [{ TC_CODEC_ALLOWED_HOSTS: 'codec.example.com:443' }, /^TC_CODEC_ALLOWED_HOSTS: .* is not a host name/],
      [{ TC_TEMPORAL_UI_URL: 'localhost:8233' }, /^TC_TEMPORAL_UI_URL must be an http or https URL: give a base URL such as http:\/\/127\.0\.0\.1:8233$/],
      [{ TC_TEMPORAL_UI_URL: '127.0.0.1:8233' }, /^TC_TEMPORAL_UI_URL is not a URL/],
      [{ TC_TEMPORAL_UI_URL: 'javascript:alert(1)' }, /^TC_TEMPORAL_UI_URL must be an http or https URL/],
      [{ TC_TEMPORAL_UI_URL: 'https://ui.example.com/?namespace=x' }, /^TC_TEMPORAL_UI_URL must have no query or fragment/],
      [{ TC_TEMPORAL_UI_URL: 'https://ui.example.com/#top' }, /^TC_TEMPORAL_UI_URL must have no query or fragment/],
    ];
    for (const [env, message] of refused) {
      let error: unknown;
      try {
        loadConfig(env);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(message);
    }
  });

  test('a Temporal Web UI URL with credentials is refused naming its variable, never showing the password', () => {
    const password = 'ui-config-SECRET-8282';
    // The marker is visible where it belongs: in a URL path, it reaches the configuration.
    expect(loadConfig({ TC_TEMPORAL_UI_URL: `https://ui.example.com/${password}` }).api.temporalUiUrl).toContain(password);
    for (const url of [`https://admin:${password}@ui.example.com`, `https://${password}@ui.example.com`]) {
      let message = '';
      try {
        loadConfig({ TC_TEMPORAL_UI_URL: url });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toBe('TC_TEMPORAL_UI_URL must not hold a user name or password: give a base URL such as http://127.0.0.1:8233');
      expect(message).not.toContain(password);
    }
  });

  test('a malformed token is refused naming its variable, never showing the token', () => {
    const token = 'tok-config-SECRET-7171';
    // The marker is visible where it belongs: a well-formed token reaches the configuration.
    expect(loadConfig({ TC_API_READ_TOKENS: token }).api.tokens.readOnly).toEqual([token]);
    for (const name of ['TC_API_TOKENS', 'TC_API_READ_TOKENS', 'TC_CODEC_TOKENS']) {
      const env = { [name]: `ok1, ${token} with-space` };
      let message = '';
      try {
        loadConfig(env);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toBe(`${name} must be non-empty and contain no whitespace or commas`);
      expect(message).not.toContain(token);
    }
  });

  test("TC_VAULT_PATHS naming Vault's own mounts, lookup-self or a path that resolves elsewhere stops start-up with one line", () => {
    const cases: Array<[string, string]> = [
      ['auth/', `TC_VAULT_PATHS: "auth/" reaches Vault's auth/ mount, which connectors may never read (it holds tokens and Vault's own settings)`],
      ['secret/, SYS/internal', `TC_VAULT_PATHS: "SYS/internal" reaches Vault's sys/ mount, which connectors may never read (it holds tokens and Vault's own settings)`],
      ['identity', `TC_VAULT_PATHS: "identity" reaches Vault's identity/ mount, which connectors may never read (it holds tokens and Vault's own settings)`],
      ['cu', `TC_VAULT_PATHS: "cu" reaches Vault's cubbyhole/ mount, which connectors may never read (it holds tokens and Vault's own settings)`],
      ['secret/data/lookup-self', `TC_VAULT_PATHS: "secret/data/lookup-self" names lookup-self, which would read the worker's own Vault token`],
      ['secret/../auth/', 'TC_VAULT_PATHS: "secret/../auth/" has an empty, . or .. segment, which would resolve to another path'],
      ['secret//x/', 'TC_VAULT_PATHS: "secret//x/" has an empty, . or .. segment, which would resolve to another path'],
      ['/secret/', 'TC_VAULT_PATHS: "/secret/" has an empty, . or .. segment, which would resolve to another path'],
      ['secret/*', 'TC_VAULT_PATHS: "secret/*" is not a Vault API path such as secret/data/name (letters, digits, _ . - and / only)'],
      [',', 'TC_VAULT_PATHS lists no path prefix: give at least one, such as secret/data/connectors/'],
    ];
    for (const [value, expected] of cases) {
      expect(() => loadConfig({ TC_VAULT_PATHS: value })).toThrow(new ConfigError(expected));
    }
    // Prefixes that merely contain such a word elsewhere are fine, and empty means the default.
    expect(loadConfig({ TC_VAULT_PATHS: 'secret/data/auth-service/,kv/sys-reports/' }).vaultPaths).toEqual(['secret/data/auth-service/', 'kv/sys-reports/']);
    expect(loadConfig({ TC_VAULT_PATHS: '' }).vaultPaths).toEqual(['secret/']);
  });

  test('an API token shorter than 16 characters stops start-up with one line naming its variable, never the token', () => {
    const short = 'ab15-SECRET-xyz'; // 15 characters
    const long = 'ab16-SECRET-wxyz'; // 16: the shortest accepted
    // The marker is visible where it belongs: a token of 16 characters reaches the configuration.
    expect(loadConfig({ TC_API_TOKENS: long }).api.tokens.readWrite).toEqual([long]);
    for (const name of ['TC_API_TOKENS', 'TC_API_READ_TOKENS']) {
      let message = '';
      try {
        loadConfig({ [name]: `${long},${short}` });
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        message = (err as Error).message;
      }
      expect(message).toBe(`${name} must each be at least 16 characters long: use long random tokens, e.g. from openssl rand -hex 24`);
      expect(message).not.toContain('SECRET');
      expect(message).not.toContain('\n');
    }
  });

  test('the fromEnv functions of the package read what loadConfig reads', async () => {
    const storeKey = Keyring.generateEntry('sk1');
    const payloadKey = Keyring.generateEntry('pk1');
    const env = {
      TC_KEYRING: storeKey,
      TC_PAYLOAD_KEYRING: payloadKey,
      VAULT_ADDR: 'http://127.0.0.1:1',
      VAULT_TOKEN: 'root',
      TC_VAULT_CACHE_TTL_MS: '2500',
      TC_API_TOKENS: 'rw1-0123456789abcdef',
      TC_API_ALLOWED_HOSTS: 'proxy.example.test',
      TC_CODEC_TOKENS: 'c1,c2',
      TC_CODEC_PORT: '0',
      TC_DATA_DIR: 'memory',
    };
    expect(Keyring.fromEnv(env)?.primaryId).toBe('sk1');
    expect(Keyring.fromEnv({})).toBeUndefined();
    const vault = VaultSecretSource.fromEnv(env);
    expect(vault?.cacheTtlMs).toBe(2500);
    expect(vault?.allowedPaths).toEqual(['secret/']);
    expect(VaultSecretSource.fromEnv({ ...env, TC_VAULT_PATHS: 'secret/data/connectors/' })?.allowedPaths).toEqual(['secret/data/connectors/']);
    expect(() => VaultSecretSource.fromEnv({ ...env, TC_VAULT_PATHS: 'auth/' })).toThrow(/^TC_VAULT_PATHS: "auth\/"/);
    expect(VaultSecretSource.fromEnv({})).toBeUndefined();
    expect(() => VaultSecretSource.fromEnv({ ...env, TC_VAULT_CACHE_TTL_MS: 'soon' })).toThrow(/^TC_VAULT_CACHE_TTL_MS/);
    expect(tokensFromEnv(env)).toEqual(loadConfig(env).api.tokens);
    expect(allowedHostsFromEnv(env)).toEqual(['proxy.example.test']);
    const codec = codecServerOptionsFromEnv(env);
    expect({ keyId: codec.keyring.primaryId, tokens: codec.tokens, port: codec.port, allowedHosts: codec.allowedHosts }).toEqual({
      keyId: 'pk1',
      tokens: ['c1', 'c2'],
      port: 0,
      allowedHosts: [],
    });
    const db = await openDatabaseFromEnv(env);
    try {
      expect(db.description).toMatch(/in memory|memory/i);
    } finally {
      await db.close();
    }
    // The service (saves) and the Vault source (reads) the surfaces open both hold TC_VAULT_PATHS.
    for (const [vaultPaths, expected] of [[undefined, ['secret/']], ['secret/data/connectors/', ['secret/data/connectors/']]] as const) {
      const services = await connectorServicesFromEnv({ ...env, ...(vaultPaths && { TC_VAULT_PATHS: vaultPaths }) });
      try {
        expect([services.service.vaultPaths, services.vault?.allowedPaths]).toEqual([expected, expected]);
      } finally {
        await services.store.close();
      }
    }
  });
});
