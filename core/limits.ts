// Per-connector limits held across every connector worker that shares the store: a lease table in
// the store's own PostgreSQL. Why a table, and not Temporal's task-queue rate limits or fairness keys:
// those limit a whole task queue (every connector at once) or need a server that supports them and
// a queue per connector, they count activity starts rather than calls in flight, and they cannot
// honour a 429's Retry-After. A lease expires unless its call renews it, so a worker that dies gives
// its slots back within one lease time; decisions are serialised per connector by an advisory lock.
//
// A slot is granted in two steps. `acquire`, polled durably by the `connection` workflow, grants a
// lease (a place under `max_concurrent`) that also reserves a place in the rate window. `start`, run
// by the process that sends, right before it sends, turns the reservation into a counted start: only
// then is the lease checked once more (still held, by this execution, not used before) and the start
// time taken. A start counted at the grant would leave a variable time later (a queued activity task,
// a slow resolution), so two grants a period apart could reach the target closer than that.
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
 * Default of {@link LimiterOptions.rateMarginMs}: 100 ms. A start is recorded in the store a moment
 * before the request leaves (commit, the event loop, a new connection), and that moment varies from
 * call to call and from worker to worker; counting each start for `per` plus this margin keeps two
 * requests a window apart at the target even when the earlier one left late and the later one early.
 */
export const DEFAULT_RATE_MARGIN_MS = 100;

/**
 * Longest a connector stays paused by an answer from outside (a `Retry-After`), in milliseconds: its
 * `limits.max_backoff`, else 10 min. Applies to the shared back-off and to the next retry delay alike.
 */
export function maxBackoffMs(limits: ConnectorLimits | undefined): number {
  const set = limits?.max_backoff !== undefined ? parseDurationMs(limits.max_backoff) : undefined;
  return Math.min(MAX_BACKOFF_LIMIT_MS, set ?? DEFAULT_MAX_BACKOFF_MS);
}

/** The execution a slot belongs to: its workflow ID and run ID, as the activity's own info names them. */
export interface SlotOwner {
  workflowId: string;
  runId: string;
}

/** What {@link ConnectorLimiter.start} answers: the call may send now, or why not and when to ask again. */
export type StartAnswer =
  | { started: true }
  | { started: false; reason: 'lost' | 'expired' | 'foreign' | 'used' | 'rate'; wait_ms: number };

export interface LimiterOptions {
  /**
   * How long a lease lasts without renewal, in milliseconds: the longest a worker that died can keep
   * its slots. A running call renews its lease every third of it. Default: 15000 (15 s).
   */
  leaseMs?: number;
  /**
   * How much longer than its `per` a start counts against a rate, in milliseconds: room for the time
   * between recording a start and the request reaching the target, which varies. Default: 100 (100 ms).
   */
  rateMarginMs?: number;
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
  readonly rateMarginMs: number;

  constructor(
    /** The store's database, which holds the lease tables. */
    readonly db: SqlDatabase,
    options: LimiterOptions = {},
  ) {
    this.leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    if (!(this.leaseMs >= 1000)) throw new Error('leaseMs must be at least 1000 (1 s)');
    this.rateMarginMs = options.rateMarginMs ?? DEFAULT_RATE_MARGIN_MS;
    if (!(this.rateMarginMs >= 0)) throw new Error('rateMarginMs must be 0 or more');
  }

  /** How long a start counts against `limits.rate`, in milliseconds: its `per` plus the margin. */
  private rateWindowMs(limits: ConnectorLimits): number | undefined {
    const perMs = limits.rate ? parseDurationMs(limits.rate.per) : undefined;
    return perMs === undefined ? undefined : perMs + this.rateMarginMs;
  }

