import { aptInstall, canAptInstall } from './apt';
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
  if (!(await canAptInstall())) {
    throw new Error(
      'Chromium is needed for the Web UI test and was not found (tried CHROMIUM_PATH and chromium on PATH). ' +
        "Install Debian's package (apt-get install chromium), or set CHROMIUM_PATH; as root the test setup installs it itself.",
    );
  }
  await aptInstall(['chromium'], log);
  const installed = await findOnPath('chromium');
  if (!installed) throw new Error('apt-get installed chromium, but no `chromium` is on PATH afterwards.');
  return installed;
}
