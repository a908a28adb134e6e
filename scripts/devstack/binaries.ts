import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, chmod, mkdir, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import * as path from 'node:path';

/**
 * How a server binary is found or built. Resolution order, first hit wins:
 * `envVar` → `command` on PATH → the project's cache → a Go build from the Go module proxy.
 */
export interface BinarySpec {
  /** Name used in messages, e.g. `Temporal CLI`. */
  displayName: string;
  /** Environment variable holding an explicit path, e.g. `TEMPORAL_CLI`. */
  envVar: string;
  /** Executable name looked up on PATH, e.g. `temporal`. */
  command: string;
  /** Version the Go build produces; part of the cached file name. */
  version: string;
  /**
   * Folder (relative to the repository root) of a Go module that lists the server as a `tool`.
   * A tools module, unlike `go install pkg@version`, builds modules whose go.mod has `replace`
   * directives, and its committed go.sum pins every dependency.
   */
  goToolsModule: string;
  /** Go package path of the server's main package. */
  goPackage: string;
}

export type BinarySource = 'env' | 'path' | 'cache' | 'go-build';

export interface ResolvedBinary {
  path: string;
  source: BinarySource;
}

const REPO_ROOT = path.resolve(__dirname, '..', '..');

/**
 * Folder where built server binaries are kept between runs and clones.
 * Default: `$TC_CACHE_DIR`, else `$XDG_CACHE_HOME/temporal-connectors`, else `~/.cache/temporal-connectors`.
 */
export function cacheDir(): string {
  if (process.env.TC_CACHE_DIR) return path.resolve(process.env.TC_CACHE_DIR);
  const base = process.env.XDG_CACHE_HOME || path.join(homedir(), '.cache');
  return path.join(base, 'temporal-connectors');
}

export class BinaryNotFoundError extends Error {
  override name = 'BinaryNotFoundError';
}

/** Finds `spec`'s binary, building it with Go (once, then cached) when nothing else provides it. */
export async function resolveBinary(
  spec: BinarySpec,
  log: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Promise<ResolvedBinary> {
  const tried: string[] = [];

  const fromEnv = process.env[spec.envVar];
  if (fromEnv) {
    if (await isExecutable(fromEnv)) return { path: path.resolve(fromEnv), source: 'env' };
    // An explicit setting that does not work is an error, not something to silently route around.
    throw new BinaryNotFoundError(`${spec.envVar}=${fromEnv} is set, but that is not an executable file.`);
  }
  tried.push(`${spec.envVar} (not set)`);

  const onPath = await findOnPath(spec.command);
  if (onPath) return { path: onPath, source: 'path' };
  tried.push(`\`${spec.command}\` on PATH (not found)`);

  const cached = path.join(cacheDir(), 'bin', `${spec.command}-${spec.version}`);
  if (await isExecutable(cached)) return { path: cached, source: 'cache' };
  tried.push(`the cache ${cached} (empty)`);

  const go = await findGo();
  if (!go) {
    tried.push('a Go build (no `go` on PATH, in $GOROOT/bin or /usr/local/go/bin)');
    throw new BinaryNotFoundError(notFoundMessage(spec, tried));
  }
  try {
    await goBuild(go, spec, cached, log);
  } catch (err) {
    tried.push(`a Go build of ${spec.goPackage} (${(err as Error).message})`);
    throw new BinaryNotFoundError(notFoundMessage(spec, tried));
  }
  return { path: cached, source: 'go-build' };
}

function notFoundMessage(spec: BinarySpec, tried: string[]): string {
  return [
    `Cannot find or build the ${spec.displayName} (${spec.command} ${spec.version}).`,
    `Tried: ${tried.join('; ')}.`,
    `Provide it with ${spec.envVar}=/path/to/${spec.command}, put \`${spec.command}\` on PATH, ` +
      `or install Go >= 1.25 with access to a Go module proxy so it can be built (npm run servers).`,
  ].join('\n');
}

async function goBuild(go: string, spec: BinarySpec, outFile: string, log: (line: string) => void): Promise<void> {
  const moduleDir = path.join(REPO_ROOT, spec.goToolsModule);
  await mkdir(path.dirname(outFile), { recursive: true });
  // Build next to the target and rename: a half-written binary must never look like a cached one.
  const partial = `${outFile}.partial-${process.pid}`;
  const started = Date.now();
  log(`[devstack] building ${spec.displayName} ${spec.version} with Go (first run only; this takes several minutes)...`);
  const output: string[] = [];
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(go, ['build', '-mod=readonly', '-o', partial, spec.goPackage], {
      cwd: moduleDir,
      env: { ...process.env, CGO_ENABLED: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (chunk: Buffer) => output.push(chunk.toString());
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) {
    await rm(partial, { force: true });
    const tail = output.join('').trim().split('\n').slice(-15).join('\n');
    throw new Error(`go build exited with ${code}:\n${tail}`);
  }
  await chmod(partial, 0o755);
  await rename(partial, outFile);
  log(`[devstack] built ${spec.displayName} in ${Math.round((Date.now() - started) / 1000)} s: ${outFile}`);
}

export async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

export async function findOnPath(command: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, command);
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** Go on PATH, else where its installers put it (CI shells do not always have it on PATH). */
async function findGo(): Promise<string | undefined> {
  const onPath = await findOnPath('go');
  if (onPath) return onPath;
  for (const candidate of [process.env.GOROOT && path.join(process.env.GOROOT, 'bin', 'go'), '/usr/local/go/bin/go']) {
    if (candidate && (await isExecutable(candidate))) return candidate;
  }
  return undefined;
}
