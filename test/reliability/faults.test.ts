import type { WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import vault from 'node-vault';
import { Client as PgClient } from 'pg';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import * as path from 'node:path';
import { StoreConflictError, StoreUnavailableError } from '../../core/store/connector-store';
import { LISTEN_APPLICATION_NAME, PgDatabase } from '../../core/store/database';
import { startVaultDevServer, type VaultDevServer } from '../../scripts/devstack/vault';
import type { CallArgs, CallOutcome } from '../fixtures/connector-workflows';
import { startTestHttpServer, type RecordedRequest, type TestHttpServer } from '../fixtures/http-server';
import { startTcpProxy, type TcpProxy } from '../fixtures/tcp-proxy';
import { startHarness, type Harness } from '../support/harness';
import { LOG_DIR, recordSecrets } from '../support/leak-sweep';
import { testStack, uniqueName } from '../support/stack';
import { pollUntil, sleep, waitFor } from '../support/wait';
import { startWorkerProcess, stopWorkerProcess, withinMs, workerOfIdentity, type WorkerProcess } from '../support/worker-process';

type PendingActivity = temporal.api.workflow.v1.IPendingActivityInfo;
type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/**
 * Retries quick and many enough to outlast each fault below (a few seconds) while the test stays short:
 * 40 attempts, 200 ms apart at first, at most 1 s apart.
 */
const PATIENT_RETRY = { maximum_attempts: 40, initial_interval: '200ms', backoff_coefficient: 1.5, maximum_interval: '1s' };

const portOf = (address: string) => Number(new URL(address).port);

/** Pending activity of a `connection` child (its one `connectors.invoke`), or undefined when it has none. */
async function pendingInvoke(h: Harness, childId: string): Promise<PendingActivity | undefined> {
  const description = await h.client.workflow.getHandle(childId).describe();
  return description.raw.pendingActivities?.[0] ?? undefined;
}

async function historyEvents(h: Harness, workflowId: string): Promise<HistoryEvent[]> {
  return (await h.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
}

/** The ActivityTaskStarted events of a history: Temporal records only each activity's last attempt, with the failure before it. */
function activityStarts(events: HistoryEvent[]) {
  return events.flatMap((e) => (e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes] : []));
}

/** Requests per call key (the request path). */
function requestsByKey(requests: RecordedRequest[]): Map<string, RecordedRequest[]> {
  const byKey = new Map<string, RecordedRequest[]>();
  for (const request of requests) byKey.set(request.path, [...(byKey.get(request.path) ?? []), request]);
  return byKey;
}

/** A promise the test resolves when it chooses. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

// Faults that strike while calls are in flight, and the recovery: each call is retried by Temporal
// and completes once the fault is gone, and the parent gets one result per call.
describe('connections in flight when a dependency fails', () => {
  const stack = testStack();
  let vaultServer: VaultDevServer | undefined;
  // The worker reaches this test's Vault through a forwarder, as through a load balancer: see the Vault test.
  let vaultAddress: TcpProxy;
  let h: Harness;
  let api: TestHttpServer | undefined;
  let vaultLogFile: WriteStream | undefined;
  const vaultLog = () => {
    mkdirSync(LOG_DIR, { recursive: true });
    vaultLogFile ??= createWriteStream(path.join(LOG_DIR, 'vault-faults.log'), { flags: 'w' });
    return (line: string) => vaultLogFile!.write(`${line}\n`);
  };

  // Two connector workers in processes of their own on a task queue of their own, for the cases that
  // kill one with SIGKILL. A worker process takes seconds to start (tsx, bundling its workflow), which
  // the cases before can use: the two start with the file, and a killed one is replaced as soon as its
  // case is over, while the case after it runs.
  const failoverQueue = uniqueName('faults-failover');
  /** Every worker process this file started, stopped after it when still running. */
  const workerProcesses: WorkerProcess[] = [];
  /** The two workers `faults-a` and `faults-b`, once both poll. */
  let failoverWorkers: Promise<WorkerProcess[]> = Promise.resolve([]);
  const isAlive = (w: WorkerProcess) => w.child.exitCode === null && w.child.signalCode === null;
  /** Starts the two workers, or a new one for each that died, without waiting for them: see `failoverWorkers`. */
  function startFailoverWorkers(): void {
    failoverWorkers = failoverWorkers.then((workers) =>
      Promise.all(
        ['faults-a', 'faults-b'].map(async (label) => {
          const running = workers.find((w) => w.label === label && isAlive(w));
          if (running) return running;
          const started = await startWorkerProcess(label, failoverQueue);
          workerProcesses.push(started);
          return started;
        }),
      ),
    );
    failoverWorkers.catch(() => undefined); // a worker that cannot start fails the case that awaits it
  }

  beforeAll(async () => {
    startFailoverWorkers();
    // A Vault of this test's own: stopping the run's shared one would break other test files.
    vaultServer = await startVaultDevServer({ rootToken: stack.vault.token, onLine: vaultLog() });
    vaultAddress = await startTcpProxy(portOf(vaultServer.address));
    h = await startHarness({ vaultAddress: vaultAddress.url });
  }, 120_000);
  afterEach(async () => {
    await api?.close();
    api = undefined;
  });
  afterAll(async () => {
    // Started or not: a worker still starting is stopped once it has started or failed.
    await failoverWorkers.catch(() => undefined);
    await Promise.all(workerProcesses.map((w) => stopWorkerProcess(w)));
    await h?.shutdown();
    await vaultAddress?.close();
    await vaultServer?.stop();
    vaultLogFile?.end();
  }, 120_000);

  /** Starts `startAllThenAwait` with `calls` on the harness. */
  function startParent(prefix: string, calls: CallArgs[]): Promise<WorkflowHandle> {
    return h.client.workflow.start('startAllThenAwait', { taskQueue: h.userQueue, workflowId: uniqueName(prefix), args: [calls] });
  }

  test('Vault stopped and restarted mid-run: calls fail with a retryable Connector.Vault.Unavailable naming the path, are retried, and succeed once Vault is back', async () => {
    const CALLS = 6;
    const held = gate();
    let firstRequests = 0;
    api = await startTestHttpServer(async (request, res) => {
      if (requestsByKey(api!.requests).get(request.path)!.length === 1) {
        // Every call's first attempt has read Vault and waits here, in flight, while Vault goes down.
        firstRequests++;
        await held.opened;
        res.writeHead(503).end();
      } else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ key: request.path }));
    });
    const secretPath = `secret/data/${uniqueName('faults')}`;
    const tokenBefore = `vault-token-before-${uniqueName('t')}`;
    const tokenAfter = `vault-token-after-${uniqueName('t')}`;
    recordSecrets('the Vault tokens of faults.test.ts', [tokenBefore, tokenAfter]);
    const seed = (server: VaultDevServer, token: string) =>
      vault({ apiVersion: 'v1', endpoint: server.address, token: server.rootToken }).write(secretPath, { data: { token } });
    await seed(vaultServer!, tokenBefore);
    const name = uniqueName('vault_restart').toLowerCase();
    await h.service.apply({
      name,
      type: 'REST',
      value: { base_url: api.url, auth: { type: 'bearer' } },
      vault_secrets: [{ path: secretPath, map: { token: 'auth.token' } }],
      retry: PATIENT_RETRY,
    });

    // As activity tasks: their retries and the failure before each show in the pending activity that this
    // test reads (a local activity retries inside its workflow task, out of Temporal's sight).
    const calls = Array.from({ length: CALLS }, (_, i) => ({ connector: name, overrides: { path: `/vault/${i}` }, options: { taskQueue: h.connectorQueue, localActivity: false } }));
    const parent = await startParent('vault-restart', calls);
    const childIds = calls.map((_, i) => `${parent.workflowId}/connection/${i + 1}`);
    try {
      await waitFor(() => firstRequests === CALLS, 30_000);
      await vaultServer!.stop();
      vaultServer = undefined;
      held.open(); // each call's first attempt ends with a 503; its retries must read Vault again

      // Retried by Temporal while Vault is down: attempt 3 or later, the last one failed by Vault.
      const pending = await pollUntil(
        () => Promise.all(childIds.map((id) => pendingInvoke(h, id))),
        (all) => all.every((p) => (p?.attempt ?? 0) >= 3 && p?.lastFailure?.applicationFailureInfo?.type === 'Connector.Vault.Unavailable'),
        20_000,
      );
      for (const p of pending) {
        expect(p?.attempt).toBeGreaterThanOrEqual(3);
        expect(p?.lastFailure?.applicationFailureInfo).toMatchObject({ type: 'Connector.Vault.Unavailable', nonRetryable: false });
        expect(p!.lastFailure!.message).toContain(secretPath);
        expect(p!.lastFailure!.message).toContain('unreachable');
        expect(p!.lastFailure!.message).not.toContain(tokenBefore);
      }
      // No call went out without its secret.
      expect(api.requests).toHaveLength(CALLS);

      // Dev mode keeps its data in memory: the restarted Vault starts empty, so the test puts the
      // secret back (rotated, to tell the two apart) before the worker's address leads to it again.
      // Done on the same address, the worker's next read could come between start and seed and get a
      // 404, which is Connector.Vault.NotFound and not retried: a different fault from this one.
      const restarted = await startVaultDevServer({ rootToken: stack.vault.token, onLine: vaultLog() });
      vaultServer = restarted;
      await seed(restarted, tokenAfter);
      vaultAddress.forwardTo(portOf(restarted.address));

      const outcomes = (await withinMs(parent.result(), 60_000, 'the calls completing once Vault is back')) as CallOutcome[];
      const byKey = requestsByKey(api.requests);
      outcomes.forEach((outcome, i) => {
        expect(outcome.error).toBeUndefined();
        expect(outcome.details!.output).toMatchObject({ status: 200, body: { key: `/vault/${i}` } });
        expect(outcome.details!.attempt).toBeGreaterThanOrEqual(3);
        // The first attempt with the secret as it was, the last with the one Vault holds after the restart.
        expect(byKey.get(`/vault/${i}`)!.map((r) => r.headers.authorization)).toEqual([`Bearer ${tokenBefore}`, `Bearer ${tokenAfter}`]);
      });
      for (const id of childIds) {
        const [last] = activityStarts(await historyEvents(h, id));
        expect(last.lastFailure?.applicationFailureInfo?.type).toBe('Connector.Vault.Unavailable');
      }
    } finally {
      held.open();
      await parent.terminate('test over').catch(() => undefined);
    }
  }, 120_000);

  describe("with the store's PostgreSQL connections killed", () => {
    // Only the backends of the harness's own scratch database: the PostgreSQL server is shared.
    let admin: PgClient;

    beforeAll(async () => {
      const [{ database }] = await h.store.db.query<{ database: string }>('SELECT current_database() AS database');
      const url = new URL(stack.databaseUrl);
      url.pathname = `/${database}`;
      admin = new PgClient({ connectionString: url.toString() });
      await admin.connect();
    });
    afterAll(async () => {
      await admin?.end();
    });

    // pg_stat_activity is read once per transaction and kept; the test reads it inside one, again and again.
    const freshActivity = () => admin.query('SELECT pg_stat_clear_snapshot()');

    /** Store queries waiting for a lock (the connectors table, which the test locks). */
    const waitingQueries = async () => {
      await freshActivity();
      const { rows } = await admin.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
      );
      return rows[0].n;
    };

    /** Terminates every other client backend of the store's database; says how many, and how many of them waited for a lock. */
    const killBackends = async () => {
      await freshActivity();
      const { rows } = await admin.query<{ waiting: boolean; killed: boolean }>(
        `SELECT wait_event_type = 'Lock' AS waiting, pg_terminate_backend(pid) AS killed FROM pg_stat_activity
         WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()`,
      );
      return { killed: rows.filter((r) => r.killed).length, killedWaiting: rows.filter((r) => r.killed && r.waiting).length };
    };

    /** Terminates the worker's LISTEN connection (of the store's change notifications), if it has one now. */
    const killListeners = () =>
      admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1', [
        LISTEN_APPLICATION_NAME,
      ]);

    /** Runs `fn` while the connectors table is locked, so that every store query that touches it waits, in flight. */
    async function whileLocked<T>(fn: () => Promise<T>): Promise<T> {
      await admin.query('BEGIN');
      try {
        await admin.query('LOCK TABLE tc_connector_versions IN ACCESS EXCLUSIVE MODE');
        return await fn();
      } finally {
        await admin.query('ROLLBACK');
      }
    }

    test('a write whose connection is killed while it waits fails with a retryable StoreUnavailableError and writes nothing', async () => {
      const name = uniqueName('pg_killed_write').toLowerCase();
      await h.service.apply({ name, type: 'REST', description: 'first', value: { base_url: 'http://127.0.0.1:1' } });
      const failed = await whileLocked(async () => {
        const write = h.service.apply({ name, type: 'REST', description: 'lost', value: { base_url: 'http://127.0.0.1:1' } }).then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(await pollUntil(waitingQueries, (n) => n === 1, 5_000)).toBe(1);
        expect((await killBackends()).killedWaiting).toBe(1);
        return write;
      });
      expect(failed).toBeInstanceOf(StoreUnavailableError);
      expect((failed as Error).message).toMatch(/^the connector store \(PostgreSQL [^)]+\) is unavailable: /);
      await h.service.apply({ name, type: 'REST', description: 'second', value: { base_url: 'http://127.0.0.1:1' } });
      expect((await h.store.history(name)).map((r) => [r.version, r.description])).toEqual([
        [2, 'second'],
        [1, 'first'],
      ]);
    });

    test('a transaction whose connection is killed between two statements fails with the drop, and the process goes on', async () => {
      const name = uniqueName('pg_killed_tx').toLowerCase();
      await h.service.apply({ name, type: 'REST', description: 'first', value: { base_url: 'http://127.0.0.1:1' } });
      const failed = await h.store.db
        .transaction(async (tx) => {
          await tx.query(`INSERT INTO tc_connector_versions (name, version, type, description) VALUES ($1, 2, 'REST', 'lost')`, [name]);
          const [{ pid }] = await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
          await admin.query('SELECT pg_terminate_backend($1)', [pid]);
          // The drop arrives while the transaction's own code runs, with no statement of it in flight:
          // unheard, it would be an unhandled 'error' event, which ends a process (jest reports it here).
          await sleep(300);
          await tx.query('SELECT 1');
        })
        .then(
          () => undefined,
          (err: unknown) => err,
        );
      // The drop itself (which the store reports as unavailable), not the refusal of the statement after it.
      expect(failed).toMatchObject({ code: '57P01' });
      expect((await h.store.history(name)).map((r) => [r.version, r.description])).toEqual([[1, 'first']]);
    });

    test('a transaction that waits for the pool and gets a connection as it drops fails with the drop, and the process goes on', async () => {
      // The pool's one connection answers a query and is then terminated; the forwarder passes the answer
      // and the server's FATAL on in one write, so the connection goes back to the pool, out to the waiting
      // transaction and then drops, all while one read is handled: before the transaction's code runs again.
      const [{ database }] = await h.store.db.query<{ database: string }>('SELECT current_database() AS database');
      const url = new URL(stack.databaseUrl);
      const proxy = await startTcpProxy(Number(url.port || 5432));
      url.host = `127.0.0.1:${proxy.port}`;
      url.pathname = `/${database}`;
      const db = new PgDatabase({ connectionString: url.toString(), max: 1 });
      try {
        const [{ pid }] = await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        proxy.holdResponses();
        const answered = db.query<{ one: number }>('SELECT 1 AS one');
        const failed = db.transaction((tx) => tx.query('SELECT 2')).then(
          () => undefined,
          (err: unknown) => err,
        );
        await waitFor(() => proxy.heldBytes() > 0);
        await admin.query('SELECT pg_terminate_backend($1)', [pid]);
        await waitFor(() => proxy.heldClose());
        proxy.releaseResponses();
        expect(await answered).toEqual([{ one: 1 }]);
        // The drop itself: unheard, it would have been an unhandled 'error' event, which ends a process.
        expect(await failed).toMatchObject({ code: '57P01' });
        expect(await db.query('SELECT 3 AS three')).toEqual([{ three: 3 }]);
      } finally {
        await db.close();
        await proxy.close();
      }
    });

    test('killed again and again during a burst of calls: the calls retry and succeed, and the store keeps every connector and version', async () => {
      const PARENTS = 4;
      const CALLS_PER_PARENT = 6;
      const ROUNDS = 5;
      api = await startTestHttpServer();

      // Connectors with history and an encrypted secret, read back after the storm.
      const names = Array.from({ length: 4 }, (_, i) => uniqueName(`pg_kill_${i}`).toLowerCase());
      for (const name of names) {
        for (const version of [1, 2, 3]) {
          await h.service.apply({
            name,
            type: 'REST',
            description: `version ${version}`,
            value: { base_url: api.url, auth: { type: 'bearer', token: `store-token-${name}-${version}` } },
            retry: PATIENT_RETRY,
          });
        }
      }
      const rowsBefore = await Promise.all(names.map((name) => h.store.history(name)));
      const profilesBefore = await Promise.all(names.map((name) => h.service.load(name)));

      // A writer during the storm, as an operator's tool would write: retried on StoreUnavailable, and
      // with expectedVersion so that a commit whose answer was lost is recognised rather than written twice.
      const written = uniqueName('pg_kill_written').toLowerCase();
      await h.service.apply({ name: written, type: 'REST', description: 'write 1', value: { base_url: api.url } });
      const WRITES = 5;
      const writer = async () => {
        let failures = 0;
        for (let n = 2; n <= WRITES + 1; n++) {
          let conflicted = false;
          for (;;) {
            try {
              if (conflicted) {
                // Only this writer writes it: a conflict means its own earlier try committed.
                expect((await h.service.get(written)).description).toBe(`write ${n}`);
                break;
              }
              await h.service.apply({ name: written, type: 'REST', description: `write ${n}`, value: { base_url: api!.url } }, { expectedVersion: n - 1 });
              break;
            } catch (err) {
              if (err instanceof StoreConflictError) conflicted = true;
              else if (err instanceof StoreUnavailableError) failures++;
              else throw err;
              await sleep(100);
            }
          }
          await sleep(150);
        }
        return failures;
      };

      const parents: WorkflowHandle[] = [];
      let writes: Promise<number> | undefined;
      try {
        const startBurst = async () => {
          for (let p = 0; p < PARENTS; p++) {
            const calls = Array.from({ length: CALLS_PER_PARENT }, (_, c) => ({
              connector: names[(p + c) % names.length],
              overrides: { path: `/pg/${p}/${c}` },
              // The call as an activity task, whose retries record the failure before them.
              options: { taskQueue: h.connectorQueue, localActivity: false },
            }));
            parents.push(await startParent('pg-kill', calls));
          }
          writes = writer();
        };
        const rounds = [];
        for (let r = 0; r < ROUNDS; r++) {
          rounds.push(
            await whileLocked(async () => {
              await killBackends();
              if (r === 0) await startBurst();
              // The LISTEN connection is killed as soon as it is back: the worker stops trusting its profile
              // cache and reads the store, where the lock holds its queries until they are killed too. Each
              // round waits for more queries than the writer's one, so that calls' queries are killed too.
              await pollUntil(async () => (await killListeners(), waitingQueries()), (n) => n >= (r === 0 ? 3 : 2), 1_500);
              return killBackends();
            }),
          );
          await sleep(150);
        }
        const results = (await withinMs(Promise.all(parents.map((parent) => parent.result())), 90_000, 'the calls completing after the storm')) as CallOutcome[][];
        const writeFailures = await writes!;
        process.stderr.write(`[faults] store storm, per round: ${JSON.stringify(rounds)}; the writer retried ${writeFailures} time(s)\n`);
        expect(rounds[0].killedWaiting).toBeGreaterThanOrEqual(3);

        // Every call succeeded, each with its own answer.
        const outcomes = results.flat();
        expect(outcomes).toHaveLength(PARENTS * CALLS_PER_PARENT);
        results.forEach((parentOutcomes, p) =>
          parentOutcomes.forEach((outcome, c) => {
            expect(outcome.error).toBeUndefined();
            expect(outcome.details!.output).toMatchObject({ status: 200, body: { path: `/pg/${p}/${c}` } });
          }),
        );

        // Killed store queries failed attempts, and Temporal retried them: the `connectors.describe` local
        // activity that starts each `connection` (its marker records the attempt that succeeded), or the
        // call's `connectors.invoke` activity task (whose start records the failure before it).
        const retriedDescribes: number[] = [];
        const retriedInvokes = [];
        for (const outcome of outcomes) {
          const events = await historyEvents(h, outcome.workflowId!);
          for (const e of events) {
            const details = e.markerRecordedEventAttributes?.markerName === 'core_local_activity' ? e.markerRecordedEventAttributes.details?.data?.payloads?.[0]?.data : undefined;
            const attempt = details ? (JSON.parse(Buffer.from(details).toString()) as { attempt?: number }).attempt : undefined;
            if (attempt && attempt > 1) retriedDescribes.push(attempt);
          }
          retriedInvokes.push(...activityStarts(events).filter((s) => (s.attempt ?? 1) > 1));
        }
        process.stderr.write(`[faults] retried after a killed store query: ${retriedDescribes.length} describe(s), ${retriedInvokes.length} call(s)\n`);
        expect(retriedDescribes.length + retriedInvokes.length).toBeGreaterThanOrEqual(1);
        const failures = retriedInvokes.map((s) => s.lastFailure?.applicationFailureInfo?.type ?? `not an application failure: ${s.lastFailure?.message}`);
        expect(failures).toEqual(retriedInvokes.map(() => 'Connector.Store.Unavailable'));

        // The connectors read back as they were, versions 3, 2, 1, ciphertext and all...
        expect(await Promise.all(names.map((name) => h.store.history(name)))).toEqual(rowsBefore);
        for (const rows of rowsBefore) expect(rows.map((r) => r.version)).toEqual([3, 2, 1]);
        expect(await Promise.all(names.map((name) => h.service.load(name)))).toEqual(profilesBefore);
        // ...and the one written during the storm has each write once, in order, with no gap.
        expect((await h.store.history(written)).map((r) => [r.version, r.description])).toEqual(
          Array.from({ length: WRITES + 1 }, (_, i) => [WRITES + 1 - i, `write ${WRITES + 1 - i}`]),
        );
      } finally {
        await writes?.catch(() => undefined);
        await Promise.all(parents.map((parent) => parent.terminate('test over').catch(() => undefined)));
      }
    }, 150_000);
  });

  /** The worker running a call: the one holding its `connection`'s workflow task (a local activity) or its activity task. */
  async function holderOf(workers: WorkerProcess[], childId: string, localActivity: boolean): Promise<WorkerProcess | undefined> {
    if (!localActivity) return workerOfIdentity(workers, (await pendingInvoke(h, childId))?.lastWorkerIdentity);
    const started = (await historyEvents(h, childId)).filter((e) => e.workflowTaskStartedEventAttributes);
    return workerOfIdentity(workers, started.at(-1)?.workflowTaskStartedEventAttributes?.identity);
  }

  /**
   * The case of a worker killed during calls run `how`: as local activities or as activity tasks. With
   * `replaceKilled`, a new worker for the killed one starts once the case is over, for the next case.
   */
  function workerKillCase(how: string, localActivity: boolean, { replaceKilled }: { replaceKilled: boolean }): void {
    describe('with two connector workers in processes of their own', () => {
      test(`a connector worker killed with SIGKILL during several slow calls ${how}: the other worker finishes them, the repeated request carries the same Idempotency-Key, and the parent gets one result each`, async () => {
        // Both running: the ones started with the file, or the survivor of the case before and its replacement.
        const workers = await failoverWorkers;
        const CALLS = 6;
        let firstRequests = 0;
        // Every call's first request is held until the victim is dead, so each call is in flight when it dies;
        // the one that the survivor makes again is answered at once.
        const held = gate();
        api = await startTestHttpServer(async (request, res) => {
          const n = requestsByKey(api!.requests).get(request.path)!.length;
          if (n === 1) {
            firstRequests++;
            await held.opened;
          }
          if (!res.destroyed) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ key: request.path, request: n }));
        });
        const calls: CallArgs[] = Array.from({ length: CALLS }, (_, i) => ({
          connector: { type: 'REST', url: `${api!.url}/slow/${i}`, idempotency_key: 'Idempotency-Key' },
          options: { taskQueue: failoverQueue, timeout: '60s', localActivity, retry: { initialInterval: '200ms', maximumAttempts: 3 } },
        }));
        const parent = await startParent('worker-kill', calls);
        const childIds = calls.map((_, i) => `${parent.workflowId}/connection/${i + 1}`);
        try {
          await waitFor(() => firstRequests === CALLS, 30_000);
          // Temporal knows which worker runs each attempt: its identity is `<pid>@<host>`.
          const holders = await Promise.all(childIds.map((id) => holderOf(workers, id, localActivity)));
          expect(holders.every(Boolean)).toBe(true);
          // The worker with more calls in flight dies: at least half of them.
          const [a, b] = workers;
          const victim = holders.filter((w) => w === a).length >= holders.filter((w) => w === b).length ? a : b;
          const survivor = victim === a ? b : a;
          const lost = new Set(childIds.filter((_, i) => holders[i] === victim));
          expect(lost.size).toBeGreaterThanOrEqual(CALLS / 2);
          victim.child.kill('SIGKILL');
          await victim.exited;
          held.open();

          const outcomes = (await withinMs(parent.result(), 45_000, 'the calls finishing on the surviving worker')) as CallOutcome[];
          const byKey = requestsByKey(api.requests);
          const firstKeys = new Set<string>();
          for (const [i, outcome] of outcomes.entries()) {
            const id = childIds[i];
            const retried = lost.has(id);
            expect(outcome.error).toBeUndefined();
            // A local activity lost with its worker is not a failed attempt: its workflow task timed out,
            // and the next worker to run the `connection` makes the call afresh.
            expect(outcome.details!.attempt).toBe(retried && !localActivity ? 2 : 1);
            // The lost attempt's request had reached the server: a call retried after its worker died is made twice.
            expect(byKey.get(`/slow/${i}`)).toHaveLength(retried ? 2 : 1);
            // ...with the same Idempotency-Key both times, so an API that honours one drops the repeat.
            const keys = byKey.get(`/slow/${i}`)!.map((r) => r.headers['idempotency-key']);
            expect(keys[0]).toMatch(/^tc-[0-9a-f]{32}$/);
            expect(new Set(keys).size).toBe(1);
            firstKeys.add(keys[0] as string);
            expect(outcome.details!.output).toMatchObject({ status: 200, body: { key: `/slow/${i}`, request: retried ? 2 : 1 } });

            const events = await historyEvents(h, id);
            const finisher = (retried ? survivor : holders[i])!.label;
            if (localActivity) {
              // The call's marker is recorded once, by the worker that finished it; a lost one left a timed-out workflow task.
              expect(events.filter((e) => e.workflowTaskTimedOutEventAttributes)).toHaveLength(retried ? 1 : 0);
              const completing = events.filter((e) => e.workflowTaskCompletedEventAttributes).at(-1)!.workflowTaskCompletedEventAttributes!;
              expect(workerOfIdentity(workers, completing.identity)?.label).toBe(finisher);
              expect(events.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity')).toHaveLength(2);
              expect(activityStarts(events)).toEqual([]);
            } else {
              const starts = activityStarts(events);
              expect(starts).toHaveLength(1);
              expect(workerOfIdentity(workers, starts[0].identity)?.label).toBe(finisher);
              if (retried) expect(starts[0].lastFailure?.timeoutFailureInfo?.timeoutType).toBe(temporal.api.enums.v1.TimeoutType.TIMEOUT_TYPE_HEARTBEAT);
              expect(events.filter((e) => e.activityTaskCompletedEventAttributes)).toHaveLength(1);
            }
          }
          expect(firstKeys.size).toBe(CALLS); // one key per call
          // One result per call reached the parent.
          const completed = (await parent.fetchHistory()).events!.flatMap((e) =>
            e.childWorkflowExecutionCompletedEventAttributes ? [e.childWorkflowExecutionCompletedEventAttributes.workflowExecution!.workflowId] : [],
          );
          expect(completed.sort()).toEqual([...childIds].sort());
        } finally {
          held.open();
          await parent.terminate('test over').catch(() => undefined);
          if (replaceKilled) startFailoverWorkers(); // the next case runs meanwhile
        }
      }, 120_000);
    });
  }

  workerKillCase('as local activities (the default for short calls)', true, { replaceKilled: true });

  test('the target answering 503 to calls in flight, then 200: each call is retried after the Retry-After and succeeds, once per attempt', async () => {
    const CALLS = 8;
    const OUTAGE_MS = 1_500;
    // Longer than the outage and far longer than the connector's own backoff (at most 100 ms): the wait
    // before each retry shows which of the two applied.
    const RETRY_AFTER_S = 3;
    const held = gate();
    let outage = true;
    let firstRequests = 0;
    /** Every request: its key, when it arrived, and when and how it was answered. */
    const exchanges: Array<{ key: string; arrivedAt: number; status?: number; answeredAt?: number }> = [];
    api = await startTestHttpServer(async (request, res) => {
      const exchange: (typeof exchanges)[number] = { key: request.path, arrivedAt: Date.now() };
      exchanges.push(exchange);
      if (exchanges.filter((e) => e.key === request.path).length === 1) {
        firstRequests++;
        await held.opened;
      }
      exchange.status = outage ? 503 : 200;
      exchange.answeredAt = Date.now();
      if (outage) res.writeHead(503, { 'retry-after': String(RETRY_AFTER_S) }).end();
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ key: request.path }));
    });
    const name = uniqueName('flaky_target').toLowerCase();
    await h.service.apply({ name, type: 'REST', value: { base_url: api.url }, retry: { ...PATIENT_RETRY, initial_interval: '50ms', maximum_interval: '100ms' } });
    const calls = Array.from({ length: CALLS }, (_, i) => ({ connector: name, overrides: { path: `/flaky/${i}` }, options: { taskQueue: h.connectorQueue } }));
    const parent = await startParent('flaky-target', calls);
    try {
      await waitFor(() => firstRequests === CALLS, 30_000);
      held.open(); // every call in flight gets a 503
      await sleep(OUTAGE_MS); // and so does any retry that arrives meanwhile
      outage = false;

      const outcomes = (await withinMs(parent.result(), 30_000, 'the calls completing after the outage')) as CallOutcome[];
      outcomes.forEach((outcome, i) => {
        const key = `/flaky/${i}`;
        expect(outcome.error).toBeUndefined();
        expect(outcome.details!.output).toMatchObject({ status: 200, body: { key } });
        expect(outcome.details!.attempt).toBeGreaterThan(1);
        // Every attempt reached the server once, and only the last got a 200...
        const mine = exchanges.filter((e) => e.key === key);
        expect(mine.map((e) => e.status)).toEqual([...Array<number>(outcome.details!.attempt - 1).fill(503), 200]);
        // ...each after the wait the 503 before it asked for.
        for (let n = 1; n < mine.length; n++) expect(mine[n].arrivedAt - mine[n - 1].answeredAt!).toBeGreaterThanOrEqual(RETRY_AFTER_S * 1000 - 50);
      });
    } finally {
      held.open();
      await parent.terminate('test over').catch(() => undefined);
    }
  }, 60_000);

  workerKillCase('as activity tasks', false, { replaceKilled: false });
});
