// The package as a Temporal project gets it: `npm pack` (which builds), a fresh project outside this
// repository that installs the tarball and the Temporal SDK, plain JavaScript on its side, the
// consumer's own `npx connectors apply`, its own worker and client as child processes run from its
// folder, so every import resolves through its node_modules and nothing of this repository's sources,
// tsx or TypeScript. Its JavaScript files are those of the README's "Use it in your project", read from there.
import { Client, Connection } from '@temporalio/client';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Keyring } from '../../core/keyring';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';
import { freePort } from '../../scripts/devstack/process';
import { startTestHttpServer, type TestHttpServer } from '../fixtures/http-server';
import { recordResponse, recordSecrets } from '../support/leak-sweep';
import { runProcess, type ProcessRun as Run } from '../support/run-process';
import { testStack, uniqueName } from '../support/stack';
import { withinMs } from '../support/worker-process';

const REPO = path.resolve(__dirname, '..', '..');
const TOKEN = 'tok-consumer-SECRET-7319';
recordSecrets('the token of consumer.test.ts', [TOKEN]);

/** The Temporal SDK packages the consumer installs: the versions this repository runs on. */
const SDK_PACKAGES = ['client', 'worker', 'workflow', 'envconfig'].map((name) => {
  const { version } = JSON.parse(readFileSync(path.join(REPO, 'node_modules', '@temporalio', name, 'package.json'), 'utf8')) as { version: string };
  return `@temporalio/${name}@${version}`;
});

/**
 * A file of the README's "Use it in your project", taken from the README itself, so the quick start is
 * what this test runs: the ```js block whose first line is `// <name>: ...`.
 */
function readmeFile(name: string): string {
  const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Use it in your project'));
  const block = new RegExp('```js\\n(// ' + name.replace('.', '\\.') + ':[^]*?)```').exec(section);
  if (!block) throw new Error(`README.md's "Use it in your project" has no js block for ${name}`);
  return block[1];
}

/** The README's billing_api.yaml, pointed at `baseUrl` and with this file's token. */
function connectorYaml(baseUrl: string): string {
  const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');
  const yaml = /cat > billing_api\.yaml <<'YAML'\n([^]*?\n)YAML\n/.exec(readme.slice(readme.indexOf('## Use it in your project')));
  if (!yaml) throw new Error(`README.md's "Use it in your project" has no billing_api.yaml`);
  return yaml[1].replace('https://billing.example.com/api', baseUrl).replace('token: s3cr3t', `token: ${TOKEN}`);
}

/**
 * An environment without what this repository's own npm run put there (npm_* settings, jest's
 * NODE_OPTIONS), so the consumer's npm and node behave as in a fresh shell.
 */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(name) || ['NODE_OPTIONS', 'NODE_PATH', 'INIT_CWD', 'DATABASE_URL', 'TC_KEYRING', 'TC_KEYRING_FILE', 'TC_DATA_DIR', 'VAULT_ADDR'].includes(name)) continue;
    if (name.startsWith('TEMPORAL_')) continue;
    env[name] = value;
  }
  return { ...env, ...extra };
}

/** Runs a command to its end; one still running after `timeoutMs` is killed (and reports code null). */
function run(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number; input?: string }): Promise<Run> {
  return runProcess(command, args, { ...options, label: `consumer: ${command} ${args.join(' ')}` });
}

