import { spawn } from 'node:child_process';
import * as path from 'node:path';

const BIN = path.resolve(__dirname, '..', '..', 'cli', 'bin.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real binary with `env` only (plus PATH and HOME), to its end; killed after 60 s. */
function cli(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// The CLI reads its configuration once, through loadConfig, when a command first needs it.
describe('connectors CLI configuration', () => {
  test('a bad value stops a command with one line naming the variable', async () => {
    const run = await cli(['list'], { TC_DATA_DIR: 'memory', VAULT_ADDR: 'http://127.0.0.1:1', VAULT_TOKEN: 'root', TC_VAULT_CACHE_TTL_MS: 'a minute' });
    expect(run).toEqual({ code: 1, stdout: '', stderr: 'connectors: TC_VAULT_CACHE_TTL_MS must be a whole number of milliseconds (0 or more), not "a minute"\n' });
  });

  test('a command that needs no configuration runs whatever the environment holds', async () => {
    const run = await cli(['--help'], { TC_LOG_LEVEL: 'loud' });
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Usage: connectors/);
  });

  test('with a good environment the same command runs on the configured store', async () => {
    const run = await cli(['list', '--json'], { TC_DATA_DIR: 'memory', VAULT_ADDR: 'http://127.0.0.1:1', VAULT_TOKEN: 'root', TC_VAULT_CACHE_TTL_MS: '60000' });
    expect(run).toEqual({ code: 0, stdout: '[]\n', stderr: '' });
  });
});
