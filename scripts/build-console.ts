// Builds the connector console (console/) into static assets with esbuild: one JavaScript bundle,
// one stylesheet and the page. `npm run build:console` writes console/assets/ (served when the API
// runs from the sources); `npm run build` writes dist/console/assets/ (packed). Generated files are
// never committed. As a module, `ensureConsoleAssets()` rebuilds only when a source is newer.
import { build } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import * as path from 'node:path';

const CONSOLE_DIR = path.resolve(__dirname, '..', 'console');
/** Where the API looks for the console's assets when it runs from the sources (api/console.ts). */
export const SOURCE_ASSETS_DIR = path.join(CONSOLE_DIR, 'assets');

/** Bundles the console into `outDir` (emptied first). */
export async function buildConsole(outDir: string = SOURCE_ASSETS_DIR): Promise<void> {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  await build({
    entryPoints: { console: path.join(CONSOLE_DIR, 'src', 'main.ts') },
    bundle: true,
    minify: true,
    // Source maps help whoever works on the console; the package ships without them (they are 2.5 MB).
    sourcemap: outDir === SOURCE_ASSETS_DIR ? 'linked' : false,
    format: 'esm',
    target: ['chrome115', 'firefox115', 'safari16'],
    outdir: outDir,
    logLevel: 'warning',
    legalComments: 'linked',
  });
  copyFileSync(path.join(CONSOLE_DIR, 'index.html'), path.join(outDir, 'index.html'));
  copyFileSync(path.join(CONSOLE_DIR, 'src', 'console.css'), path.join(outDir, 'console.css'));
}

/** Builds the assets when they are missing or older than a source file (npm start, the tests). */
export async function ensureConsoleAssets(outDir: string = SOURCE_ASSETS_DIR): Promise<'built' | 'up to date'> {
  const built = path.join(outDir, 'console.js');
  if (existsSync(built) && statSync(built).mtimeMs >= newestSource()) return 'up to date';
  await buildConsole(outDir);
  return 'built';
}

function newestSource(): number {
  const files = [path.join(CONSOLE_DIR, 'index.html'), ...readdirSync(path.join(CONSOLE_DIR, 'src')).map((f) => path.join(CONSOLE_DIR, 'src', f))];
  return Math.max(...files.map((f) => statSync(f).mtimeMs));
}

if (require.main === module) {
  const outDir = process.argv[2] ? path.resolve(process.argv[2]) : SOURCE_ASSETS_DIR;
  buildConsole(outDir).then(
    () => console.log(`console assets built in ${path.relative(process.cwd(), outDir) || '.'}`),
    (err: Error) => {
      console.error(`building the console failed: ${err.message}`);
      process.exit(1);
    },
  );
}
