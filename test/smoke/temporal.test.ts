import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import * as activities from '../fixtures/smoke-activities';
import { testStack, uniqueName } from '../support/stack';

describe('Temporal dev server (real)', () => {
  const { temporal } = testStack();
  let connection: Connection;

  beforeAll(async () => {
    connection = await Connection.connect({ address: temporal.address });
  });
  afterAll(async () => {
    await connection?.close();
  });

  test('a worker executes a workflow and its activity, and the history is on the server', async () => {
    const nativeConnection = await NativeConnection.connect({ address: temporal.address });
    const taskQueue = uniqueName('smoke');
    const worker = await Worker.create({
      connection: nativeConnection,
      namespace: temporal.namespace,
      taskQueue,
      workflowsPath: require.resolve('../fixtures/smoke-workflows'),
      activities,
    });
    const client = new Client({ connection, namespace: temporal.namespace });
    const workflowId = uniqueName('smoke-wf');
    try {
      const result = await worker.runUntil(
        client.workflow.execute('smokeWorkflow', { taskQueue, workflowId, args: ['temporal'] }),
      );
      // The activity ran in this process (the worker's), reached through the server.
      expect(result).toEqual({ greeting: `hello, temporal (from activity in pid ${process.pid})`, workflowId });
      const history = await client.workflow.getHandle(workflowId).fetchHistory();
      const types = history.events!.map((e) => e.eventType);
      expect(types).toContain(10); // ACTIVITY_TASK_SCHEDULED
      expect(types).toContain(2); // WORKFLOW_EXECUTION_COMPLETED
    } finally {
      await nativeConnection.close();
    }
  });

  test('the connector search attributes are registered as Keyword', async () => {
    const res = await connection.operatorService.listSearchAttributes({ namespace: temporal.namespace });
    // IndexedValueType 2 = KEYWORD
    expect(res.customAttributes).toMatchObject({ ConnectorName: 2, ConnectorType: 2 });
  });

  test('the embedded Web UI serves its application', async () => {
    expect(temporal.uiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(temporal.uiUrl!);
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/<html/i);
  });
});
