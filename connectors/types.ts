import type { z } from 'zod';
import type { ConnectionTestResult } from '../workflows/types';
import type { ConnectorPools } from './pools';

// Shared with workflow code, which receives test results.
export type { ConnectionTestResult };

/** What `invoke` receives besides the inputs: the activity's context, reduced to what a type needs. */
export interface InvokeContext {
  /** Aborted when the activity is cancelled or times out; pass it to every network call. */
  signal: AbortSignal;
  /** Records liveness on long calls; a no-op outside an activity. */
  heartbeat(details?: unknown): void;
  /**
   * Key of the pools this call may reuse: `<connector name>@<version>` for stored connectors,
   * undefined for inline ones (which must not keep pools).
   */
  poolKey?: string;
  /**
   * The same on every attempt, re-run and replay of one `connection` (derived from its workflow ID),
   * and different for every other: what a type sends as an idempotency key, so that a system that
   * honours one drops a repeated call. Undefined outside a workflow (the CLI's and the API's runs).
   */
  idempotencyKey?: string;
  /** Name of the stored connector, for messages that must say which one to fix; undefined for inline ones. */
  connector?: string;
}

/** A tool a connector offers an agent: what the model is told about it. */
export interface ConnectorTool {
  name: string;
  title?: string;
  description?: string;
  /** JSON Schema of the tool's arguments. */
  input_schema: unknown;
}


/**
 * One kind of external system. Adding a type is adding one file that exports one of these and
 * registering it; nothing else changes.
 */
export interface ConnectorType<Schema extends z.ZodType = z.ZodType> {
  /** Upper-case type name used in profiles, e.g. `REST`. */
  name: string;
  /** One line for `connectors types` and the docs. */
  description: string;
  /** Schema of the fully merged inputs (profile, then Vault, then overrides). */
  schema: Schema;
  /**
   * Input paths whose values are secrets: encrypted at rest, masked on read, redacted from errors.
   * Dotted, matched case-insensitively; `*` alone matches any one segment, and within a segment any
   * run of characters (e.g. `auth.token`, `headers.*token*`). Derive it from the schema, where the
   * fields are marked (`sensitivePaths(schema)`, connectors/sensitivity.ts), rather than list it by hand.
   */
  sensitive: readonly string[];
  /** Performs the call. Throws errors built with connectors/errors.ts. */
  invoke(inputs: z.output<Schema>, context: InvokeContext): Promise<unknown>;
  /** A cheap liveness check. Never throws for an unreachable system: says so in `message`. */
  test(inputs: z.output<Schema>, context: InvokeContext): Promise<ConnectionTestResult>;
  /**
   * Describes the system: e.g. a database's schemas, tables and columns, or an API's OpenAPI document.
   * Optional; the result must not contain secrets.
   */
  introspect?(inputs: z.output<Schema>, context: InvokeContext): Promise<unknown>;
  /** A short, secret-free description of the call, for summaries: e.g. `POST /invoices`. */
  describeCall?(inputs: Record<string, unknown>): string | undefined;
  /**
   * Secrets in the form the type sends them, when that differs from the inputs (the Base64 of a
   * Basic credential), so that a system echoing the request is redacted of them too. Default: none.
   */
  secretForms?(inputs: z.output<Schema>): string[];
  /**
   * Where a call with these (merged, not yet validated) inputs goes, e.g. `https://api.example.com`
   * or `db.internal:5432`; undefined when the inputs do not say. A connector's secrets go only to
   * the destination its profile and Vault secrets name (or one it allows), so an override cannot
   * send them elsewhere. A type without it can reach only what its inputs name, whoever gives them.
   */
  destination?(inputs: Record<string, unknown>): string | undefined;
  /**
   * Inputs that choose what the connector worker itself runs (a stdio MCP server's `command`, `args`
   * and `env`: `NODE_OPTIONS` or `PATH` there run other code with the stored env). Only a stored
   * profile sets them, as its editor and the operator allowed; an override or an inline connector
   * that sets one is refused before anything starts, whatever `locked` says. Dotted paths, as `locked`.
   */
  profileOnly?: readonly string[];
  /**
   * For types that offer tools to an agent (MCP): the tools the system behind these inputs offers.
   * An AGENT may name a connector in `tool_connectors` only when its type has this and {@link toolCall}.
   */
  tools?(inputs: z.output<Schema>, context: InvokeContext): Promise<ConnectorTool[]>;
  /** The overrides that make `invoke` call tool `tool` with `args` and return its result as data (a tool error included). */
  toolCall?(tool: string, args: Record<string, unknown>): Record<string, unknown>;
  /** Closes pools kept for `poolKey` (when their calls end), or all of them now when no key is given. */
  close?(poolKey?: string): Promise<void>;
  /** The pools the type keeps (connectors/pools.ts), so that newer connector versions retire older ones' pools. */
  pools?: ConnectorPools;
}

/** Where a delegating type sends its call: another stored connector, with inputs that win over its profile. */
export interface DelegatedCall {
  /** Name of the stored connector that performs the call. */
  connector: string;
  /** Inputs applied on top of that connector's profile and Vault secrets (its locked fields still hold). */
  overrides: Record<string, unknown>;
}

/**
 * A type that performs no call of its own but shapes one for another stored connector: an agent
 * profile calls through its OPENAI connector, so changing that connector's key changes every agent.
 * Tests and introspection go to the target connector as well.
 */
export interface DelegatingConnectorType<Schema extends z.ZodType = z.ZodType> {
  name: string;
  description: string;
  schema: Schema;
  /** As {@link ConnectorType.sensitive}. */
  sensitive: readonly string[];
  delegate(inputs: z.output<Schema>): DelegatedCall;
  /**
   * For a call that takes several turns (an agent with tools): the conversation to run instead of the
   * one delegated call, or undefined to make that one call. The runner gives it a {@link ConversationPort},
   * through which every call goes through its own connector. Default: none.
   */
  conversation?(inputs: z.output<Schema>): ((port: ConversationPort) => Promise<unknown>) | undefined;
  describeCall?(inputs: Record<string, unknown>): string | undefined;
}

/**
 * What a conversation may do, each through a stored connector resolved as any call is (its own
 * secrets, Vault, locked fields, destination rule and limits). Every output comes back redacted of
 * the secrets of every call of the conversation so far (the model's, each tool connector's), so what
 * one system answers never hands another connector's secret to the model or the result.
 */
export interface ConversationPort {
  /** Who converses, for messages: `agent support_agent`, or `inline AGENT connector`. */
  subject: string;
  /** One call of the delegated connector (the model), with `overrides` on top of those `delegate` gives. */
  model(overrides: Record<string, unknown>): Promise<unknown>;
  /** The tools stored connector `connector` offers; refused when its type offers none. */
  tools(connector: string): Promise<ConnectorTool[]>;
  /** Calls tool `tool` of stored connector `connector` with `args`; its result, a tool error included. */
  callTool(connector: string, tool: string, args: Record<string, unknown>): Promise<unknown>;
  /** Records progress on long conversations (the activity's heartbeat details). */
  heartbeat(details: unknown): void;
}

/** Every kind of type the registry holds. */
export type AnyConnectorType = ConnectorType | DelegatingConnectorType;

export function isDelegating(type: AnyConnectorType): type is DelegatingConnectorType {
  return typeof (type as DelegatingConnectorType).delegate === 'function';
}
