// `npm run bench:cli [-- --runs N]`: how long `connectors --help` and `connectors list` take, from process
// start to exit, on the embedded store and on PostgreSQL (a scratch database on the server the tests use;
// see scripts/devstack/postgres.ts). It runs the CLI as `npm run connectors` does (tsx, compiling the
// TypeScript sources) and, when `npm run build` has made dist/cli/main.js, the built JavaScript. Prints the
// median of each, in milliseconds, as a Markdown table for the README. Not part of `npm test`: figures
// depend on the machine.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Keyring } from '../core/keyring';
import { createScratchDatabase } from '../scripts/devstack/postgres';

const ROOT = path.resolve(__dirname, '..');
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 7;
const DEFINITION = 'name: billing_api\ntype: REST\ndescription: bench\nvalue: { base_url: "http://127.0.0.1:9", auth: { type: bearer, token: bench-token } }\n';

interface Way {
  label: string;
  command: string[];
}

const ways: Way[] = [{ label: 'tsx (npm run connectors)', command: [path.join(ROOT, 'node_modules', '.bin', 'tsx'), path.join(ROOT, 'cli', 'main.ts')] }];
const built = path.join(ROOT, 'dist', 'cli', 'main.js');
if (existsSync(built)) ways.push({ label: 'built (dist/cli)', command: [process.execPath, built] });

/** One run to its end, in milliseconds; throws with the CLI's stderr when it fails. */
function timeOnce(way: Way, args: string[], env: Record<string, string>, input?: string): number {
  const started = process.hrtime.bigint();
  const run = spawnSync(way.command[0], [...way.command.slice(1), ...args], { cwd: ROOT, env: { ...process.env, ...env }, input, encoding: 'utf8', timeout: 120_000 });
  const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
  if (run.status !== 0) throw new Error(`connectors ${args.join(' ')} (${way.label}) failed: ${run.stderr || run.error?.message}`);
  return elapsed;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

async function main(): Promise<void> {
  if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error('--runs must be a whole number, 1 or more');
  const dataDir = mkdtempSync(path.join(tmpdir(), 'tc-bench-'));
  const db = await createScratchDatabase('tc_bench');
  const common = { TC_KEYRING: Keyring.generateEntry('bench'), TC_KEYRING_FILE: '', VAULT_ADDR: '', TEMPORAL_CONFIG_FILE: '' };
  const stores = [
    { label: 'embedded', env: { ...common, DATABASE_URL: '', TC_DATA_DIR: dataDir } },
    { label: 'PostgreSQL', env: { ...common, DATABASE_URL: db.url } },
  ];
  const rows: string[][] = [];
  try {
    for (const store of stores) timeOnce(ways[0], ['apply', '-f', '-'], store.env, DEFINITION);
    for (const way of ways) {
      // One unmeasured run first: tsx fills its compile cache, the OS its file cache.
      timeOnce(way, ['--help'], stores[0].env);
      rows.push(['`connectors --help`', '-', way.label, median(Array.from({ length: RUNS }, () => timeOnce(way, ['--help'], stores[0].env))).toFixed(0)]);
      for (const store of stores) {
        timeOnce(way, ['list'], store.env);
        rows.push(['`connectors list`', store.label, way.label, median(Array.from({ length: RUNS }, () => timeOnce(way, ['list'], store.env))).toFixed(0)]);
      }
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
    await db.drop();
  }
  console.log(`Median of ${RUNS} runs, process start to exit, on this machine (${new Date().toISOString().slice(0, 10)}):\n`);
  console.log('| command | store | CLI | median (ms) |\n|---|---|---|---:|');
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
}

main().catch((err: Error) => {
  console.error(`bench:cli failed: ${err.message}`);
  process.exit(1);
});
