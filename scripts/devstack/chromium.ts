import { spawn } from 'node:child_process';
import { findOnPath, isExecutable } from './binaries';

/** Flags for headless Chromium on a closed network: without the background-networking ones it keeps dialling out. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox', // the tests run as root in CI, where Chromium's sandbox refuses to start
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Path of a Chromium for the Web UI test: `CHROMIUM_PATH`, else `chromium` on PATH, else Debian's
 * `chromium` package installed with apt-get when running as root (first run only, about a minute).
 */
export async function ensureChromium(log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<string> {
  const configured = process.env.CHROMIUM_PATH;
  if (configured) {
    if (await isExecutable(configured)) return configured;
    throw new Error(`CHROMIUM_PATH=${configured} is set, but that is not an executable file.`);
  }
  for (const name of ['chromium', 'chromium-browser']) {
    const found = await findOnPath(name);
    if (found) return found;
  }
  const aptGet = await findOnPath('apt-get');
  if (!aptGet || process.getuid?.() !== 0) {
    throw new Error(
      'Chromium is needed for the Web UI test and was not found (tried CHROMIUM_PATH and chromium on PATH). ' +
        "Install Debian's package (apt-get install chromium), or set CHROMIUM_PATH; as root the test setup installs it itself.",
    );
  }
  log('[devstack] installing Debian chromium with apt-get (first run only; about a minute)...');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await run(aptGet, ['update', '-qq'], env);
  await run(aptGet, ['install', '-y', '-qq', '--no-install-recommends', 'chromium'], env);
  const installed = await findOnPath('chromium');
  if (!installed) throw new Error('apt-get installed chromium, but no `chromium` is on PATH afterwards.');
  return installed;
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
