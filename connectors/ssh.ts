/**
 * The SSH connector type: runs a command, or a script sent on stdin, on a remote host, with `env`, a
 * working folder and a timeout, and answers its exit code, signal, and stdout and stderr (each
 * bounded). The host key is pinned in the profile (connectors/ssh-transport.ts): an unknown or
 * changed key is refused before any credential is sent.
 *
 * A profile usually holds the connection (host, user, host_key, private_key or password); workflows
 * override `command` or `script`, `env` and `cwd`.
 *
 * How the remote side runs it: the exec request is a line of POSIX shell for the user's login shell,
 * `echo $$; cd -- '<cwd>' || exit 1; export NAME='value'; exec /bin/sh -c '<command>'` (or
 * `exec /bin/sh -s` with the script on stdin). The first line of stdout, the shell's PID, is read
 * and dropped: sshd makes every session its own process group, with that PID, so cancelling a call
 * or reaching its timeout kills the whole group (the command and whatever it started) over a second
 * channel, rather than leave it running on the host. OpenSSH's `signal` request would reach only the
 * shell, and closing a channel without a terminal sends no hangup at all.
 */
import type { Client, ClientChannel } from 'ssh2';
import { z } from 'zod';
import { durationSchema, parseDurationMs } from './durations';
import { FailureType, permanentFailure, transientFailure } from './errors';
import type { PoolOptions } from './pools';
import { sensitivePaths } from './sensitivity';
import {
  connectionFailure,
  createSshPools,
  execChannel,
  openSession,
  pinnedHostKeys,
  reportOfferedHostKey,
  shellQuote,
  sshAddress,
  sshConnectionFields,
  subjectOf,
  testFailureMessage,
  type SshPools,
} from './ssh-transport';
import type { ConnectionTestResult, ConnectorType, InvokeContext } from './types';

/** Per-call timeout when the inputs give none: 60 s. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 60_000;
/** Bytes of stdout, and of stderr, a result keeps when the inputs give no bound: 1 MiB. */
export const DEFAULT_MAX_OUTPUT_BYTES = 1_048_576;
/** The largest bound `max_output` may set: 16 MiB. */
export const MAX_OUTPUT_BYTES = 16 * 1_048_576;
/** Bytes of stdout and of stderr (their ends) a failure's details keep: 8 KiB. */
export const FAILURE_OUTPUT_BYTES = 8_192;
/** How often a running command heartbeats: 5 s. */
export const HEARTBEAT_INTERVAL_MS = 5_000;
/** How long stopping a cancelled or timed-out command may take before the call gives up waiting: 5 s. */
export const STOP_WAIT_MS = 5_000;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// Put into the command line unquoted, so only a plain path.
const SHELL_PATH = /^\/[A-Za-z0-9_./+-]*$/;

/** Inputs of an SSH connector (snake_case: they are data in profiles, Vault secrets and overrides). */
export const sshSchema = z
  .strictObject({
    ...sshConnectionFields,
    command: z
      .string()
      .min(1)
      .optional()
      .meta({ description: 'Command to run, a line of POSIX shell, run by `shell -c`. Give this or `script`. Default: none.', examples: ['systemctl restart billing', 'df -h /'] }),
    script: z
      .string()
      .min(1)
      .optional()
      .describe('A script to run, sent on stdin to `shell -s`, so it appears on no command line of the remote host. Give this or `command`. Default: none.'),
    shell: z
      .string()
      .regex(SHELL_PATH, { message: 'must be an absolute path such as /bin/sh or /bin/bash' })
      .default('/bin/sh')
      .describe("Absolute path of the POSIX shell that runs `command` or `script` on the remote host. The user's login shell must be POSIX too (sh, bash, dash, zsh, ksh). Default `/bin/sh`."),
    env: z
      .record(z.string().regex(ENV_NAME, { message: 'environment variable names are letters, digits and _, not starting with a digit' }), z.string())
      .optional()
      .meta({
        description:
          'Environment variables for the command, exported by the remote shell before it starts it (the values are never in summaries or messages; they are on the remote command line only until the shell replaces itself). Default: none.',
        examples: [{ RELEASE: '2024.06.1' }],
      }),
    cwd: z.string().min(1).optional().meta({ description: "Working folder of the command on the remote host; the call fails (exit code 1) when it does not exist. Default: the user's home.", examples: ['/srv/billing'] }),
    timeout: durationSchema
      .default(DEFAULT_COMMAND_TIMEOUT_MS)
      .meta({
        description:
          "Longest a call may take, connecting included: milliseconds or a duration such as '30s', '10m'. A command still running then is stopped on the remote host and the call fails with a retryable Connector.External.Timeout. Default 60 s.",
        examples: ['10m'],
      }),
    accept_exit_codes: z
      .array(z.number().int().min(0).max(255))
      .min(1)
      .default([0])
      .meta({
        description: 'Exit codes that count as success. Any other, or an end by a signal, fails the call with the non-retryable Connector.Remote.ExitCode. Default `[0]`.',
        examples: [[0, 1]],
      }),
    max_output: z
      .number()
      .int()
      .min(0)
      .max(MAX_OUTPUT_BYTES)
      .default(DEFAULT_MAX_OUTPUT_BYTES)
      .describe('Bytes of stdout, and of stderr, kept in the result (the rest is read and dropped, and `stdout_truncated` or `stderr_truncated` says so), up to 16 MiB. Default 1048576 (1 MiB).'),
  })
  .superRefine((inputs, ctx) => {
    if (inputs.command !== undefined && inputs.script !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['script'], message: 'give either command or script, not both' });
    }
  });

