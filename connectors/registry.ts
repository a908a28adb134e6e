import { agentConnector } from './agent';
import { createMcpConnector, mcpConnector } from './mcp';
import { mysqlConnector } from './mysql';
import { openaiConnector } from './openai';
import { postgresConnector } from './postgres';
import { restConnector } from './rest';
import { sftpConnector } from './sftp';
import { smtpConnector } from './smtp';
import { sshConnector } from './ssh';
import { isDelegating, type AnyConnectorType } from './types';

/** The connector types a worker knows, by upper-case name. */
export class ConnectorRegistry {
  private readonly types = new Map<string, AnyConnectorType>();

  constructor(types: Iterable<AnyConnectorType> = BUILT_IN_TYPES) {
    for (const type of types) this.register(type);
  }

  register(type: AnyConnectorType): this {
    this.types.set(type.name.toUpperCase(), type);
    return this;
  }

  /** The type named `name` (case-insensitive), or undefined. */
  get(name: string): AnyConnectorType | undefined {
    return this.types.get(String(name).toUpperCase());
  }

  names(): string[] {
    return [...this.types.keys()].sort();
  }

  all(): AnyConnectorType[] {
    return [...this.types.values()];
  }

  /**
   * Says that the connector version in `poolKey` (`<name>@<version>`) is in use: every type retires
   * its pools of older versions of that connector (closed when their last call ends), also when the
   * connector changed type.
   */
  retireOlderVersions(poolKey: string): void {
    for (const type of this.all()) if (!isDelegating(type)) type.pools?.retireOlderVersions(poolKey);
  }

  /** Closes every pool every type keeps (worker shutdown), or those of one connector version. */
  async close(poolKey?: string): Promise<void> {
    await Promise.allSettled(this.all().map((t) => (isDelegating(t) ? undefined : t.close?.(poolKey))));
  }
}

// Adding a type: write connectors/<name>.ts exporting a ConnectorType, and list it here.
export const BUILT_IN_TYPES: readonly AnyConnectorType[] = [restConnector, openaiConnector, postgresConnector, mysqlConnector, sshConnector, sftpConnector, smtpConnector, mcpConnector, agentConnector] as unknown as AnyConnectorType[];

/** What the operator decides about the built-in types, read once at start (core/config.ts). */
export interface BuiltInTypeOptions {
  /** `TC_MCP_STDIO=on`: MCP connectors may start stdio servers (`command`). Default: false. */
  mcpStdio?: boolean;
}

/** The built-in types as the operator configured them: {@link BUILT_IN_TYPES}, with an MCP type that may start stdio servers when allowed. */
export function builtInTypes(options: BuiltInTypeOptions = {}): readonly AnyConnectorType[] {
  if (!options.mcpStdio) return BUILT_IN_TYPES;
  const mcp = createMcpConnector({ stdio: true }) as unknown as AnyConnectorType;
  return BUILT_IN_TYPES.map((type) => (type === (mcpConnector as unknown) ? mcp : type));
}
