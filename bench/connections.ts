// `npm run bench [-- --calls N --sequential-calls N --delays 0,20 --modes W0,B0,B1,B2,B3,B4,B5
//   --concurrency 1,10,100 --warmup N --resolutions N --stored 1,100,10000 --dynamic-config K=V]`
//
// What a call through connect() costs next to the same call made other ways, on one Temporal dev
// server this script starts itself (with Vault and a scratch PostgreSQL database, through
// scripts/devstack/), against a tiny HTTP target in this process that answers GET with JSON after
// an injected delay:
//   W0  an empty workflow, started and awaited by the client (reference: the fixed cost of a workflow);
//   B0  the HTTP call from Node (fetch), no Temporal;
//   B1  a workflow calling a plain activity that makes the same call (proxyActivities);
//   B2  the same through a local activity (proxyLocalActivities);
//   B3  connect() of a stored REST connector with a bearer token, as it is by default: the `connection`
//       child on the connector worker (with code before the self-resolving `connection`: a describe
//       activity in the parent first, and the invoke as an activity task);
//   B4  the same connect() with `{ localActivity: true }`: the invoke runs as a local activity of the
//       `connection` execution (the default for calls of at most 1 min, so B3 measures it too);
//   B5  the same connect() with `{ localActivity: false }`: the invoke runs as an activity task.
// Then the resolution inside the connector worker, without Temporal (bench/connections-resolve.ts).
//
// Method, the same for B1-B4 so that their ratios are fair:
// - Latency (p50/p90/p99): workflow code has no clock (its time is the time of its workflow task), so
//   each call is measured from the client, end to end: the client runs one short parent workflow per
//   call (execute: start, one call, result), one after another, and times each. That includes
//   starting and finishing the parent, which W0 measures alone. B0 times each fetch the same way.
// - Throughput at concurrency K: one parent runs the calls with K in flight at once (K lanes under one
//   Promise.all, see bench/connections-workflows.ts), timed from the client; calls / elapsed time.
//   Parents take at most MAX_CALLS_PER_PARENT calls, to keep their histories small; more calls run in
//   several parents one after another, and the time counts all of them. B0 runs K fetches at once.
// - CPU per call: process.cpuUsage() of the child process that hosts the workers (bench/connections-worker.ts;
//   a fresh one per mode), of the Temporal server process (from /proc), and of this process (client
//   and HTTP target), over the throughput phases, divided by their calls. Peak RSS: the worker process's
//   resident set sampled every 50 ms during each phase, and its lifetime maxRSS.
// - Each mode and delay starts with an unmeasured warm-up (worker caches, JIT, keep-alive sockets).
//
// Prints Markdown tables to stdout and progress to stderr, and writes the figures as JSON under
// bench/results/ (git-ignored: they depend on the machine). Not part of `npm test`.
import { Client, Connection } from '@temporalio/client';
import { fork, type ChildProcess, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConnectorRegistry } from '../connectors/registry';
import { Keyring } from '../core/keyring';
import { ConnectorService } from '../core/service';
import { ConnectorStore } from '../core/store/connector-store';
import { PgDatabase } from '../core/store/database';
import { createScratchDatabase, type ScratchDatabase } from '../scripts/devstack/postgres';
import { startTemporalDevServer, TEMPORAL_CLI, type TemporalDevServer } from '../scripts/devstack/temporal';
import { startVaultDevServer, VAULT_SERVER, type VaultDevServer } from '../scripts/devstack/vault';
import { benchResolution, resolutionPhases, type ResolutionResults } from './connections-resolve';
import { fixed, markdownTable, Progress, summarize, type Summary } from './connections-stats';
import type { FromWorkerChild, PhaseUsage, ToWorkerChild, WorkerChildConfig } from './connections-worker';
import type { benchCalls, benchEmpty, BenchCallsInput, WorkflowCallMode } from './connections-workflows';

const ROOT = path.resolve(__dirname, '..');
const RESULTS_DIR = path.join(__dirname, 'results');
/** Most calls one parent workflow makes: about 16 history events per connect(), so at most ~8,000 events. */
const MAX_CALLS_PER_PARENT = 500;
const CONNECTOR = 'bench_api';

const MODES = {
  W0: { what: 'empty workflow (reference)', worker: 'user' },
  B0: { what: 'fetch from Node, no Temporal', worker: 'none' },
  B1: { what: 'workflow → activity', worker: 'user' },
  B2: { what: 'workflow → local activity', worker: 'user' },
  B3: { what: 'workflow → connect()', worker: 'both' },
  B4: { what: 'workflow → connect({ localActivity: true })', worker: 'both' },
  B5: { what: 'workflow → connect({ localActivity: false })', worker: 'both' },
} as const;
type Mode = keyof typeof MODES;

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  calls: number;
  /** Default: `calls`. */
  sequentialCalls?: number;
  delays: number[];
  modes: Mode[];
  concurrency: number[];
  warmup: number;
  resolutions: number;
  stored: number[];
  /** `key=value` settings of the dev server's dynamic config. */
  dynamicConfig: string[];
}

