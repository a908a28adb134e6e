import { msToNumber } from '@temporalio/common/lib/time';
import { INVOKE_HEARTBEAT_INTERVAL_MS } from '../../activities/connector-activities';
import { HEARTBEAT_INTERVAL_MS as SQL_HEARTBEAT_INTERVAL_MS } from '../../connectors/sql-common';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';
import { DEFAULT_HEARTBEAT_TIMEOUT } from '../../workflows/connection';
import type { CallArgs, CallOutcome } from '../fixtures/connector-workflows';
import { startTestHttpServer } from '../fixtures/http-server';
import { postgresInputs } from '../support/connector-calls';
import { startHarness, type Harness } from '../support/harness';
import { uniqueName } from '../support/stack';
import { sleep } from '../support/wait';

// The two cases wait on calls that run for seconds (one past a 10 s timeout): they run at once.
describe('heartbeats of connector calls', () => {
  let h: Harness;
  let db: ScratchDatabase;

  beforeAll(async () => {
    [h, db] = await Promise.all([startHarness(), createScratchDatabase('tc_heartbeat')]);
  });
  afterAll(async () => {
    await h?.shutdown();
    await db?.drop();
  });

  // A worker killed in the middle of calls, as activity tasks (heartbeat timeout) and as local
  // activities (workflow task timeout): test/reliability/faults.test.ts.

  test.concurrent('a live call that runs longer than the heartbeat timeout, or a local one longer than the workflow task timeout, completes in its first attempt', async () => {
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

  // With a connector type that does not heartbeat during the call.
  test.concurrent('a call heartbeats while it runs even when its connector type is quiet', async () => {
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
