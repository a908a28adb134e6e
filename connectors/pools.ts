/**
 * The pools connector types keep (SQL connection pools, keep-alive agents, API clients), owned in one
 * place: each call leases its pool and releases it when done, so a pool is closed only when no call
 * uses it. Pools are known by connector name and version (`<name>@<version>`, the `poolKey`): once a
 * newer version of a connector is seen, pools of older versions are retired, closed as soon as their
 * last call ends. Pools unused for `idleTimeoutMs` are closed (those of deleted connectors and of
 * one-off overrides), and each type keeps at most `maxPools` open.
 */

/** A pool no call has used for this long is closed: 60 s. */
export const DEFAULT_POOL_IDLE_TIMEOUT_MS = 60_000;
/** Most pools one connector type keeps open: 50. */
export const DEFAULT_MAX_POOLS = 50;

/** How long a connector type keeps its pools, and how many. */
export interface PoolOptions {
  /**
   * A pool that no call has used for this long is closed, in milliseconds. The connections inside a
   * pool have shorter idle timeouts of their own; this one frees the pool itself. Default 60000 (60 s).
   */
  idleTimeoutMs?: number;
  /**
   * Most pools the type keeps open, over all connectors, versions and connection settings (a SQL
   * override of host, user or database gets a pool of its own). Opening one more first closes the
   * least recently used idle pool. Default 50.
   */
  maxPools?: number;
}

/** One open pool, as {@link ConnectorPools.list} reports it. */
export interface PoolInfo {
  /** `<connector name>@<version>`. */
  poolKey: string;
  /** Calls using the pool now. */
  leases: number;
  /** A newer version of the connector exists: the pool closes when its last call ends. */
  retired: boolean;
}

/** What the registry and tests see of a type's pools. */
export interface ConnectorPools {
  /**
   * Says that the version in `poolKey` exists: pools of older versions of that connector are closed
   * now when idle, else as soon as their last call ends.
   */
  retireOlderVersions(poolKey: string): void;
  /**
   * Without a key (worker shutdown), closes every pool now, also those in use. With a key, closes that
   * key's idle pools now and the others when their last call ends.
   */
  close(poolKey?: string): Promise<void>;
  /** The pools open now, least recently used first. */
  list(): PoolInfo[];
}

/** The use of a pool by one call; `release` exactly once when the call is done with it. */
export interface Lease<P> {
  readonly pool: P;
  /** Gives the pool back; a second call does nothing. */
  release(): void;
}

interface Entry<P> {
  key: string;
  poolKey: string;
  name: string;
  pool: P;
  leases: number;
  retired: boolean;
  idleTimer?: NodeJS.Timeout;
}

/** `name@3` → name and version; a key without a numeric version is never retired by version. */
function parsePoolKey(poolKey: string): { name: string; version?: number } {
  const at = poolKey.lastIndexOf('@');
  const version = at < 0 ? Number.NaN : Number(poolKey.slice(at + 1));
  return Number.isSafeInteger(version) ? { name: poolKey.slice(0, at), version } : { name: poolKey };
}

/** The pools of one connector type, keyed by pool key and by the connection settings within it. */
export class PoolManager<P> implements ConnectorPools {
  // Least recently used first: a pool moves to the end whenever its last call ends.
  private readonly entries = new Map<string, Entry<P>>();
  // Newest version seen per connector name, kept only while a pool of that name is open.
  private readonly newest = new Map<string, number>();
  private readonly closing = new Set<Promise<void>>();
  private readonly idleTimeoutMs: number;
  private readonly maxPools: number;

  /** `closePool` ends one pool; it is called once per pool, only when no call uses it (but at shutdown). */
  constructor(
    private readonly closePool: (pool: P) => Promise<unknown>,
    options: PoolOptions = {},
  ) {
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_POOL_IDLE_TIMEOUT_MS;
    this.maxPools = options.maxPools ?? DEFAULT_MAX_POOLS;
  }