const USAGE = `npm run bench [-- options]
  --calls N            calls per measured phase: the latency phase and one throughput phase per
                       concurrency, so 4 × N calls per mode and delay by default. Default 250.
  --sequential-calls N fewer calls where every call waits for the one before: the throughput phase at
                       concurrency 1, and the latency phase against a delayed target. Default: --calls.
  --delays 0,20        delays of the HTTP target, in milliseconds. Default 0,20.
  --modes W0,B0,...    which ways of calling to measure: W0 B0 B1 B2 B3 B4 B5. Default all.
  --concurrency 1,10,100  calls in flight at once for the throughput phases. Default 1,10,100.
  --warmup N           unmeasured calls before each mode and delay. Default 100.
  --resolutions N      resolutions measured per combination in the resolution part; 0 skips it. Default 1000.
  --stored 1,100,10000 numbers of stored connectors for the resolution part. Default 1,100,10000.
  --dynamic-config K=V a dynamic config value of the Temporal dev server, e.g.
                       system.enableActivityEagerExecution=true; repeatable. Default: the dev server's.`;

class UsageError extends Error {}

function parseOptions(argv: string[]): Options {
  const options: Options = {
    // 4 phases × 250 = 1,000 calls per mode and delay. A connect() costs about 0.1 s of CPU (worker and
    // server) on a 2-core machine, so more would take the default run past 15 minutes.
    calls: 250,
    delays: [0, 20],
    modes: Object.keys(MODES) as Mode[],
    concurrency: [1, 10, 100],
    warmup: 100,
    resolutions: 1000,
    stored: [1, 100, 10_000],
    dynamicConfig: [],
  };
  const count = (flag: string, text: string | undefined, min: number) => {
    const n = Number(text);
    if (text === undefined || text.trim() === '' || !Number.isInteger(n) || n < min) throw new UsageError(`${flag} must be a whole number, ${min} or more; got ${text ?? 'nothing'}`);
    return n;
  };
  const list = (flag: string, text: string | undefined, min: number) => {
    const values = (text ?? '').split(',').map((part) => count(`${flag} (each value)`, part, min));
    return [...new Set(values)].sort((a, b) => a - b);
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    switch (flag) {
      case '--calls':
        options.calls = count(flag, value, 1);
        break;
      case '--sequential-calls':
        options.sequentialCalls = count(flag, value, 1);
        break;
      case '--delays':
        options.delays = list(flag, value, 0);
        break;
      case '--concurrency':
        options.concurrency = list(flag, value, 1);
        break;
      case '--warmup':
        options.warmup = count(flag, value, 0);
        break;
      case '--resolutions':
        options.resolutions = count(flag, value, 0);
        break;
      case '--stored':
        options.stored = list(flag, value, 1);
        break;
      case '--dynamic-config':
        if (!value || !/^[\w.]+=\S+$/.test(value)) throw new UsageError(`--dynamic-config must be key=value, e.g. system.enableActivityEagerExecution=true; got ${value ?? 'nothing'}`);
        options.dynamicConfig.push(value);
        break;
      case '--modes': {
        const modes = (value ?? '').split(',').map((m) => m.trim().toUpperCase());
        const unknown = modes.filter((m) => !(m in MODES));
        if (unknown.length > 0 || modes.length === 0) throw new UsageError(`--modes: ${unknown.join(', ') || 'nothing'} is not a mode; modes: ${Object.keys(MODES).join(', ')}`);
        options.modes = (Object.keys(MODES) as Mode[]).filter((m) => modes.includes(m));
        break;
      }
      case '--help':
      case '-h':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new UsageError(`unknown option ${flag}\n${USAGE}`);
    }
    i++;
  }
  return options;
}

/** Calls of a phase: fewer where every call waits for the one before (see --sequential-calls). */
function callsOf(options: Options, phase: 'latency' | 'throughput', concurrency: number, delayMs: number): number {
  const fewer = Math.min(options.calls, options.sequentialCalls ?? options.calls);
  if (phase === 'latency') return delayMs > 0 ? fewer : options.calls;
  return concurrency === 1 ? fewer : options.calls;
}

// ---------------------------------------------------------------------------------------------
// The HTTP target

interface HttpTarget {
  url: string;
  /** Requests answered so far. */
  requests(): number;
  close(): Promise<void>;
}

