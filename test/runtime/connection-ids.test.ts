import { Worker } from '@temporalio/worker';
import type { CallArgs, CallOutcome, RestartArgs } from '../fixtures/connector-workflows';
import { startTestHttpServer, type TestHttpServer } from '../fixtures/http-server';
import { startHarness, type Harness } from '../support/harness';
import { uniqueName } from '../support/stack';
import { prebuiltBundle } from '../support/workflow-bundles';

type RestartResult = { runId: string; outcome: CallOutcome };

function newGate() {
  let open: () => void = () => undefined;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

// Workflow IDs of `connection` children across the runs of one workflow ID, on the real dev server.
describe('connection workflow IDs', () => {
  let h: Harness;
  let api: TestHttpServer;
  // `/held` answers only once the test opens the gate, so a connection left by one run still runs in the next.
  let gate = newGate();

  beforeAll(async () => {
    h = await startHarness();
    api = await startTestHttpServer(async (request, res) => {
      if (request.path === '/held') await gate.opened;
      res.end(JSON.stringify({ path: request.path }));
    });
  });
  afterAll(async () => {
    gate.open();
    await h?.shutdown();
    await api?.close();
  });

  const call = (path: string): CallArgs => ({
    connector: { type: 'REST', url: `${api.url}${path}` },
    options: { taskQueue: h.connectorQueue, retry: { initialInterval: '50ms', maximumAttempts: 3 } },
  });

  /** Runs `restartWhileConnectionRuns`; returns its result and the run ID of the last run, as the server reports it. */
  async function restart(restartBy: RestartArgs['restartBy']) {
    gate = newGate();
    const workflowId = uniqueName(restartBy);
    const args: RestartArgs = { first: call('/held'), next: call('/next'), restartBy };
    const result = (await h.client.workflow.execute('restartWhileConnectionRuns', {
      taskQueue: h.userQueue,
      workflowId,
      args: [args],
      retry: { maximumAttempts: 2, initialInterval: '100ms' },
    })) as RestartResult;
    const lastRun = await h.client.workflow.getHandle(workflowId).describe();
    return { workflowId, result, lastRunId: lastRun.runId };
  }

  /** The connection the first run left behind: still running, which is what the next run's IDs must not collide with. */
  async function expectLeftRunning(workflowId: string) {
    const abandoned = h.client.workflow.getHandle(`${workflowId}/connection/1`);
    expect((await abandoned.describe()).status.name).toBe('RUNNING');
    gate.open();
    expect(await abandoned.result()).toMatchObject({ output: { status: 200 } });
  }

  test('a run continued as new starts its connections while one from the run before still runs', async () => {
    const { workflowId, result, lastRunId } = await restart('continueAsNew');
    expect(result.outcome.error).toBeUndefined();
    expect(result.outcome.workflowId).toBe(`${workflowId}/${lastRunId}/connection/1`);
    expect(result.outcome.details!.output).toMatchObject({ status: 200, body: JSON.stringify({ path: '/next' }) });
    await expectLeftRunning(workflowId);

    // The IDs are deterministic: the last run's history replays on the same code.
    const history = await h.client.workflow.getHandle(workflowId, lastRunId).fetchHistory();
    await Worker.runReplayHistory({ workflowBundle: prebuiltBundle('connectorWorkflows') }, history, workflowId);
  });

  test('a retried run starts its connections while one from the failed attempt still runs', async () => {
    const { workflowId, result, lastRunId } = await restart('retry');
    expect(result.outcome.error).toBeUndefined();
    expect(result.outcome.workflowId).toBe(`${workflowId}/${lastRunId}/connection/1`);
    await expectLeftRunning(workflowId);
  });

  test('the connections of a workflow run that is the first of its chain are <workflow ID>/connection/<n>', async () => {
    const { result, workflowId } = await h.run<{ workflowIds: string[] }>('callInParallel', [call('/a'), call('/b'), call('/c')]);
    expect(result.workflowIds).toEqual([1, 2, 3].map((n) => `${workflowId}/connection/${n}`));
  });
});
