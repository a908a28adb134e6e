// The `connectors` CLI: operators manage connectors without touching workflows. It works on the store
// named by the environment (DATABASE_URL, else the embedded store in TC_DATA_DIR) through the same
// service layer as the HTTP API and the runtime. The environment is read once, by loadConfig, when
// a command first needs it; commands get typed values from there.
// Only commander and the configuration load up front: each command imports what it uses (the store and
// connector libraries, the Temporal worker, the HTTP servers) when it runs, so `--help` and a
// typo answer at once and `list` does not load the Temporal SDK.
import { Command, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { loadConfig, type ConnectorsConfig } from '../core/config';
import type { ConnectorServices } from '../core/services';

/* eslint-disable @typescript-eslint/no-require-imports -- `require`, not `import()`: under cli/bin.js's tsx/cjs
   hook an `import()` goes to Node's ESM loader, which cannot resolve a `.ts` source. */
const lazy = {
  services: () => require('../core/services') as typeof import('../core/services'),
  runner: () => require('../core/runner') as typeof import('../core/runner'),
  definitions: () => require('../core/definitions-file') as typeof import('../core/definitions-file'),
  yaml: () => require('yaml') as typeof import('yaml'),
  managementApi: () => require('../api/server') as typeof import('../api/server'),
  codecServer: () => require('../api/codec-server') as typeof import('../api/codec-server'),
  worker: () => require('../worker/standalone') as typeof import('../worker/standalone'),
};
/* eslint-enable @typescript-eslint/no-require-imports */

/** Runs `action` with the store open, and closes it after: an open embedded store keeps the process alive. */
async function withConfiguredServices<T>(config: ConnectorsConfig, action: (services: ConnectorServices) => Promise<T>): Promise<T> {
  const { connectorServices } = lazy.services();
  const services = await connectorServices(config);
  try {
    return await action(services);
  } finally {
    // Pools a command opened (an SSH connection of introspect, say) would keep the process alive until they idle out.
    await services.service.registry.close();
    await services.store.close();
  }
}

function actor(option?: string): string {
  if (option) return option;
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli';
  }
}

/** The file's bytes (`-`: standard input); decoded by the caller, which refuses what is not UTF-8. */
function readSource(file: string): Buffer {
  if (file === '-') return readFileSync(0);
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ')).join('\n');
}

interface FieldDoc {
  path: string;
  description: string;
}

/**
 * The fields of a JSON Schema at every depth, by dotted path (`auth.token`, `vault_secrets[].path`), with
 * their descriptions. Fields of a union's variants are labelled with the variant's constant (`(type bearer)`).
 */
function fieldDocs(schema: unknown, path = '', label = ''): FieldDoc[] {
  if (!schema || typeof schema !== 'object') return [];
  const node = schema as { properties?: Record<string, unknown>; oneOf?: unknown[]; anyOf?: unknown[]; items?: unknown };
  const docs: FieldDoc[] = [];
  for (const [key, property] of Object.entries(node.properties ?? {})) {
    const at = path ? `${path}.${key}` : key;
    const description = (property as { description?: unknown }).description;
    docs.push({ path: at, description: `${label}${typeof description === 'string' ? description : ''}` });
    docs.push(...fieldDocs(property, at));
  }
  for (const variant of [...(node.oneOf ?? []), ...(node.anyOf ?? [])]) {
    const constant = Object.entries((variant as { properties?: Record<string, { const?: unknown }> }).properties ?? {}).find(([, p]) => p.const !== undefined);
    docs.push(...fieldDocs(variant, path, constant ? `(${constant[0]} ${String(constant[1].const)}) ` : label));
  }
  if (node.items) docs.push(...fieldDocs(node.items, `${path}[]`));
  return docs;
}

/** Fields whose entries are sensitive by their names (REST `headers`): the parents of patterns with a `*` inside a key. */
function sensitiveByName(sensitive: readonly string[]): Set<string> {
  return new Set(sensitive.filter((p) => /[^.]\*|\*[^.]/.test(p.slice(p.lastIndexOf('.') + 1))).map((p) => p.slice(0, p.lastIndexOf('.'))));
}

/**
 * The sensitive paths in a line: fields by name, then each map whose entries are sensitive by their
 * names once (`headers (by name)`), rather than a dozen name patterns.
 */
