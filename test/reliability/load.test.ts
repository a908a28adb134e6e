import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import * as path from 'node:path';
import { startTemporalDevServer, type TemporalDevServer } from '../../scripts/devstack/temporal';
import type { CallArgs, CallOutcome } from '../fixtures/connector-workflows';
import { startTestHttpServer, type TestHttpServer } from '../fixtures/http-server';
import { startHarness, type Harness } from '../support/harness';
import { LOG_DIR } from '../support/leak-sweep';
import { uniqueName } from '../support/stack';

const PARENTS = 50;
const CALLS_PER_PARENT = 10;

// Many calls in flight at once through one connector worker: every one completes, once, with its own answer.
describe('connections under load', () => {
  let temporal: TemporalDevServer | undefined;
  let log: WriteStream | undefined;
  let h: Harness;
  let api: TestHttpServer;
  /** Requests the server received per call key (the path, which names the parent and the call). */
  const received = new Map<string, number>();

  beforeAll(async () => {
    api = await startTestHttpServer((request, res) => {
      received.set(request.path, (received.get(request.path) ?? 0) + 1);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ key: request.path }));
    });
    // A Temporal of this test's own: the run's dev server keeps its history in one SQLite database, and
    // 500 connections at once would hold up the test files that run beside this one.
    mkdirSync(LOG_DIR, { recursive: true });
    log = createWriteStream(path.join(LOG_DIR, 'temporal-load.log'), { flags: 'w' });
    temporal = await startTemporalDevServer({ uiPort: false, onLine: (line) => log!.write(`${line}\n`) });
    h = await startHarness({ temporalAddress: temporal.address });
  }, 120_000);
  afterAll(async () => {
    await h?.shutdown();
    await api?.close();
    await temporal?.stop();
    log?.end();
  });

  test(`${PARENTS} workflows with ${CALLS_PER_PARENT} connections each in flight: every call completes, and none reaches the server more often than its attempts`, async () => {
    const name = uniqueName('load').toLowerCase();
    await h.service.apply({ name, type: 'REST', value: { base_url: api.url }, retry: { maximum_attempts: 5, initial_interval: '200ms' } });
    const key = (parent: number, call: number) => `/load/${parent}/${call}`;
    const started = Date.now();
    const parents = await Promise.all(
      Array.from({ length: PARENTS }, (_, p) => {
        const calls: CallArgs[] = Array.from({ length: CALLS_PER_PARENT }, (_, c) => ({
          connector: name,
          overrides: { path: key(p, c) },
          options: { taskQueue: h.connectorQueue },
        }));
        return h.client.workflow.start('startAllThenAwait', { taskQueue: h.userQueue, workflowId: uniqueName(`load-${p}`), args: [calls] });
      }),
    );
    try {
      const results = (await Promise.all(parents.map((parent) => parent.result()))) as CallOutcome[][];
      const elapsedMs = Date.now() - started;
      process.stderr.write(`[load] ${PARENTS * CALLS_PER_PARENT} connections from ${PARENTS} workflows in ${(elapsedMs / 1000).toFixed(1)} s\n`);

      const attempts = new Map<string, number>();
      results.forEach((outcomes, p) => {
        expect(outcomes).toHaveLength(CALLS_PER_PARENT);
        outcomes.forEach((outcome, c) => {
          expect(outcome.error).toBeUndefined();
          expect(outcome.workflowId).toBe(`${parents[p].workflowId}/connection/${c + 1}`);
          // Each call got the answer to its own request, not another's.
          expect(outcome.details!.output).toMatchObject({ status: 200, body: { key: key(p, c) } });
          attempts.set(key(p, c), outcome.details!.attempt);
        });
      });

      // The server saw exactly the calls made, none lost and none unknown...
      expect([...received.keys()].sort()).toEqual([...attempts.keys()].sort());
      // ...and each at most once per attempt Temporal recorded: a second request without a retry is a duplicate.
      const duplicates = [...received].filter(([k, count]) => count > attempts.get(k)!);
      expect(duplicates).toEqual([]);
    } finally {
      await Promise.all(parents.map((parent) => parent.terminate('test over').catch(() => undefined)));
    }
  }, 150_000);
});
