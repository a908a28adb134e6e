// Per-connector limits held across every connector worker that shares the store: a lease table in
// the store's own PostgreSQL. Why a table, and not Temporal's task-queue rate limits or fairness keys:
// those limit a whole task queue (every connector at once) or need a server that supports them and
// a queue per connector, they count activity starts rather than calls in flight, and they cannot
// honour a 429's Retry-After. A lease expires unless its call renews it, so a worker that dies gives
// its slots back within one lease time; decisions are serialised per connector by an advisory lock.
import { randomUUID } from 'node:crypto';
import { parseDurationMs } from '../connectors/durations';
import type { ConnectorLimits, SlotAnswer } from '../workflows/types';
import type { SqlDatabase, SqlExecutor } from './store/database';

/** Default of {@link LimiterOptions.leaseMs}: 15 s. */
export const DEFAULT_LEASE_MS = 15_000;

/**
 * How soon a call that waits for a free slot asks again: 250 ms. Slots are not announced, so a waiting
 * call polls (each poll is a short local activity and a durable timer, holding no worker slot).
 */
export const SLOT_POLL_MS = 250;

/** A waiting call not seen for this long no longer counts as waiting: 5 s. */
const WAITER_STALE_MS = 5_000;

/** Default of `limits.max_backoff`: 10 min. */
export const DEFAULT_MAX_BACKOFF_MS = 600_000;

/** Most that `limits.max_backoff` may be: 1 h. */
export const MAX_BACKOFF_LIMIT_MS = 3_600_000;

/**
 * Longest a connector stays paused by an answer from outside (a `Retry-After`), in milliseconds: its
 * `limits.max_backoff`, else 10 min. Applies to the shared back-off and to the next retry delay alike.
 */
export function maxBackoffMs(limits: ConnectorLimits | undefined): number {
  const set = limits?.max_backoff !== undefined ? parseDurationMs(limits.max_backoff) : undefined;
  return Math.min(MAX_BACKOFF_LIMIT_MS, set ?? DEFAULT_MAX_BACKOFF_MS);
}

export interface LimiterOptions {
  /**
   * How long a lease lasts without renewal, in milliseconds: the longest a worker that died can keep
   * its slots. A running call renews its lease every third of it. Default: 15000 (15 s).
   */
  leaseMs?: number;
}

/** What `connectors get` and the API show of a connector's limits in use. */
export interface LimitsUsage {
  /** Calls holding a slot now. */
  in_flight: number;
  /** Calls that asked for a slot within the last 5 s and wait. */
  waiting: number;
  /** Calls started within the current rate period, when the connector has a rate. */
  started_in_period?: number;
  /** Until when a 429 asked every caller to wait (ISO time), when it still applies. */
  backoff_until?: string;
}

/** The lease and rate state of connectors with `limits`, in the store's database. */
export class ConnectorLimiter {
  readonly leaseMs: number;

  constructor(
    /** The store's database, which holds the lease tables. */
    readonly db: SqlDatabase,
    options: LimiterOptions = {},
  ) {
    this.leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    if (!(this.leaseMs >= 1000)) throw new Error('leaseMs must be at least 1000 (1 s)');
  }

  /**
   * A slot of `connector` for `holder` under `limits` (read by the caller from the connector's current
   * version, so a change applies to the next slot), or how long to wait and why.
   */
  async acquire(connector: string, limits: ConnectorLimits, holder: string): Promise<Exclude<SlotAnswer, { granted: true }> | { granted: true; lease: string; in_use: number }> {
    const perMs = limits.rate ? parseDurationMs(limits.rate.per) : undefined;
    return this.db.transaction(async (tx) => {
      // Every time below is taken once the lock is held: now() is the start of the transaction, which
      // may have waited for the lock behind other workers' decisions, and a start or lease recorded
      // that much in the past would let the rate and the lease end early by as much.
      const at = await lock(tx, connector);
      await tx.query('DELETE FROM tc_limit_leases WHERE connector = $1 AND expires_at < $2::timestamptz', [connector, at]);
      const [{ in_use }] = await tx.query<{ in_use: number }>('SELECT count(*)::int AS in_use FROM tc_limit_leases WHERE connector = $1', [connector]);
      const refuse = async (reason: 'concurrency' | 'rate' | 'backoff', waitMs: number, extra: { backoff_until?: string } = {}) => {
        await tx.query(
          `INSERT INTO tc_limit_waiters (connector, holder, seen_at) VALUES ($1, $2, $3::timestamptz)
           ON CONFLICT (connector, holder) DO UPDATE SET seen_at = EXCLUDED.seen_at`,
          [connector, holder, at],
        );
        await tx.query(`DELETE FROM tc_limit_waiters WHERE connector = $1 AND seen_at < $2::timestamptz - interval '1 minute'`, [connector, at]);
        const [{ waiting }] = await tx.query<{ waiting: number }>(
          `SELECT count(*)::int AS waiting FROM tc_limit_waiters WHERE connector = $1 AND seen_at > $3::timestamptz - make_interval(secs => $2)`,
          [connector, WAITER_STALE_MS / 1000, at],
        );
        return {
          granted: false as const,
          reason,
          wait_ms: Math.max(1, Math.ceil(waitMs)),
          in_use,
          waiting,
          ...(limits.max_concurrent !== undefined && { max_concurrent: limits.max_concurrent }),
          ...extra,
        };
      };

      const [backoff] = await tx.query<{ until: Date; wait_ms: number }>(
        `SELECT until, extract(epoch FROM (until - $2::timestamptz)) * 1000 AS wait_ms FROM tc_limit_backoffs WHERE connector = $1 AND until > $2::timestamptz`,
        [connector, at],
      );
      if (backoff) return refuse('backoff', Number(backoff.wait_ms), { backoff_until: new Date(backoff.until).toISOString() });

      if (limits.max_concurrent !== undefined && in_use >= limits.max_concurrent) return refuse('concurrency', SLOT_POLL_MS);

      if (limits.rate && perMs !== undefined) {
        await tx.query('DELETE FROM tc_limit_starts WHERE connector = $1 AND started_at <= $3::timestamptz - make_interval(secs => $2)', [connector, perMs / 1000, at]);
        const [window] = await tx.query<{ started: number; wait_ms: number | null }>(
          `SELECT count(*)::int AS started,
                  extract(epoch FROM (min(started_at) + make_interval(secs => $2) - $3::timestamptz)) * 1000 AS wait_ms
             FROM tc_limit_starts WHERE connector = $1`,
          [connector, perMs / 1000, at],
        );
        if (window.started >= limits.rate.calls) return refuse('rate', Number(window.wait_ms ?? SLOT_POLL_MS));
        await tx.query('INSERT INTO tc_limit_starts (connector, started_at) VALUES ($1, $2::timestamptz)', [connector, at]);
      }

      const lease = randomUUID();
      await tx.query(`INSERT INTO tc_limit_leases (id, connector, holder, expires_at) VALUES ($1, $2, $3, $5::timestamptz + make_interval(secs => $4))`, [
        lease,
        connector,
        holder,
        this.leaseMs / 1000,
        at,
      ]);
      await tx.query('DELETE FROM tc_limit_waiters WHERE connector = $1 AND holder = $2', [connector, holder]);
      return { granted: true as const, lease, in_use: in_use + 1 };
    });
  }

