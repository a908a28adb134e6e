import { DeterminismViolationError } from '@temporalio/workflow';
import { Worker } from '@temporalio/worker';
import { historyOf, readRecordedHistory, type RecordedHistory } from '../fixtures/histories/recorded';
import { prebuiltBundle } from '../support/workflow-bundles';

// Workflow code runs inside users' workflows that are running right now: every change to the
// commands it issues (child workflow IDs, activity types and IDs) must keep the histories older
// code recorded replayable. test/fixtures/histories holds such histories, recorded on the real dev
// server by test/fixtures/histories/record.ts with the commit each one names.
function recorded(name: string): RecordedHistory & { replayable: { workflowId: string; history: ReturnType<typeof historyOf> } } {
  const file = readRecordedHistory(name);
  return { ...file, replayable: { workflowId: file.workflowId, history: historyOf(file) } };
}

// The current code, as global setup bundled it for this run.
const userWorkflows = { workflowBundle: prebuiltBundle('connectorWorkflows') };
const connections = { workflowBundle: prebuiltBundle('connection') };
const examples = { workflowBundle: prebuiltBundle('examples') };

async function replayAll(histories: { workflowId: string; history: ReturnType<typeof historyOf> }[]): Promise<Record<string, unknown>> {
  const errors: Record<string, unknown> = {};
  for await (const result of Worker.runReplayHistories(userWorkflows, histories)) errors[result.workflowId] = result.error;
  return errors;
}

describe('replay of histories recorded by earlier code', () => {
  test('user workflow runs recorded before connection IDs named the run replay on the current code, with their recorded child IDs', async () => {
    const histories = ['plain-run', 'continued-run', 'retried-run'].map(recorded);
    // Not vacuous: each recorded run did start children, under IDs the replay must produce again;
    // two of them are later runs of their chain, whose IDs this version names differently.
    for (const { replayable } of histories) {
      const children = replayable.history.events.filter((e) => e.startChildWorkflowExecutionInitiatedEventAttributes);
      expect(children.length).toBeGreaterThan(0);
    }
    const laterRuns = histories.filter((h) => h.replayable.history.events[0].workflowExecutionStartedEventAttributes?.continuedExecutionRunId);
    expect(laterRuns).toHaveLength(2);
    const errors = await replayAll(histories.map((h) => h.replayable));
    expect(errors).toEqual(Object.fromEntries(histories.map((h) => [h.workflowId, undefined])));
  });

  test('replay checks child workflow IDs: a recorded run replayed under another workflow ID is nondeterministic', async () => {
    const { replayable } = recorded('continued-run');
    const errors = await replayAll([{ workflowId: 'another-workflow-id', history: replayable.history }]);
    expect(errors['another-workflow-id']).toBeInstanceOf(DeterminismViolationError);
    expect(String((errors['another-workflow-id'] as Error).message)).toMatch(/Child workflow id/);
  });

  test('a `connection` run recorded before calls had a heartbeat timeout replays on the current `connection` workflow', async () => {
    const { replayable } = recorded('connection');
    const scheduled = replayable.history.events.find((e) => e.activityTaskScheduledEventAttributes)?.activityTaskScheduledEventAttributes;
    // Recorded without a heartbeat timeout (zero), which this version sets.
    expect(scheduled).toBeDefined();
    expect([String(scheduled!.heartbeatTimeout?.seconds ?? 0), scheduled!.heartbeatTimeout?.nanos ?? 0]).toEqual(['0', 0]);
    await Worker.runReplayHistory(connections, replayable.history, replayable.workflowId);
  });

  test('the example workflows, recorded when every call first ran `connectors.describe` from the parent, replay on the current code', async () => {
    const demo = recorded('billing-demo');
    const continued = recorded('continued-run-describes');
    // Not vacuous: each call of these runs scheduled the describe activity this version no longer schedules.
    for (const { replayable } of [demo, continued]) {
      const scheduled = replayable.history.events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'connectors.describe');
      expect(scheduled.length).toBeGreaterThan(0);
    }
    await Worker.runReplayHistory(examples, demo.replayable.history, demo.replayable.workflowId);
    expect(await replayAll([continued.replayable])).toEqual({ [continued.workflowId]: undefined });
  });

  test('a `connection` started with the descriptor its parent resolved replays on the current `connection` workflow', async () => {
    const { replayable } = recorded('billing-demo-connection');
    const started = replayable.history.events[0].workflowExecutionStartedEventAttributes!;
    expect(JSON.parse(Buffer.from(started.input!.payloads![0].data!).toString())).toHaveProperty('descriptor.version', 1);
    await Worker.runReplayHistory(connections, replayable.history, replayable.workflowId);
  });

  test('runs recorded once each `connection` resolved its own connector replay on the current code: the example, a short call and a call run as an activity task', async () => {
    const demo = recorded('billing-demo-resolves');
    const [local, activityTask] = ['connection-local', 'connection-activity-task'].map(recorded);
    const kinds = (r: typeof demo) => r.replayable.history.events.flatMap((e) => [e.markerRecordedEventAttributes?.markerName, e.activityTaskScheduledEventAttributes?.activityType?.name]).filter(Boolean);
    // Not vacuous: the example starts its children without describing them first; the short call ran
    // two local activities, the other a local activity and an activity task.
    expect(kinds(demo)).toEqual(['core_patch']);
    expect(kinds(local)).toEqual(['core_local_activity', 'core_local_activity']);
    expect(kinds(activityTask)).toEqual(['core_local_activity', 'connectors.invoke']);
    await Worker.runReplayHistory(examples, demo.replayable.history, demo.replayable.workflowId);
    for (const r of [local, activityTask]) await Worker.runReplayHistory(connections, r.replayable.history, r.replayable.workflowId);
  });

  test('calls through a connector with limits, recorded before a slot was checked right before sending, replay on the current `connection` workflow', async () => {
    const [local, activityTask] = ['connection-limits-local', 'connection-limits-activity-task'].map(recorded);
    const kinds = (r: typeof local) => r.replayable.history.events.flatMap((e) => [e.markerRecordedEventAttributes?.markerName, e.activityTaskScheduledEventAttributes?.activityType?.name]).filter(Boolean);
    // Not vacuous: each asked for a slot (the second local activity) before its call.
    expect(kinds(local)).toEqual(['core_local_activity', 'core_local_activity', 'core_local_activity']);
    expect(kinds(activityTask)).toEqual(['core_local_activity', 'core_local_activity', 'connectors.invoke']);
    for (const r of [local, activityTask]) await Worker.runReplayHistory(connections, r.replayable.history, r.replayable.workflowId);
  });

  test('a `connection` started by hand with a descriptor, recorded once such a descriptor was ignored, replays on the current `connection` workflow', async () => {
    const { replayable } = recorded('connection-caller-descriptor');
    const started = replayable.history.events[0].workflowExecutionStartedEventAttributes!;
    const kinds = replayable.history.events.flatMap((e) => [e.markerRecordedEventAttributes?.markerName, e.activityTaskScheduledEventAttributes?.activityType?.name]).filter(Boolean);
    // Not vacuous: its input named version 1, and it recorded the patch, then described its connector
    // itself (version 2) and made the call, both as local activities.
    expect(JSON.parse(Buffer.from(started.input!.payloads![0].data!).toString())).toHaveProperty('descriptor.version', 1);
    expect(kinds).toEqual(['core_patch', 'core_local_activity', 'core_local_activity']);
    await Worker.runReplayHistory(connections, replayable.history, replayable.workflowId);
  });
});