/** Answers GET with a small JSON document after `?delay_ms=` milliseconds. */
async function startHttpTarget(): Promise<HttpTarget> {
  let requests = 0;
  const server = createServer((req, res) => {
    requests++;
    const url = new URL(req.url ?? '/', 'http://target');
    const delay = Number(url.searchParams.get('delay_ms') ?? 0);
    const answer = () => {
      const body = JSON.stringify({ id: requests, path: url.pathname, delay_ms: delay, items: [{ sku: 'A-1', qty: 2 }, { sku: 'B-7', qty: 1 }] });
      res.writeHead(req.method === 'GET' ? 200 : 405, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (delay > 0) setTimeout(answer, delay);
    else answer();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function fetchJson(url: string): Promise<unknown> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url} answered ${res.status}`);
  return res.json();
}

// ---------------------------------------------------------------------------------------------
// The worker process

class WorkerChild {
  private readonly waiting = new Map<FromWorkerChild['type'], (message: FromWorkerChild) => void>();
  private failure?: Error;

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (message: FromWorkerChild) => {
      if (message.type === 'failed') this.fail(new Error(`the bench's worker process failed: ${message.message}`));
      const resolve = this.waiting.get(message.type);
      this.waiting.delete(message.type);
      resolve?.(message);
    });
    child.on('exit', (code, signal) => this.fail(new Error(`the bench's worker process exited (${signal ?? `code ${code}`})`)));
  }

  /** Forks bench/connections-worker.ts (through tsx, as this process runs) and waits until its workers poll. */
  static async start(config: WorkerChildConfig): Promise<WorkerChild> {
    const child = fork(path.join(__dirname, 'connections-worker.ts'), [], {
      env: { ...process.env, BENCH_WORKER_CONFIG: JSON.stringify(config) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const worker = new WorkerChild(child);
    // Bundling the workflows of two workers takes a while on a loaded 2-core machine.
    await worker.request(undefined, 'ready', 180_000);
    return worker;
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const [type, resolve] of this.waiting) {
      this.waiting.delete(type);
      resolve({ type: 'failed', message: error.message });
    }
  }

  private async request(message: ToWorkerChild | undefined, answer: FromWorkerChild['type'], timeoutMs = 30_000): Promise<FromWorkerChild> {
    if (this.failure) throw this.failure;
    const reply = new Promise<FromWorkerChild>((resolve) => this.waiting.set(answer, resolve));
    if (message) this.child.send(message);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the bench's worker process did not answer ${message?.type ?? 'start'} within ${timeoutMs / 1000} s`)), timeoutMs);
    });
    try {
      const got = await Promise.race([reply, timeout]);
      if (got.type === 'failed') throw new Error(got.message);
      return got;
    } finally {
      clearTimeout(timer);
    }
  }

  async phaseStart(): Promise<void> {
    if (this.failure) throw this.failure;
    this.child.send({ type: 'phase-start' } satisfies ToWorkerChild);
  }

  async phaseEnd(): Promise<PhaseUsage> {
    return ((await this.request({ type: 'phase-end' }, 'phase')) as Extract<FromWorkerChild, { type: 'phase' }>).usage;
  }

  async stop(): Promise<{ maxRssBytes: number; warnings: number }> {
    const stopped = (await this.request({ type: 'stop' }, 'stopped', 60_000)) as Extract<FromWorkerChild, { type: 'stopped' }>;
    return { maxRssBytes: stopped.maxRssBytes, warnings: stopped.warnings };
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

// ---------------------------------------------------------------------------------------------
// CPU time of the Temporal server process, from /proc (Linux); undefined elsewhere.

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** The dev server the devstack started on `port`: its command line names `start-dev` and the port. */
function findServerPid(port: string): number | undefined {
  try {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
        if (args.includes('start-dev') && args[args.indexOf('--port') + 1] === port) return Number(entry);
      } catch {
        // the process ended while we looked
      }
    }
  } catch {
    // no /proc
  }
  return undefined;
}

/** User plus system CPU time of `pid` (all its threads), in microseconds. */
function processCpuUs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may hold spaces: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Measurement

interface PhaseResult {
  phase: 'warmup' | 'latency' | 'throughput';
  concurrency: number;
  calls: number;
  seconds: number;
  callsPerSecond: number;
  /** Per call, in milliseconds (latency phase only). */
  latencyMs?: Summary;
  /** CPU time over the phase, in microseconds: worker process, Temporal server, this process (client + HTTP target). */
  cpuUs: { worker?: number; server?: number; clientAndTarget: number };
  workerPeakRssBytes?: number;
  /** Requests the HTTP target answered beyond one per call: retried attempts. */
  extraRequests: number;
}

interface ModeRun {
  mode: Mode;
  delayMs: number;
  /** B3 and B4: how the `connection` execution ran its invoke, read from its history after the warm-up. */
  invokeRanAs?: string;
  phases: PhaseResult[];
}

interface Context {
  options: Options;
  progress: Progress;
  client: Client;
  target: HttpTarget;
  serverPid?: number;
  runId: string;
  userQueue: string;
  connectorQueue: string;
}

/** The calls of one phase: `tick(n)` reports progress; latencies are returned by sequential phases. */
type PhaseBody = (tick: (done: number) => void) => Promise<number[] | void>;