export type SshInputs = z.output<typeof sshSchema>;

/** What `invoke` returns. */
export interface SshCommandResult {
  /** The exit code, or null when the command ended by a signal (or the server sent none). */
  exit_code: number | null;
  /** The signal that ended the command (`TERM`, `KILL`, ...), or null. */
  signal: string | null;
  /** stdout as UTF-8, at most `max_output` bytes of it. */
  stdout: string;
  stderr: string;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
  duration_ms: number;
}

const SSH_SENSITIVE = sensitivePaths(sshSchema);

/** The exec request for `inputs`: see the file's comment. */
export function remoteCommandLine(inputs: Pick<SshInputs, 'command' | 'script' | 'shell' | 'env' | 'cwd'>): string {
  const parts = ['echo $$'];
  if (inputs.cwd !== undefined) parts.push(`cd -- ${shellQuote(inputs.cwd)} || exit 1`);
  const env = Object.entries(inputs.env ?? {});
  if (env.length > 0) parts.push(`export ${env.map(([name, value]) => `${name}=${shellQuote(value)}`).join(' ')}`);
  parts.push(inputs.script !== undefined ? `exec ${inputs.shell} -s` : `exec ${inputs.shell} -c ${shellQuote(inputs.command ?? 'true')}`);
  return parts.join('; ');
}

/** Keeps the first `limit` bytes of a stream and counts the rest. */
class BoundedOutput {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  truncated = false;
  total = 0;

  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    this.total += chunk.length;
    const room = this.limit - this.kept;
    if (chunk.length > room) this.truncated = true;
    if (room <= 0) return;
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.chunks.push(part);
    this.kept += part.length;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** The last `bytes` bytes of `text`, for a failure's details. */
function tail(text: string, bytes: number): string {
  const buffer = Buffer.from(text, 'utf8');
  return buffer.length <= bytes ? text : buffer.subarray(buffer.length - bytes).toString('utf8');
}

/**
 * Kills the process group `pid` leads, over a channel of its own on the same connection: TERM, then
 * KILL when it is still there after 2 s. Resolves when that channel closes, or after {@link STOP_WAIT_MS}.
 */
async function killRemoteGroup(client: Client, pid: number): Promise<void> {
  const group = `-${pid}`;
  const script = `kill -TERM ${group} 2>/dev/null || exit 0; i=0; while [ $i -lt 20 ]; do kill -0 ${group} 2>/dev/null || exit 0; sleep 0.1; i=$((i+1)); done; kill -KILL ${group} 2>/dev/null; exit 0`;
  let channel: ClientChannel | undefined;
  const stopped = execChannel(client, script).then(
    (opened) =>
      new Promise<void>((resolve) => {
        channel = opened;
        opened.on('close', () => resolve());
        opened.on('data', () => undefined);
        opened.stderr.on('data', () => undefined);
      }),
  );
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, STOP_WAIT_MS);
    timer.unref();
  });
  await Promise.race([stopped.catch(() => undefined), waited]);
  clearTimeout(timer);
  channel?.close();
}

