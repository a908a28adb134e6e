// Parent workflows of `npm run bench` (bench/connections.ts), run by the bench's own user worker
// (bench/connections-worker.ts). Sandbox-safe, like workflows/: only @temporalio/workflow and the
// package's workflow entry point.
import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import { connect, DEFAULT_RETRY, type ConnectorInputs } from '../workflows';

/** The ways of making one call that go through Temporal. */
export type WorkflowCallMode = 'B1' | 'B2' | 'B3' | 'B4' | 'B5';

/** The bench worker's plain activity: the call B1 and B2 make, as a user would write it. */
export interface BenchActivities {
  /** GET `url` with fetch; returns the JSON body. */
  benchHttpGet(url: string): Promise<unknown>;
}

/** Input of {@link benchCalls}. */
export interface BenchCallsInput {
  mode: WorkflowCallMode;
  /** URL of the HTTP target with its delay, for B1 and B2. */
  url: string;
  /** Stored connector that B3 and B4 call, and their overrides (path and delay). */
  connector: string;
  overrides: ConnectorInputs;
  /** Task queue of the bench's connector worker. */
  connectorQueue: string;
  /** Calls in all. */
  calls: number;
  /** Calls in flight at once. */
  concurrency: number;
}

// The same per-attempt timeout and retry policy as a `connection` without settings of its own, so
// that B1 and B2 differ from B3 and B4 only in what connect() adds.
const activityOptions = { startToCloseTimeout: '30s', retry: DEFAULT_RETRY } as const;
const { benchHttpGet } = proxyActivities<BenchActivities>(activityOptions);
const { benchHttpGet: benchHttpGetLocally } = proxyLocalActivities<BenchActivities>(activityOptions);

function oneCall(input: BenchCallsInput): () => Promise<unknown> {
  switch (input.mode) {
    case 'B1':
      return () => benchHttpGet(input.url);
    case 'B2':
      return () => benchHttpGetLocally(input.url);
    case 'B3':
      return () => connect(input.connector, input.overrides, { taskQueue: input.connectorQueue });
    case 'B4':
      return () => connect(input.connector, input.overrides, { taskQueue: input.connectorQueue, localActivity: true });
    case 'B5':
      return () => connect(input.connector, input.overrides, { taskQueue: input.connectorQueue, localActivity: false });
  }
}

/**
 * Makes `calls` calls, `concurrency` of them in flight at once: that many lanes under one
 * Promise.all, each starting its next call as soon as its last one ends, so the number in flight
 * stays at `concurrency` until the last calls (batches would wait for each batch's slowest call).
 */
export async function benchCalls(input: BenchCallsInput): Promise<number> {
  const call = oneCall(input);
  let started = 0;
  const lane = async () => {
    while (started < input.calls) {
      started++;
      await call();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(input.concurrency, input.calls)) }, lane));
  return started;
}

/** A workflow that does nothing: the cost of starting a workflow and awaiting its result, for reference (W0). */
export async function benchEmpty(): Promise<void> {}