async function measure(
  ctx: Context,
  worker: WorkerChild | undefined,
  label: string,
  phase: PhaseResult['phase'],
  concurrency: number,
  calls: number,
  /** HTTP requests one call makes when nothing is retried. */
  requestsPerCall: number,
  body: PhaseBody,
): Promise<PhaseResult> {
  ctx.progress.start(label, calls);
  await worker?.phaseStart();
  const requestsBefore = ctx.target.requests();
  const serverBefore = processCpuUs(ctx.serverPid);
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const latencies = await body((done) => ctx.progress.tick(done));
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const serverAfter = processCpuUs(ctx.serverPid);
  const usage = await worker?.phaseEnd();
  const result: PhaseResult = {
    phase,
    concurrency,
    calls,
    seconds,
    callsPerSecond: calls / seconds,
    ...(latencies ? { latencyMs: summarize(latencies) } : {}),
    cpuUs: {
      worker: usage?.cpuUs,
      server: serverBefore !== undefined && serverAfter !== undefined ? serverAfter - serverBefore : undefined,
      clientAndTarget: cpu.user + cpu.system,
    },
    workerPeakRssBytes: usage?.peakRssBytes,
    extraRequests: 0,
  };
  result.extraRequests = Math.max(0, ctx.target.requests() - requestsBefore - requestsPerCall * calls);
  ctx.progress.end(latencies ? `p50 ${result.latencyMs!.p50.toFixed(2)} ms` : `${result.callsPerSecond.toFixed(0)} calls/s`);
  return result;
}

/** Phases of one mode and delay, in order. */
function phasesOf(options: Options, mode: Mode): number {
  return 1 + (mode === 'W0' ? 0 : options.concurrency.length);
}

async function runMode(ctx: Context, worker: WorkerChild | undefined, mode: Mode, delayMs: number): Promise<ModeRun> {
  const { options, client } = ctx;
  const url = `${ctx.target.url}/item?delay_ms=${delayMs}`;
  const label = (what: string) => `${mode} ${delayMs} ms: ${what}`;
  const run: ModeRun = { mode, delayMs, phases: [] };
  const sequential = callsOf(options, 'latency', 1, delayMs);
  let parents = 0;
  const parentId = (what: string) => `bench-${ctx.runId}-${mode}-${delayMs}-${what}-${++parents}`;

  const input = (calls: number, concurrency: number): BenchCallsInput => ({
    mode: mode as WorkflowCallMode,
    url,
    connector: CONNECTOR,
    overrides: { query: { delay_ms: delayMs } },
    connectorQueue: ctx.connectorQueue,
    calls,
    concurrency,
  });
  // One parent per call for latency; a short execution timeout turns a stuck worker into an error, not a hang.
  const executeCalls = (calls: number, concurrency: number, workflowId: string) =>
    client.workflow.execute<typeof benchCalls>('benchCalls', {
      taskQueue: ctx.userQueue,
      workflowId,
      args: [input(calls, concurrency)],
      workflowExecutionTimeout: '10m',
    });
  const executeEmpty = (workflowId: string) =>
    client.workflow.execute<typeof benchEmpty>('benchEmpty', { taskQueue: ctx.userQueue, workflowId, workflowExecutionTimeout: '1m' });

  /** `calls` sequential calls, each timed on its own. */
  const latencyBody: PhaseBody = async (tick) => {
    const latencies: number[] = [];
    for (let i = 0; i < sequential; i++) {
      const begun = performance.now();
      if (mode === 'B0') await fetchJson(url);
      else if (mode === 'W0') await executeEmpty(parentId('latency'));
      else await executeCalls(1, 1, parentId('latency'));
      latencies.push(performance.now() - begun);
      tick(i + 1);
    }
    return latencies;
  };

  /** `calls` calls with `concurrency` in flight at once. */
  const throughputBody =
    (calls: number, concurrency: number): PhaseBody =>
    async (tick) => {
      if (mode === 'B0') {
        let started = 0;
        let done = 0;
        const lane = async () => {
          while (started < calls) {
            started++;
            await fetchJson(url);
            tick(++done);
          }
        };
        await Promise.all(Array.from({ length: Math.min(concurrency, calls) }, lane));
        return;
      }
      for (let done = 0; done < calls; ) {
        const batch = Math.min(MAX_CALLS_PER_PARENT, calls - done);
        await executeCalls(batch, concurrency, parentId(`c${concurrency}`));
        done += batch;
        tick(done);
      }
    };

  // Warm-up: calls at concurrency 10, then a few sequential ones; not measured.
  const warmupCalls = mode === 'W0' ? Math.min(options.warmup, 20) : options.warmup;
  ctx.progress.start(label('warm-up'), warmupCalls);
  if (mode === 'W0') for (let i = 0; i < warmupCalls; i++) await executeEmpty(parentId('warmup'));
  else if (warmupCalls > 0) {
    await throughputBody(warmupCalls, 10)(() => {});
    for (let i = 0; i < 5; i++) {
      const id = parentId('warmup');
      if (mode === 'B0') await fetchJson(url);
      else await executeCalls(1, 1, id);
      if (i === 4 && (mode === 'B3' || mode === 'B4' || mode === 'B5')) run.invokeRanAs = await invokeRanAs(client, `${id}/connection/1`);
    }
  }
  ctx.progress.end(run.invokeRanAs ? `the connection's invoke ran as ${run.invokeRanAs}` : '');

  run.phases.push(await measure(ctx, worker, label(`latency, ${sequential} calls one by one`), 'latency', 1, sequential, mode === 'W0' ? 0 : 1, latencyBody));
  if (mode === 'W0') return run;
  for (const concurrency of options.concurrency) {
    const calls = callsOf(options, 'throughput', concurrency, delayMs);
    run.phases.push(await measure(ctx, worker, label(`throughput at concurrency ${concurrency}`), 'throughput', concurrency, calls, 1, throughputBody(calls, concurrency)));
  }
  return run;
}

