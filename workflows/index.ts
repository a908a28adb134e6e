// temporal-connectors/workflows: the sandbox-safe entry point for workflow code.
export { connect, startConnection, ConnectorNameKey, ConnectorTypeKey, type ConnectionHandle } from './connect';
export { connection, DEFAULT_RETRY, DEFAULT_TIMEOUT } from './connection';
export * from './types';
