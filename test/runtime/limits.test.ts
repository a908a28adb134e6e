import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { ConnectorRegistry } from '../../connectors/registry';
import { ConnectorService, ConnectorValidationError } from '../../core/service';
import { startManagementApi } from '../../api/server';
import { ConnectorStore } from '../../core/store/connector-store';
import { PgDatabase } from '../../core/store/database';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';
import { createConnectorWorker, runConnectorWorker } from '../../worker/connector-worker';
import type { ConnectionResult } from '../../workflows/types';
import { startTestHttpServer, type TestHttpServer } from '../fixtures/http-server';
import { prebuiltBundle } from '../support/workflow-bundles';
import { soon } from '../support/browser';
import { testStack, uniqueName } from '../support/stack';
import { startWorkerProcess, stopWorkerProcess, type WorkerProcess } from '../support/worker-process';

/** Lease time of these tests' workers: short, so a killed worker's slots come back quickly. */
const LEASE_MS = 3_000;

/**
 * Per-connector limits across two connector workers on one store and one task queue: each worker has
 * its own service, store and PostgreSQL connections, as two processes would.
 */
describe('connector limits hold across every connector worker', () => {
  const stack = testStack();
  let scratch: ScratchDatabase;
  let nativeConnection: NativeConnection;
  let connection: Connection;
  let client: Client;
  let target: TestHttpServer;
  const taskQueue = uniqueName('limits');
  const services: ConnectorService[] = [];
  const workers: Worker[] = [];
  /** One Temporal connection per worker, as in separate processes (the SDK refuses two workers of one queue on one connection). */
  const workerConnections: NativeConnection[] = [];
  const running: Array<Promise<void>> = [];
  /** Requests the target holds now, and the most it ever held at once (reset per test). */
  let holding = 0;
  let mostHeld = 0;
  /** How long the target holds each request, in milliseconds (per test). */
  let holdMs = 150;
  /** Arrival time of each request at the target, by path. */
  const arrivals: Array<{ path: string; at: number }> = [];

  async function startWorker(): Promise<ConnectorService> {
    const store = new ConnectorStore(new PgDatabase({ connectionString: scratch.url }));
    const service = new ConnectorService({ store, registry: new ConnectorRegistry() });
    const own = await NativeConnection.connect({ address: stack.temporal.address });
    workerConnections.push(own);
    const worker = await createConnectorWorker({ connection: own, taskQueue, service, limitLeaseMs: LEASE_MS, workerOptions: { identity: `limits-worker-${services.length + 1}`, workflowBundle: prebuiltBundle('connection') } });
    services.push(service);
    workers.push(worker);
    running.push(runConnectorWorker(worker, service));
    return service;
  }

  function call(connector: string, path: string, workflowId = uniqueName('limited')) {
    return client.workflow.start('connection', {
      taskQueue,
      workflowId,
      args: [{ connector, overrides: { path }, options: { retry: { initialInterval: '100ms', maximumAttempts: 3 } } }],
    });
  }

  beforeAll(async () => {
    scratch = await createScratchDatabase('tc_limits');
    await new ConnectorStore(new PgDatabase({ connectionString: scratch.url })).migrate();
    nativeConnection = await NativeConnection.connect({ address: stack.temporal.address });
    connection = await Connection.connect({ address: stack.temporal.address });
    client = new Client({ connection, namespace: stack.temporal.namespace });
    target = await startTestHttpServer(async (request, res) => {
      arrivals.push({ path: request.path, at: Date.now() });
      holding += 1;
      mostHeld = Math.max(mostHeld, holding);
      await new Promise((r) => setTimeout(r, holdMs));
      holding -= 1;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ path: request.path }));
    });
    await startWorker();
    await startWorker();
  });

  afterAll(async () => {
    for (const worker of workers) worker.shutdown();
    await Promise.allSettled(running);
    await connection?.close();
    await nativeConnection?.close();
    for (const own of workerConnections) await own.close();
    await target?.close();
    await scratch?.drop();
  });

  beforeEach(() => {
    holding = 0;
    mostHeld = 0;
    holdMs = 150;
    arrivals.length = 0;
  });

  test('40 calls through a connector with max_concurrent 3: the server never holds more than 3, and every call completes once; waiting calls say so', async () => {
    const name = uniqueName('max3').toLowerCase();
    await services[0].apply({ name, type: 'REST', value: { base_url: target.url }, limits: { max_concurrent: 3 } });
    const handles = await Promise.all(Array.from({ length: 40 }, (_, i) => call(name, `/call/${i}`)));
    // While they run, a waiting call shows why in its current details, and the connector shows its use.
    let waitingSeen = '';
    await soon(async () => {
      for (const handle of handles.slice(20)) {
        const { currentDetails } = await handle.query<{ currentDetails: string }>('__temporal_workflow_metadata');
        if (currentDetails.startsWith('waiting for a slot')) waitingSeen = currentDetails;
      }
      expect(waitingSeen).toMatch(new RegExp(`^waiting for a slot of ${name} \\(3 of 3 in use, \\d+ waiting\\)$`));
    }, 10_000);
    const usage = await services[1].limitsUsage(await services[1].get(name));
    expect(usage).toMatchObject({ in_flight: expect.any(Number), waiting: expect.any(Number) });
    expect(usage!.in_flight).toBeLessThanOrEqual(3);

    const results = (await Promise.all(handles.map((h) => h.result()))) as ConnectionResult<{ status: number; body: { path: string } }>[];
    expect(results.map((r) => r.output.body.path).sort()).toEqual(Array.from({ length: 40 }, (_, i) => `/call/${i}`).sort());
    expect(results.every((r) => r.attempt === 1)).toBe(true);
    expect(arrivals).toHaveLength(40);
    expect(mostHeld).toBe(3);
    // Both workers took part.
    const identities = new Set<string>();
    for (const handle of handles) {
      const history = await handle.fetchHistory();
      for (const event of history.events ?? []) if (event.workflowTaskCompletedEventAttributes?.identity) identities.add(event.workflowTaskCompletedEventAttributes.identity);
    }
    expect(identities.size).toBe(2);
    // Nothing stays taken, as the API shows with the limits.
    const api = await startManagementApi({ service: services[0], tokens: { readWrite: [], readOnly: ['limits-reader-token'] }, port: 0 });
    try {
      const shown = await (await fetch(`${api.url}/v1/connectors/${name}`, { headers: { authorization: 'Bearer limits-reader-token' } })).json();
      expect(shown).toMatchObject({ limits: { max_concurrent: 3 }, usage: { in_flight: 0, waiting: 0 } });
    } finally {
      await api.close();
    }
  });

  test('limits are checked on save, naming the field', async () => {
    const refused = (limits: unknown) => services[0].apply({ name: 'bad_limits', type: 'REST', value: { base_url: target.url }, limits }).then(() => [], (err: ConnectorValidationError) => err.issues.map((i) => i.path));
    expect(await refused({ max_concurrent: 0 })).toEqual(['limits.max_concurrent']);
    expect(await refused({ rate: { calls: 5, per: 'soon' } })).toEqual(['limits.rate.per']);
    expect(await refused({ rate: { per: '1s' } })).toEqual(['limits.rate.calls']);
    expect(await refused({ rate: { calls: 1, per: '2h' } })).toEqual(['limits.rate.per']);
    expect(await refused({ max_concurent: 2 })).toEqual(['limits']);
    await expect(services[0].get('bad_limits')).rejects.toThrow(/does not exist/);
  });

  test('rate 5 per 1s: 20 calls take at least 3 s at the server, and no second sees more than 5 start', async () => {
    const name = uniqueName('rate5').toLowerCase();
    holdMs = 10;
    await services[1].apply({ name, type: 'REST', value: { base_url: target.url }, limits: { rate: { calls: 5, per: '1s' } } });
    const handles = await Promise.all(Array.from({ length: 20 }, (_, i) => call(name, `/rate/${i}`)));
    await Promise.all(handles.map((h) => h.result()));
    const times = arrivals.map((a) => a.at).sort((a, b) => a - b);
    expect(times).toHaveLength(20);
    expect(times[19] - times[0]).toBeGreaterThanOrEqual(3_000 - 50);
    for (let i = 0; i + 5 < times.length; i++) expect(times[i + 5] - times[i]).toBeGreaterThanOrEqual(1_000 - 50);
  });

  test('lowering max_concurrent while calls wait takes effect on the next slot', async () => {
    const name = uniqueName('lower').toLowerCase();
    holdMs = 600;
    await services[0].apply({ name, type: 'REST', value: { base_url: target.url }, limits: { max_concurrent: 4 } });
    const handles = await Promise.all(Array.from({ length: 12 }, (_, i) => call(name, `/lower/${i}`)));
    await soon(() => expect(holding).toBe(4), 10_000);
    await services[1].apply({ name, type: 'REST', value: { base_url: target.url }, limits: { max_concurrent: 1 } });
    const changedAt = Date.now();
    // The four already holding a slot finish within holdMs; from then on, one at a time.
    mostHeld = 0;
    await new Promise((r) => setTimeout(r, holdMs + 200));
    const settledAt = Date.now();
    mostHeld = holding;
    await Promise.all(handles.map((h) => h.result()));
    expect(mostHeld).toBe(1);
    const after = arrivals.filter((a) => a.at > settledAt).map((a) => a.at).sort((a, b) => a - b);
    expect(after.length).toBeGreaterThanOrEqual(6);
    for (let i = 1; i < after.length; i++) expect(after[i] - after[i - 1]).toBeGreaterThanOrEqual(holdMs - 50);
    expect(settledAt - changedAt).toBeLessThan(5_000);
  });

  test('a 429 with Retry-After: 2 pauses every other call through the connector for about 2 s', async () => {
    const name = uniqueName('backoff').toLowerCase();
    holdMs = 20;
    await services[0].apply({ name, type: 'REST', value: { base_url: target.url }, limits: { max_concurrent: 10 } });
    target.respondWith({ status: 429, headers: { 'retry-after': '2' }, body: { error: 'slow down' } });
    const first = await call(name, '/first');
    await soon(() => expect(target.requests.some((r) => r.path === '/first')).toBe(true), 10_000);
    const refusedAt = Date.now();
    const others = await Promise.all(Array.from({ length: 5 }, (_, i) => call(name, `/after/${i}`)));
    const handle = others[0];
    await soon(async () => {
      const { currentDetails } = await handle.query<{ currentDetails: string }>('__temporal_workflow_metadata');
      expect(currentDetails).toContain(`waiting: ${name} answered 429 Too Many Requests`);
    }, 5_000);
    await Promise.all([first, ...others].map((h) => h.result()));
    const later = arrivals.filter((a) => a.path.startsWith('/after/') || a.path === '/first').filter((a) => a.at > refusedAt);
    expect(later).toHaveLength(6);
    for (const arrival of later) expect(arrival.at - refusedAt).toBeGreaterThanOrEqual(1_700);
    // The retry of the refused call is its second attempt; the others needed only one.
    expect(((await first.result()) as ConnectionResult).attempt).toBe(2);
  });

  test('cancelling a waiting call ends it at once, sends nothing and takes no slot', async () => {
    const name = uniqueName('cancel').toLowerCase();
    holdMs = 2_000;
    await services[0].apply({ name, type: 'REST', value: { base_url: target.url }, limits: { max_concurrent: 1 } });
    const busy = await call(name, '/busy');
    await soon(() => expect(holding).toBe(1), 10_000);
    const waiting = await call(name, '/never');
    await soon(async () => {
      const { currentDetails } = await waiting.query<{ currentDetails: string }>('__temporal_workflow_metadata');
      expect(currentDetails).toContain('waiting for a slot');
    }, 5_000);
    await waiting.cancel();
    await expect(waiting.result()).rejects.toThrow(WorkflowFailedError);
    await busy.result();
    expect(arrivals.map((a) => a.path)).toEqual(['/busy']);
  });

  test('a call that cannot get a slot within its max_wait fails with Connector.External.Timeout, having made no attempt', async () => {
    const name = uniqueName('maxwait').toLowerCase();
    holdMs = 3_000;
    await services[0].apply({ name, type: 'REST', value: { base_url: target.url }, limits: { max_concurrent: 1, max_wait: '1s' } });
    const busy = await call(name, '/hog');
    await soon(() => expect(holding).toBe(1), 10_000);
    const impatient = await call(name, '/impatient');
    const failure = await impatient.result().then(
      () => undefined,
      (err: WorkflowFailedError) => err.cause,
    );
    expect(failure).toMatchObject({ type: 'Connector.External.Timeout', nonRetryable: true });
    expect(failure!.message).toContain('no attempt was made');
    await busy.result();
    expect(arrivals.map((a) => a.path)).toEqual(['/hog']);
  });

  test('a worker killed while it holds slots gives them back within the lease time, and the other worker finishes the calls', async () => {
    const name = uniqueName('killed').toLowerCase();
    holdMs = 60_000; // the calls of the killed worker never finish by themselves
    const queue = uniqueName('limits-kill');
    await services[0].apply({ name, type: 'REST', value: { base_url: target.url }, limits: { max_concurrent: 2 } });
    let doomed: WorkerProcess | undefined = await startWorkerProcess('limits-doomed', queue, { DATABASE_URL: scratch.url, TC_LIMIT_LEASE_MS: String(LEASE_MS) });
    const handles = await Promise.all(
      [0, 1].map((i) =>
        client.workflow.start('connection', {
          taskQueue: queue,
          workflowId: uniqueName('killed'),
          // Activity tasks: a killed worker's attempt is noticed by the heartbeat timeout and retried.
          args: [{ connector: name, overrides: { path: `/held/${i}` }, options: { localActivity: false, retry: { initialInterval: '100ms', maximumAttempts: 3 } } }],
        }),
      ),
    );
    try {
      await soon(() => expect(holding).toBe(2), 60_000);
      expect(await services[0].limitsUsage(await services[0].get(name))).toMatchObject({ in_flight: 2 });
      holdMs = 50;
      doomed.child.kill('SIGKILL');
      await doomed.exited;
      const killedAt = Date.now();
      doomed = undefined;
      // The survivor: a worker of this test process on the same queue, store and lease time.
      const store = new ConnectorStore(new PgDatabase({ connectionString: scratch.url }));
      const service = new ConnectorService({ store, registry: new ConnectorRegistry() });
      const survivor = await createConnectorWorker({ connection: nativeConnection, taskQueue: queue, service, limitLeaseMs: LEASE_MS, workerOptions: { workflowBundle: prebuiltBundle('connection') } });
      const survivorRun = runConnectorWorker(survivor, service);
      try {
        // A new call gets a slot once the dead worker's leases ran out: within the lease time, well
        // before Temporal itself gives up the killed attempts (heartbeat timeout, 10 s).
        const fresh = await client.workflow.start('connection', { taskQueue: queue, workflowId: uniqueName('fresh'), args: [{ connector: name, overrides: { path: '/fresh' } }] });
        await fresh.result();
        const freshAt = arrivals.find((a) => a.path === '/fresh')!.at;
        expect(freshAt - killedAt).toBeLessThan(LEASE_MS + 2_000);
        // The killed calls are made again by the survivor, each once more.
        const results = (await Promise.all(handles.map((h) => h.result()))) as ConnectionResult[];
        expect(results.map((r) => r.attempt)).toEqual([2, 2]);
        const retried = arrivals.filter((a) => a.at > killedAt && a.path !== '/fresh');
        expect(retried.map((a) => a.path).sort()).toEqual(['/held/0', '/held/1']);
        expect(await service.limitsUsage(await service.get(name))).toMatchObject({ in_flight: 0 });
      } finally {
        survivor.shutdown();
        await survivorRun;
      }
    } finally {
      await stopWorkerProcess(doomed);
    }
  });
});