  /**
   * The pool for `poolKey` and `settings` (a fingerprint of what the pool was built from), created
   * by `create` when there is none; release the lease when the call is done with the pool.
   */
  lease(poolKey: string, settings: string, create: () => P): Lease<P> {
    const key = `${poolKey}\n${settings}`;
    let entry = this.entries.get(key);
    if (entry) {
      // A retired pool still in use serves a pinned call of its version too, rather than opening another.
      entry.leases += 1;
      clearTimeout(entry.idleTimer);
      entry.idleTimer = undefined;
    } else {
      const { name, version } = parsePoolKey(poolKey);
      this.retireOlderVersions(poolKey);
      const newest = this.newest.get(name);
      // A pinned call of an older version (a retry after an update) still gets a pool, closed when it ends.
      const retired = version !== undefined && newest !== undefined && version < newest;
      this.makeRoom(1);
      entry = { key, poolKey, name, pool: create(), leases: 1, retired };
      this.entries.set(key, entry);
      if (version !== undefined) this.newest.set(name, Math.max(version, newest ?? version));
    }
    const leased = entry;
    let released = false;
    return {
      pool: leased.pool,
      release: () => {
        if (released) return;
        released = true;
        this.release(leased);
      },
    };
  }

  /** Runs `use` with the pool for `poolKey` and `settings`, leased for as long as it runs. */
  async use<T>(poolKey: string, settings: string, create: () => P, use: (pool: P) => Promise<T>): Promise<T> {
    const lease = this.lease(poolKey, settings, create);
    try {
      return await use(lease.pool);
    } finally {
      lease.release();
    }
  }

  retireOlderVersions(poolKey: string): void {
    const { name, version } = parsePoolKey(poolKey);
    if (version === undefined) return;
    const known = this.newest.get(name);
    // Nothing of this connector is open, so nothing to retire; an older version's pool opened later
    // is retired when this version's next call opens its own, or closes when idle.
    if (known === undefined || known >= version) return;
    this.newest.set(name, version);
    for (const entry of [...this.entries.values()]) {
      if (entry.name !== name || parsePoolKey(entry.poolKey).version === version) continue;
      entry.retired = true;
      if (entry.leases === 0) this.closeEntry(entry);
    }
  }

  async close(poolKey?: string): Promise<void> {
    for (const entry of [...this.entries.values()]) {
      if (poolKey !== undefined && entry.poolKey !== poolKey) continue;
      entry.retired = true;
      // At shutdown the worker has stopped taking calls: whatever still runs is cut short, as before.
      if (poolKey === undefined || entry.leases === 0) this.closeEntry(entry);
    }
    await Promise.all([...this.closing]);
  }

  list(): PoolInfo[] {
    return [...this.entries.values()].map(({ poolKey, leases, retired }) => ({ poolKey, leases, retired }));
  }

  private release(entry: Entry<P>): void {
    entry.leases -= 1;
    // Closed at shutdown while in use: nothing left to do.
    if (entry.leases > 0 || this.entries.get(entry.key) !== entry) return;
    this.entries.delete(entry.key);
    this.entries.set(entry.key, entry);
    if (entry.retired) {
      this.closeEntry(entry);
      return;
    }
    this.makeRoom(0);
    if (this.entries.get(entry.key) !== entry) return;
    entry.idleTimer = setTimeout(() => this.closeEntry(entry), this.idleTimeoutMs);
    entry.idleTimer.unref();
  }

  /**
   * Closes idle pools, least recently used first, until `adding` more fit under the cap. When every
   * pool is in use the cap is exceeded rather than making the call wait or fail (the connector's own
   * `pool_size` and limits bound what one pool does); each release then closes idle pools again
   * until the count is back under the cap.
   */
  private makeRoom(adding: number): void {
    while (this.entries.size + adding > this.maxPools) {
      const idle = [...this.entries.values()].find((entry) => entry.leases === 0);
      if (!idle) return;
      this.closeEntry(idle);
    }
  }

  private closeEntry(entry: Entry<P>): void {
    if (this.entries.get(entry.key) !== entry) return;
    this.entries.delete(entry.key);
    clearTimeout(entry.idleTimer);
    if (![...this.entries.values()].some((other) => other.name === entry.name)) this.newest.delete(entry.name);
    const closed: Promise<void> = Promise.resolve()
      .then(() => this.closePool(entry.pool))
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => this.closing.delete(closed));
    this.closing.add(closed);
  }
}