/** How a `connection` execution ran its invoke: `activity` or `local activity`, from its history. */
async function invokeRanAs(client: Client, workflowId: string): Promise<string> {
  const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  if (events.some((e) => e.activityTaskScheduledEventAttributes)) return 'activity';
  if (events.some((e) => e.markerRecordedEventAttributes)) return 'local activity';
  return 'neither activity nor local activity (see its history)';
}

// ---------------------------------------------------------------------------------------------
// Report

const ms = (us: number | undefined, calls: number) => (us === undefined ? undefined : us / 1000 / calls);
const mb = (bytes: number | undefined) => (bytes === undefined ? undefined : bytes / 1024 / 1024);

interface ModeFigures {
  mode: Mode;
  delayMs: number;
  latency?: Summary;
  throughput: Record<number, number>;
  workerCpuMsPerCall?: number;
  serverCpuMsPerCall?: number;
  clientCpuMsPerCall?: number;
  workerPeakRssMb?: number;
  extraRequests: number;
}

function figures(run: ModeRun): ModeFigures {
  const latency = run.phases.find((p) => p.phase === 'latency');
  const throughput = run.phases.filter((p) => p.phase === 'throughput');
  // CPU per call over the throughput phases (the calls themselves); W0 has only its latency phase.
  const cpuPhases = throughput.length > 0 ? throughput : latency ? [latency] : [];
  const calls = cpuPhases.reduce((n, p) => n + p.calls, 0);
  const sum = (pick: (p: PhaseResult) => number | undefined) =>
    cpuPhases.some((p) => pick(p) === undefined) ? undefined : cpuPhases.reduce((n, p) => n + pick(p)!, 0);
  const peaks = run.phases.map((p) => p.workerPeakRssBytes).filter((v): v is number => v !== undefined);
  return {
    mode: run.mode,
    delayMs: run.delayMs,
    latency: latency?.latencyMs,
    throughput: Object.fromEntries(throughput.map((p) => [p.concurrency, p.callsPerSecond])),
    workerCpuMsPerCall: ms(sum((p) => p.cpuUs.worker), calls),
    serverCpuMsPerCall: ms(sum((p) => p.cpuUs.server), calls),
    clientCpuMsPerCall: ms(sum((p) => p.cpuUs.clientAndTarget), calls),
    workerPeakRssMb: peaks.length > 0 ? mb(Math.max(...peaks)) : undefined,
    extraRequests: run.phases.reduce((n, p) => n + p.extraRequests, 0),
  };
}

function callsTable(all: ModeFigures[], concurrency: number[]): string {
  const header = [
    'target delay',
    'mode',
    'p50 ms',
    'p90 ms',
    'p99 ms',
    ...concurrency.map((k) => `calls/s at ${k}`),
    'worker CPU ms/call',
    'server CPU ms/call',
    'client+target CPU ms/call',
    'worker peak RSS MB',
  ];
  const rows = all.map((f) => [
    `${f.delayMs} ms`,
    `${f.mode} ${MODES[f.mode].what}`,
    fixed(f.latency?.p50, 2),
    fixed(f.latency?.p90, 2),
    fixed(f.latency?.p99, 2),
    ...concurrency.map((k) => fixed(f.throughput[k], f.throughput[k] < 10 ? 1 : 0)),
    f.mode === 'B0' ? '–' : fixed(f.workerCpuMsPerCall, 2),
    f.mode === 'B0' ? '–' : fixed(f.serverCpuMsPerCall, 2),
    fixed(f.clientCpuMsPerCall, 2),
    f.mode === 'B0' ? '–' : fixed(f.workerPeakRssMb, 0),
  ]);
  return markdownTable(header, rows, (i) => i > 1);
}

interface Ratio {
  delayMs: number;
  name: string;
  p50: number | undefined;
  throughput: number | undefined;
}

