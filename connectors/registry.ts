import { restConnector } from './rest';
import type { ConnectorType } from './types';

/** The connector types a worker knows, by upper-case name. */
export class ConnectorRegistry {
  private readonly types = new Map<string, ConnectorType>();

  constructor(types: Iterable<ConnectorType> = BUILT_IN_TYPES) {
    for (const type of types) this.register(type);
  }

  register(type: ConnectorType): this {
    this.types.set(type.name.toUpperCase(), type);
    return this;
  }

  /** The type named `name` (case-insensitive), or undefined. */
  get(name: string): ConnectorType | undefined {
    return this.types.get(String(name).toUpperCase());
  }

  names(): string[] {
    return [...this.types.keys()].sort();
  }

  all(): ConnectorType[] {
    return [...this.types.values()];
  }

  /** Closes every pool every type keeps (worker shutdown), or those of one connector version. */
  async close(poolKey?: string): Promise<void> {
    await Promise.allSettled(this.all().map((t) => t.close?.(poolKey)));
  }
}

// Adding a type: write connectors/<name>.ts exporting a ConnectorType, and list it here.
export const BUILT_IN_TYPES: readonly ConnectorType[] = [restConnector as unknown as ConnectorType];
