import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

/** Runs the CLI as cli/bin.js does (tsx/cjs) and returns the packages and project folders it loaded, as it exits. */
function loadedBy(args: string[], env: Record<string, string>): { status: number | null; loaded: string[]; stderr: string } {
  const script = `
    process.on('exit', () => {
      const loaded = Object.keys(require.cache).map((file) => {
        const pkg = /node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(file);
        return pkg ? pkg[1] : file.startsWith(${JSON.stringify(ROOT + path.sep)}) ? file.slice(${ROOT.length + 1}).split('/')[0] + '/' : file;
      });
      process.stderr.write('\\nLOADED ' + JSON.stringify([...new Set(loaded)]) + '\\n');
    });
    require('tsx/cjs');
    require('./cli/main.ts').runCli(['node', 'connectors', ...${JSON.stringify(args)}]);
  `;
  const run = spawnSync(process.execPath, ['-e', script], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  const line = run.stderr.split('\n').find((l) => l.startsWith('LOADED '));
  return { status: run.status, loaded: line ? (JSON.parse(line.slice('LOADED '.length)) as string[]) : [], stderr: run.stderr };
}

// The CLI loads what a command uses when it runs, so help and typos answer without loading the rest.
describe('connectors CLI start-up', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'tc-startup-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));
  const env = { DATABASE_URL: '', TC_DATA_DIR: dataDir, TC_KEYRING: '', TC_KEYRING_FILE: '', VAULT_ADDR: '' };
  const heavy = ['@temporalio/worker', '@temporalio/client', '@electric-sql/pglite', 'pg', 'mysql2', 'openai', 'undici', 'node-vault', 'fastify', 'yaml', 'connectors/', 'worker/', 'api/'];

  test('connectors --help loads neither the store, the connector libraries, the HTTP servers nor the Temporal SDK', () => {
    // What the check sees: `list` on the embedded store loads the store and the connector types.
    const list = loadedBy(['list'], env);
    expect(list.status).toBe(0);
    expect(list.loaded).toEqual(expect.arrayContaining(['pg', 'mysql2', 'connectors/', 'cli/']));
    // ... and still not the Temporal worker or the HTTP servers, which only `worker`, `serve` and `codec-server` use.
    expect(list.loaded).not.toContain('@temporalio/worker');
    expect(list.loaded).not.toContain('fastify');

    const help = loadedBy(['--help'], env);
    expect(help.status).toBe(0);
    expect(help.loaded).toContain('commander');
    expect(help.loaded.filter((name) => heavy.includes(name))).toEqual([]);
  });
});
