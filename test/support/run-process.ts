import { spawn } from 'node:child_process';
import { recordResponse } from './leak-sweep';

/** How a process ended and what it printed. */
export interface ProcessRun {
  /** Null when it was killed. */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Options of {@link runProcess}. */
export interface RunProcessOptions {
  env: NodeJS.ProcessEnv;
  /** Default: this process's working directory. */
  cwd?: string;
  /** A process still running after this many milliseconds is killed (and reports code null). */
  timeoutMs: number;
  /** Written to its standard input, which is then closed. Default: nothing. */
  input?: string | Buffer;
  /** Names its output in the leak sweep's record of responses (see {@link recordResponse}). */
  label: string;
  /** At most this many characters of its output are recorded for the leak sweep. Default: all. */
  recordedChars?: number;
}

/** Runs a command to its end and records what it printed for the suite-wide leak sweep. */
export function runProcess(command: string, args: string[], options: RunProcessOptions): Promise<ProcessRun> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('close', (code) => {
      clearTimeout(timer);
      recordResponse(options.label, `${stdout}\n${stderr}`.slice(0, options.recordedChars));
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => {}); // a command that does not read its input may exit before it is written
    child.stdin.end(options.input ?? '');
  });
}
