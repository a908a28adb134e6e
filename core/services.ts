// The store, keyring, registry and Vault source that the surfaces (CLI, API, standalone worker) open
// from one configuration.
import { mkdirSync } from 'node:fs';
import { builtInTypes, ConnectorRegistry } from '../connectors/registry';
import { DEFAULT_VAULT_PATHS, keyringSetting, mcpStdioSetting, storeSettings, vaultPathsSetting, vaultSettings, type ConnectorsConfig, type StoreSettings } from './config';
import { Keyring } from './keyring';
import { ConnectorService } from './service';
import { PgDatabase, PgliteDatabase, type SqlDatabase } from './store/database';
import { ConnectorStore } from './store/connector-store';
import { VaultSecretSource } from './vault';

/**
 * The store `settings` name: the PostgreSQL server at `databaseUrl`, else the embedded store in
 * `dataDir` (created if missing), or in memory when `dataDir` is `memory`.
 */
export async function openDatabase(settings: StoreSettings): Promise<SqlDatabase> {
  if (settings.databaseUrl) return new PgDatabase({ connectionString: settings.databaseUrl });
  if (settings.dataDir === 'memory') return PgliteDatabase.open();
  mkdirSync(settings.dataDir, { recursive: true });
  return PgliteDatabase.open(settings.dataDir);
}

/**
 * Store (schema migrated), service with its keyring and registry, and Vault source, as `config` names
 * them. Both the service (on save) and the Vault source (on read) hold connectors to `vaultPaths`
 * (default: `secret/`).
 */
export async function connectorServices(config: Pick<ConnectorsConfig, 'store' | 'keyring' | 'vault'> & Partial<Pick<ConnectorsConfig, 'vaultPaths' | 'mcpStdio'>>) {
  // Keys and Vault settings are checked before the store opens, so a bad one leaves nothing open.
  const keyring = Keyring.fromSetting(config.keyring);
  const vaultPaths = config.vaultPaths ?? [...DEFAULT_VAULT_PATHS];
  const vault = config.vault ? new VaultSecretSource({ ...config.vault, allowedPaths: vaultPaths }) : undefined;
  const store = new ConnectorStore(await openDatabase(config.store));
  await store.migrate();
  const service = new ConnectorService({ store, registry: new ConnectorRegistry(builtInTypes({ mcpStdio: config.mcpStdio })), keyring, vaultPaths });
  return { store, service, vault };
}

/** What {@link connectorServices} opens. */
export type ConnectorServices = Awaited<ReturnType<typeof connectorServices>>;

/**
 * The store named by the environment: `DATABASE_URL` (PostgreSQL server), else the embedded store
 * in `TC_DATA_DIR` (default `.data/store` under the working directory), or in memory with `TC_DATA_DIR=memory`.
 */
export async function openDatabaseFromEnv(env?: NodeJS.ProcessEnv): Promise<SqlDatabase> {
  return openDatabase(storeSettings(env));
}

/**
 * Store, keyring, registry and Vault from the environment, with the schema migrated: {@link connectorServices}
 * of the parts of `loadConfig(env)` it uses (default: this process's environment).
 */
export async function connectorServicesFromEnv(env?: NodeJS.ProcessEnv): Promise<ConnectorServices> {
  return connectorServices({ store: storeSettings(env), keyring: keyringSetting(env), vault: vaultSettings(env), vaultPaths: vaultPathsSetting(env), mcpStdio: mcpStdioSetting(env) });
}
