// Connector workers in processes of their own, for tests that kill one (SIGKILL) in the middle of calls.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { LOG_DIR } from './leak-sweep';
import { testStack } from './stack';

const ROOT = path.resolve(__dirname, '..', '..');

/** A connector worker in a process of its own: `npm run worker`'s code, run without the tsx wrapper so that its pid is the worker's. */
export interface WorkerProcess {
  label: string;
  child: ChildProcess;
  pid: number;
  exited: Promise<void>;
}

/**
 * Starts `worker/main.ts` on `taskQueue` with the embedded store in memory (inline connectors only)
 * unless `env` names another (`DATABASE_URL`),
 * logging to `test-artifacts/logs/connector-worker-<label>.log`; resolves once it polls, at most 90 s.
 */
export async function startWorkerProcess(label: string, taskQueue: string, env: Record<string, string> = {}): Promise<WorkerProcess> {
  const stack = testStack();
  mkdirSync(LOG_DIR, { recursive: true });
  const log = createWriteStream(path.join(LOG_DIR, `connector-worker-${label}.log`), { flags: 'w' });
  // A minimal environment: the jest process's own (NODE_OPTIONS, a DATABASE_URL) must not reach the worker.
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'worker', 'main.ts')], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TEMPORAL_ADDRESS: stack.temporal.address,
      TEMPORAL_NAMESPACE: stack.temporal.namespace,
      TC_TASK_QUEUE: taskQueue,
      TC_DATA_DIR: 'memory',
      TC_LOG_LEVEL: 'INFO',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`connector worker ${label} did not start within 90 s; see ${log.path}`)), 90_000);
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        log.write(`${line}\n`);
        if (line.includes('connector worker started')) {
          clearTimeout(timer);
          resolve();
        }
      });
    }
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`connector worker ${label} exited before it started; see ${log.path}`));
    });
  });
  void exited.then(() => log.end());
  try {
    await ready;
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return { label, child, pid: child.pid!, exited };
}

/** Stops a worker process that still runs: SIGTERM, then SIGKILL after 15 s. */
export async function stopWorkerProcess(worker: WorkerProcess | undefined): Promise<void> {
  if (!worker || worker.child.exitCode !== null || worker.child.signalCode !== null) return;
  worker.child.kill('SIGTERM');
  // Cleared once the worker is gone: a pending timer would keep jest's process alive after the tests.
  const timer = setTimeout(() => worker.child.kill('SIGKILL'), 15_000);
  await worker.exited;
  clearTimeout(timer);
}

/** The worker process whose Temporal identity (`<pid>@<host>`) is `identity`. */
export function workerOfIdentity(workers: readonly WorkerProcess[], identity: string | null | undefined): WorkerProcess | undefined {
  return workers.find((w) => (identity ?? '').startsWith(`${w.pid}@`));
}

/** `promise`, or a rejection saying `what` did not happen within `ms`. */
export async function withinMs<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