function expectSuccess(what: string, result: Run): void {
  if (result.code !== 0) throw new Error(`${what} exited with ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
}

describe('the packed package in a project of its own', () => {
  let work: string;
  let consumer: string;
  let db: ScratchDatabase;
  let api: TestHttpServer;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'tc-consumer-'));
    consumer = path.join(work, 'my-temporal-app');
    [db, api] = await Promise.all([
      createScratchDatabase('tc_consumer'),
      startTestHttpServer((request, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(request.path === '/invoices' ? [{ id: 1, customer: request.query.customer, amount: 12 }] : { unexpected: request.path }));
      }),
    ]);
    env = cleanEnv({ TEMPORAL_ADDRESS: testStack().temporal.address, TEMPORAL_NAMESPACE: 'default', DATABASE_URL: db.url, TC_KEYRING: Keyring.generateEntry('k1') });

    // `npm pack` runs prepack, which builds dist/ from the sources.
    const packed = await run('npm', ['pack', '--pack-destination', work], { cwd: REPO, env: cleanEnv({}), timeoutMs: 180_000 });
    expectSuccess('npm pack', packed);
    const tarball = readdirSync(work).find((file) => file.endsWith('.tgz'));
    if (!tarball) throw new Error(`npm pack wrote no tarball into ${work}: ${packed.stdout}`);

    mkdirSync(consumer);
    writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'my-temporal-app', version: '1.0.0', private: true }, null, 2));
    const installed = await run('npm', ['install', '--no-audit', '--no-fund', path.join(work, tarball), ...SDK_PACKAGES], { cwd: consumer, env, timeoutMs: 300_000 });
    expectSuccess('npm install', installed);
    for (const file of ['workflows.js', 'worker.js', 'run.js']) writeFileSync(path.join(consumer, file), readmeFile(file));
    writeFileSync(path.join(consumer, 'billing_api.yaml'), connectorYaml(api.url));
  }, 600_000);

  afterAll(async () => {
    await api?.close();
    await db?.drop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('the tarball holds built JavaScript with types and source maps, and no TypeScript sources, tests or scripts', async () => {
    const listed = await run('tar', ['tzf', readdirSync(work).find((file) => file.endsWith('.tgz'))!], { cwd: work, env, timeoutMs: 30_000 });
    expectSuccess('tar', listed);
    const files = listed.stdout.split('\n').filter(Boolean);
    expect(files).toEqual(expect.arrayContaining(['package/dist/index.js', 'package/dist/index.d.ts', 'package/dist/index.js.map', 'package/dist/workflows/index.js', 'package/dist/workflows/index.d.ts', 'package/dist/cli/connectors.js']));
    expect(files.filter((file) => /\.ts$/.test(file) && !file.endsWith('.d.ts'))).toEqual([]);
    expect(files.filter((file) => /^package\/(test|scripts|examples|bench)\//.test(file) || file.includes('/fixtures/'))).toEqual([]);
    // The console's page is built into the package, without its 2.5 MB of source maps.
    expect(files).toEqual(expect.arrayContaining(['package/dist/console/assets/index.html', 'package/dist/console/assets/console.js', 'package/dist/console/assets/console.css']));
    expect(files.filter((file) => file.startsWith('package/dist/console/') && file.endsWith('.map'))).toEqual([]);
    // package.json says MIT; the licence text travels with the package, as the licence requires.
    expect(files).toContain('package/LICENSE');
    const license = await run('tar', ['xzOf', readdirSync(work).find((file) => file.endsWith('.tgz'))!, 'package/LICENSE'], { cwd: work, env, timeoutMs: 30_000 });
    expectSuccess('tar', license);
    expect(license.stdout).toBe(readFileSync(path.join(REPO, 'LICENSE'), 'utf8'));
    expect(license.stdout).toMatch(/^MIT License\n\nCopyright \(c\) 2026 temporal-connectors contributors\n/);
    expect(JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')).license).toBe('MIT');
  });

  test("the consumer's npx connectors serve serves the connector console from the package", async () => {
    const port = await freePort();
    const token = `consumer-api-${Date.now()}`;
    // The installed bin itself, not through npx, so SIGTERM reaches the server.
    const serve = spawn(path.join(consumer, 'node_modules', '.bin', 'connectors'), ['serve', '--port', String(port)], { cwd: consumer, env: { ...env, TC_API_TOKENS: token }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const exited = new Promise<number | null>((resolve) => serve.on('close', resolve));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`connectors serve did not start within 60 s:\n${output}`)), 60_000);
        void exited.then((code) => reject(new Error(`connectors serve exited with ${code}:\n${output}`)));
        const collect = (chunk: Buffer) => {
          output += chunk;
          if (output.includes('console on ')) {
            clearTimeout(timer);
            resolve();
          }
        };
        serve.stdout.on('data', collect);
        serve.stderr.on('data', collect);
      });
      const page = await fetch(`http://127.0.0.1:${port}/`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
      expect(await page.text()).toContain('/console/console.js');
      const script = await fetch(`http://127.0.0.1:${port}/console/console.js`);
      expect(script.status).toBe(200);
      expect(script.headers.get('content-type')).toMatch(/javascript/);
      expect((await script.text()).length).toBeGreaterThan(100_000);
    } finally {
      serve.kill('SIGTERM');
      await exited;
      recordResponse('consumer: connectors serve', output);
    }
  });

  // The type check (the TypeScript compiler) and the run (a worker and a workflow) use different files
  // of the project and take seconds each: they run at once.
  test.concurrent('a TypeScript project gets real types for both entry points, with no declaration that needs a package it lacks', async () => {
    // The misuse below must be an error: were the entry points typed `any`, the unused directive would be one instead.
    writeFileSync(
      path.join(consumer, 'check.ts'),
      `import { connect, FailureType, type ConnectionHandle } from 'temporal-connectors/workflows';
import { ConnectorsPlugin, PgDatabase, connectorServicesFromEnv } from 'temporal-connectors';

export async function typed(): Promise<ConnectionHandle['workflowId']> {
  // @ts-expect-error connect takes a connector name or an inline connector, not a number
  await connect(42);
  return FailureType.NotFound;
}
export async function plugin(): Promise<ConnectorsPlugin> {
  return new ConnectorsPlugin({ connectorWorker: { service: (await connectorServicesFromEnv()).service } });
}
export const database = new PgDatabase({ connectionString: 'postgres://localhost/db' });
`,
    );
    // The repository's TypeScript and Node types; everything else resolves in the consumer's node_modules.
    const tsc = path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
    const flags = ['--listFiles', '--noEmit', '--strict', '--module', 'node16', '--moduleResolution', 'node16', '--target', 'es2022', '--types', 'node', '--typeRoots', path.join(REPO, 'node_modules', '@types')];
    const checked = await run(process.execPath, [tsc, ...flags, 'check.ts'], { cwd: consumer, env, timeoutMs: 120_000 });
    // Errors inside other packages' declarations (the SDK's own need of @types/ms) are theirs, not this package's.
    const ours = checked.stdout.split('\n').filter((line) => /^(check\.ts|node_modules\/temporal-connectors\/)\S*\(\d+,\d+\): error/.test(line));
    expect(ours).toEqual([]);
    expect(checked.stdout).toMatch(/\/node_modules\/temporal-connectors\/dist\/index\.d\.ts$/m);
    expect(checked.stdout).toMatch(/\/node_modules\/temporal-connectors\/dist\/workflows\/index\.d\.ts$/m);
  });

  test.concurrent("a workflow that imports only temporal-connectors/workflows calls a connector stored with the consumer's npx connectors apply, and the consumer's worker exits on SIGTERM", async () => {
    const applied = await run('npx', ['--no', 'connectors', 'apply', '-f', 'billing_api.yaml'], { cwd: consumer, env, timeoutMs: 60_000 });
    expectSuccess('npx connectors apply', applied);
    expect(applied.stdout).toBe('billing_api: created version 1\n');

    const worker = spawn(process.execPath, ['worker.js'], { cwd: consumer, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let workerOut = '';
    const exited = new Promise<number | null>((resolve) => worker.on('close', resolve));
    try {
      worker.stderr.on('data', (c) => (workerOut += c));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the consumer's worker was not ready within 120 s:\n${workerOut}`)), 120_000);
        void exited.then((code) => reject(new Error(`the consumer's worker exited with ${code} before it was ready:\n${workerOut}`)));
        worker.stdout.on('data', (c) => {
          workerOut += c;
          if (workerOut.includes('worker ready')) {
            clearTimeout(timer);
            resolve();
          }
        });
      });

      // The workflow's connect() uses the default `connectors` task queue, as the README's does: no
      // other test of the run polls it, since every other connector worker has a queue of its own.
      const workflowId = uniqueName('open-invoices');
      const ran = await run(process.execPath, ['run.js', 'acme', workflowId], { cwd: consumer, env, timeoutMs: 120_000 });
      expectSuccess('node run.js', ran);
      expect(JSON.parse(ran.stdout)).toEqual({ status: 200, invoices: [{ id: 1, customer: 'acme', amount: 12 }] });
      expect(api.requests.map((r) => [r.method, r.path, r.query, r.headers.authorization])).toEqual([['GET', '/invoices', { customer: 'acme' }, `Bearer ${TOKEN}`]]);

      const connection = await Connection.connect({ address: testStack().temporal.address });
      try {
        const child = await new Client({ connection }).workflow.getHandle(`${workflowId}/connection/1`).describe();
        expect(child.type).toBe('connection');
        expect(child.status.name).toBe('COMPLETED');
        expect(child.taskQueue).toBe('connectors');
        expect(child.parentExecution?.workflowId).toBe(workflowId);
        expect(await child.staticSummary()).toBe('billing_api');
        expect(child.searchAttributes).toMatchObject({ ConnectorName: ['billing_api'], ConnectorType: ['REST'] });
      } finally {
        await connection.close();
      }

      // As a process manager stops it: the worker stops polling, closes what it opened and exits by itself,
      // which a connection or pool left open would delay by up to 30 s (the store's idle connections).
      worker.kill('SIGTERM');
      expect(await withinMs(exited, 10_000, "the consumer's worker exiting after SIGTERM")).toBe(0);
    } finally {
      worker.kill('SIGTERM');
      const timer = setTimeout(() => worker.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
      recordResponse("consumer: the consumer's worker", workerOut);
    }
  });
});