interface Completed {
  exit_code: number | null;
  signal: string | null;
  stdout: BoundedOutput;
  stderr: BoundedOutput;
}

/** Why a running command was stopped by this side. */
class Stopped extends Error {
  constructor(readonly reason: 'timeout' | 'cancelled') {
    super(reason);
  }
}

/**
 * Runs the command on `client` and waits for it to end. On `stop` (the timeout, or a cancellation)
 * it kills the remote process group and rejects with {@link Stopped}.
 */
function runOnChannel(client: Client, inputs: SshInputs, ctx: InvokeContext, deadline: AbortSignal): Promise<Completed> {
  return new Promise<Completed>((resolve, reject) => {
    const stdout = new BoundedOutput(inputs.max_output);
    const stderr = new BoundedOutput(inputs.max_output);
    let pid: number | undefined;
    let head: Buffer | undefined = Buffer.alloc(0); // stdout until the PID line is complete
    let exit: { code: number | null; signal: string | null } = { code: null, signal: null };
    let channel: ClientChannel | undefined;
    let stopping: Stopped | undefined;
    const started = Date.now();
    const heartbeats = setInterval(() => ctx.heartbeat({ running_ms: Date.now() - started, stdout_bytes: stdout.total, stderr_bytes: stderr.total }), HEARTBEAT_INTERVAL_MS);
    heartbeats.unref();
    const cleanup = () => {
      clearInterval(heartbeats);
      ctx.signal.removeEventListener('abort', onCancel);
      deadline.removeEventListener('abort', onTimeout);
    };
    const stop = (why: Stopped) => {
      if (stopping) return;
      stopping = why;
      const killed = pid === undefined ? Promise.resolve() : killRemoteGroup(client, pid);
      void killed.then(() => {
        channel?.close();
        cleanup();
        reject(why);
      });
    };
    const onCancel = () => stop(new Stopped('cancelled'));
    const onTimeout = () => stop(new Stopped('timeout'));
    ctx.signal.addEventListener('abort', onCancel, { once: true });
    deadline.addEventListener('abort', onTimeout, { once: true });

    execChannel(client, remoteCommandLine(inputs)).then(
      (opened) => {
        channel = opened;
        if (stopping) {
          opened.close();
          return;
        }
        opened.on('data', (chunk: Buffer) => {
          if (head === undefined) {
            stdout.push(chunk);
            return;
          }
          head = Buffer.concat([head, chunk]);
          const newline = head.indexOf(0x0a);
          if (newline < 0 && head.length < 32) return;
          const first = newline < 0 ? '' : head.subarray(0, newline).toString('latin1');
          // A forced command (sshd's ForceCommand, authorized_keys command=) prints no PID: then all is output.
          if (/^\d+$/.test(first)) {
            pid = Number(first);
            stdout.push(head.subarray(newline + 1));
          } else stdout.push(head);
          head = undefined;
          // Cancelled while the PID was on its way: stop now that it is known.
          if (stopping && pid !== undefined) void killRemoteGroup(client, pid);
        });
        opened.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
        opened.on('exit', (code: number | null, signal?: string) => {
          exit = { code: typeof code === 'number' ? code : null, signal: typeof signal === 'string' ? signal.replace(/^SIG/, '') : null };
        });
        // ssh2 hands the exit status to 'close' too: an 'exit' event emitted while the channel was being
        // handed over (exit-status in the same read as the exec's confirmation) reached no listener.
        opened.on('close', (code?: number | null, signal?: string) => {
          if (exit.code === null && exit.signal === null) {
            if (typeof code === 'number') exit = { code, signal: null };
            else if (typeof signal === 'string') exit = { code: null, signal: signal.replace(/^SIG/, '') };
          }
          if (stopping) return;
          if (head !== undefined && head.length > 0) stdout.push(head);
          cleanup();
          resolve({ exit_code: exit.code, signal: exit.signal, stdout, stderr });
        });
        if (inputs.script !== undefined) opened.end(inputs.script.endsWith('\n') ? inputs.script : `${inputs.script}\n`);
        else opened.end();
      },
      (err: unknown) => {
        cleanup();
        reject(err);
      },
    );
  });
}

