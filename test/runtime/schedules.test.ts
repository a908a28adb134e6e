import { ScheduleOverlapPolicy, type ScheduleExecutionResult, type ScheduleHandle } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createInvoiceSyncSchedule, type InvoiceSyncScheduleOptions } from '../../examples/create-schedule';
import type { ConnectionResult } from '../../workflows';
import { startTestHttpServer, type RecordedRequest, type TestHttpServer } from '../fixtures/http-server';
import { startHarness, type Harness } from '../support/harness';
import { testStack, uniqueName } from '../support/stack';
import { sleep } from '../support/wait';

/** What the REST connector returns from the fixture servers (both answer JSON). */
interface SyncOutput {
  status: number;
  body: { path: string; headers: Record<string, string> };
}


// Two rules for triggering a schedule twice, both from the server (1.29 scheduler workflow):
// - Trigger again only once the previous trigger has taken its action: triggers that reach the
//   scheduler in the same workflow task overwrite each other, and only the last one takes effect.
// - Trigger again only in a later second (nextSecond below).

/**
 * Waits until the wall clock is in a later second than now. A schedule's run ID is
 * `<workflowId>-<scheduled time, truncated to the second>`, and a trigger's scheduled time is when the
 * server received it, so two triggers in the same second would ask for the same workflow ID.
 */
const nextSecond = () => sleep(1000 - (Date.now() % 1000) + 20);

/** Waits until late in the current second, so that `nextSecond()` after a trigger is short. */
const lateInSecond = async () => {
  const ms = Date.now() % 1000;
  if (ms < 700) await sleep(700 - ms);
};

async function eventually<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** A promise the test resolves when it chooses. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

