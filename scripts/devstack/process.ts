import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

/** A free TCP port on 127.0.0.1, chosen by the kernel. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Options of {@link startServerProcess}. */
export interface ServerProcessOptions {
  /** Name used in messages, e.g. `Temporal dev server`. */
  displayName: string;
  executable: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** Resolves once the server answers; called repeatedly until it does. */
  isReady: () => Promise<boolean>;
  /** How long to wait for `isReady`, in milliseconds. Default: 60000. */
  startupTimeoutMs?: number;
  /** Receives every line the server prints (stdout and stderr). Default: kept in memory only. */
  onLine?: (line: string) => void;
}

/** A running server child process. */
export interface ServerProcess {
  pid: number;
  /** The last lines the server printed, for error messages. */
  recentOutput(): string;
  /** Stops the server: SIGTERM, then SIGKILL after 10 s. Safe to call twice. */
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
// A test run that crashes must not leave servers holding ports on the machine.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Starts a server process and waits until `isReady` says it serves, or fails with its last output. */
export async function startServerProcess(options: ServerProcessOptions): Promise<ServerProcess> {
  const { displayName, startupTimeoutMs = 60_000 } = options;
  const child = spawn(options.executable, options.args, {
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const tail: string[] = [];
  const emit = (line: string) => {
    if (!line) return;
    tail.push(line);
    if (tail.length > 40) tail.shift();
    options.onLine?.(line);
  };
  // A pipe chunk may end mid-line: keep the rest of each stream's last line for its next chunk.
  const lineReader = () => {
    let rest = '';
    return {
      chunk(data: Buffer) {
        const lines = (rest + data.toString()).split('\n');
        rest = lines.pop() ?? '';
        lines.forEach(emit);
      },
      end() {
        emit(rest);
        rest = '';
      },
    };
  };
  const out = lineReader();
  const err = lineReader();
  child.stdout!.on('data', (d: Buffer) => out.chunk(d));
  child.stderr!.on('data', (d: Buffer) => err.chunk(d));
  child.stdout!.on('end', () => out.end());
  child.stderr!.on('end', () => err.end());

  let exited: string | undefined;
  const exit = new Promise<void>((resolve) => {
    child.on('error', (err) => {
      exited = `could not be started: ${err.message}`;
      resolve();
    });
    child.on('exit', (code, signal) => {
      exited ??= `exited with ${signal ?? `code ${code}`}`;
      running.delete(child);
      resolve();
    });
  });

  const recentOutput = () => tail.join('\n');
  const stop = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exit;
    clearTimeout(timer);
  };

  const deadline = Date.now() + startupTimeoutMs;
  for (;;) {
    if (exited) {
      throw new Error(`${displayName} ${exited} before it was ready. Its last output:\n${recentOutput()}`);
    }
    if (await options.isReady().catch(() => false)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `${displayName} did not become ready within ${startupTimeoutMs / 1000} s. Its last output:\n${recentOutput()}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { pid: child.pid!, recentOutput, stop };
}

/** True when `url` answers HTTP with a status below 500. */
export async function httpAnswers(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  await res.arrayBuffer();
  return res.status < 500;
}