/** B3/B1, B4/B1, B3/B0: p50 latency (how many times slower) and throughput at the highest concurrency (what share of it). */
function ratios(all: ModeFigures[], concurrency: number): Ratio[] {
  const out: Ratio[] = [];
  for (const delayMs of [...new Set(all.map((f) => f.delayMs))]) {
    const of = (mode: Mode) => all.find((f) => f.mode === mode && f.delayMs === delayMs);
    for (const [a, b] of [['B3', 'B1'], ['B4', 'B1'], ['B5', 'B1'], ['B3', 'B0']] as const) {
      const x = of(a);
      const y = of(b);
      if (!x || !y) continue;
      const divide = (p?: number, q?: number) => (p === undefined || q === undefined || q === 0 ? undefined : p / q);
      out.push({ delayMs, name: `${a}/${b}`, p50: divide(x.latency?.p50, y.latency?.p50), throughput: divide(x.throughput[concurrency], y.throughput[concurrency]) });
    }
  }
  return out;
}

function ratiosTable(rows: Ratio[], concurrency: number): string {
  return markdownTable(
    ['target delay', 'ratio', 'p50 latency', `throughput at ${concurrency}`],
    rows.map((r) => [`${r.delayMs} ms`, r.name, `${fixed(r.p50, 2)}×`, `${fixed(r.throughput, 2)}×`]),
    (i) => i > 1,
  );
}

function resolutionTables(results: ResolutionResults): string {
  const resolve = markdownTable(
    ['stored connectors', 'profile cache', 'Vault cache', 'resolve p50 ms', 'p90 ms', 'p99 ms', 'whole run() p50 ms'],
    results.rows.map((r) => [String(r.stored), r.profileCache, r.vaultCache, fixed(r.resolve.p50, 3), fixed(r.resolve.p90, 3), fixed(r.resolve.p99, 3), fixed(r.run.p50, 3)]),
    (i) => i > 2,
  );
  const inserts = results.inserts.map((s) => `${s.from + 1}-${s.to}: ${s.seconds.toFixed(1)} s (${s.perConnectorMs.toFixed(2)} ms each)`).join('; ');
  return `${resolve}\n\nStoring the connectors through ${results.insertedWith}: ${inserts}.`;
}