// Schedules on the real dev server, running a real workflow bundle (examples/scheduled.ts) on a user
// worker of this file's own, whose `connect()` calls go to the harness's connector worker.
describe('scheduled runs that use connectors', () => {
  const stack = testStack();
  const userQueue = uniqueName('scheduled');
  const schedules: ScheduleHandle[] = [];
  let h: Harness;
  let api: TestHttpServer;
  let slow: TestHttpServer;
  let inFlight = 0;
  let maxInFlight = 0;
  /** The slow endpoint answers once the test opens this: when what it checks has happened while the runs were in flight. */
  let answers = gate();
  let connection: NativeConnection;
  let worker: Worker;
  let workerRun: Promise<void>;

  beforeAll(async () => {
    [h, api] = await Promise.all([startHarness(), startTestHttpServer()]);
    // A slow endpoint that counts requests in flight and holds them until the test lets them go, so that
    // runs overlap for sure, however long the machine takes to start the next one.
    slow = await startTestHttpServer(async (req, res) => {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      await answers.opened;
      inFlight--;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ path: req.path, headers: req.headers }));
    });
    connection = await NativeConnection.connect({ address: stack.temporal.address });
    worker = await Worker.create({
      connection,
      namespace: stack.temporal.namespace,
      taskQueue: userQueue,
      workflowsPath: require.resolve('../../examples/scheduled'),
    });
    workerRun = worker.run();
  });

  afterAll(async () => {
    await Promise.allSettled(schedules.map((s) => s.delete()));
    if (worker) {
      worker.shutdown();
      await workerRun;
    }
    await connection?.close();
    await h?.shutdown();
    await Promise.all([api?.close(), slow?.close()]);
  });

  beforeEach(() => {
    inFlight = 0;
    maxInFlight = 0;
    answers = gate();
  });
  afterEach(() => answers.open());

  /** Lets the slow endpoint answer once `count` requests are in flight at once. */
  async function answerOnceInFlight(count: number): Promise<void> {
    await eventually(async () => (inFlight >= count ? true : undefined), `${count} request(s) in flight at once`);
    answers.open();
  }

  /** A stored REST connector whose requests carry `x-version` and `x-connector` (to find them on the server). */
  async function applyConnector(name: string, server: TestHttpServer, version: string) {
    await h.service.apply({ name, type: 'REST', value: { base_url: server.url, headers: { 'x-version': version, 'x-connector': name } } });
  }

  function requestsOf(server: TestHttpServer, connector: string): RecordedRequest[] {
    return server.requests.filter((r) => r.headers['x-connector'] === connector);
  }

  /** The example's schedule, paused (so it runs only when a test triggers it), on this file's queues. */
  async function schedule(connector: string, options: Partial<InvoiceSyncScheduleOptions> = {}): Promise<ScheduleHandle> {
    const handle = await createInvoiceSyncSchedule(h.client, {
      scheduleId: uniqueName('invoice-sync'),
      taskQueue: userQueue,
      connector,
      connectorTaskQueue: h.connectorQueue,
      paused: true,
      ...options,
    });
    schedules.push(handle);
    return handle;
  }

  /** The schedule's recent actions, once there are at least `count` of them. */
  function actions(handle: ScheduleHandle, count: number): Promise<ScheduleExecutionResult[]> {
    return eventually(async () => {
      const { recentActions } = (await handle.describe()).info;
      return recentActions.length >= count ? recentActions : undefined;
    }, `${count} action(s) of schedule ${handle.scheduleId}`);
  }

  /** The result of the run an action started. */
  function runResult(action: ScheduleExecutionResult): Promise<SyncOutput> {
    const { workflowId, firstExecutionRunId } = action.action.workflow;
    return h.client.workflow.getHandle(workflowId, firstExecutionRunId).result() as Promise<SyncOutput>;
  }

  /** A run ID is the action's workflow ID plus the scheduled time, to the second. */
  function expectedRunId(scheduleId: string, action: ScheduleExecutionResult): string {
    return `${scheduleId}-${new Date(Math.floor(action.scheduledAt.getTime() / 1000) * 1000).toISOString().replace('.000Z', 'Z')}`;
  }

  test('a schedule runs the workflow that calls a connector, and an updated connector changes the next run with nothing restarted', async () => {
    const connector = uniqueName('sync');
    await applyConnector(connector, api, 'v1');
    const handle = await schedule(connector);

    await handle.trigger();
    const [run1] = await actions(handle, 1);
    const out1 = await runResult(run1);
    expect(out1).toMatchObject({ status: 200, body: { path: '/sync', headers: { 'x-version': 'v1' } } });
    expect(requestsOf(api, connector).map((r) => [r.path, r.headers['x-version']])).toEqual([['/sync', 'v1']]);

    // Only the stored connector changes: the schedule, the workflow code and both workers stay as they are.
    await applyConnector(connector, api, 'v2');
    await nextSecond();
    await handle.trigger();
    const [, run2] = await actions(handle, 2);
    const out2 = await runResult(run2);
    expect(out2).toMatchObject({ status: 200, body: { path: '/sync', headers: { 'x-version': 'v2' } } });
    expect(requestsOf(api, connector).map((r) => r.headers['x-version'])).toEqual(['v1', 'v2']);

    // Each run made its own `connection` child, which records the connector version it used.
    const [id1, id2] = [run1, run2].map((a) => a.action.workflow.workflowId);
    expect(id1).toBe(expectedRunId(handle.scheduleId, run1));
    expect(id2).toBe(expectedRunId(handle.scheduleId, run2));
    expect(id2).not.toBe(id1);
    const child1 = await h.client.workflow.getHandle(`${id1}/connection/1`).result() as ConnectionResult;
    const child2 = await h.client.workflow.getHandle(`${id2}/connection/1`).result() as ConnectionResult;
    expect(child1.connector).toEqual({ name: connector, type: 'REST', version: 1 });
    expect(child2.connector).toEqual({ name: connector, type: 'REST', version: 2 });
  });

  test('overlapping runs (ALLOW_ALL) do not collide: each run has its own workflow ID and its own connection child', async () => {
    const connector = uniqueName('overlap');
    await applyConnector(connector, slow, 'v1');
    const handle = await schedule(connector, { overlap: ScheduleOverlapPolicy.ALLOW_ALL });

    // Two triggers about 0.3 s apart, in two different seconds, while each run waits for its answer.
    await lateInSecond();
    await handle.trigger(ScheduleOverlapPolicy.ALLOW_ALL);
    await actions(handle, 1);
    await nextSecond();
    await handle.trigger(ScheduleOverlapPolicy.ALLOW_ALL);
    const started = await actions(handle, 2);
    await answerOnceInFlight(2);
    const ids = started.map((a) => a.action.workflow.workflowId);
    expect(ids).toEqual(started.map((a) => expectedRunId(handle.scheduleId, a)));
    expect(new Set(ids).size).toBe(2);

    const outputs = await Promise.all(started.map(runResult));
    expect(outputs.map((o) => o.body.path)).toEqual(['/sync', '/sync']);
    expect(requestsOf(slow, connector)).toHaveLength(2);
    // The two connections were in flight at the same time...
    expect(maxInFlight).toBe(2);
    const [first, second] = await Promise.all(ids.map((id) => h.client.workflow.getHandle(id).describe()));
    expect(second.startTime.getTime()).toBeLessThan(first.closeTime!.getTime());

    // ...each as the child `<that run's workflow ID>/connection/1`, both completed.
    for (const id of ids) {
      const child = await h.client.workflow.getHandle(`${id}/connection/1`).describe();
      expect(child.type).toBe('connection');
      expect(child.taskQueue).toBe(h.connectorQueue);
      expect(child.parentExecution?.workflowId).toBe(id);
      expect(child.status.name).toBe('COMPLETED');
    }
  });

  test('with the default overlap policy (SKIP), a run due while one is running is skipped', async () => {
    const connector = uniqueName('skip');
    await applyConnector(connector, slow, 'v1');
    const handle = await schedule(connector); // no `overlap`: the example's default
    const { policies } = await handle.describe();
    expect(policies.overlap).toBe(ScheduleOverlapPolicy.SKIP);

    // trigger() without an argument would use ALLOW_ALL (next test); pass the schedule's own policy,
    // which is what its scheduled (interval) runs use.
    await handle.trigger(policies.overlap);
    const [run] = await actions(handle, 1); // run 1 has started and runs until its request is answered
    await handle.trigger(policies.overlap);
    await eventually(async () => ((await handle.describe()).info.numActionsSkippedOverlap >= 1 ? true : undefined), 'the skipped action');
    await answerOnceInFlight(1);
    expect((await runResult(run)).body.path).toBe('/sync');

    const { info } = await handle.describe();
    expect(info.recentActions).toHaveLength(1);
    expect(info.numActionsTaken).toBe(1);
    expect(info.numActionsSkippedOverlap).toBe(1);
    expect(requestsOf(slow, connector)).toHaveLength(1);
  });

  test('trigger() without an overlap argument starts a run even while one runs on a SKIP schedule (the TS SDK sends ALLOW_ALL)', async () => {
    const connector = uniqueName('manual');
    await applyConnector(connector, slow, 'v1');
    const handle = await schedule(connector);

    await lateInSecond();
    await handle.trigger();
    await actions(handle, 1);
    await nextSecond();
    await handle.trigger();
    const started = await actions(handle, 2);
    await answerOnceInFlight(2);
    await Promise.all(started.map(runResult));
    expect(maxInFlight).toBe(2);
    expect((await handle.describe()).info.numActionsSkippedOverlap).toBe(0);
  });
});
