import { randomBytes } from 'node:crypto';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import { createConnectorActivities } from '../../activities/connector-activities';
import { ConnectorRegistry } from '../../connectors/registry';
import { DESCRIPTOR_SEAL_SECRET, DescriptorSeal } from '../../core/descriptor-seal';
import { Keyring } from '../../core/keyring';
import { ConnectorLimiter, DEFAULT_MAX_BACKOFF_MS } from '../../core/limits';
import { ConnectorService, ConnectorValidationError } from '../../core/service';
import { startManagementApi } from '../../api/server';
import { ConnectorStore } from '../../core/store/connector-store';
import { PgDatabase } from '../../core/store/database';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';
import { createConnectorWorker, runConnectorWorker } from '../../worker/connector-worker';
import type { ConnectionInput, ConnectionResult } from '../../workflows/types';
import type { CallArgs, CallOutcome } from '../fixtures/connector-workflows';
import { startTestHttpServer, type TestHttpServer } from '../fixtures/http-server';
import { FIXTURE_API_KEY, startOpenAiServer } from '../fixtures/openai-server';
import { prebuiltBundle } from '../support/workflow-bundles';
import { soon } from '../support/browser';
import { testStack, uniqueName } from '../support/stack';
import { startWorkerProcess, stopWorkerProcess, workerOfIdentity, type WorkerProcess } from '../support/worker-process';

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
  /** How long the target holds requests to these paths, when not `holdMs` (per test). */
  let holdByPath: Record<string, number> = {};
  /** Arrival time of each request at the target, by path. */
  const arrivals: Array<{ path: string; at: number }> = [];
  /** When the target held each request: from its arrival to its answer. */
  const held: Array<{ path: string; from: number; to: number }> = [];
  /** Runs the fixture workflows (test/fixtures/connector-workflows.ts) that call connectors as user code does. */
  const userQueue = uniqueName('limits-user');

  /** One keyring for every worker on the store, as production shares TC_KEYRING. */
  const keyring = new Keyring([{ id: 'limits', key: randomBytes(32) }]);

  async function startWorker(): Promise<ConnectorService> {
    const store = new ConnectorStore(new PgDatabase({ connectionString: scratch.url }));
    const service = new ConnectorService({ store, registry: new ConnectorRegistry(), keyring });
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
      const from = Date.now();
      arrivals.push({ path: request.path, at: from });
      holding += 1;
      mostHeld = Math.max(mostHeld, holding);
      await new Promise((r) => setTimeout(r, holdByPath[request.path] ?? holdMs));
      holding -= 1;
      held.push({ path: request.path, from, to: Date.now() });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ path: request.path }));
    });
    await startWorker();
    await startWorker();
    const own = await NativeConnection.connect({ address: stack.temporal.address });
    workerConnections.push(own);
    const userWorker = await Worker.create({ connection: own, taskQueue: userQueue, workflowBundle: prebuiltBundle('connectorWorkflows') });
    workers.push(userWorker);
    running.push(userWorker.run());
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
    holdByPath = {};
    arrivals.length = 0;
    held.length = 0;
  });

  /** The most requests to `paths` the target held at one moment. */
  function mostHeldAtOnce(paths: (path: string) => boolean): number {
    const edges = held.filter((h) => paths(h.path)).flatMap((h) => [{ at: h.from, step: 1 }, { at: h.to, step: -1 }]);
    // An answer and an arrival in the same millisecond: the answer first, as the server saw them.
    edges.sort((a, b) => a.at - b.at || a.step - b.step);
    let now = 0;
    let most = 0;
    for (const { step } of edges) most = Math.max(most, (now += step));
    return most;
  }

  /**
   * A call of one attempt, as an activity task, that fails: its failure, and the next retry delay the
   * activity's failure asked for, as recorded in the history (a failure read back does not carry it).
   */
  async function failedCall(connector: string, path: string) {
    const handle = await client.workflow.start('connection', {
      taskQueue,
      workflowId: uniqueName('failed'),
      args: [{ connector, overrides: { path }, options: { localActivity: false, retry: { maximumAttempts: 1 } } }],
    });
    const failure = await handle.result().then(
      () => undefined,
      (err: WorkflowFailedError) => err.cause,
    );
    const events = (await handle.fetchHistory()).events ?? [];
    const failed = events.find((e) => e.activityTaskFailedEventAttributes)?.activityTaskFailedEventAttributes;
    return { failure, nextRetryDelayMs: optionalTsToMs(failed?.failure?.applicationFailureInfo?.nextRetryDelay) };
  }

  /** `connectors.invoke` scheduled by a workflow of its own on the connectors task queue, as any workflow could. */
  function invokeDirectly(input: ConnectionInput, maximumAttempts = 50): Promise<CallOutcome> {
    return client.workflow.execute('invokeDirectly', { taskQueue: userQueue, workflowId: uniqueName('direct'), args: [{ taskQueue, input, maximumAttempts }] });
  }

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
    expect(await refused({ max_wait: '2h' })).toEqual(['limits.max_wait']);
    expect(await refused({ max_backoff: '2h' })).toEqual(['limits.max_backoff']);
    expect(await refused({ max_backoff: '500ms' })).toEqual(['limits.max_backoff']);
    expect(await refused({ max_concurent: 2 })).toEqual(['limits']);
    await expect(services[0].get('bad_limits')).rejects.toThrow(/does not exist/);
  });

  test('rate 5 per 1s: 20 calls take at least 3 s at the server, and no second there sees more than 5 arrive', async () => {
    const name = uniqueName('rate5').toLowerCase();
    holdMs = 10;
    await services[1].apply({ name, type: 'REST', value: { base_url: target.url }, limits: { rate: { calls: 5, per: '1s' } } });
    const handles = await Promise.all(Array.from({ length: 20 }, (_, i) => call(name, `/rate/${i}`)));
    await Promise.all(handles.map((h) => h.result()));
    const times = arrivals.map((a) => a.at).sort((a, b) => a - b);
    expect(times).toHaveLength(20);
    expect(times[19] - times[0]).toBeGreaterThanOrEqual(3_000 - 50);
    // The rate counts each start right before it is sent: no second measured at the server holds more than 5.
    for (let i = 0; i + 5 < times.length; i++) expect(times[i + 5] - times[i]).toBeGreaterThanOrEqual(1_000);
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

  test("an AGENT, stored or inline, obeys the limits of the connector it hands its call to: a rate of 1 per hour lets one call through, whichever way it comes", async () => {
    const llm = await startOpenAiServer();
    try {
      const model = uniqueName('limitedllm').toLowerCase();
      const agent = uniqueName('freeagent').toLowerCase();
      await services[0].apply({ name: model, type: 'OPENAI', value: { base_url: llm.url, api_key: FIXTURE_API_KEY, default_model: 'fixture-small' }, limits: { rate: { calls: 1, per: '1h' } } });
      await services[0].apply({ name: agent, type: 'AGENT', value: { connector: model } }); // no limits of its own
      const messages = [{ role: 'user', content: 'hi' }];
      const once = { retry: { maximumAttempts: 1 }, maxWait: '1s' };
      const run = (connector: ConnectionInput['connector'], overrides?: Record<string, unknown>) =>
        client.workflow.execute('connection', { taskQueue, workflowId: uniqueName('agentcall'), args: [{ connector, overrides, options: once }] }).then(
          () => undefined,
          (err: WorkflowFailedError) => err.cause as { type?: string; message: string },
        );
      expect(await run(agent, { messages })).toBeUndefined();
      expect(llm.requests.length).toBe(1);
      expect(await run(model, { operation: 'models.list' })).toMatchObject({ type: 'Connector.External.Timeout' });
      expect(await run({ type: 'AGENT', connector: model, messages })).toMatchObject({ type: 'Connector.Limits.Busy', message: expect.stringContaining(`connector ${model}`) });
      expect(await run(agent, { messages })).toMatchObject({ type: 'Connector.Limits.Busy' });
      expect(llm.requests.length).toBe(1);
    } finally {
      await llm.close();
    }
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

  test('max_wait counts only the time spent waiting for a slot: a retry whose backoff is longer than max_wait still waits for its slot and runs', async () => {
    const name = uniqueName('waitonly').toLowerCase();
    holdMs = 5_000;
    await services[0].apply({ name, type: 'REST', value: { base_url: target.url }, limits: { max_concurrent: 1, max_wait: '3s' } });
    target.respondWith({ status: 503 });
    // Its first attempt fails at once; its retry comes 4 s later, after more than max_wait since it started.
    const flaky = await client.workflow.start('connection', {
      taskQueue,
      workflowId: uniqueName('flaky'),
      args: [{ connector: name, overrides: { path: '/flaky' }, options: { retry: { initialInterval: '4s', maximumAttempts: 2 } } }],
    });
    await soon(() => expect(target.requests.some((r) => r.path === '/flaky')).toBe(true), 10_000);
    // Holds the only slot for 5 s, so the retry must wait for it (about 1.5 s, within max_wait).
    const hog = await client.workflow.start('connection', { taskQueue, workflowId: uniqueName('hog'), args: [{ connector: name, overrides: { path: '/hog' }, options: { maxWait: '30s' } }] });
    await soon(() => expect(holding).toBe(1), 10_000);
    holdMs = 20;
    const result = (await flaky.result()) as ConnectionResult;
    expect(result.attempt).toBe(2);
    await hog.result();
    // The retry did wait: it reached the server only once the hog had let go of the slot.
    const at = (path: string) => arrivals.find((a) => a.path === path)!.at;
    expect(at('/flaky') - at('/hog')).toBeGreaterThanOrEqual(5_000 - 50);
  });

  test('a start taken after waiting for the connector lock counts from that moment, not from the start of its transaction', async () => {
    const name = uniqueName('lockwait').toLowerCase();
    const limits = { rate: { calls: 1, per: '2s' } };
    const limiter = new ConnectorLimiter(services[0].store.db, { leaseMs: LEASE_MS });
    const owner = { workflowId: 'lockwait', runId: 'run-1' };
    const first = await limiter.acquire(name, limits, 'first', owner);
    if (!first.granted) throw new Error('the first slot should be free');
    // Another worker's decision holds the connector's lock for 1 s (the lock key is core/limits.ts's).
    let locked!: () => void;
    const lockTaken = new Promise<void>((resolve) => (locked = resolve));
    const other = services[1].store.db.transaction(async (tx) => {
      await tx.query(`SELECT pg_advisory_xact_lock(hashtext('tc_limits:' || $1))`, [name]);
      locked();
      await new Promise((r) => setTimeout(r, 1_000));
    });
    await lockTaken;
    const started = await limiter.start(name, first.lease, owner, limits);
    await other;
    expect(started).toEqual({ started: true });
    // One call per 2 s: the next may start 2 s after the first started, not 1 s.
    const second = await limiter.acquire(name, limits, 'second', owner);
    expect(second).toMatchObject({ granted: false, reason: 'rate' });
    expect((second as { wait_ms: number }).wait_ms).toBeGreaterThan(1_800);
    await limiter.release(first.lease);
  });

  test('a call that cannot ask for its slot, the store being out of reach, fails as Connector.Store.Unavailable', async () => {
    const name = uniqueName('nostore').toLowerCase();
    await services[0].apply({ name, type: 'REST', value: { base_url: target.url }, limits: { max_concurrent: 1 } });
    const queue = uniqueName('limits-nostore');
    // Profiles load from the real store; the lease tables are in a database nothing listens for.
    const unreachable = new PgDatabase({ connectionString: 'postgres://postgres@127.0.0.1:1/none' });
    const own = await NativeConnection.connect({ address: stack.temporal.address });
    workerConnections.push(own);
    const worker = await Worker.create({
      connection: own,
      taskQueue: queue,
      workflowBundle: prebuiltBundle('connection'),
      activities: createConnectorActivities({ service: services[0], limiter: new ConnectorLimiter(unreachable) }),
    });
    try {
      const failure = await worker.runUntil(async () => {
        const handle = await client.workflow.start('connection', {
          taskQueue: queue,
          workflowId: uniqueName('nostore'),
          args: [{ connector: name, overrides: { path: '/nostore' }, options: { retry: { maximumAttempts: 1 } } }],
        });
        return handle.result().then(
          () => undefined,
          (err: WorkflowFailedError) => err.cause,
        );
      });
      expect(failure).toMatchObject({ type: 'Connector.Store.Unavailable', message: expect.stringContaining('is unavailable: ECONNREFUSED') });
      expect(arrivals).toHaveLength(0);
    } finally {
      await unreachable.close();
    }
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

  test('a hand-started connection whose descriptor names an old version runs the current one: the old unlocked base_url is refused, and the current limits hold', async () => {
    const name = uniqueName('pinned').toLowerCase();
    holdMs = 300;
    const elsewhere = await startTestHttpServer();
    try {
      // Version 1 neither locks base_url nor limits calls; version 2, the current one, does both.
      await services[0].apply({ name, type: 'REST', value: { base_url: target.url } });
      await services[0].apply({ name, type: 'REST', value: { base_url: target.url }, locked: ['base_url'], limits: { max_concurrent: 1 } });
      const oldDescriptor = { name, type: 'REST', version: 1, summary: `REST ${name}`, retry: { maximum_attempts: 1 } };
      const handStart = (overrides: Record<string, unknown>) =>
        client.workflow.start('connection', {
          taskQueue,
          workflowId: uniqueName('hand-started'),
          args: [{ connector: name, overrides, descriptor: oldDescriptor, options: { retry: { initialInterval: '100ms', maximumAttempts: 1 } } }],
        });
      const aimed = await handStart({ base_url: elsewhere.url, path: '/aimed' });
      const failure = await aimed.result().then(
        () => undefined,
        (err: WorkflowFailedError) => err.cause,
      );
      expect(failure).toMatchObject({ type: 'Connector.LockedField', message: expect.stringContaining(`connector ${name} locks base_url`) });
      expect(elsewhere.requests).toHaveLength(0);

      // Four such calls at once go one at a time, each through the current version.
      const handles = await Promise.all([0, 1, 2, 3].map((i) => handStart({ path: `/pinned/${i}` })));
      const results = (await Promise.all(handles.map((h) => h.result()))) as ConnectionResult[];
      expect(results.map((r) => r.connector.version)).toEqual([2, 2, 2, 2]);
      expect(arrivals.filter((a) => a.path.startsWith('/pinned/'))).toHaveLength(4);
      expect(mostHeld).toBe(1);
    } finally {
      await elsewhere.close();
    }
  });

  test('connectors.invoke scheduled directly runs the newest version whatever version its input names, unsealed or sealed for another execution', async () => {
    const name = uniqueName('direct').toLowerCase();
    const elsewhere = await startTestHttpServer();
    try {
      await services[0].apply({ name, type: 'REST', value: { base_url: target.url } });
      await services[0].apply({ name, type: 'REST', value: { base_url: target.url }, locked: ['base_url'] });
      const descriptor = { name, type: 'REST', version: 1, summary: `REST ${name}` };
      const aimAt = (pinned: typeof descriptor & { seal?: string }) => invokeDirectly({ connector: name, overrides: { base_url: elsewhere.url, path: '/aimed' }, descriptor: pinned }, 1);
      expect((await aimAt(descriptor)).error).toMatchObject({ type: 'Connector.LockedField', nonRetryable: true });
      // A seal the workers' own key made, but for another execution (as found in another history), and a forged one.
      const seal = new DescriptorSeal(await services[0].store.workerSecret(DESCRIPTOR_SEAL_SECRET)).seal(name, 1, { workflowId: 'another-workflow', runId: 'another-run' });
      for (const pinned of [{ ...descriptor, seal }, { ...descriptor, seal: 'v1.forged' }]) {
        expect((await aimAt(pinned)).error).toMatchObject({ type: 'Connector.LockedField', nonRetryable: true });
      }
      expect(elsewhere.requests).toHaveLength(0);
      // The same call without the override reaches the connector's own server, through version 2.
      const own = await invokeDirectly({ connector: name, overrides: { path: '/own' }, descriptor }, 1);
      expect(own.details?.connector.version).toBe(2);
    } finally {
      await elsewhere.close();
    }
  });

  test('connectors.invoke scheduled directly obeys the limits: without a slot it takes one itself or fails as Connector.Limits.Busy; a slot granted to another execution is refused', async () => {
    const name = uniqueName('directlimits').toLowerCase();
    holdMs = 300;
    await services[0].apply({ name, type: 'REST', value: { base_url: target.url }, limits: { max_concurrent: 1 } });
    const outcomes = await Promise.all([0, 1, 2, 3].map((i) => invokeDirectly({ connector: name, overrides: { path: `/direct/${i}` } })));
    expect(outcomes.map((o) => o.error)).toEqual([undefined, undefined, undefined, undefined]);
    expect(arrivals.filter((a) => a.path.startsWith('/direct/'))).toHaveLength(4);
    expect(mostHeld).toBe(1);

    // A lease another execution holds, its ID copied from that execution's history: refused, nothing sent.
    const limiter = new ConnectorLimiter(services[0].store.db, { leaseMs: LEASE_MS });
    const other = await limiter.acquire(name, { max_concurrent: 1 }, 'other#1', { workflowId: 'another-workflow', runId: 'another-run' });
    if (!other.granted) throw new Error('the slot should be free');
    try {
      const stolen = await invokeDirectly({ connector: name, overrides: { path: '/stolen' }, slot: { lease: other.lease, attempt: 1 } }, 2);
      expect(stolen.error).toMatchObject({ type: 'Connector.Limits.Busy', nonRetryable: false, message: expect.stringContaining('granted to another workflow execution') });
      // Nor did the call give that execution's slot back.
      expect(await limiter.renew(other.lease, { workflowId: 'another-workflow', runId: 'another-run' })).toBe(true);
      // And without a slot of its own, a direct call finds none free while the other holds it.
      const none = await invokeDirectly({ connector: name, overrides: { path: '/none' } }, 2);
      expect(none.error).toMatchObject({ type: 'Connector.Limits.Busy', message: expect.stringContaining('every slot is taken') });
      expect(arrivals.map((a) => a.path).filter((p) => p === '/stolen' || p === '/none')).toEqual([]);
    } finally {
      await limiter.release(other.lease);
    }
  });

  test('a call whose lease ran out while its activity task was queued does not send under it: with max_concurrent 1 the server never holds 2, and no attempt is spent', async () => {
    const name = uniqueName('expired').toLowerCase();
    const hog = uniqueName('hog').toLowerCase();
    const queue = uniqueName('limits-expired');
    await services[0].apply({ name, type: 'REST', value: { base_url: target.url }, limits: { max_concurrent: 1 } });
    await services[0].apply({ name: hog, type: 'REST', value: { base_url: target.url } });
    holdByPath = { '/hog': 4_000, '/taker': 2_500, '/late': 200 };
    // One activity task at a time, and leases of 1 s: a call granted while the hog runs waits in the
    // queue longer than its lease.
    const store = new ConnectorStore(new PgDatabase({ connectionString: scratch.url }));
    const service = new ConnectorService({ store, registry: new ConnectorRegistry() });
    const own = await NativeConnection.connect({ address: stack.temporal.address });
    workerConnections.push(own);
    const worker = await createConnectorWorker({
      connection: own,
      taskQueue: queue,
      service,
      limitLeaseMs: 1_000,
      workerOptions: { maxConcurrentActivityTaskExecutions: 1, workflowBundle: prebuiltBundle('connection') },
    });
    const run = runConnectorWorker(worker, service);
    const start = (connector: string, path: string, localActivity: boolean) =>
      client.workflow.start('connection', { taskQueue: queue, workflowId: uniqueName(path.slice(1)), args: [{ connector, overrides: { path }, options: { localActivity } }] });
    try {
      const hogCall = await start(hog, '/hog', false);
      await soon(() => expect(arrivals.map((a) => a.path)).toContain('/hog'), 10_000);
      const late = await start(name, '/late', false);
      // Granted: it runs, or rather its activity task waits behind the hog's.
      await soon(async () => {
        const { currentDetails } = await late.query<{ currentDetails: string }>('__temporal_workflow_metadata');
        expect(currentDetails).toMatch(/^invoke: /);
      }, 10_000);
      await new Promise((r) => setTimeout(r, 1_500)); // its lease has run out
      // Takes the slot the late call's lease gave back, as a local activity that does not wait for the hog.
      const taker = await start(name, '/taker', true);
      await soon(() => expect(arrivals.map((a) => a.path)).toContain('/taker'), 10_000);
      const results = (await Promise.all([late, taker, hogCall].map((h) => h.result()))) as ConnectionResult[];
      expect(arrivals.filter((a) => a.path === '/late')).toHaveLength(1);
      // Not vacuous: the late call's activity ran while the taker was still held (the hog ended first).
      const hogEnd = held.find((h) => h.path === '/hog')!.to;
      const taken = held.find((h) => h.path === '/taker')!;
      expect(hogEnd).toBeLessThan(taken.to);
      expect(mostHeldAtOnce((path) => path === '/late' || path === '/taker')).toBe(1);
      expect(results[0].attempt).toBe(1);
    } finally {
      worker.shutdown();
      await run;
    }
  });

  test('rate 3 per 1s over two connector worker processes: no second at the target sees more than 3 arrivals', async () => {
    const name = uniqueName('rate3').toLowerCase();
    holdMs = 10;
    const queue = uniqueName('limits-rate');
    await services[0].apply({ name, type: 'REST', value: { base_url: target.url }, limits: { rate: { calls: 3, per: '1s' } } });
    const env = { DATABASE_URL: scratch.url, TC_LIMIT_LEASE_MS: String(LEASE_MS) };
    const processes: WorkerProcess[] = [];
    try {
      processes.push(...(await Promise.all(['rate-a', 'rate-b'].map((label) => startWorkerProcess(label, queue, env)))));
      const handles = await Promise.all(
        Array.from({ length: 12 }, (_, i) => client.workflow.start('connection', { taskQueue: queue, workflowId: uniqueName('rate3'), args: [{ connector: name, overrides: { path: `/rate3/${i}` } }] })),
      );
      const results = (await Promise.all(handles.map((h) => h.result()))) as ConnectionResult[];
      expect(results.every((r) => r.attempt === 1)).toBe(true);
      // Both processes made calls.
      const callers = new Set<number>();
      for (const handle of handles) {
        for (const event of (await handle.fetchHistory()).events ?? []) {
          const worker = workerOfIdentity(processes, event.workflowTaskCompletedEventAttributes?.identity);
          if (worker) callers.add(worker.pid);
        }
      }
      expect(callers.size).toBe(2);
      const times = arrivals.filter((a) => a.path.startsWith('/rate3/')).map((a) => a.at).sort((a, b) => a - b);
      expect(times).toHaveLength(12);
      // Any 4 arrivals span at least a second.
      const spans = times.slice(3).map((t, i) => t - times[i]);
      expect(Math.min(...spans)).toBeGreaterThanOrEqual(1_000);
    } finally {
      await Promise.all(processes.map((p) => stopWorkerProcess(p)));
    }
  });

  test('a 429 with Retry-After: 999999999 pauses the connector for at most its cap; a save clears the pause, and so does limits reset', async () => {
    const name = uniqueName('huge429').toLowerCase();
    holdMs = 10;
    const definition = { name, type: 'REST', value: { base_url: target.url }, limits: { max_concurrent: 5 } };
    await services[0].apply(definition);
    const refuse = async (path: string) => {
      target.respondWith({ status: 429, headers: { 'retry-after': '999999999' }, body: { error: 'come back in 31 years' } });
      return failedCall(name, path);
    };
    const backoffLeftMs = async () => {
      const { backoff_until } = (await services[1].limitsUsage(await services[1].get(name)))!;
      return backoff_until === undefined ? undefined : Date.parse(backoff_until) - Date.now();
    };

    const { failure, nextRetryDelayMs } = await refuse('/refused');
    expect(failure).toMatchObject({ type: 'Connector.External.Http', message: expect.stringContaining('HTTP 429') });
    expect(nextRetryDelayMs).toBe(DEFAULT_MAX_BACKOFF_MS);
    const left = await backoffLeftMs();
    expect(left).toBeGreaterThan(DEFAULT_MAX_BACKOFF_MS - 60_000);
    expect(left).toBeLessThanOrEqual(DEFAULT_MAX_BACKOFF_MS);

    // Saving the connector (here: the same definition again) ends the pause: a call goes through at once.
    await services[0].apply(definition);
    expect(await backoffLeftMs()).toBeUndefined();
    await (await call(name, '/after-save')).result();

    // max_backoff caps it lower; `limits reset` (the service call behind the CLI, API and console) ends it.
    await services[0].apply({ ...definition, limits: { ...definition.limits, max_backoff: '1m' } });
    expect((await refuse('/refused-again')).nextRetryDelayMs).toBe(60_000);
    expect(await backoffLeftMs()).toBeGreaterThan(50_000);
    expect(await services[1].resetLimits(name)).toEqual({ name, backoff_cleared: true });
    expect(await backoffLeftMs()).toBeUndefined();
    await (await call(name, '/after-reset')).result();
    expect(await services[1].resetLimits(name)).toEqual({ name, backoff_cleared: false });
  });

  test("a Retry-After of a connector without limits is capped too: the failure's next retry delay is at most 10 min", async () => {
    const name = uniqueName('unlimited503').toLowerCase();
    await services[0].apply({ name, type: 'REST', value: { base_url: target.url } });
    target.respondWith({ status: 503, headers: { 'retry-after': '999999999' } });
    const { failure, nextRetryDelayMs } = await failedCall(name, '/503');
    expect(failure).toMatchObject({ type: 'Connector.External.Http', message: expect.stringContaining('HTTP 503') });
    expect(nextRetryDelayMs).toBe(DEFAULT_MAX_BACKOFF_MS);
  });

  test("connect(..., { maxWait: '1s' }) from workflow code fails in about a second when no slot frees, having sent nothing", async () => {
    const name = uniqueName('connectwait').toLowerCase();
    holdMs = 6_000;
    // No max_wait of its own: the connector's default would wait 10 min.
    await services[0].apply({ name, type: 'REST', value: { base_url: target.url }, limits: { max_concurrent: 1 } });
    const busy = await call(name, '/hold-slot');
    await soon(() => expect(holding).toBe(1), 10_000);
    const args: CallArgs = { connector: name, overrides: { path: '/impatient' }, options: { taskQueue, maxWait: '1s' } };
    const startedAt = Date.now();
    const failure = await client.workflow.execute('connectOutput', { taskQueue: userQueue, workflowId: uniqueName('connect-wait'), args: [args] }).then(
      () => undefined,
      (err: WorkflowFailedError) => err.cause,
    );
    const tookMs = Date.now() - startedAt;
    expect(failure).toMatchObject({ type: 'Connector.External.Timeout', message: expect.stringContaining('longest wait of "1s"') });
    expect(tookMs).toBeLessThan(4_000);
    await busy.result();
    expect(arrivals.map((a) => a.path)).toEqual(['/hold-slot']);
  });
});

describe('the descriptor seal', () => {
  const seal = new DescriptorSeal('0123456789abcdef0123456789abcdef0123456789abcdef');
  const execution = { workflowId: 'order-42/connection/1', runId: '9a1c' };

  test('verifies for the connector, version and execution it was made for, and for nothing else', () => {
    const made = seal.seal('billing', 3, execution);
    expect(seal.verify('billing', 3, execution, made)).toBe(true);
    expect(seal.verify('billing', 2, execution, made)).toBe(false);
    expect(seal.verify('billing2', 3, execution, made)).toBe(false);
    expect(seal.verify('billing', 3, { ...execution, runId: '9a1d' }, made)).toBe(false);
    expect(seal.verify('billing', 3, { ...execution, workflowId: 'order-43/connection/1' }, made)).toBe(false);
    expect(new DescriptorSeal('another secret of at least thirty-two chars').verify('billing', 3, execution, made)).toBe(false);
    for (const bad of [undefined, '', 'v1.', made.slice(0, -2), `${made}AA`, 42]) expect(seal.verify('billing', 3, execution, bad)).toBe(false);
  });
});
