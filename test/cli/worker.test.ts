import { Client, Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Keyring } from '../../core/keyring';
import type { ConnectionResult } from '../../workflows/types';
import { startTestHttpServer, type TestHttpServer } from '../fixtures/http-server';
import { testStack, uniqueName } from '../support/stack';
import { sleep } from '../support/wait';

const BIN = path.resolve(__dirname, '..', '..', 'cli', 'bin.js');

/** This process's environment without any Temporal setting: the child then sees only what a test gives it. */
function withoutTemporalSettings(): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => !e[0].startsWith('TEMPORAL_') && e[1] !== undefined));
}

interface RunningWorker {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** Starts the real `connectors worker` and waits, at most 60 s, for its `connector worker started` log line. */
async function startWorker(env: Record<string, string>): Promise<RunningWorker> {
  const child = spawn(process.execPath, [BIN, 'worker'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c) => (output += c));
  child.stderr!.on('data', (c) => (output += c));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const deadline = Date.now() + 60_000;
  while (!output.includes('connector worker started')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`connectors worker did not start: ${output}`);
    }
    await sleep(50);
  }
  return { child, output: () => output, exited };
}

/** Stops `worker` with SIGTERM, as an orchestrator does, and returns its exit code (SIGKILL after 30 s). */
async function stopWorker(worker: RunningWorker): Promise<number | null> {
  worker.child.kill('SIGTERM');
  const timer = setTimeout(() => worker.child.kill('SIGKILL'), 30_000);
  const code = await worker.exited;
  clearTimeout(timer);
  return code;
}

// `connectors worker` configured only through a temporal.toml file, as the Temporal CLI is, on a namespace
// other than `default` that this file registers on the dev server.
describe('connectors worker reaches Temporal as the Temporal CLI does', () => {
  const { temporal } = testStack();
  const namespace = uniqueName('tc-ns');
  const dataDir = mkdtempSync(path.join(tmpdir(), 'tc-worker-'));
  const keyring = Keyring.generateEntry('k1');
  let api: TestHttpServer;
  let connection: Connection;
  let client: Client;

  beforeAll(async () => {
    api = await startTestHttpServer();
    connection = await Connection.connect({ address: temporal.address });
    await connection.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('1 day') });
    client = new Client({ connection, namespace });
    // A new namespace answers describe at once but list and start only once the frontend's cache knows it.
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        await connection.workflowService.listWorkflowExecutions({ namespace, pageSize: 1 });
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await sleep(250);
      }
    }
    // The store is the embedded one in dataDir; apply runs to its end, so the worker can open it after.
    const apply = spawn(process.execPath, [BIN, 'apply', '-f', '-'], {
      env: { ...withoutTemporalSettings(), DATABASE_URL: '', TC_DATA_DIR: dataDir, TC_KEYRING: keyring, TC_KEYRING_FILE: '', VAULT_ADDR: '' },
      stdio: ['pipe', 'ignore', 'inherit'],
    });
    apply.stdin.end(`name: ledger\ntype: REST\nvalue: { url: "${api.url}/ledger" }\n`);
    expect(await new Promise((resolve) => apply.on('close', resolve))).toBe(0);
  }, 120_000);

  afterAll(async () => {
    await api?.close();
    await connection?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const workerEnv = (configFile: string, extra: Record<string, string> = {}) => ({
    ...withoutTemporalSettings(),
    DATABASE_URL: '',
    TC_DATA_DIR: dataDir,
    TC_KEYRING: keyring,
    TC_KEYRING_FILE: '',
    VAULT_ADDR: '',
    TEMPORAL_CONFIG_FILE: configFile,
    ...extra,
  });

  async function runConnection(taskQueue: string): Promise<ConnectionResult> {
    return client.workflow.execute('connection', {
      taskQueue,
      workflowId: uniqueName('ledger'),
      args: [{ connector: 'ledger', descriptor: { name: 'ledger', type: 'REST', version: 1, summary: 'REST ledger GET /ledger' } }],
      workflowExecutionTimeout: '60s',
    });
  }

  test('connectors worker with only TEMPORAL_CONFIG_FILE serves connections in the namespace its default profile names', async () => {
    const configFile = path.join(dataDir, 'temporal.toml');
    writeFileSync(configFile, `[profile.default]\naddress = "${temporal.address}"\nnamespace = "${namespace}"\n`);
    const taskQueue = uniqueName('connectors');
    const worker = await startWorker(workerEnv(configFile, { TC_TASK_QUEUE: taskQueue }));
    try {
      expect(JSON.parse(worker.output().split('\n').find((line) => line.includes('connector worker started'))!)).toMatchObject({
        namespace,
        address: temporal.address,
        tls: 'off',
        api_key: 'none',
      });
      const result = await runConnection(taskQueue);
      expect(result).toMatchObject({ connector: { name: 'ledger', type: 'REST', version: 1 }, output: { status: 200 } });
      expect(api.requests.some((r) => r.path === '/ledger')).toBe(true);
    } finally {
      expect(await stopWorker(worker)).toBe(0);
    }
  }, 120_000);

  test('TEMPORAL_PROFILE selects a profile of temporal.toml other than default', async () => {
    const configFile = path.join(dataDir, 'profiles.toml');
    // The default profile names a port where nothing listens: a worker that read it would never start.
    writeFileSync(configFile, `[profile.default]\naddress = "127.0.0.1:9"\n\n[profile.staging]\naddress = "${temporal.address}"\nnamespace = "${namespace}"\n`);
    const taskQueue = uniqueName('connectors');
    const worker = await startWorker(workerEnv(configFile, { TEMPORAL_PROFILE: 'staging', TC_TASK_QUEUE: taskQueue }));
    try {
      const result = await runConnection(taskQueue);
      expect(result).toMatchObject({ connector: { name: 'ledger' }, output: { status: 200 } });
    } finally {
      expect(await stopWorker(worker)).toBe(0);
    }
  }, 120_000);

  test('SIGTERM lets a call in flight finish before the worker exits; another worker takes over, and the call is made once', async () => {
    const configFile = path.join(dataDir, 'temporal.toml');
    writeFileSync(configFile, `[profile.default]\naddress = "${temporal.address}"\nnamespace = "${namespace}"\n`);
    const taskQueue = uniqueName('connectors');
    const worker = await startWorker(workerEnv(configFile, { TC_TASK_QUEUE: taskQueue }));
    const before = api.requests.length;
    api.respondWith({ status: 200, body: { slow: true }, delayMs: 3_000 });
    const running = runConnection(taskQueue);
    const deadline = Date.now() + 30_000;
    while (api.requests.length === before && Date.now() < deadline) await sleep(20);
    expect(api.requests.length).toBe(before + 1);
    const code = await stopWorker(worker);
    expect({ code, output: worker.output() }).toMatchObject({ code: 0 });
    // The workflow itself completes on whichever worker polls next, as with several hosts on one store.
    const next = await startWorker(workerEnv(configFile, { TC_TASK_QUEUE: taskQueue }));
    try {
      expect(await running).toMatchObject({ output: { status: 200, body: { slow: true } }, attempt: 1 });
      expect(api.requests.length).toBe(before + 1);
    } finally {
      expect(await stopWorker(next)).toBe(0);
    }
  }, 120_000);
});
