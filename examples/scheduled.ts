// A workflow made to be started by a Temporal Schedule (see create-schedule.ts).
// Sandbox-safe: it imports only the connectors workflow API and @temporalio/workflow.
import { connect } from '../workflows';

export interface ScheduledInvoiceSyncArgs {
  /** Name of a stored connector, e.g. `billing_api`. */
  connector: string;
  /** Task queue of the connector worker. Default: `connectors`. */
  taskQueue?: string;
}

/**
 * One sync run: `GET <connector's base_url>/sync` through the stored connector, returning its output.
 *
 * The connector is resolved when the run calls it, not when the schedule was created, so an update
 * to the connector (`connectors apply`, the HTTP API, `service.apply`) changes the next scheduled run
 * without redeploying or restarting anything. The call is a `connection` child with the ID
 * `<this run's workflow ID>/connection/1`.
 */
export async function scheduledInvoiceSync(args: ScheduledInvoiceSyncArgs): Promise<unknown> {
  return connect(args.connector, { path: '/sync' }, { taskQueue: args.taskQueue });
}