  /** Keeps a lease for another lease time; false when it had expired and was taken back. */
  async renew(lease: string): Promise<boolean> {
    const rows = await this.db.query(`UPDATE tc_limit_leases SET expires_at = now() + make_interval(secs => $2) WHERE id = $1 RETURNING id`, [lease, this.leaseMs / 1000]);
    return rows.length > 0;
  }

  async release(lease: string): Promise<void> {
    await this.db.query('DELETE FROM tc_limit_leases WHERE id = $1', [lease]);
  }

  /**
   * Makes every later call through `connector` wait `ms` (a 429's Retry-After, already capped by the
   * caller with {@link maxBackoffMs}); a longer back-off already set stays.
   */
  async backOff(connector: string, ms: number): Promise<void> {
    await this.db.query(
      `INSERT INTO tc_limit_backoffs (connector, until) VALUES ($1, now() + make_interval(secs => $2))
       ON CONFLICT (connector) DO UPDATE SET until = GREATEST(tc_limit_backoffs.until, EXCLUDED.until)`,
      [connector, ms / 1000],
    );
  }

  /** Ends the back-off of each of `connectors` (a 429's pause): they take calls again at once. Returns how many had one. */
  async clearBackoff(connectors: readonly string[]): Promise<number> {
    if (connectors.length === 0) return 0;
    // Ones already over go too; only a back-off still in force counts as cleared.
    const rows = await this.db.query<{ active: boolean }>('DELETE FROM tc_limit_backoffs WHERE connector = ANY($1::text[]) RETURNING until > now() AS active', [connectors]);
    return rows.filter((r) => r.active).length;
  }

  /** The limits of `connector` in use now. */
  async usage(connector: string, limits: ConnectorLimits): Promise<LimitsUsage> {
    const perMs = limits.rate ? parseDurationMs(limits.rate.per) : undefined;
    const [row] = await this.db.query<{ in_flight: number; waiting: number; started: number; backoff_until: Date | null }>(
      `SELECT (SELECT count(*)::int FROM tc_limit_leases WHERE connector = $1 AND expires_at >= now()) AS in_flight,
              (SELECT count(*)::int FROM tc_limit_waiters WHERE connector = $1 AND seen_at > now() - make_interval(secs => $2)) AS waiting,
              (SELECT count(*)::int FROM tc_limit_starts WHERE connector = $1 AND started_at > now() - make_interval(secs => $3)) AS started,
              (SELECT until FROM tc_limit_backoffs WHERE connector = $1 AND until > now()) AS backoff_until`,
      [connector, WAITER_STALE_MS / 1000, (perMs ?? 0) / 1000],
    );
    return {
      in_flight: row.in_flight,
      waiting: row.waiting,
      ...(perMs !== undefined && { started_in_period: row.started }),
      ...(row.backoff_until && { backoff_until: new Date(row.backoff_until).toISOString() }),
    };
  }
}

/**
 * Serialises decisions about one connector's slots across every worker (released at commit), and
 * returns the time the lock was taken: PostgreSQL's text form, exact to the microsecond with its offset.
 */
async function lock(tx: SqlExecutor, connector: string): Promise<string> {
  await tx.query(`SELECT pg_advisory_xact_lock(hashtext('tc_limits:' || $1))`, [connector]);
  const [{ at }] = await tx.query<{ at: string }>('SELECT clock_timestamp()::text AS at');
  return at;
}
