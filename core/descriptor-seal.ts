// The seal that lets `connectors.invoke` trust the connector version in its input. Only the worker
// decides what a call runs: `connectors.describe` (run by the `connection` workflow) picks the newest
// version and seals it for that execution; `connectors.invoke` runs a pinned version only when its
// seal verifies for its own execution, else the newest. Anyone may start `connection` or schedule
// `connectors.invoke` on the connectors task queue with any input, and every seal ends up in some
// history, so a seal binds the connector, the version and the execution (workflow ID and run ID, as
// the activity's own info reports them): copied into another execution it proves nothing.
//
// The key: a random secret the migrations create once in the store (tc_worker_secrets), shared by
// every connector worker on that store. Not derived from the keyring: connectors without secrets
// need no keyring, yet their versions and limits still need protecting; and a keyring rotation would
// silently unpin calls in flight. Whoever can read the store's tables can forge a seal, but could
// rewrite the connectors themselves anyway; API users and workflow authors cannot read it.
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Name of the worker secret that keys the seal (core/store/connector-store.ts, migration 7). */
export const DESCRIPTOR_SEAL_SECRET = 'descriptor-seal';

const PREFIX = 'v1.';

/** The execution a seal is made for: as `Context.current().info.workflowExecution` names it. */
export interface SealedFor {
  workflowId: string;
  runId: string;
}

/** Seals and checks `(connector, version, execution)` with the store's shared secret. */
export class DescriptorSeal {
  private readonly key: Buffer;

  constructor(secret: string) {
    if (secret.length < 32) throw new Error('the descriptor seal needs a secret of at least 32 characters');
    this.key = Buffer.from(secret, 'utf8');
  }

  /** The seal of `version` of `connector` for `execution`. */
  seal(connector: string, version: number, execution: SealedFor): string {
    return PREFIX + this.mac(connector, version, execution).toString('base64url');
  }

  /** Whether `seal` was made by {@link seal} for exactly this connector, version and execution. */
  verify(connector: string, version: number, execution: SealedFor, seal: unknown): boolean {
    if (typeof seal !== 'string' || !seal.startsWith(PREFIX)) return false;
    const given = Buffer.from(seal.slice(PREFIX.length), 'base64url');
    const expected = this.mac(connector, version, execution);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  private mac(connector: string, version: number, { workflowId, runId }: SealedFor): Buffer {
    // JSON: no choice of fields can make two different tuples read the same.
    return createHmac('sha256', this.key).update(JSON.stringify(['temporal-connectors descriptor seal v1', connector, version, workflowId, runId])).digest();
  }
}
