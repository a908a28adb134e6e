import { Connection } from '@temporalio/client';
import { BinaryNotFoundError, resolveBinary, type BinarySpec } from './binaries';
import { freePort, httpAnswers, startServerProcess } from './process';

/** The Temporal CLI that carries the dev server and its embedded Web UI. */
export const TEMPORAL_CLI: BinarySpec = {
  displayName: 'Temporal CLI',
  envVar: 'TEMPORAL_CLI',
  command: 'temporal',
  version: '1.5.1',
  goToolsModule: 'scripts/go-tools/temporal',
  goPackage: 'github.com/temporalio/cli/cmd/temporal',
};

/** Search attributes that `connection` executions are indexed by. */
export const CONNECTOR_SEARCH_ATTRIBUTES = { ConnectorName: 'Keyword', ConnectorType: 'Keyword' } as const;

/** Options of {@link startTemporalDevServer}. */
export interface TemporalDevServerOptions {
  /** gRPC frontend port on 127.0.0.1. Default: a free port. */
  port?: number;
  /** Web UI port on 127.0.0.1; `false` runs headless. Default: a free port. */
  uiPort?: number | false;
  /** Namespace the server creates at start. Default: `default`. */
  namespace?: string;
  /** SQLite file that keeps history across restarts. Default: in memory. */
  dbFilename?: string;
  /** Search attributes registered at start. Default: {@link CONNECTOR_SEARCH_ATTRIBUTES}. */
  searchAttributes?: Record<string, 'Keyword' | 'Text' | 'Int' | 'Double' | 'Bool' | 'Datetime' | 'KeywordList'>;
  /** Further `temporal server start-dev` arguments, e.g. `--ui-codec-endpoint`. Default: none. */
  extraArgs?: string[];
  /** How long to wait for the server, in milliseconds. Default: 90000. */
  startupTimeoutMs?: number;
  /** Receives the server's log lines. Default: kept in memory for error messages only. */
  onLine?: (line: string) => void;
}

/** A running Temporal dev server. */
export interface TemporalDevServer {
  /** gRPC address, `127.0.0.1:<port>`. */
  address: string;
  namespace: string;
  /** Web UI base URL, when the UI runs. */
  uiUrl?: string;
  /** Where the CLI came from: env, path, cache, go-build or sdk-download. */
  source: string;
  stop(): Promise<void>;
}

/**
 * Starts `temporal server start-dev` on loopback ports, finding or building the CLI first.
 * Started directly rather than through the SDK's `createLocal`, whose 5 s start-up wait is too short
 * for a loaded 2-core CI machine.
 */
export async function startTemporalDevServer(options: TemporalDevServerOptions = {}): Promise<TemporalDevServer> {
  const namespace = options.namespace ?? 'default';
  const port = options.port ?? (await freePort());
  const uiPort = options.uiPort === false ? undefined : (options.uiPort ?? (await freePort()));
  const searchAttributes = options.searchAttributes ?? CONNECTOR_SEARCH_ATTRIBUTES;
  let cli;
  try {
    cli = await resolveBinary(TEMPORAL_CLI);
  } catch (err) {
    if (!(err instanceof BinaryNotFoundError)) throw err;
    return startWithSdkDownload(err, { namespace, port, uiPort, searchAttributes, dbFilename: options.dbFilename });
  }

  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--namespace', namespace];
  args.push('--log-level', 'warn', '--log-format', 'json');
  if (uiPort) args.push('--ui-ip', '127.0.0.1', '--ui-port', String(uiPort));
  else args.push('--headless');
  if (options.dbFilename) args.push('--db-filename', options.dbFilename);
  for (const [name, type] of Object.entries(searchAttributes)) args.push('--search-attribute', `${name}=${type}`);
  args.push(...(options.extraArgs ?? []));

  const address = `127.0.0.1:${port}`;
  const uiUrl = uiPort ? `http://127.0.0.1:${uiPort}` : undefined;
  const server = await startServerProcess({
    displayName: 'Temporal dev server',
    executable: cli.path,
    args,
    startupTimeoutMs: options.startupTimeoutMs ?? 90_000,
    onLine: options.onLine,
    isReady: async () => (await namespaceIsServed(address, namespace)) && (!uiUrl || (await httpAnswers(uiUrl))),
  });
  return { address, namespace, uiUrl, source: cli.source, stop: server.stop };
}

async function namespaceIsServed(address: string, namespace: string): Promise<boolean> {
  const connection = await Connection.connect({ address, connectTimeout: 1_000 });
  try {
    await connection.workflowService.describeNamespace({ namespace });
    return true;
  } finally {
    await connection.close();
  }
}

/** Last resort where the machine has internet: the SDK downloads and starts the CLI itself. */
async function startWithSdkDownload(
  notFound: Error,
  opts: { namespace: string; port: number; uiPort?: number; searchAttributes: Record<string, string>; dbFilename?: string },
): Promise<TemporalDevServer> {
  let env;
  try {
    const { TestWorkflowEnvironment } = await import('@temporalio/testing');
    env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'cached-download', version: TEMPORAL_CLI.version },
        ip: '127.0.0.1',
        port: opts.port,
        namespace: opts.namespace,
        ui: opts.uiPort !== undefined,
        uiPort: opts.uiPort,
        dbFilename: opts.dbFilename,
        extraArgs: Object.entries(opts.searchAttributes).flatMap(([n, t]) => ['--search-attribute', `${n}=${t}`]),
      },
    });
  } catch (err) {
    throw new BinaryNotFoundError(`${notFound.message}\nThe SDK's own download failed too: ${(err as Error).message}`);
  }
  return {
    address: `127.0.0.1:${opts.port}`,
    namespace: opts.namespace,
    uiUrl: opts.uiPort ? `http://127.0.0.1:${opts.uiPort}` : undefined,
    source: 'sdk-download',
    stop: () => env.teardown(),
  };
}
