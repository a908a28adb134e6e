// Creates a Temporal Schedule that runs `scheduledInvoiceSync` (examples/scheduled.ts) at a fixed interval.
// Client-side code: it runs in Node, not in the workflow sandbox.
import { ScheduleOverlapPolicy, type Client, type ScheduleHandle } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import type { scheduledInvoiceSync } from './scheduled';

export interface InvoiceSyncScheduleOptions {
  /** The schedule's ID, e.g. `invoice-sync`. */
  scheduleId: string;
  /** Task queue of the worker that runs `scheduledInvoiceSync` (your worker, not the connector worker). */
  taskQueue: string;
  /** Name of the stored connector each run calls. */
  connector: string;
  /** Interval between runs, e.g. `'15m'`, `'1h'`. Default: `'1h'`. */
  every?: Duration;
  /**
   * What to do when a run is due while the previous one is still running. Default: SKIP.
   *
   * - SKIP: the due run is dropped. Right for a sync job: the run in flight already fetches the latest
   *   state, a second one would do the same work twice against the same API (twice the rate limit,
   *   twice the writes), and runs never pile up behind a slow or failing system.
   * - BUFFER_ONE: the due run waits and starts as soon as the current one ends; further due runs are
   *   dropped while one waits. Connections then stay strictly one after another, and one run right
   *   after a slow one catches up on changes made during it.
   * - ALLOW_ALL: every due run starts at once. Runs, and their `connection` children, run side by side
   *   against the external system; their workflow IDs stay distinct (each run's ID carries its
   *   scheduled time), but the system sees concurrent requests. Use it only for calls that are safe to
   *   run concurrently (idempotent, or partitioned by run).
   */
  overlap?: ScheduleOverlapPolicy;
  /** Task queue of the connector worker, passed to each run. Default: the workflow API's default, `connectors`. */
  connectorTaskQueue?: string;
  /** Workflow ID prefix of the runs: each run is `<workflowId>-<scheduled time, to the second>`. Default: the schedule ID. */
  workflowId?: string;
  /** Create the schedule paused: it then runs only when triggered. Default: false. */
  paused?: boolean;
}

/**
 * Creates the schedule and returns its handle: `handle.trigger(ScheduleOverlapPolicy.SKIP)` runs it now,
 * `handle.describe()` shows its recent runs, `handle.delete()` removes it (runs already started keep running).
 */
export async function createInvoiceSyncSchedule(client: Client, options: InvoiceSyncScheduleOptions): Promise<ScheduleHandle> {
  const { scheduleId, taskQueue, connector, every = '1h', overlap = ScheduleOverlapPolicy.SKIP } = options;
  return client.schedule.create<typeof scheduledInvoiceSync>({
    scheduleId,
    spec: { intervals: [{ every }] },
    action: {
      type: 'startWorkflow',
      workflowType: 'scheduledInvoiceSync',
      workflowId: options.workflowId ?? scheduleId,
      taskQueue,
      args: [{ connector, taskQueue: options.connectorTaskQueue }],
    },
    policies: { overlap },
    state: { paused: options.paused ?? false },
  });
}
