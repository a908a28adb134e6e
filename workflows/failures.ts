// The failure vocabulary: every failure a connection can end with is an ApplicationFailure of one of
// these types. Sandbox-safe and exported from `temporal-connectors/workflows`, so workflow code
// switches on `FailureType.NotFound` rather than a string; every mapper in the product uses them.

export const FailureType = {
  /** The named connector does not exist (or was deleted after the connection started). Not retried. */
  NotFound: 'Connector.NotFound',
  /** An inline connector, or a stored one, names a type no connector worker knows. Not retried. */
  UnknownType: 'Connector.UnknownType',
  /** The merged inputs, the overrides or the call are invalid; the message names the field. Not retried. */
  InvalidInput: 'Connector.InvalidInput',
  /** An override touches a field the connector locks. Not retried. */
  LockedField: 'Connector.LockedField',
  /** An override sends the call elsewhere without bringing the connector's secrets. Not retried. */
  DestinationNotAllowed: 'Connector.DestinationNotAllowed',
  /** A Vault secret the connector uses does not exist. Not retried. */
  VaultNotFound: 'Connector.Vault.NotFound',
  /** Vault refused the worker's token or policy, or the path is outside those the operator allows (TC_VAULT_PATHS). Not retried. */
  VaultDenied: 'Connector.Vault.PermissionDenied',
  /** Vault did not answer. Retried. */
  VaultUnavailable: 'Connector.Vault.Unavailable',
  /** The connector store did not answer. Retried. */
  StoreUnavailable: 'Connector.Store.Unavailable',
  /** A stored secret cannot be decrypted or encrypted with the configured keys. Not retried. */
  KeyringError: 'Connector.Keyring',
  /** The external system answered an HTTP error: 408, 409, 429 and 5xx are retried, other 4xx not. */
  Http: 'Connector.External.Http',
  /** The external system did not answer in time. Retried. */
  Timeout: 'Connector.External.Timeout',
  /** The connection to the external system failed or broke. Retried. */
  Network: 'Connector.External.Network',
  /** Any other failure of the external call. */
  External: 'Connector.External.Error',
  /**
   * The external system refused the connector's credentials (a wrong password, key, passphrase or
   * token, or a user it does not know). Not retried: the message names the connector to fix.
   */
  AuthRefused: 'Connector.External.Auth',
  /**
   * The SSH server offered a host key the connector does not pin (`host_key`): refused before any
   * credential was sent. Not retried; details: `{ offered }`, the SHA256 fingerprint to pin once checked.
   */
  HostKeyMismatch: 'Connector.HostKeyMismatch',
  /**
   * A remote command ended with a non-zero exit code the call does not accept. Not retried by
   * default; details: `{ exit_code, signal, stdout, stderr }` (bounded, redacted).
   */
  RemoteExitCode: 'Connector.Remote.ExitCode',
  /**
   * A tool the call ran (MCP `tools.call`) answered with `isError: true`: the tool ran and failed, and
   * the same arguments would fail again. Not retried; the message carries the tool's text (bounded,
   * redacted), details the whole result. A connector with `tool_errors: return` returns it instead.
   */
  ToolError: 'Connector.External.ToolError',
  /**
   * An AGENT's model asked for more tool calls than the agent's `max_steps` allows. Not retried;
   * details: the steps made so far.
   */
  AgentMaxSteps: 'Connector.Agent.MaxSteps',
  /**
   * A call with `limits` found, right before sending, that it may not send now: its slot's lease ran
   * out (while its activity task was queued, say) or belongs to another execution, or the rate window
   * is full. Nothing was sent. Retried: the `connection` workflow waits `nextRetryDelay` and asks for a
   * slot again without spending an attempt; details: `{ reason, wait_ms }`.
   */
  LimitsBusy: 'Connector.Limits.Busy',
  /**
   * A call with `limits` lost its slot's lease while it ran (its renewals did not reach the store in
   * time, and the place may have gone to another call): the call was stopped. Retried, as an attempt.
   */
  LimitsLeaseLost: 'Connector.Limits.LeaseLost',
  /** Management API and CLI only: a YAML or JSON document that cannot be read. */
  InvalidDocument: 'Connector.InvalidDocument',
  /** Management API only: a write whose expected version is stale. */
  Conflict: 'Connector.Conflict',
} as const;

export type FailureTypeName = (typeof FailureType)[keyof typeof FailureType];