/** `systemctl` of `FOO=1 /usr/bin/systemctl restart x`: the first word that is not an assignment, never a value. */
export function commandWord(command: string): string {
  for (const word of command.trim().split(/\s+/)) {
    if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(word)) continue;
    return /^[A-Za-z0-9_./+-]{1,64}$/.test(word) ? word : 'command';
  }
  return 'command';
}

async function runCommand(inputs: SshInputs, ctx: InvokeContext, pools: SshPools): Promise<SshCommandResult> {
  if (inputs.command === undefined && inputs.script === undefined) {
    throw permanentFailure(FailureType.InvalidInput, `${subjectOf('SSH', inputs, ctx)}: give command (a line of shell) or script (sent on stdin) to run`, { field: 'command' });
  }
  const subject = subjectOf('SSH', inputs, ctx);
  const timeoutMs = parseDurationMs(inputs.timeout) ?? DEFAULT_COMMAND_TIMEOUT_MS;
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), timeoutMs);
  timer.unref();
  // The timeout covers connecting too: a call aborted by it while connecting fails as a timeout.
  const connectSignal = AbortSignal.any([ctx.signal, deadline.signal]);
  const started = performance.now();
  const what = inputs.script !== undefined ? 'the script' : `\`${commandWord(inputs.command ?? '')}\``;
  let session;
  try {
    session = await openSession('SSH', inputs, { ...ctx, signal: connectSignal }, pools);
  } catch (err) {
    clearTimeout(timer);
    if (ctx.signal.aborted) throw ctx.signal.reason;
    if (deadline.signal.aborted) throw transientFailure(FailureType.Timeout, `${subject}: no connection within timeout (${timeoutMs} ms)`);
    throw connectionFailure(err, inputs, subject);
  }
  let completed: Completed;
  try {
    completed = await runOnChannel(session.client, inputs, ctx, deadline.signal);
    session.done();
  } catch (err) {
    session.done(!(err instanceof Stopped));
    if (ctx.signal.aborted) throw ctx.signal.reason;
    if (err instanceof Stopped) {
      throw transientFailure(FailureType.Timeout, `${subject}: ${what} ran longer than timeout (${timeoutMs} ms) and was stopped on the remote host`, { details: { timeout_ms: timeoutMs } });
    }
    throw connectionFailure(err, inputs, subject);
  } finally {
    clearTimeout(timer);
  }
  const result: SshCommandResult = {
    exit_code: completed.exit_code,
    signal: completed.signal,
    stdout: completed.stdout.text(),
    stderr: completed.stderr.text(),
    stdout_truncated: completed.stdout.truncated,
    stderr_truncated: completed.stderr.truncated,
    duration_ms: Math.round(performance.now() - started),
  };
  const accepted = result.signal === null && result.exit_code !== null && inputs.accept_exit_codes.includes(result.exit_code);
  if (!accepted) {
    const ended = result.signal !== null ? `was ended by signal ${result.signal}` : result.exit_code === null ? 'ended without an exit status' : `exited with code ${result.exit_code}`;
    const lastLine = result.stderr.trim().split('\n').pop()?.slice(0, 200);
    throw permanentFailure(
      FailureType.RemoteExitCode,
      `${subject}: ${what} ${ended}, which accept_exit_codes (${inputs.accept_exit_codes.join(', ')}) does not accept${lastLine ? `; stderr ends: ${lastLine}` : ''}`,
      {
        exit_code: result.exit_code,
        signal: result.signal,
        stdout: tail(result.stdout, FAILURE_OUTPUT_BYTES),
        stderr: tail(result.stderr, FAILURE_OUTPUT_BYTES),
        stdout_truncated: result.stdout_truncated || Buffer.byteLength(result.stdout) > FAILURE_OUTPUT_BYTES,
        stderr_truncated: result.stderr_truncated || Buffer.byteLength(result.stderr) > FAILURE_OUTPUT_BYTES,
      },
    );
  }
  return result;
}

/**
 * A connection test: without `host_key`, it only learns the key the server offers (refusing it, so
 * nothing is sent) and reports it to pin; with it, it logs in and runs `true`.
 */