function sensitiveSummary(sensitive: readonly string[]): string {
  const byName = sensitiveByName(sensitive);
  const fields = sensitive.filter((p) => !byName.has(p.slice(0, p.lastIndexOf('.'))));
  return [...fields, ...[...byName].map((parent) => `${parent} (by name)`)].join(', ');
}

/** One line per field: its path, then `(sensitive)` (or `(sensitive by name)` for a map such as headers) where it is, then its description. */
function fieldTable(schema: unknown, sensitive: readonly string[]): string {
  const byName = sensitiveByName(sensitive);
  const mark = (path: string) => (sensitive.includes(path) ? '(sensitive) ' : byName.has(path) ? '(sensitive by name) ' : '');
  const rows = fieldDocs(schema).map((doc) => [`  ${doc.path}`, `${mark(doc.path)}${doc.description}`]);
  if (rows.length === 0) return '  (no fields)';
  return table(rows)
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n');
}

function print(value: unknown, format: string): void {
  process.stdout.write(format === 'json' ? `${JSON.stringify(value, null, 2)}\n` : lazy.yaml().stringify(value));
}

function positiveInt(label: string) {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${label} must be a whole number, not "${value}"`);
    return n;
  };
}

/**
 * The CLI's commands. `config` gives the configuration when a command first needs it; default: `loadConfig()`
 * of this process's environment, read once.
 */
export function buildCli(config: () => ConnectorsConfig = once(loadConfig)): Command {
  const withServices = <T>(action: (services: ConnectorServices) => Promise<T>) => withConfiguredServices(config(), action);
  const program = new Command('connectors')
    .description('Manage temporal-connectors connector profiles (store: DATABASE_URL, else the embedded store in TC_DATA_DIR).')
    .showHelpAfterError()
    .configureOutput({ outputError: (text, write) => write(text) });
  const outputOption = () => new Option('-o, --output <format>', 'output format').choices(['yaml', 'json']).default('yaml');

  program
    .command('apply')
    .description('create or update connectors from a YAML or JSON file (several documents allowed; all or nothing)')
    .requiredOption('-f, --file <file>', 'file to read, or - for standard input')
    .option('--actor <name>', 'who is applying, recorded in history (default: cli:<user>)')
    .action(async (opts: { file: string; actor?: string }) => {
      const { decodeDefinitionsText, parseDefinitions } = lazy.definitions();
      const source = opts.file === '-' ? 'stdin' : opts.file;
      const definitions = parseDefinitions(decodeDefinitionsText(readSource(opts.file), source), source);
      if (definitions.length === 0) throw new Error(`${opts.file} holds no connector definitions`);
      const applied = await withServices(({ service }) => service.applyMany(definitions, { actor: actor(opts.actor) }));
      for (const c of applied) console.log(`${c.name}: ${c.version === 1 ? 'created' : 'updated to'} version ${c.version}`);
    });

  program
    .command('get <name>')
    .description('show a connector, sensitive values masked')
    .option('--version <n>', 'a specific version', positiveInt('--version'))
    .addOption(outputOption())
    .action(async (name: string, opts: { version?: number; output: string }) => {
      const shown = await withServices(async ({ service }) => {
        const view = await service.get(name, opts.version);
        // The current version shows what its limits have in use now, across every worker.
        const usage = opts.version === undefined ? await service.limitsUsage(view) : undefined;
        return usage ? { ...view, usage } : view;
      });
      print(shown, opts.output);
    });

  program
    .command('list')
    .description('list connectors')
    .option('--json', 'JSON instead of a table')
    .action(async (opts: { json?: boolean }) => {
      const list = await withServices(({ service }) => service.list());
      if (opts.json) return print(list, 'json');
      if (list.length === 0) return console.log('no connectors');
      console.log(table([['NAME', 'TYPE', 'VERSION', 'UPDATED', 'BY', 'DESCRIPTION'], ...list.map((c) => [c.name, c.type, String(c.version), c.created_at, c.created_by, c.description])]));
    });

  program
    .command('delete <name>')
    .description('delete a connector (its history stays readable; rollback restores it)')
    .option('--expected-version <n>', 'fail unless the connector is at this version', positiveInt('--expected-version'))
    .option('--actor <name>', 'who is deleting, recorded in history')
    .action(async (name: string, opts: { expectedVersion?: number; actor?: string }) => {
      const deleted = await withServices(({ service }) => service.delete(name, { expectedVersion: opts.expectedVersion, actor: actor(opts.actor) }));
      console.log(`${name}: deleted (version ${deleted.version})`);
    });

  program
    .command('history <name>')
    .description('every version: when, who, and which fields changed (never values)')
    .option('--json', 'JSON instead of a table')
    .action(async (name: string, opts: { json?: boolean }) => {
      const history = await withServices(({ service }) => service.history(name));
      if (opts.json) return print(history.map(({ version, created_at, created_by, deleted, changed }) => ({ version, created_at, created_by, deleted, changed })), 'json');
      console.log(table([['VERSION', 'WHEN', 'WHO', 'CHANGED'], ...history.map((v) => [String(v.version), v.created_at, v.created_by, v.changed.join(', ')])]));
    });

  program
    .command('rollback <name> <version>')
    .description("write an old version's content (secrets included) as the newest version")
    .option('--actor <name>', 'who is rolling back, recorded in history')
    .action(async (name: string, version: string, opts: { actor?: string }) => {
      const restored = await withServices(({ service }) => service.rollback(name, positiveInt('VERSION')(version), { actor: actor(opts.actor) }));
      console.log(`${name}: version ${version} restored as version ${restored.version}`);
    });

  const limits = program.command('limits').description("a connector's limits in use");
  limits
    .command('reset <name>')
    .description('end the back-off a 429 Too Many Requests set on a connector, so that its calls go ahead at once')
    .action(async (name: string) => {
      const { backoff_cleared } = await withServices(({ service }) => service.resetLimits(name));
      console.log(`${name}: ${backoff_cleared ? 'back-off cleared' : 'no back-off was in force'}`);
    });

  program
    .command('rotate-key')
    .description('re-encrypt every stored secret under the first key of the keyring (TC_KEYRING / TC_KEYRING_FILE)')
    .action(async () => {
      const { rewritten, keyId } = await withServices(async ({ service }) => ({ rewritten: await service.rotateKeys(), keyId: service.keyring?.primaryId }));
      console.log(`re-encrypted ${rewritten} value(s) under key ${keyId}`);
    });

  program
    .command('types [type]')
    .description('connector types: their fields with descriptions, and which are sensitive; one type when named')
    .option('--json', "JSON (with each type's JSON Schema) instead of text")
    .option('--definition', 'the fields of a connector document (name, type, value, vault_secrets, ...) instead')
    .action(async (name: string | undefined, opts: { json?: boolean; definition?: boolean }) => {
      const { types, definition } = await withServices(async ({ service }) => ({ types: service.types(), definition: service.definitionJsonSchema() }));
      if (opts.definition) {
        if (opts.json) return print(definition, 'json');
        console.log(`connector document:\n${fieldTable(definition, [])}`);
        return;
      }
      const chosen = name === undefined ? types : types.filter((t) => t.name.toUpperCase() === name.toUpperCase());
      if (chosen.length === 0) throw new Error(`no connector type "${name}"; known types: ${types.map((t) => t.name).join(', ')}`);
      if (opts.json) return print(name === undefined ? types : chosen[0], 'json');
      const sections = chosen.map((t) => `${t.name}: ${t.description}\n${fieldTable(t.json_schema, t.sensitive)}`);
      if (name === undefined) sections.unshift(table([['TYPE', 'SENSITIVE', 'FIELDS'], ...types.map((t) => [t.name, sensitiveSummary(t.sensitive) || '-', t.fields.join(', ')])]));
      console.log(sections.join('\n\n'));
    });

  for (const action of ['test', 'introspect'] as const) {
    program
      .command(`${action} <name>`)
      .description(action === 'test' ? 'check that a connector reaches its system (exit code 1 when not)' : "describe the connector's system (SQL: schemas, tables, columns; REST: OpenAPI)")
      .option('--timeout <seconds>', 'give up after this many seconds', positiveInt('--timeout'), 60)
      .action(async (name: string, opts: { timeout: number }) => {
        const { createConnectionRunner } = lazy.runner();
        const result = await withServices(({ service, vault }) =>
          createConnectionRunner({ service, vault }).run({ connector: name, action }, { signal: AbortSignal.timeout(opts.timeout * 1000) }),
        );
        if (action === 'introspect') return print(result.output, 'json');
        const outcome = result.output as { ok: boolean; message: string };
        console.log(`${outcome.ok ? 'ok' : 'FAILED'}: ${outcome.message}`);
        if (!outcome.ok) process.exitCode = 1;
      });
  }

  program
    .command('serve')
    .description(
      'run the HTTP management API and the connector console at / (tokens: TC_API_TOKENS read-write, TC_API_READ_TOKENS read-only, comma-separated; further host names: TC_API_ALLOWED_HOSTS; the Web UI the console links to: TC_TEMPORAL_UI_URL)',
    )
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on', positiveInt('--port'), 8080)
    .action(async (opts: { host: string; port: number }) => {
      const { managementApiOptionsFromConfig, startManagementApi } = lazy.managementApi();
      const { connectorServices } = lazy.services();
      const { createConnectionRunner } = lazy.runner();
      // Tokens are checked before the store opens, so a missing one leaves nothing open.
      const fromConfig = managementApiOptionsFromConfig(config());
      const services = await connectorServices(config());
      const api = await startManagementApi({ ...fromConfig, service: services.service, runner: createConnectionRunner(services), host: opts.host, port: opts.port });
      console.log(`management API on ${api.url} (store ${services.store.db.description})`);
      console.log(`console on ${api.url}/`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await api.close();
      await services.store.close();
    });

  program
    .command('codec-server')
    .description(
      'run the codec server for encrypted payloads, for the Web UI (keys: TC_PAYLOAD_KEYRING, else TC_KEYRING / TC_KEYRING_FILE; TC_CODEC_TOKENS required, TC_CODEC_CORS_ORIGINS, TC_CODEC_ALLOWED_HOSTS, TC_CODEC_PORT)',
    )
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (default: TC_CODEC_PORT, else 8888)', positiveInt('--port'))
    .option('--insecure-no-auth', 'serve without TC_CODEC_TOKENS, to anyone who reaches the port: development on this machine only (loopback addresses only)')
    .action(async (opts: { host: string; port?: number; insecureNoAuth?: boolean }) => {
      const { startCodecServer, codecServerOptionsFromConfig } = lazy.codecServer();
      const options = codecServerOptionsFromConfig(config());
      const insecureNoAuth = opts.insecureNoAuth === true;
      const server = await startCodecServer({ ...options, insecureNoAuth, host: opts.host, port: opts.port ?? options.port });
      console.log(`codec server on ${server.url} (CORS origins: ${options.corsOrigins.join(', ') || 'none'})`);
      // Say so rather than stay quiet: whoever reaches the port can decrypt payloads.
      if (insecureNoAuth) console.log('--insecure-no-auth: /encode and /decode need no token; anyone on this machine can decrypt payloads');
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await server.close();
    });

  program
    .command('worker')
    .description(
      'run a connector worker (Temporal as the Temporal CLI reaches it: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*, TEMPORAL_PROFILE, temporal.toml; TC_TASK_QUEUE, store, keyring and Vault from the environment)',
    )
    .action(async () => {
      const { runStandaloneConnectorWorker } = lazy.worker();
      await runStandaloneConnectorWorker(config());
    });

  return program;
}

/** `load`, called once: later calls return its first result. */
function once<T>(load: () => T): () => T {
  let loaded: { value: T } | undefined;
  return () => (loaded ??= { value: load() }).value;
}

/** One line on stderr, never a stack trace: validation issues, driver errors and failures all say what is wrong. */
export function describeCliError(err: unknown): string {
  // By name: importing the class would load the service layer for every command, --help included.
  if (err instanceof Error && err.name === 'ConnectorValidationError') return err.message;
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0];
}

/** Parses `argv` and runs the command; failures set exit code 1 with one line on stderr. */
export async function runCli(argv: string[]): Promise<void> {
  try {
    await buildCli().parseAsync(argv);
  } catch (err) {
    process.stderr.write(`connectors: ${describeCliError(err)}\n`);
    process.exitCode = 1;
  }
}

if (require.main === module) void runCli(process.argv);
