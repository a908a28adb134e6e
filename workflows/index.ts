// temporal-connectors/workflows: the sandbox-safe entry point for workflow code.
export {
  connect,
  startConnection,
  testConnection,
  introspectConnector,
  runAgent,
  ConnectorNameKey,
  ConnectorTypeKey,
  type AgentMessage,
  type ConnectionHandle,
} from './connect';
export { connection, DEFAULT_HEARTBEAT_TIMEOUT, DEFAULT_RETRY, DEFAULT_TIMEOUT } from './connection';
export * from './types';
export { FailureType, type FailureTypeName } from './failures';
