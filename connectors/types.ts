import type { z } from 'zod';

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
}

/** Result of a connection test: a person reads `message`. */
export interface ConnectionTestResult {
  ok: boolean;
  message: string;
  latency_ms: number;
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
   * Dotted, matched case-insensitively, `*` matches one segment (e.g. `headers.authorization`).
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
  /** Closes pools kept for `poolKey`, or all of them when no key is given. */
  close?(poolKey?: string): Promise<void>;
}