function versionOf(pkg: string): string {
  try {
    return (JSON.parse(readFileSync(path.join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const startedAt = new Date();
  const began = performance.now();
  const callModes = options.modes;
  const resolutionParts = options.resolutions > 0 ? resolutionPhases(options.stored) : 0;
  const warmups = callModes.length * options.delays.length;
  const progress = new Progress(warmups + options.delays.length * callModes.reduce((n, m) => n + phasesOf(options, m), 0) + resolutionParts);

  const cleanups: Array<() => Promise<unknown> | void> = [];
  const cleanUp = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
  };
  process.once('SIGINT', () => {
    process.stderr.write('\ninterrupted: stopping the servers and dropping the scratch databases\n');
    void cleanUp().finally(() => process.exit(130));
  });

  try {
    progress.note('starting the Temporal dev server, Vault and PostgreSQL scratch databases (the first run may build the servers)');
    const [temporal, vaultServer, callsDb, resolveDb, target] = await Promise.allSettled([
      startTemporalDevServer({ uiPort: false, extraArgs: options.dynamicConfig.flatMap((setting) => ['--dynamic-config-value', setting]) }),
      startVaultDevServer(),
      createScratchDatabase('tc_bench_calls'),
      createScratchDatabase('tc_bench_resolve'),
      startHttpTarget(),
    ]);
    if (temporal.status === 'fulfilled') cleanups.push(() => temporal.value.stop());
    if (vaultServer.status === 'fulfilled') cleanups.push(() => vaultServer.value.stop());
    if (callsDb.status === 'fulfilled') cleanups.push(() => callsDb.value.drop());
    if (resolveDb.status === 'fulfilled') cleanups.push(() => resolveDb.value.drop());
    if (target.status === 'fulfilled') cleanups.push(() => target.value.close());
    const failed = [temporal, vaultServer, callsDb, resolveDb, target].filter((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed.length > 0) throw new Error(failed.map((f) => (f.reason as Error).message).join('\n\n'));
    const server = (temporal as PromiseFulfilledResult<TemporalDevServer>).value;
    const vaultDev = (vaultServer as PromiseFulfilledResult<VaultDevServer>).value;
    const db = (callsDb as PromiseFulfilledResult<ScratchDatabase>).value;
    const http = (target as PromiseFulfilledResult<HttpTarget>).value;

    // The stored connector B3 and B4 call, its bearer token encrypted at rest.
    const keyringEntry = Keyring.generateEntry('bench');
    const store = new ConnectorStore(new PgDatabase({ connectionString: db.url }));
    await store.migrate();
    await new ConnectorService({ store, registry: new ConnectorRegistry(), keyring: Keyring.parse(keyringEntry) }).apply({
      name: CONNECTOR,
      type: 'REST',
      description: 'npm run bench: the HTTP target',
      value: { base_url: http.url, path: '/item', auth: { type: 'bearer', token: randomBytes(24).toString('base64url') } },
    });
    await store.close();

    const connection = await Connection.connect({ address: server.address });
    cleanups.push(() => connection.close());
    const runId = `${startedAt.getTime().toString(36)}-${randomBytes(2).toString('hex')}`;
    const ctx: Context = {
      options,
      progress,
      client: new Client({ connection, namespace: server.namespace }),
      target: http,
      serverPid: findServerPid(server.address.split(':').pop()!),
      runId,
      userQueue: `bench-user-${runId}`,
      connectorQueue: `bench-connectors-${runId}`,
    };
    progress.note(
      `Temporal ${server.address} (CLI ${TEMPORAL_CLI.version} from ${server.source}${ctx.serverPid ? `, pid ${ctx.serverPid}` : ', its CPU not measurable here'}), ` +
        `Vault ${vaultDev.address}, HTTP target ${http.url}`,
    );

    // Other work on the machine (a build, a test run) slows every figure here: say how busy it was.
    const loadBefore = os.loadavg()[0];
    if (loadBefore > os.cpus().length / 2) progress.note(`warning: load average ${loadBefore.toFixed(1)} on ${os.cpus().length} cores before the bench: other work will skew the figures`);
    const runs: ModeRun[] = [];
    const workerLifetimes: Array<{ mode: Mode; maxRssMb: number; warnings: number }> = [];
    for (const mode of callModes) {
      let worker: WorkerChild | undefined;
      if (MODES[mode].worker !== 'none') {
        progress.note(`${mode}: starting a worker process (${MODES[mode].worker === 'both' ? 'user worker and connector worker' : 'user worker'})`);
        worker = await WorkerChild.start({
          temporalAddress: server.address,
          namespace: server.namespace,
          userQueue: ctx.userQueue,
          ...(MODES[mode].worker === 'both'
            ? { connector: { taskQueue: ctx.connectorQueue, databaseUrl: db.url, keyring: keyringEntry, vaultAddress: vaultDev.address, vaultToken: vaultDev.rootToken } }
            : {}),
        });
      }
      const child = worker;
      const kill = () => child?.kill();
      cleanups.push(kill);
      try {
        for (const delayMs of options.delays) runs.push(await runMode(ctx, worker, mode, delayMs));
        if (worker) {
          const { maxRssBytes, warnings } = await worker.stop();
          workerLifetimes.push({ mode, maxRssMb: mb(maxRssBytes)!, warnings });
        }
      } finally {
        kill();
        cleanups.splice(cleanups.indexOf(kill), 1);
      }
    }

    // The calls part took most of the run: a failure from here on still reports it.
    let resolution: ResolutionResults | undefined;
    let resolutionError: string | undefined;
    if (options.resolutions > 0) {
      resolution = await benchResolution({
        databaseUrl: (resolveDb as PromiseFulfilledResult<ScratchDatabase>).value.url,
        vault: { address: vaultDev.address, token: vaultDev.rootToken },
        targetUrl: http.url,
        stored: options.stored,
        resolutions: options.resolutions,
        progress,
      }).catch((err: Error) => {
        resolutionError = err.message;
        progress.note(`\nthe resolution part failed: ${err.message}`);
        return undefined;
      });
    }
    const totalSeconds = (performance.now() - began) / 1000;
    const loadAfter = os.loadavg()[0];

    // ---- the report
    const all = runs.map(figures);
    const top = Math.max(...options.concurrency);
    const ratioRows = ratios(all, top);
    const cpus = os.cpus();
    const machine = `${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GB, ${os.platform()} ${os.release()}, Node ${process.version}`;
    const notes: string[] = [
      `Machine: ${machine}. Temporal CLI ${TEMPORAL_CLI.version} dev server (in-memory SQLite, headless), TypeScript SDK ${versionOf('@temporalio/worker')}, Vault ${VAULT_SERVER.version}, PostgreSQL for the store; SDK default worker tuning${options.dynamicConfig.length > 0 ? `; dev server dynamic config ${options.dynamicConfig.join(', ')}` : ''}. Load average (1 min) ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after.`,
      'Processes: the client and the HTTP target share this process ("client+target CPU"); the Temporal workers run in a child process of their own, a fresh one per mode ("worker CPU", "worker peak RSS"); the Temporal server, Vault and PostgreSQL are separate processes ("server CPU" is the Temporal server\'s). All share the same cores.',
      'Latency: each call is one short parent workflow started and awaited by the client, one after another, timed end to end (start, the call, completion, result), so it includes the fixed cost of a workflow that W0 shows alone; B0 times each fetch. Throughput: one parent (or several in a row, at most ' +
        `${MAX_CALLS_PER_PARENT} calls each) makes the calls with K in flight at once (K lanes under Promise.all), timed from the client. CPU per call: over the throughput phases. Peak RSS: sampled every 50 ms during the phases.`,
      `Calls per phase: ${options.calls}` +
        (options.sequentialCalls !== undefined && options.sequentialCalls < options.calls
          ? `, but ${options.sequentialCalls} where every call waits for the one before: the throughput phase at concurrency 1` +
            `${options.delays.some((d) => d > 0) ? `, and the latency phase against the delayed target (${options.delays.filter((d) => d > 0).join(', ')} ms)` : ''}, to keep the run short (--sequential-calls).`
          : ` (${phasesOf(options, 'B1') * options.calls} per mode and delay over its phases).`) +
        ` Warm-up before each mode and delay: ${options.warmup} calls, not measured.`,
    ];
    if (callModes.includes('B3') || callModes.includes('B4') || callModes.includes('B5')) {
      notes.push(
        `B3, B4 and B5 call the stored REST connector ${CONNECTOR} (bearer token encrypted at rest, profile cache on, as in production) through connect() with overrides { query: { delay_ms } }; the connector worker logs at INFO through the JSON logger (lines discarded).`,
      );
    }
    for (const run of runs.filter((r) => (r.mode === 'B3' || r.mode === 'B4' || r.mode === 'B5') && r.invokeRanAs)) {
      notes.push(`${run.mode} at ${run.delayMs} ms: the connection's invoke ran as ${run.invokeRanAs}.`);
    }
    for (const f of all.filter((x) => x.extraRequests > 0)) {
      notes.push(`${f.mode} at ${f.delayMs} ms: the HTTP target answered ${f.extraRequests} requests more than there were calls (retried attempts).`);
    }
    for (const w of workerLifetimes.filter((x) => x.warnings > 0)) notes.push(`${w.mode}: the worker process logged ${w.warnings} warning${w.warnings === 1 ? '' : 's'} or error${w.warnings === 1 ? '' : 's'} (shown on stderr).`);
    if (workerLifetimes.length > 0) notes.push(`Worker process lifetime maxRSS: ${workerLifetimes.map((w) => `${w.mode} ${w.maxRssMb.toFixed(0)} MB`).join(', ')}.`);
    if (resolutionError) notes.push(`The resolution part failed: ${resolutionError}`);
    notes.push(`Total time: ${totalSeconds.toFixed(0)} s.`);

    const out: string[] = [];
    out.push(`## Calls (${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC)\n`);
    out.push(callsTable(all, options.concurrency));
    if (ratioRows.length > 0) {
      out.push(`\nRatios: p50 latency (how many times longer) and throughput at concurrency ${top} (what multiple of it):\n`);
      out.push(ratiosTable(ratioRows, top));
    }
    if (resolution) {
      out.push(
        `\n## Resolution in the connector worker, no Temporal (${options.resolutions} resolutions per row)\n\n` +
          'Load the profile, decrypt, read Vault, apply the overrides, validate: from the runner\'s run() to its onResolved hook, before the call. ' +
          '"Miss" of the profile cache reads PostgreSQL (whose own buffers are warm); "miss" of the Vault cache reads Vault. ' +
          'The whole run() adds the call to the local target (no delay) and masking; with more than 50 connectors in use, the REST type\'s keep-alive pools (50 at most) are reopened, which only that column shows.\n',
      );
      out.push(resolutionTables(resolution));
    }
    out.push(`\n${notes.map((n) => `- ${n}`).join('\n')}`);
    console.log(out.join('\n'));

    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = path.join(RESULTS_DIR, `connections-${startedAt.toISOString().slice(0, 19).replace(/:/g, '-')}.json`);
    writeFileSync(
      file,
      `${JSON.stringify(
        {
          started_at: startedAt.toISOString(),
          total_seconds: totalSeconds,
          machine: { cpus: cpus.length, cpu_model: cpus[0]?.model.trim(), memory_bytes: os.totalmem(), platform: `${os.platform()} ${os.release()}`, node: process.version },
          versions: { temporal_cli: TEMPORAL_CLI.version, temporal_cli_source: server.source, vault: VAULT_SERVER.version, temporal_sdk: versionOf('@temporalio/worker') },
          options,
          load_average_1m: { before: loadBefore, after: loadAfter },
          max_calls_per_parent: MAX_CALLS_PER_PARENT,
          notes,
          runs,
          figures: all,
          ratios: ratioRows,
          worker_processes: workerLifetimes,
          resolution,
          resolution_error: resolutionError,
          bench_process_max_rss_bytes: process.resourceUsage().maxRSS * 1024,
        },
        null,
        2,
      )}\n`,
    );
    progress.note(`figures written to ${path.relative(process.cwd(), file)}; total ${totalSeconds.toFixed(0)} s`);
    if (resolutionError) process.exitCode = 1;
  } finally {
    await cleanUp();
  }
}

main().catch((err: Error) => {
  console.error(err instanceof UsageError ? err.message : `npm run bench failed: ${err.message}`);
  process.exit(err instanceof UsageError ? 2 : 1);
});
