// temporal-connectors: everything that runs outside the workflow sandbox.
export { ConnectorsPlugin, type ConnectorsPluginOptions } from './worker/plugin';
export { createConnectorWorker, runConnectorWorker, ensureSearchAttributes, type ConnectorWorkerOptions } from './worker/connector-worker';
export { createConnectorActivities, type ConnectorActivityDeps } from './activities/connector-activities';
export { ConnectorService, ConnectorValidationError, ConnectorNotFoundError, connectorDefinitionSchema, type ConnectorDefinition, type ConnectorView } from './worker/service';
export { ConnectorStore, StoreConflictError, StoreUnavailableError, type StoredConnector, type ConnectorRecord } from './worker/store/connector-store';
export { PgDatabase, PgliteDatabase, type SqlDatabase } from './worker/store/database';
export { Keyring, KeyringError } from './worker/keyring';
export { VaultSecretSource, VaultError, type VaultSecretRef, type VaultSourceOptions } from './worker/vault';
export { connectorServicesFromEnv, openDatabaseFromEnv } from './worker/config';
export { ConnectorRegistry, BUILT_IN_TYPES } from './connectors/registry';
export { restConnector } from './connectors/rest';
export { openaiConnector } from './connectors/openai';
export { agentConnector } from './connectors/agent';
export { postgresConnector } from './connectors/postgres';
export { mysqlConnector } from './connectors/mysql';
export type { ConnectorType, InvokeContext, ConnectionTestResult } from './connectors/types';
export { FailureType } from './connectors/errors';
export { MASK } from './worker/inputs';
