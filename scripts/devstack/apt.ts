import { spawn } from 'node:child_process';
import { findOnPath } from './binaries';

// Debian packages the test stack needs (Chromium, OpenSSH's server, ...), installed with apt-get when
// missing. One apt-get at a time: dpkg takes a lock, and the test setup asks for several packages at
// once; a second process (another worktree's run) is waited for through dpkg's own lock timeout.

let queue: Promise<unknown> = Promise.resolve();
let updated = false;

/** True when this process may install packages: root, with apt-get on PATH. */
export async function canAptInstall(): Promise<boolean> {
  return process.getuid?.() === 0 && (await findOnPath('apt-get')) !== undefined;
}

/** Installs Debian `packages` with apt-get, one install at a time in this process. Rejects naming the command's last lines. */
export function aptInstall(packages: string[], log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<void> {
  const next = queue.then(async () => {
    const aptGet = await findOnPath('apt-get');
    if (!aptGet) throw new Error(`apt-get is not on PATH, so ${packages.join(', ')} cannot be installed.`);
    log(`[devstack] installing Debian ${packages.join(', ')} with apt-get (first run only)...`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    // Another apt-get (a parallel run) holds dpkg's lock for a minute or two: wait for it, not fail.
    const lock = ['-o', 'DPkg::Lock::Timeout=600'];
    if (!updated) {
      await run(aptGet, [...lock, 'update', '-qq'], env);
      updated = true;
    }
    await run(aptGet, [...lock, 'install', '-y', '-qq', '--no-install-recommends', ...packages], env);
  });
  queue = next.catch(() => undefined);
  return next;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' ')}`)),
    );
  });
}