  /**
   * A slot of `connector` for `holder` under `limits` (read by the caller from the connector's current
   * version, so a change applies to the next slot), or how long to wait and why. The lease belongs to
   * `owner`, the execution that will send: only it may {@link start} the call.
   */
  async acquire(
    connector: string,
    limits: ConnectorLimits,
    holder: string,
    owner?: SlotOwner,
  ): Promise<Exclude<SlotAnswer, { granted: true }> | { granted: true; lease: string; in_use: number }> {
    const windowMs = this.rateWindowMs(limits);
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

      if (limits.rate && windowMs !== undefined) {
        // Room in the window: starts counted in it, and the grants not yet started (each will start
        // within its lease or give its place back when the lease ends).
        const window = await rateWindow(tx, connector, windowMs, at);
        const [{ reserved }] = await tx.query<{ reserved: number }>(
          'SELECT count(*)::int AS reserved FROM tc_limit_leases WHERE connector = $1 AND started_at IS NULL',
          [connector],
        );
        if (window.started + reserved >= limits.rate.calls) {
          // Full of starts: until the oldest leaves the window. Full of reservations: they start (or end) soon.
          return refuse('rate', window.started > 0 && reserved < limits.rate.calls ? window.wait_ms : SLOT_POLL_MS);
        }
      }

      const lease = randomUUID();
      await tx.query(
        `INSERT INTO tc_limit_leases (id, connector, holder, expires_at, owner_workflow_id, owner_run_id)
         VALUES ($1, $2, $3, $5::timestamptz + make_interval(secs => $4), $6, $7)`,
        [lease, connector, holder, this.leaseMs / 1000, at, owner?.workflowId ?? null, owner?.runId ?? null],
      );
      await tx.query('DELETE FROM tc_limit_waiters WHERE connector = $1 AND holder = $2', [connector, holder]);
      return { granted: true as const, lease, in_use: in_use + 1 };
    });
  }

  /**
   * Right before the call is sent, by the process that sends: takes the start that `lease` reserved,
   * at this moment. The lease must still be held (not expired, not taken back), belong to `owner` (the
   * sending activity's own execution: a lease ID is visible in other executions' histories, so
   * whoever presents one proves nothing), not have started before, and the rate window must have room.
   * Otherwise nothing may be sent: the answer says why, and how long to wait before asking for a slot again.
   */
  async start(connector: string, lease: string, owner: SlotOwner, limits: ConnectorLimits): Promise<StartAnswer> {
    const windowMs = this.rateWindowMs(limits);
    return this.db.transaction(async (tx) => {
      const at = await lock(tx, connector);
      const [held] = await tx.query<{ owner_workflow_id: string | null; owner_run_id: string | null; started: boolean; expired: boolean }>(
        `SELECT owner_workflow_id, owner_run_id, started_at IS NOT NULL AS started, expires_at < $3::timestamptz AS expired
           FROM tc_limit_leases WHERE id = $1 AND connector = $2`,
        [lease, connector, at],
      );
      if (!held) return { started: false, reason: 'lost', wait_ms: SLOT_POLL_MS };
      if (held.owner_workflow_id !== owner.workflowId || held.owner_run_id !== owner.runId) return { started: false, reason: 'foreign', wait_ms: SLOT_POLL_MS };
      if (held.expired) {
        // Its place may be given to another call at any moment: it is not this call's any more.
        await tx.query('DELETE FROM tc_limit_leases WHERE id = $1', [lease]);
        return { started: false, reason: 'expired', wait_ms: SLOT_POLL_MS };
      }
      if (held.started) return { started: false, reason: 'used', wait_ms: SLOT_POLL_MS };
      if (limits.rate && windowMs !== undefined) {
        const window = await rateWindow(tx, connector, windowMs, at);
        if (window.started >= limits.rate.calls) return { started: false, reason: 'rate', wait_ms: Math.max(1, Math.ceil(window.wait_ms)) };
        await tx.query('INSERT INTO tc_limit_starts (connector, started_at) VALUES ($1, $2::timestamptz)', [connector, at]);
      }
      await tx.query(`UPDATE tc_limit_leases SET started_at = $2::timestamptz, expires_at = $2::timestamptz + make_interval(secs => $3) WHERE id = $1`, [
        lease,
        at,
        this.leaseMs / 1000,
      ]);
      return { started: true };
    });
  }

  /**
   * Keeps a lease for another lease time; false when it had expired (whether or not another call has
   * taken its place yet), or, with `owner`, is not that execution's: the slot is not this call's.
   */
  async renew(lease: string, owner?: SlotOwner): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE tc_limit_leases SET expires_at = clock_timestamp() + make_interval(secs => $2)
        WHERE id = $1 AND expires_at >= clock_timestamp() ${owner ? 'AND owner_workflow_id = $3 AND owner_run_id = $4' : ''} RETURNING id`,
      owner ? [lease, this.leaseMs / 1000, owner.workflowId, owner.runId] : [lease, this.leaseMs / 1000],
    );
    return rows.length > 0;
  }

  /**
   * Gives a slot back. With `owner`, only a lease of that execution: a call that presents another
   * execution's lease must not free that execution's place.
   */
  async release(lease: string, owner?: SlotOwner): Promise<void> {
    if (owner) await this.db.query('DELETE FROM tc_limit_leases WHERE id = $1 AND owner_workflow_id = $2 AND owner_run_id = $3', [lease, owner.workflowId, owner.runId]);
    else await this.db.query('DELETE FROM tc_limit_leases WHERE id = $1', [lease]);
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

/** Starts of `connector` that still count at `at` (older ones are dropped), and when the oldest stops counting. */
async function rateWindow(tx: SqlExecutor, connector: string, windowMs: number, at: string): Promise<{ started: number; wait_ms: number }> {
  await tx.query('DELETE FROM tc_limit_starts WHERE connector = $1 AND started_at <= $3::timestamptz - make_interval(secs => $2)', [connector, windowMs / 1000, at]);
  const [window] = await tx.query<{ started: number; wait_ms: number | null }>(
    `SELECT count(*)::int AS started,
            extract(epoch FROM (min(started_at) + make_interval(secs => $2) - $3::timestamptz)) * 1000 AS wait_ms
       FROM tc_limit_starts WHERE connector = $1`,
    [connector, windowMs / 1000, at],
  );
  return { started: window.started, wait_ms: Number(window.wait_ms ?? SLOT_POLL_MS) };
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