async function testSsh(inputs: SshInputs, ctx: InvokeContext, pools: SshPools): Promise<ConnectionTestResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const address = `${inputs.host}:${inputs.port}`;
  const subject = subjectOf('SSH', inputs, ctx);
  if (pinnedHostKeys(inputs.host_key).length === 0) return { ...(await reportOfferedHostKey(inputs, ctx, subject)), latency_ms: elapsed() };
  try {
    // Never pooled: the test proves that these inputs can log in now, not that a pooled connection once could.
    const result = await runCommand({ ...inputs, command: 'true', script: undefined, env: undefined, cwd: undefined, accept_exit_codes: [0] }, { ...ctx, poolKey: undefined }, pools);
    const latency = elapsed();
    return { ok: true, message: `Logged in to ${address} as ${inputs.user} (host key pinned) and ran \`true\` in ${latency} ms (exit code ${result.exit_code})`, latency_ms: latency };
  } catch (err) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    return { ok: false, message: testFailureMessage(err, connectionFailure(err, inputs, subject), address), latency_ms: elapsed() };
  }
}

/** What `introspect` returns: the remote host as the connector's user sees it. */
export interface SshIntrospection {
  user: string;
  /** `PRETTY_NAME` of /etc/os-release, else the kernel's name. */
  os: string;
  kernel: { name: string; release: string; machine: string };
  /** The user's login shell. */
  shell: string;
  home: string;
}

const INTROSPECTION_SCRIPT = [
  'printf "user=%s\\n" "$(id -un)"',
  'printf "kernel_name=%s\\n" "$(uname -s)"',
  'printf "kernel_release=%s\\n" "$(uname -r)"',
  'printf "machine=%s\\n" "$(uname -m)"',
  'printf "shell=%s\\n" "$SHELL"',
  'printf "home=%s\\n" "$HOME"',
  '[ -r /etc/os-release ] && . /etc/os-release && printf "os=%s\\n" "$PRETTY_NAME"',
  'exit 0',
].join('\n');

async function introspectSsh(inputs: SshInputs, ctx: InvokeContext, pools: SshPools): Promise<SshIntrospection> {
  const result = await runCommand({ ...inputs, command: undefined, script: INTROSPECTION_SCRIPT, env: undefined, cwd: undefined, accept_exit_codes: [0], max_output: 65_536 }, ctx, pools);
  const facts = new Map<string, string>();
  for (const line of result.stdout.split('\n')) {
    const at = line.indexOf('=');
    if (at > 0) facts.set(line.slice(0, at), line.slice(at + 1));
  }
  const kernel = { name: facts.get('kernel_name') ?? '', release: facts.get('kernel_release') ?? '', machine: facts.get('machine') ?? '' };
  return { user: facts.get('user') ?? inputs.user, os: facts.get('os') || kernel.name, kernel, shell: facts.get('shell') ?? '', home: facts.get('home') ?? '' };
}

/** Options of {@link createSshConnector}. */
export interface SshConnectorOptions {
  /** How long pooled connections are kept, and how many (connectors/pools.ts). Default: closed after 60 s unused, at most 50. */
  pools?: PoolOptions;
}

/** Creates the SSH type with its own connection pools; `sshConnector` is the one workers use. */
export function createSshConnector(options: SshConnectorOptions = {}): ConnectorType<typeof sshSchema> {
  const pools = createSshPools(options.pools);
  return {
    name: 'SSH',
    description: 'A command or script on a remote host over SSH, with a pinned host key, password or key auth, and bounded output.',
    schema: sshSchema,
    // Marked on the fields (ssh-transport.ts), and derived from there.
    sensitive: SSH_SENSITIVE,
    invoke: (inputs, ctx) => runCommand(inputs, ctx, pools),
    test: (inputs, ctx) => testSsh(inputs, ctx, pools),
    introspect: (inputs, ctx) => introspectSsh(inputs, ctx, pools),
    describeCall(inputs) {
      if (typeof inputs.host !== 'string' || typeof inputs.user !== 'string') return undefined;
      const what = typeof inputs.script === 'string' ? 'script' : typeof inputs.command === 'string' ? commandWord(inputs.command) : undefined;
      return `ssh ${inputs.user}@${inputs.host}${what ? `: ${what}` : ''}`;
    },
    destination: sshAddress,
    close: (poolKey) => pools.close(poolKey),
    pools,
  };
}

/** The SSH connector type. */
export const sshConnector: ConnectorType<typeof sshSchema> = createSshConnector();
