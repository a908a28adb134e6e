import { msToNumber } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { INVOKE_HEARTBEAT_INTERVAL_MS } from '../../activities/connector-activities';
import { HEARTBEAT_INTERVAL_MS as SQL_HEARTBEAT_INTERVAL_MS } from '../../connectors/sql-common';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';
import { DEFAULT_HEARTBEAT_TIMEOUT } from '../../workflows/connection';
import type { CallArgs, CallOutcome } from '../fixtures/connector-workflows';
import { startTestHttpServer, type TestHttpServer } from '../fixtures/http-server';
import { postgresInputs } from '../support/connector-calls';
import { startHarness, type Harness } from '../support/harness';
import { uniqueName } from '../support/stack';
import { sleep } from '../support/wait';
import { startWorkerProcess, stopWorkerProcess, withinMs, workerOfIdentity, type WorkerProcess } from '../support/worker-process';

describe('heartbeats of connector calls', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.shutdown();
  });

  describe('with two connector workers in processes of their own', () => {
    const HOLD_MS = 4_000;
    const queue = uniqueName('failover');
    let workers: WorkerProcess[] = [];
    let api: TestHttpServer;
    let firstRequest: () => void;
    const firstRequestArrived = new Promise<void>((resolve) => (firstRequest = resolve));

    beforeAll(async () => {
      // Every answer takes a few seconds: long enough to kill the worker that waits for it.
      api = await startTestHttpServer(async (request, res) => {
        const n = api.requests.length;
        if (n === 1) firstRequest();
        await sleep(HOLD_MS);
        if (!res.destroyed) res.end(JSON.stringify({ request: n, path: request.path }));
      });
      workers = await Promise.all([startWorkerProcess('a', queue), startWorkerProcess('b', queue)]);
    });
    afterAll(async () => {
      await Promise.all(workers.map((w) => stopWorkerProcess(w)));
      await api?.close();
    });

    test('a connector worker killed in the middle of a slow call has the call retried on another worker within seconds, and one result reaches the parent', async () => {
      const parentId = uniqueName('failover-parent');
      const call: CallArgs = {
        connector: { type: 'REST', url: `${api.url}/slow` },
        // As an activity task, which heartbeats; a short call's default, a local activity, is covered in test/reliability.
        options: { taskQueue: queue, timeout: '60s', localActivity: false, retry: { initialInterval: '200ms', maximumAttempts: 3 } },
      };
      const started = Date.now();
      const parent = await h.client.workflow.start('callConnector', { taskQueue: h.userQueue, workflowId: parentId, args: [call] });
      const childId = `${parentId}/connection/1`;
      try {
        await withinMs(firstRequestArrived, 30_000, 'the call reaching the HTTP server');
        // Temporal knows which worker runs the attempt: its identity is `<pid>@<host>`.
        const description = await h.client.workflow.getHandle(childId).describe();
        const identity = description.raw.pendingActivities?.[0]?.lastWorkerIdentity ?? '';
        const holder = workerOfIdentity(workers, identity);
        expect(holder).toBeDefined();
        const survivor = workers.find((w) => w !== holder)!;
        holder!.child.kill('SIGKILL');
        await holder!.exited;

        // Without a heartbeat timeout, the attempt would be given up only after its 60 s start-to-close timeout.
        const outcome = await withinMs(parent.result() as Promise<CallOutcome>, 30_000, 'the call retried after its worker was killed');
        const elapsedMs = Date.now() - started;
        expect(outcome.error).toBeUndefined();
        expect(outcome.details!.attempt).toBe(2);
        expect(JSON.parse((outcome.details!.output as { body: string }).body)).toEqual({ request: 2, path: '/slow' });
        expect(api.requests).toHaveLength(2);
        expect(elapsedMs).toBeLessThan(25_000);

        // Attempt 1 ended with a heartbeat timeout; attempt 2 ran on the surviving worker and completed once.
        const childEvents = (await h.client.workflow.getHandle(childId).fetchHistory()).events ?? [];
        const activityStarts = childEvents.flatMap((e) => (e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes] : []));
        expect(activityStarts).toHaveLength(1);
        expect(activityStarts[0].attempt).toBe(2);
        expect(activityStarts[0].identity).toMatch(new RegExp(`^${survivor.pid}@`));
        expect(activityStarts[0].lastFailure?.timeoutFailureInfo?.timeoutType).toBe(temporal.api.enums.v1.TimeoutType.TIMEOUT_TYPE_HEARTBEAT);
        const completions = childEvents.filter((e) => e.activityTaskCompletedEventAttributes);
        expect(completions).toHaveLength(1);
        expect(completions[0].activityTaskCompletedEventAttributes!.identity).toMatch(new RegExp(`^${survivor.pid}@`));

        const parentEvents = (await parent.fetchHistory()).events ?? [];
        expect(parentEvents.filter((e) => e.childWorkflowExecutionCompletedEventAttributes)).toHaveLength(1);
      } finally {
        // A failed assertion must not leave the call running into the next test.
        await parent.terminate('test over').catch(() => undefined);
      }
    });
  });

  test('a live call that runs longer than the heartbeat timeout, or a local one longer than the workflow task timeout, completes in its first attempt', async () => {
    // The workflow task timeout of a `connection` is the SDK's default, 10 s, as its heartbeat timeout.
    const slow = await startTestHttpServer(async (_request, res) => {
      await sleep(msToNumber(DEFAULT_HEARTBEAT_TIMEOUT) + 2_000);
      if (!res.destroyed) res.end('done');
    });
    try {
      const outcomes = await Promise.all(
        [false, true].map(async (localActivity) => (await h.call({ type: 'REST', url: `${slow.url}/long-${localActivity}` }, undefined, { timeout: '60s', localActivity })).result),
      );
      for (const outcome of outcomes) {
        expect(outcome.error).toBeUndefined();
        expect(outcome.details!.attempt).toBe(1);
      }
      expect(slow.requests.map((r) => r.path).sort()).toEqual(['/long-false', '/long-true']);
    } finally {
      await slow.close();
    }
  });

  describe('with a connector type that does not heartbeat during the call', () => {
    let db: ScratchDatabase;
    beforeAll(async () => {
      db = await createScratchDatabase('tc_heartbeat');
    });
    afterAll(async () => {
      await db?.drop();
    });

    test('a call heartbeats while it runs even when its connector type is quiet', async () => {
      // The statement ends before the SQL types' own first heartbeat, but after the call's.
      const statementMs = SQL_HEARTBEAT_INTERVAL_MS - 1_000;
      expect(statementMs).toBeGreaterThan(INVOKE_HEARTBEAT_INTERVAL_MS + 1_000);
      const parentId = uniqueName('quiet');
      const call: CallArgs = {
        connector: { type: 'POSTGRES', ...postgresInputs(db), operation: 'query', sql: `SELECT pg_sleep(${statementMs / 1000})` },
        options: { taskQueue: h.connectorQueue, localActivity: false },
      };
      const parent = await h.client.workflow.start('callConnector', { taskQueue: h.userQueue, workflowId: parentId, args: [call] });
      const child = h.client.workflow.getHandle(`${parentId}/connection/1`);
      let heartbeatSeen = false;
      let activitySeen = false;
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const description = await child.describe().catch(() => undefined);
        const pending = description?.raw.pendingActivities?.[0];
        if (pending) activitySeen = true;
        if (pending?.lastHeartbeatTime) heartbeatSeen = true;
        if (heartbeatSeen || (description && description.status.name !== 'RUNNING')) break;
        await sleep(200);
      }
      const outcome = (await parent.result()) as CallOutcome;
      expect(outcome.error).toBeUndefined();
      expect(activitySeen).toBe(true);
      expect(heartbeatSeen).toBe(true);
    });
  });
});
