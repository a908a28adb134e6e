// Child process of `npm run bench` (bench/connections.ts): it hosts the Temporal workers, so that
// their CPU time and memory are measured apart from the client and the HTTP target, which stay in
// the parent. Started with fork(); configured through BENCH_WORKER_CONFIG; answers the parent's
// phase messages over the IPC channel.
import { NativeConnection, Worker } from '@temporalio/worker';
import { ConnectorRegistry } from '../connectors/registry';
import { Keyring } from '../core/keyring';
import { ConnectorService } from '../core/service';
import { ConnectorStore } from '../core/store/connector-store';
import { PgDatabase } from '../core/store/database';
import { VaultSecretSource } from '../core/vault';
import { createConnectorWorker, runConnectorWorker } from '../worker/connector-worker';
import { installJsonLogging } from '../worker/logging';
import type { BenchActivities } from './connections-workflows';

/** What the parent passes in BENCH_WORKER_CONFIG (JSON). */
export interface WorkerChildConfig {
  temporalAddress: string;
  namespace: string;
  /** Task queue of the user worker (the bench's parent workflows and its plain activity). */
  userQueue: string;
  /** With it, a connector worker on this task queue as well, with the store, keyring and Vault below. */
  connector?: { taskQueue: string; databaseUrl: string; keyring: string; vaultAddress: string; vaultToken: string };
}

/** Messages from the parent. */
export type ToWorkerChild = { type: 'phase-start' } | { type: 'phase-end' } | { type: 'stop' };

/** CPU time and memory of this process over one phase. */
export interface PhaseUsage {
  /** User plus system CPU time, in microseconds. */
  cpuUs: number;
  /** Highest resident set size sampled during the phase, in bytes. */
  peakRssBytes: number;
}

/** Messages to the parent. */
export type FromWorkerChild =
  | { type: 'ready' }
  | { type: 'phase'; usage: PhaseUsage }
  | { type: 'stopped'; maxRssBytes: number; warnings: number }
  | { type: 'failed'; message: string };

/** How often the resident set size is sampled: maxRSS only ever grows, so phases need samples of their own. */
const RSS_SAMPLE_MS = 50;

const send = (message: FromWorkerChild) => process.send!(message);

/** The plain activity of B1 and B2. */
const activities: BenchActivities = {
  async benchHttpGet(url) {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`GET ${url} answered ${res.status}`);
    return res.json();
  },
};

async function main(): Promise<void> {
  const config = JSON.parse(process.env.BENCH_WORKER_CONFIG ?? '') as WorkerChildConfig;
  // The production logger at its default level, so its cost per call counts; lines go nowhere but
  // warnings and errors, which the parent shows.
  let warnings = 0;
  installJsonLogging({
    level: 'INFO',
    stream: {
      write(line: string) {
        if (/"level":"(WARN|ERROR)"/.test(line)) {
          warnings++;
          process.stderr.write(`[bench worker] ${line}`);
        }
      },
    },
  });

  const connection = await NativeConnection.connect({ address: config.temporalAddress });
  const workers: Array<Promise<void>> = [];
  const stops: Array<() => void> = [];
  const closers: Array<() => Promise<unknown>> = [];

  const userWorker = await Worker.create({
    connection,
    namespace: config.namespace,
    taskQueue: config.userQueue,
    workflowsPath: require.resolve('./connections-workflows'),
    activities,
  });
  workers.push(userWorker.run());
  stops.push(() => userWorker.shutdown());

  if (config.connector) {
    const { taskQueue, databaseUrl, keyring, vaultAddress, vaultToken } = config.connector;
    const store = new ConnectorStore(new PgDatabase({ connectionString: databaseUrl }));
    const service = new ConnectorService({ store, registry: new ConnectorRegistry(), keyring: Keyring.parse(keyring) });
    // The production defaults: profile cache (started by createConnectorWorker) and Vault cache of 60 s.
    const vault = new VaultSecretSource({ address: vaultAddress, token: vaultToken });
    const connectorWorker = await createConnectorWorker({ connection, namespace: config.namespace, taskQueue, service, vault });
    workers.push(runConnectorWorker(connectorWorker, service));
    stops.push(() => connectorWorker.shutdown());
    closers.push(() => store.close());
  }
  const running = Promise.all(workers);

  let peakRss = 0;
  let cpuAtStart = process.cpuUsage();
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), RSS_SAMPLE_MS);

  process.on('message', (message: ToWorkerChild) => {
    if (message.type === 'phase-start') {
      peakRss = process.memoryUsage.rss();
      cpuAtStart = process.cpuUsage();
    } else if (message.type === 'phase-end') {
      const cpu = process.cpuUsage(cpuAtStart);
      send({ type: 'phase', usage: { cpuUs: cpu.user + cpu.system, peakRssBytes: Math.max(peakRss, process.memoryUsage.rss()) } });
    } else if (message.type === 'stop') {
      clearInterval(sampler);
      for (const stop of stops) stop();
      void running
        .then(async () => {
          for (const close of closers) await close();
          await connection.close();
          // maxRSS is in kilobytes.
          send({ type: 'stopped', maxRssBytes: process.resourceUsage().maxRSS * 1024, warnings });
        })
        .catch((err: Error) => send({ type: 'failed', message: err.message }))
        .finally(() => process.disconnect());
    }
  });
  send({ type: 'ready' });
  await running;
}

// The parent going away (Ctrl-C, a crash) closes the IPC channel: do not outlive it.
process.on('disconnect', () => process.exit());

main().catch((err: Error) => {
  send({ type: 'failed', message: err.message });
  process.exitCode = 1;
  process.disconnect();
});
