import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { ConnectorRegistry } from '../connectors/registry';
import { Keyring } from './keyring';
import { ConnectorService } from './service';
import { PgDatabase, PgliteDatabase, type SqlDatabase } from './store/database';
import { ConnectorStore } from './store/connector-store';
import { VaultSecretSource } from './vault';

/**
 * The store named by the environment: `DATABASE_URL` (PostgreSQL server), else the embedded store
 * in `TC_DATA_DIR` (default `.data/store` under the working directory), or in memory with `TC_DATA_DIR=memory`.
 */
export async function openDatabaseFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<SqlDatabase> {
  if (env.DATABASE_URL) return new PgDatabase({ connectionString: env.DATABASE_URL });
  const dir = env.TC_DATA_DIR ?? path.resolve('.data', 'store');
  if (dir === 'memory') return PgliteDatabase.open();
  mkdirSync(dir, { recursive: true });
  return PgliteDatabase.open(dir);
}

/** Store, keyring, registry and Vault from the environment, with the schema migrated. */
export async function connectorServicesFromEnv(env: NodeJS.ProcessEnv = process.env) {
  const store = new ConnectorStore(await openDatabaseFromEnv(env));
  await store.migrate();
  const service = new ConnectorService({ store, registry: new ConnectorRegistry(), keyring: Keyring.fromEnv(env) });
  return { store, service, vault: VaultSecretSource.fromEnv(env) };
}
