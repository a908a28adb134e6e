// Fuzzing the three ways operators write connectors: the service itself, the HTTP API of a running
// `connectors serve` process, and the CLI spawned as a process. Hostile definitions (deep nesting,
// huge strings, prototype keys, wrong types, NaN, control characters, broken Unicode, alias bombs,
// repeated keys, wrong content types) must each be refused with a clear error naming the field, or
// stored so that they read back unchanged; nothing may crash, answer 500, hang or leak a secret, and
// the connectors seeded before stay intact. The cases come from a seeded random source: the seed is
// in the describe line, and FUZZ_SEED=<seed> runs the same cases again.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ConnectorRegistry } from '../../connectors/registry';
import { MASK } from '../../core/inputs';
import { Keyring } from '../../core/keyring';
import { ConnectorService, ConnectorValidationError, type ConnectorView } from '../../core/service';
import { ConnectorStore } from '../../core/store/connector-store';
import { PgDatabase } from '../../core/store/database';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';
import { startTestHttpServer, type TestHttpServer } from '../fixtures/http-server';
import { yamlAliasBomb } from '../fixtures/yaml-bomb';
import { copyPlain, deepValue, describeValue, fuzzSeed, jsonText, mutateDefinition, seededRandom, setKey, type Random } from '../support/fuzz-inputs';
import { rawRequest } from '../support/raw-http';
import { recordResponse, recordSecrets } from '../support/leak-sweep';
import { runProcess, type ProcessRun as Run } from '../support/run-process';

const SEED = fuzzSeed();
const BIN = path.resolve(__dirname, '..', '..', 'cli', 'bin.js');
/** Random cases per surface; with the fixed cases, the file runs in well under a minute. */
const RANDOM_CASES = { service: 150, api: 60, cli: 3 };
/** Longest any one call may take before the case counts as hung. */
const CALL_TIMEOUT_MS = 20_000;
/** Longest a refusal's message may be: a clear error names the field, it does not echo a megabyte key. */
const MAX_MESSAGE_CHARS = 4_000;
const STACK_TRACE = /\n\s+at\s|\bat\s+\S+\s+\(?[^\s()]+:\d+:\d+\)?|node_modules\//;
const TEN_MB = 10 * 1024 * 1024;

/** In every seeded secret; no message, response or output of this file may contain it. */
const MARKER = `fuzzmark-${randomBytes(6).toString('hex')}`;
const SECRETS = { rest: `${MARKER}-rest-token`, pg: `${MARKER}-pg-password`, openai: `${MARKER}-openai-key` };
recordSecrets('the seeded secrets of fuzz.test.ts', Object.values(SECRETS));
const API_TOKEN = `fuzz-rw-${randomBytes(6).toString('hex')}`;

type Json = Record<string, unknown>;

interface Seeded {
  name: string;
  /** The definition with its secret in plain text. */
  plain: Json;
  /** Dotted path of the secret inside `value`. */
  secretPath: string;
  secret: string;
}

const isRecord = (value: unknown): value is Json =>
  value !== null && typeof value === 'object' && !Array.isArray(value) && [Object.prototype, null].includes(Object.getPrototypeOf(value));

/** JSON with object keys sorted, for comparing what was stored with what was sent (jsonb reorders keys). */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonical(v))).join(',')}]`;
  if (isRecord(value)) {
    const keys = Object.keys(value)
      .filter((k) => value[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(',')}}`;
  }
  return value === undefined ? 'null' : JSON.stringify(value);
}

/**
 * Where `got` (read back, decrypted) differs from `sent`. The mask stands for the value stored
 * before (`previous`), or, where nothing secret was stored, for itself.
 */
function valueDiffs(sent: unknown, got: unknown, previous: unknown, at: string[] = []): string[] {
  const where = at.join('.') || '(value)';
  if (sent === MASK) return got === MASK || (previous !== undefined && canonical(got) === canonical(previous)) ? [] : [`${where}: the mask did not keep the stored value`];
  if (isRecord(sent)) {
    if (!isRecord(got)) return [`${where}: an object came back as ${describeValue(got)}`];
    const sentKeys = Object.keys(sent).filter((k) => sent[k] !== undefined);
    const lost = sentKeys.filter((k) => !Object.hasOwn(got, k));
    const added = Object.keys(got).filter((k) => !sentKeys.includes(k));
    if (lost.length > 0 || added.length > 0) return [`${where}: keys lost ${JSON.stringify(lost)}, keys added ${JSON.stringify(added)}`];
    return sentKeys.flatMap((k) => valueDiffs(sent[k], got[k], isRecord(previous) && Object.hasOwn(previous, k) ? previous[k] : undefined, [...at, k]));
  }
  return canonical(sent) === canonical(got) ? [] : [`${where}: ${describeValue(sent)} came back as ${describeValue(got)}`];
}

function within<T>(promise: Promise<T>, label: string, ms = CALL_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`HUNG: ${label} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Runs `jobs` at most `limit` at a time. */
async function inPool(jobs: Array<() => Promise<void>>, limit: number): Promise<void> {
  const queue = [...jobs];
  await Promise.all(
    Array.from({ length: limit }, async () => {
      for (let job = queue.shift(); job; job = queue.shift()) await job();
    }),
  );
}

describe(`fuzzing connector definitions (seed ${SEED}: FUZZ_SEED=${SEED} runs these cases again)`, () => {
  let db: ScratchDatabase;
  let store: ConnectorStore;
  let service: ConnectorService;
  let fixture: TestHttpServer;
  let serve: { url: string; child: ChildProcess; stderr: () => string; exited: Promise<number | null> } | undefined;
  let workDir: string;
  const key1 = { id: 'k1', key: randomBytes(32) };
  const key2 = { id: 'k2', key: randomBytes(32) };
  // Each test draws from its own stream, so a test run alone (jest -t) gets the same cases.
  let random: Random = seededRandom(SEED);
  const seeded: Seeded[] = [];

  /** Everything an operator could see: messages, response bodies and headers, CLI output. */
  const seen: string[] = [];
  /** One line per broken expectation, with the case that broke it. */
  const failures: string[] = [];
  const fail = (label: string, problem: string): void => {
    failures.push(`[seed ${SEED}] ${label}: ${problem}`);
  };
  /** Decrypted value of each connector's newest version written by this file, for the mask's read-back check. */
  const lastValue = new Map<string, unknown>();
  /** Each version this file wrote, by name and version: what it must read back as. */
  const expected = new Map<string, Map<number, { value: string; fields: string }>>();

  const fieldsOf = (view: Pick<ConnectorView, 'type' | 'description' | 'vault_secrets' | 'locked' | 'allowed_destinations' | 'retry' | 'timeout'>) =>
    canonical({ type: view.type, description: view.description, vault_secrets: view.vault_secrets, locked: view.locked, allowed_destinations: view.allowed_destinations, retry: view.retry, timeout: view.timeout });

  /** Checks a write that was accepted: the version reads back, decrypted, as what was sent; records it. */
  async function checkStored(label: string, sent: unknown, name: string, version: number): Promise<void> {
    if (!isRecord(sent)) return fail(label, `stored version ${version} of ${name} from a document that is not an object`);
    const loaded = await within(service.loadVersion(name, version), `${label}: loading ${name} v${version}`);
    if (!loaded) return fail(label, `${name} version ${version} was reported written but does not load`);
    for (const diff of valueDiffs(sent.value ?? {}, loaded.value, lastValue.get(name), ['value'])) fail(label, `${name} v${version} ${diff}`);
    const target = seeded.find((t) => t.name === name);
    if (target && secretOf(target, loaded.value) !== target.secret) fail(label, `${name} v${version} lost its secret: the mask wrote something else`);
    const wanted = fieldsOf({
      type: String(sent.type).toUpperCase(),
      description: (sent.description as string | undefined) ?? '',
      vault_secrets: (sent.vault_secrets as ConnectorView['vault_secrets'] | undefined) ?? [],
      locked: (sent.locked as string[] | undefined) ?? [],
      allowed_destinations: (sent.allowed_destinations as string[] | undefined) ?? [],
      retry: sent.retry as ConnectorView['retry'],
      timeout: sent.timeout === undefined ? undefined : String(sent.timeout),
    });
    if (fieldsOf(loaded) !== wanted) fail(label, `${name} v${version} fields came back as ${fieldsOf(loaded).slice(0, 300)}, not ${wanted.slice(0, 300)}`);
    lastValue.set(name, loaded.value);
    if (!expected.has(name)) expected.set(name, new Map());
    expected.get(name)!.set(version, { value: canonical(loaded.value), fields: fieldsOf(loaded) });
  }

  /** Checks an error message any surface gave: bounded, no stack trace. */
  function checkMessage(label: string, message: unknown): void {
    if (typeof message !== 'string' || message.trim() === '') return fail(label, 'the error has no message');
    seen.push(message);
    if (message.length > MAX_MESSAGE_CHARS) fail(label, `the error message is ${message.length} characters long`);
    if (STACK_TRACE.test(message)) fail(label, `the error message holds a stack trace: ${message.slice(0, 300)}`);
  }

  /** Checks the issues of a validation error: each names a problem, and (for an object) one names a field. */
  function checkIssues(label: string, issues: unknown, definition: unknown): void {
    if (!Array.isArray(issues) || issues.length === 0) return fail(label, 'a validation error without issues');
    for (const issue of issues as Array<{ path?: unknown; message?: unknown }>) {
      if (typeof issue.message !== 'string' || issue.message === '') fail(label, `an issue without a message at ${String(issue.path)}`);
      if (typeof issue.path !== 'string') fail(label, 'an issue without a path');
    }
    // zod reports an unknown key at its parent, naming the key in the message.
    const namesField = (i: { path: string; message: string }) => i.path !== '' || /^Unrecognized keys?: "/.test(i.message);
    if (isRecord(definition) && !(issues as Array<{ path: string; message: string }>).some(namesField)) {
      fail(label, `no issue names a field: ${JSON.stringify(issues).slice(0, 300)}`);
    }
  }

  const bases = (name: string): Record<'rest' | 'pg' | 'openai' | 'agent', Json> => ({
    rest: {
      name,
      type: 'REST',
      description: 'fuzz base',
      value: {
        base_url: fixture.url,
        health_path: '/health',
        auth: { type: 'bearer', token: SECRETS.rest },
        headers: { 'x-team': 'fuzz' },
        query: { a: '1', list: ['x', 2, true] },
        data: { nested: { list: [1, 'two', null] } },
        timeout: '5s',
      },
      locked: ['base_url'],
      retry: { maximum_attempts: 2, initial_interval: '1s' },
      timeout: '10s',
    },
    pg: { name, type: 'POSTGRES', value: { host: '127.0.0.1', port: 9, database: 'fuzz', user: 'fuzz', password: SECRETS.pg, tls: false }, allowed_destinations: ['127.0.0.1:9'] },
    openai: {
      name,
      type: 'OPENAI',
      value: { base_url: 'http://127.0.0.1:9/v1', api_key: SECRETS.openai, default_model: 'm', extra_body: { seed: 1, stop: ['\n'] } },
      vault_secrets: [{ path: 'secret/data/fuzz', map: { key: 'api_key' }, secret_keys: ['key'] }],
    },
    agent: { name, type: 'AGENT', value: { connector: 'fuzz-openai', model: 'm', system_prompt: 'hi', tools: [{ type: 'function', function: { name: 'f' } }] } },
  });

  /** A fresh definition of a random type, mutated; the name stays when `keepName`. */
  function freshCase(label: string, options: { json: boolean; keepName?: boolean }): { definition: unknown; label: string } {
    const kind = random.pick(['rest', 'pg', 'openai', 'agent'] as const);
    // Fresh definitions carry no seeded secret: a copy of one under another name would be a leak by design.
    const base = copyPlain(bases(label)[kind]);
    const value = base.value as Json;
    if (kind === 'rest') (value.auth as Json).token = `fresh-${label}`;
    if (kind === 'pg') value.password = `fresh-${label}`;
    if (kind === 'openai') value.api_key = `fresh-${label}`;
    const mutated = mutateDefinition(random, base, { json: options.json, protect: options.keepName ? ['name'] : [] });
    return { definition: mutated.definition, label: `${label} (${kind}: ${mutated.label})` };
  }

  /** A mutation of a seeded connector that writes its secret back masked, so the secret must survive it. */
  function seededCase(label: string, target: Seeded, json: boolean): { definition: Json; label: string } {
    const secretParent = target.secretPath.split('.').slice(0, -1);
    const mutated = mutateDefinition(random, target.plain, { json, protect: ['name', ['value', ...(secretParent.length > 0 ? secretParent : target.secretPath.split('.'))].join('.')] });
    const definition = mutated.definition as Json;
    let cursor = definition.value as Json;
    const parts = target.secretPath.split('.');
    for (const part of parts.slice(0, -1)) cursor = cursor[part] as Json;
    cursor[parts[parts.length - 1]] = MASK;
    return { definition, label: `${label} (${target.name}: ${mutated.label})` };
  }

  const secretOf = (target: Seeded, value: unknown) => target.secretPath.split('.').reduce<unknown>((cursor, key) => (isRecord(cursor) ? cursor[key] : undefined), value);

  const currentVersion = (name: string) => Math.max(0, ...(expected.get(name)?.keys() ?? []));

  // ---- the servers, the store and the seeded connectors ----

  beforeAll(async () => {
    workDir = mkdtempSync(path.join(tmpdir(), 'tc-fuzz-'));
    [db, fixture] = await Promise.all([createScratchDatabase('tc_fuzz'), startTestHttpServer()]);
    store = new ConnectorStore(new PgDatabase({ connectionString: db.url }));
    await store.migrate();
    service = new ConnectorService({ store, registry: new ConnectorRegistry(), keyring: new Keyring([key1]) });

    const plain = {
      rest: bases('fuzz-rest').rest,
      pg: bases('fuzz-pg').pg,
      openai: bases('fuzz-openai').openai,
    };
    seeded.push(
      { name: 'fuzz-rest', plain: plain.rest, secretPath: 'auth.token', secret: SECRETS.rest },
      { name: 'fuzz-pg', plain: plain.pg, secretPath: 'password', secret: SECRETS.pg },
      { name: 'fuzz-openai', plain: plain.openai, secretPath: 'api_key', secret: SECRETS.openai },
    );
    // Three versions each: the first with the secret, then two that write it back masked.
    for (const target of seeded) {
      await checkedSeedWrite(target, target.plain);
      for (const description of ['second', 'third']) {
        const masked = copyPlain(target.plain);
        masked.description = description;
        const parts = target.secretPath.split('.');
        let cursor = masked.value as Json;
        for (const part of parts.slice(0, -1)) cursor = cursor[part] as Json;
        cursor[parts[parts.length - 1]] = MASK;
        await checkedSeedWrite(target, masked);
      }
    }
    if (failures.length > 0) throw new Error(`seeding failed: ${failures.join('\n')}`);

    serve = await startServe();
  });

  async function checkedSeedWrite(target: Seeded, definition: Json): Promise<void> {
    const view = await service.apply(definition, { actor: 'fuzz-seed' });
    await checkStored(`seeding ${target.name}`, definition, view.name, view.version);
  }

  /** `connectors serve` as a process of its own, on a free port, against this file's store. */
  function startServe(): Promise<NonNullable<typeof serve>> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [BIN, 'serve', '--port', '0'], {
        env: { ...process.env, DATABASE_URL: db.url, TC_KEYRING: `k1:${key1.key.toString('base64')}`, TC_KEYRING_FILE: '', TC_API_TOKENS: API_TOKEN, TC_API_READ_TOKENS: '', VAULT_ADDR: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      const exited = new Promise<number | null>((done) => child.on('close', (code) => done(code)));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`connectors serve was not ready within 60 s; stderr: ${stderr}`));
      }, 60_000);
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`connectors serve exited with ${code} before it was ready; stderr: ${stderr}`));
      });
      child.stderr!.on('data', (chunk) => (stderr += chunk));
      child.stdout!.on('data', (chunk) => {
        stdout += chunk;
        const match = /management API on (http:\/\/\S+) /.exec(stdout);
        if (match) {
          clearTimeout(timer);
          resolve({ url: match[1], child, stderr: () => `${stdout}\n${stderr}`, exited });
        }
      });
    });
  }

  afterAll(async () => {
    if (serve && serve.child.exitCode === null) {
      serve.child.kill('SIGKILL');
      await serve.exited;
    }
    await service?.close();
    await store?.close();
    await db?.drop();
    await fixture?.close();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  // Each test answers for its own cases.
  beforeEach(() => {
    failures.length = 0;
  });

  // ---- the proof that the leak check can see the secret ----

  /** The texts that hold a seeded secret: the one check the last test applies to everything seen. */
  const leaking = (texts: string[]) => texts.filter((text) => text.includes(MARKER));

  test('the leak check sees the planted secret where it must be: in the decrypted store value and in the request a connection test sends', async () => {
    const decrypted = await service.load('fuzz-rest');
    expect(leaking([JSON.stringify(decrypted)])).toHaveLength(1);
    const before = fixture.requests.length;
    const res = await fetch(`${serve!.url}/v1/connectors/fuzz-rest/test`, { method: 'POST', headers: { authorization: `Bearer ${API_TOKEN}` }, signal: AbortSignal.timeout(CALL_TIMEOUT_MS) });
    const text = await res.text();
    seen.push(text);
    expect(res.status).toBe(200);
    expect(leaking(fixture.requests.slice(before).map((r) => JSON.stringify(r.headers)))).toHaveLength(1);
    expect(leaking([text])).toEqual([]);
  });

  // ---- the service ----

  test('the service refuses every hostile definition with a validation error naming the field, or stores it so that it reads back unchanged', async () => {
    random = seededRandom(SEED + 1);
    const url = 'http://127.0.0.1:9/';
    // Each fixed case says how it must end: refused with an issue at `field` (a path prefix), or stored.
    const fixed: Array<{ label: string; definition: unknown; field?: string }> = [
      { label: 'value nested 10,000 arrays deep', definition: { name: 'deep-a', type: 'REST', value: { url, data: deepValue(10_000, 'array') } }, field: 'value.data.0.0' },
      { label: 'value nested 10,000 objects deep', definition: { name: 'deep-o', type: 'OPENAI', value: { api_key: 'k', extra_body: deepValue(10_000, 'object') } }, field: 'value.extra_body.a' },
      { label: 'a 10 MB description', definition: { name: 'big-desc', type: 'REST', description: 'd'.repeat(TEN_MB + 1), value: {} }, field: 'description' },
      { label: 'a 10 MB request body in value.data', definition: { name: 'big-data', type: 'REST', value: { url, data: 'b'.repeat(TEN_MB + 1) } } },
      { label: 'a 1 MB name', definition: { name: 'n'.repeat(1024 * 1024), type: 'REST' }, field: 'name' },
      { label: 'a 1 MB key', definition: { name: 'big-key', type: 'REST', value: { ['k'.repeat(1024 * 1024)]: 1 } }, field: 'value.kkkk' },
      { label: 'a 1 MB type with a terminal escape', definition: { name: 'big-type', type: `\u001b[2J${'T'.repeat(1024 * 1024)}` }, field: 'type' },
      { label: '__proto__ as a header name', definition: restWithKeys('proto-header', ['__proto__']), field: 'value.headers.__proto__' },
      { label: '__proto__ as an input name', definition: { name: 'proto-input', type: 'POSTGRES', value: ownKeys(['database', 'd'], ['__proto__', { password: 'p' }]) }, field: 'value.__proto__' },
      { label: '__proto__ in the request body', definition: { name: 'proto-data', type: 'REST', value: { url, data: ownKeys(['__proto__', { polluted: true }]) } }, field: 'value.data.__proto__' },
      { label: '__proto__ as a Vault secret key', definition: { name: 'proto-vault', type: 'REST', vault_secrets: [{ path: 'secret/data/x', map: ownKeys(['__proto__', 'url']) }] }, field: 'vault_secrets.0.map.__proto__' },
      { label: '__proto__ as a top-level field', definition: ownKeys(['name', 'proto-top'], ['type', 'REST'], ['__proto__', { value: {} }]), field: '__proto__' },
      { label: 'constructor, prototype and toString as header and query names', definition: restWithKeys('proto-names', ['constructor', 'prototype', 'toString', 'hasOwnProperty']) },
      { label: 'constructor.prototype in the request body', definition: { name: 'ctor-data', type: 'REST', value: { url, data: { constructor: { prototype: { polluted: true } } } } } },
      { label: 'constructor as a connector name and type', definition: { name: 'constructor', type: 'constructor' }, field: 'type' },
      { label: 'prototype as a connector name', definition: { name: 'prototype', type: 'REST', value: { url } } },
      { label: 'NaN as a timeout', definition: { name: 'nan', type: 'REST', timeout: NaN }, field: 'timeout' },
      { label: 'Infinity in extra_body', definition: { name: 'inf', type: 'OPENAI', value: { api_key: 'k', extra_body: { x: Infinity } } }, field: 'value.extra_body.x' },
      { label: '-0 as retry attempts', definition: { name: 'negzero', type: 'REST', retry: { maximum_attempts: -0 } }, field: 'retry.maximum_attempts' },
      { label: 'a NUL in the description', definition: { name: 'nul-desc', type: 'REST', description: 'a\u0000b' }, field: 'description' },
      { label: 'a NUL in a locked path', definition: { name: 'nul-locked', type: 'REST', locked: ['a\u0000'] }, field: 'locked.0' },
      { label: 'a NUL in a Vault map key', definition: { name: 'nul-vault', type: 'REST', vault_secrets: [{ path: 'secret/data/x', map: { 'k\u0000': 'url' } }] }, field: 'vault_secrets.0.map.k' },
      { label: 'an unpaired surrogate in the description', definition: { name: 'sur-desc', type: 'REST', description: 'x\ud800y' }, field: 'description' },
      { label: 'an unpaired surrogate as a query name', definition: { name: 'sur-key', type: 'REST', value: { url, query: { '\udc00': 'x' } } }, field: 'value.query' },
      { label: 'a line break in a header value', definition: { name: 'ctl-header', type: 'REST', value: { url, headers: { 'x-a': 'a\r\nInjected: 1' } } }, field: 'value.headers.x-a' },
      { label: 'control characters, separators and emoji in the request body', definition: { name: 'ctl-data', type: 'REST', value: { url, data: '\u0001\u001b[2J\u2028\u{1F600}\ufeff' } } },
      { label: 'a ciphertext lookalike in a plain field', definition: { name: 'fake-cipher', type: 'REST', value: { url, path: 'tcenc:v1:nokey:Zm9v:YmFy' } }, field: 'value.path' },
      { label: '200,000 wrong items in locked', definition: { name: 'many-locked', type: 'REST', locked: Array<number>(200_000).fill(1) }, field: 'locked.' },
      { label: 'a bigint, a Date and a Map', definition: { name: 'non-json', type: 'OPENAI', value: { api_key: 'k', extra_body: { a: 10n, b: new Date(0), c: new Map() } } }, field: 'value.extra_body.' },
      { label: 'the mask where nothing is stored', definition: { name: 'mask-new', type: 'REST', value: { url, auth: { type: 'bearer', token: MASK } } }, field: 'value.auth.token' },
      { label: 'a string for the whole value', definition: { name: 'str-value', type: 'REST', value: 'url=http://x' }, field: 'value' },
      { label: 'an array as the document', definition: [{ name: 'in-array', type: 'REST' }], field: '' },
      { label: 'null as the document', definition: null, field: '' },
      { label: 'NaN as the document', definition: NaN, field: '' },
      { label: 'an empty document', definition: {}, field: 'name' },
    ];
    for (const { label, definition, field } of fixed) {
      const outcome = await throughService(`service: ${label}`, definition);
      if (field === undefined && outcome.refused) fail(`service: ${label}`, 'was refused, but must be stored');
      if (field !== undefined && !outcome.refused) fail(`service: ${label}`, `was stored, but must be refused at ${field}`);
      if (field && outcome.refused && !outcome.paths.some((p) => p.startsWith(field))) fail(`service: ${label}`, `no issue at ${field}: ${outcome.paths.join(', ').slice(0, 300)}`);
    }

    for (let i = 0; i < RANDOM_CASES.service; i++) {
      if (random.chance(0.3)) {
        const target = random.pick(seeded);
        const { definition, label } = seededCase(`service #${i}`, target, false);
        await throughService(label, definition);
      } else {
        const { definition, label } = freshCase(`svc-${i}`, { json: false });
        await throughService(`service #${i} ${label}`, definition);
      }
    }
    // A file of 30,000 connectors, one name twice: refused, and soon.
    const fleet = Array.from({ length: 30_000 }, (_, i) => ({ name: `fleet-${i}`, type: 'REST', value: { url } }));
    try {
      await within(service.applyMany([...fleet, fleet[0]]), 'applying 30,001 definitions, one name twice');
      fail('applying 30,001 definitions, one name twice', 'was accepted');
    } catch (err) {
      if (!(err instanceof ConnectorValidationError) || !/fleet-0 appears more than once/.test(err.message)) fail('applying 30,001 definitions, one name twice', String((err as Error).message).slice(0, 300));
    }
    // The reads with hostile names and versions refuse as clearly.
    for (const [label, read] of [
      ['get of a name with a NUL', () => service.get('a\u0000b')],
      ['get of a 1 MB name', () => service.get('n'.repeat(1024 * 1024))],
      ['get of version NaN', () => service.get('fuzz-rest', NaN)],
      ['get of version 2^40', () => service.get('fuzz-rest', 2 ** 40)],
      ['history of __proto__', () => service.history('__proto__')],
      ['rollback to version -1', () => service.rollback('fuzz-rest', -1)],
      ['rollback to version 1.5', () => service.rollback('fuzz-rest', 1.5)],
      ['delete of a name with an unpaired surrogate', () => service.delete('\ud800')],
    ] as const) {
      try {
        await within((read as () => Promise<unknown>)(), label);
        fail(label, 'answered instead of refusing');
      } catch (err) {
        if (!(err instanceof ConnectorValidationError)) fail(label, `threw ${(err as Error)?.constructor?.name}: ${String((err as Error)?.message).slice(0, 200)}`);
        else checkMessage(label, err.message);
      }
    }
    expect(failures).toEqual([]);
  });

  /** An object with exactly these own keys: `{ __proto__: ... }` in a literal would set the prototype instead. */
  function ownKeys(...entries: Array<[string, unknown]>): Json {
    const object: Json = {};
    for (const [key, value] of entries) setKey(object, key, value);
    return object;
  }

  /** A REST definition whose header and query names are `keys`, each an own key. */
  function restWithKeys(name: string, keys: string[]): Json {
    const headers = ownKeys(...keys.map((key, i): [string, unknown] => [key, `h${i}`]));
    const query = ownKeys(...keys.map((key, i): [string, unknown] => [key, `q${i}`]));
    return { name, type: 'REST', value: { url: 'http://127.0.0.1:9/', headers, query } };
  }

  /** Applies one definition through the service and checks how it ended; says whether it was refused, and where. */
  async function throughService(label: string, definition: unknown): Promise<{ refused: boolean; paths: string[] }> {
    let view: ConnectorView;
    try {
      view = await within(service.apply(definition, { actor: 'fuzz' }), label);
    } catch (err) {
      if (!(err instanceof ConnectorValidationError)) {
        fail(label, `threw ${(err as Error)?.constructor?.name ?? typeof err} instead of a validation error: ${String((err as Error)?.message).slice(0, 300)}`);
        return { refused: true, paths: [] };
      }
      checkMessage(label, err.message);
      checkIssues(label, err.issues, definition);
      return { refused: true, paths: err.issues.map((i) => i.path) };
    }
    seen.push(JSON.stringify(view).slice(0, 100_000));
    await checkStored(label, definition, view.name, view.version);
    return { refused: false, paths: [] };
  }

  // ---- the HTTP API of a running `connectors serve` ----

  interface Answer {
    status: number;
    text: string;
    json: { error?: { type?: string; message?: string; issues?: unknown }; name?: string; version?: number; applied?: Array<{ name: string; version: number }> } | undefined;
  }

  async function http(label: string, method: string, route: string, options: { body?: string | Buffer; type?: string; headers?: Record<string, string> } = {}): Promise<Answer | undefined> {
    const headers: Record<string, string> = { authorization: `Bearer ${API_TOKEN}`, ...(options.type ? { 'content-type': options.type } : {}), ...options.headers };
    let res: Response;
    try {
      res = await fetch(`${serve!.url}${route}`, { method, headers, body: options.body, signal: AbortSignal.timeout(CALL_TIMEOUT_MS) });
    } catch (err) {
      fail(label, `no answer: ${(err as Error).message}`);
      return undefined;
    }
    const text = await res.text();
    const record = `${res.status} ${JSON.stringify([...res.headers])} ${text}`;
    seen.push(record);
    recordResponse(`fuzz: management API ${method} ${route.slice(0, 80)}`, record.slice(0, 200_000));
    let json: Answer['json'];
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const answer = { status: res.status, text, json };
    checkAnswer(label, answer, route.endsWith('/test') || route.endsWith('/introspect'));
    return answer;
  }

  /** A 4xx with a clear error body, or success; for a connection test also an upstream failure (502-504), never a 500. */
  function checkAnswer(label: string, answer: Answer, runsConnection: boolean): void {
    const upstream = runsConnection && [502, 503, 504].includes(answer.status);
    if (answer.status >= 500 && !upstream) return fail(label, `answered ${answer.status}: ${answer.text.slice(0, 300)}`);
    if (answer.status < 400) return;
    const error = answer.json?.error;
    if (!error || typeof error.type !== 'string' || error.type === 'Internal') return fail(label, `answered ${answer.status} without a clear error: ${answer.text.slice(0, 300)}`);
    checkMessage(label, error.message);
    if (error.type === 'Connector.InvalidInput') checkIssues(label, error.issues, undefined);
  }

  /**
   * Sends a body larger than the API accepts. The API answers 413 without reading it, and may close
   * the connection while the client still sends (as HTTP allows); either way it must stay up.
   */
  async function oversized(label: string, route: string, body: string, type: string): Promise<void> {
    const outcome = await new Promise<{ status?: number; text?: string; error?: string }>((resolve) => {
      const req = httpRequest(`${serve!.url}${route}`, { method: 'POST', headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': type }, timeout: CALL_TIMEOUT_MS }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode, text }));
        res.on('error', (err) => resolve({ status: res.statusCode, text, error: err.message }));
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
      req.end(body);
    });
    if (outcome.status !== undefined) {
      seen.push(outcome.text ?? '');
      if (outcome.status !== 413) fail(label, `answered ${outcome.status}, not 413: ${String(outcome.text).slice(0, 200)}`);
    } else if (!['EPIPE', 'ECONNRESET'].includes(outcome.error ?? '')) fail(label, `no answer: ${outcome.error}`);
    const alive = await http(`${label}: the API afterwards`, 'GET', '/v1/connectors');
    if (alive?.status !== 200) fail(label, 'the API does not answer afterwards');
  }

  /** Sends a definition; records what an accepted one stored. */
  async function sendDefinition(label: string, method: 'POST' | 'PUT', route: string, sent: unknown, body: string, type = 'application/json', headers: Record<string, string> = {}) {
    const answer = await http(label, method, route, { body, type, headers });
    if (!answer) return;
    if (answer.status === 200 || answer.status === 201) {
      if (route === '/v1/apply') {
        const docs = Array.isArray(sent) ? sent : [sent];
        for (const [i, view] of (answer.json?.applied ?? []).entries()) await checkStored(label, docs[i], view.name, view.version);
      } else await checkStored(label, sent, answer.json!.name!, answer.json!.version!);
    } else if (answer.status !== 400 && answer.status !== 409) fail(label, `answered ${answer.status} to a definition: ${answer.text.slice(0, 200)}`);
  }

  test('the HTTP API answers every hostile request with a clear 4xx error or stores it unchanged, never a 500, and stays up', async () => {
    random = seededRandom(SEED + 2);
    const json = 'application/json';
    const yaml = 'application/yaml';
    const rest = seeded[0];
    const put = (name: string) => ({ 'if-match': `"${currentVersion(name)}"` });
    const many = (n: number, item: string, separator = '') => Array<string>(n).fill(item).join(separator);
    const utf8 = (...parts: Array<string | number[]>) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
    // Each request says which status it must get: refusals are 4xx with a clear error, and the few that
    // are well-formed are stored (and read back by sendDefinition's checks).
    const cases: Array<{ label: string; method?: string; route: string; body?: string | Buffer; type?: string; headers?: Record<string, string>; status: number }> = [
      { label: 'JSON nested 10,000 arrays deep', route: '/v1/connectors', body: jsonText({ name: 'deep', type: 'REST', value: { data: deepValue(10_000, 'array') } }), type: json, status: 400 },
      { label: 'JSON nested 10,000 objects deep', route: '/v1/apply', body: jsonText([{ name: 'deep', type: 'REST', value: { data: deepValue(10_000, 'object') } }]), type: json, status: 400 },
      { label: 'overrides nested 10,000 deep', route: `/v1/connectors/${rest.name}/test`, body: jsonText({ overrides: { data: deepValue(10_000, 'array') } }), type: json, status: 400 },
      { label: 'YAML nested 10,000 flow sequences deep', route: '/v1/apply', body: `name: deep\ntype: REST\nvalue: {data: ${many(10_000, '[')}${many(10_000, ']')}}\n`, type: yaml, status: 400 },
      { label: 'YAML nested 10,000 flow mappings deep', route: '/v1/apply', body: `name: deep\ntype: REST\nvalue: {data: ${many(10_000, '{"a":')}1${many(10_000, '}')}}\n`, type: yaml, status: 400 },
      { label: 'YAML indented 1,000 mappings deep', route: '/v1/apply', body: `name: deep\ntype: REST\nvalue:\n${Array.from({ length: 1000 }, (_, i) => `${' '.repeat(i + 1)}k:\n`).join('')}`, type: yaml, status: 400 },
      { label: 'a YAML alias bomb', route: '/v1/apply', body: yamlAliasBomb('bomb'), type: yaml, status: 400 },
      { label: 'a repeated top-level JSON key', route: '/v1/connectors', body: '{"name":"dup","type":"REST","name":"dup2"}', type: json, status: 400 },
      { label: 'a repeated JSON header name', route: '/v1/connectors', body: '{"name":"dup","type":"REST","value":{"headers":{"x-a":"1","x-a":"2"}}}', type: json, status: 400 },
      { label: 'a repeated YAML key', route: '/v1/connectors', body: 'name: dup\ntype: REST\nname: dup2\n', type: yaml, status: 400 },
      { label: 'an empty JSON body', route: '/v1/connectors', body: '', type: json, status: 400 },
      { label: 'an empty body without a content type', route: '/v1/apply', status: 400 },
      { label: 'a whitespace YAML body', route: '/v1/apply', body: '  \n\n', type: 'text/yaml', status: 400 },
      ...['text/html', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'application/octet-stream', 'text/x-unknown', ';;'].map((type) => ({
        label: `content type ${type}`,
        route: '/v1/connectors',
        body: '{"name":"ct","type":"REST"}',
        type,
        status: 415,
      })),
      ...['{', '{"a":}', 'nul', '"str"', '123', 'true', 'null', '[]', '[[]]', '{"name":1e999}'].map((body) => ({ label: `JSON body ${body}`, route: '/v1/connectors', body, type: json, status: 400 })),
      { label: 'invalid UTF-8 in JSON', route: '/v1/connectors', body: utf8('{"name":"utf","type":"REST","description":"', [0xff, 0xfe, 0xc3], '"}'), type: json, status: 400 },
      { label: 'invalid UTF-8 in YAML', route: '/v1/apply', body: utf8('name: utf\ntype: REST\ndescription: ', [0xed, 0xa0, 0x80]), type: yaml, status: 400 },
      { label: 'a JSON __proto__ key', route: '/v1/connectors', body: '{"name":"p","type":"REST","value":{"headers":{"__proto__":{"x":"y"}}}}', type: json, status: 400 },
      { label: 'a JSON constructor.prototype key', route: '/v1/connectors', body: '{"name":"p","type":"REST","constructor":{"prototype":{"x":1}}}', type: json, status: 400 },
      { label: 'a YAML __proto__ header name', route: '/v1/connectors', body: 'name: proto-api\ntype: REST\nvalue:\n  url: http://127.0.0.1:9/\n  headers: {__proto__: p}\n', type: yaml, status: 400 },
      { label: 'a NUL in the description', route: '/v1/connectors', body: '{"name":"nul","type":"REST","description":"a\\u0000b"}', type: json, status: 400 },
      { label: 'an unpaired surrogate in value', route: '/v1/connectors', body: '{"name":"sur","type":"REST","value":{"data":"\\ud800"}}', type: json, status: 400 },
      { label: 'a 1 MB name', route: '/v1/connectors', body: jsonText({ name: 'n'.repeat(1_000_000), type: 'REST' }), type: json, status: 400 },
      { label: 'a 1 MB key', route: '/v1/connectors', body: jsonText({ name: 'bigkey', type: 'REST', value: { ['k'.repeat(1_000_000)]: 1 } }), type: json, status: 400 },
      { label: '100,000 wrong items in locked', route: '/v1/connectors', body: jsonText({ name: 'many', type: 'REST', locked: Array<number>(100_000).fill(1) }), type: json, status: 400 },
      { label: 'apply of a JSON list of 50,000 empty definitions', route: '/v1/apply', body: `[${many(50_000, '{}', ',')}]`, type: json, status: 400 },
      { label: 'apply of a YAML list of 150,000 empty definitions', route: '/v1/apply', body: many(150_000, '- {}\n'), type: yaml, status: 400 },
      { label: 'apply of an empty list', route: '/v1/apply', body: '[]', type: json, status: 400 },
      { label: 'apply of one name twice', route: '/v1/apply', body: jsonText([{ name: 'twice', type: 'REST' }, { name: 'twice', type: 'REST' }]), type: json, status: 400 },
      ...[
        ['__proto__', 400],
        ['%00', 400],
        ['%E0%A4%A', 400],
        ['n'.repeat(300), 414],
        ['..%2F..%2Fetc%2Fpasswd', 400],
        ['%F0%9F%98%80', 400],
        ['a%0Ab', 400],
        ['prototype-never-stored', 404],
      ].map(([name, status]) => ({ label: `GET of connector ${String(name).slice(0, 20)}`, method: 'GET', route: `/v1/connectors/${name}`, status: Number(status) })),
      ...['NaN', '-1', '0', '1e3', '99999999999', '1.5', '', '%00'].map((version) => ({ label: `GET of version ${version}`, method: 'GET', route: `/v1/connectors/${rest.name}?version=${version}`, status: 400 })),
      { label: 'GET of two versions', method: 'GET', route: `/v1/connectors/${rest.name}?version=1&version=2`, status: 400 },
      ...['"-1"', 'W/"1"', '*', '"1", "2"', '"99999999999"', 'x'.repeat(5000)].map((ifMatch) => ({
        label: `PUT with If-Match ${ifMatch.slice(0, 20)}`,
        method: 'PUT',
        route: `/v1/connectors/${rest.name}`,
        body: jsonText(rest.plain),
        type: json,
        headers: { 'if-match': ifMatch },
        status: 400,
      })),
      { label: 'PUT without If-Match', method: 'PUT', route: `/v1/connectors/${rest.name}`, body: jsonText(rest.plain), type: json, status: 428 },
      ...['{"version":"1"}', '{"version":1.5}', '{"version":0}', '{"version":1e400}', '{"version":99999999999}', '[]', 'null', '{"version":1,"x":2}'].map((body) => ({
        label: `rollback body ${body}`,
        route: `/v1/connectors/${rest.name}/rollback`,
        body,
        type: json,
        status: 400,
      })),
      { label: 'overrides that are not an object', route: `/v1/connectors/${rest.name}/test`, body: '{"overrides":[1,2]}', type: json, status: 400 },
      { label: 'overrides with a NUL', route: `/v1/connectors/${rest.name}/test`, body: '{"overrides":{"path":"a\\u0000b"}}', type: json, status: 400 },
    ];
    for (const c of cases) {
      const answer = await http(c.label, c.method ?? 'POST', c.route, c);
      if (answer && answer.status !== c.status) fail(c.label, `answered ${answer.status}, not ${c.status}: ${answer.text.slice(0, 200)}`);
    }
    // Bodies over the limit: a 413, or the connection closed while the body was still being sent.
    await oversized('a 10 MB JSON body', '/v1/connectors', jsonText({ name: 'big', type: 'REST', description: 'd'.repeat(TEN_MB + 1) }), json);
    await oversized('a 10 MB YAML body', '/v1/apply', `name: big\ntype: REST\nvalue:\n  data: ${'y'.repeat(TEN_MB + 1)}\n`, yaml);
    // Well-formed after all: stored, and read back unchanged.
    await sendDefinition('YAML with constructor, prototype and toString as header and query names', 'POST', '/v1/connectors', restWithKeys('proto-api', ['constructor', 'prototype', 'toString']),
      'name: proto-api\ntype: REST\nvalue:\n  url: http://127.0.0.1:9/\n  headers: {constructor: h0, prototype: h1, toString: h2}\n  query: {constructor: q0, prototype: q1, toString: q2}\n', yaml);
    {
      const label = 'request headers named __proto__ and constructor';
      const headers = ownKeys(['authorization', `Bearer ${API_TOKEN}`], ['__proto__', 'x'], ['constructor', 'y'], ['prototype', 'z']) as Record<string, string>;
      const answer = await rawRequest(`${serve!.url}/v1/connectors`, { headers });
      seen.push(answer.text);
      if (answer.status !== 200) fail(label, `answered ${answer.status}: ${answer.text.slice(0, 200)}`);
    }

    for (let i = 0; i < RANDOM_CASES.api; i++) {
      const roll = random.int(100);
      if (roll < 35) {
        const { definition, label } = freshCase(`api-${i}`, { json: true });
        const text = jsonText(definition);
        await sendDefinition(`api #${i} POST ${label}`, 'POST', '/v1/connectors', JSON.parse(text), text);
      } else if (roll < 55) {
        const target = random.pick(seeded);
        const { definition, label } = seededCase(`api #${i} PUT`, target, true);
        const text = jsonText(definition);
        await sendDefinition(label, 'PUT', `/v1/connectors/${target.name}`, JSON.parse(text), text, json, put(target.name));
      } else if (roll < 70) {
        const docs = Array.from({ length: 1 + random.int(3) }, (_, k) => freshCase(`api-${i}-${k}`, { json: true }));
        const texts = docs.map((d) => jsonText(d.definition));
        const asYaml = random.chance(0.5);
        const body = asYaml ? texts.join('\n---\n') : `[${texts.join(',')}]`;
        await sendDefinition(`api #${i} apply ${docs.map((d) => d.label).join(' | ')}`, 'POST', '/v1/apply', texts.map((t) => JSON.parse(t)), body, asYaml ? yaml : json);
      } else if (roll < 85) {
        const { definition, label } = freshCase(`api-${i}`, { json: true });
        const text = jsonText(definition);
        await sendDefinition(`api #${i} POST as YAML ${label}`, 'POST', '/v1/connectors', JSON.parse(text), text, 'text/yaml');
      } else {
        const { definition, label } = seededCase(`api #${i} test overrides`, rest, true);
        const overrides = isRecord(definition) ? definition.value : definition;
        await http(label, 'POST', `/v1/connectors/${rest.name}/test`, { body: jsonText({ overrides }), type: json });
      }
    }
    // Still up and answering, with nothing on its output that looks like a crash.
    const alive = await http('the API after fuzzing', 'GET', '/v1/connectors');
    if (alive?.status !== 200 || serve!.child.exitCode !== null || serve!.child.signalCode !== null || STACK_TRACE.test(serve!.stderr())) {
      fail('connectors serve after fuzzing', `answers ${alive?.status}, exit ${serve!.child.exitCode} ${serve!.child.signalCode}; its output ends: ${serve!.stderr().slice(-2000)}`);
    }
    expect(failures).toEqual([]);
  });

  // ---- the CLI, spawned ----

  async function cli(args: string[], input = ''): Promise<Run> {
    const run = await runProcess(process.execPath, [BIN, ...args], {
      env: { ...process.env, DATABASE_URL: db.url, TC_KEYRING: `k1:${key1.key.toString('base64')}`, TC_KEYRING_FILE: '', VAULT_ADDR: '' },
      timeoutMs: CALL_TIMEOUT_MS * 2,
      input,
      label: `fuzz: connectors ${args[0]}`,
      recordedChars: 200_000,
    });
    seen.push(run.stdout, run.stderr);
    return run;
  }

  function file(name: string, content: string | Buffer): string {
    const at = path.join(workDir, name);
    writeFileSync(at, content);
    return at;
  }

  /** Runs one command and checks how it ended; `refuse`: it must fail with one clear line. */
  async function cliCase(label: string, args: string[], expectation: 'refuse' | 'succeed' | 'either', sent?: unknown): Promise<void> {
    const run = await cli(args);
    if (run.code === null) return fail(label, 'was killed: it did not finish in time');
    if (run.code !== 0 && run.code !== 1) fail(label, `exited with ${run.code}`);
    if (STACK_TRACE.test(run.stderr) || STACK_TRACE.test(run.stdout)) fail(label, `printed a stack trace: ${run.stderr.slice(0, 300)}`);
    if (run.code === 1) {
      // A failed connection test says so on stdout; every other refusal is on stderr.
      const failedTest = run.stderr === '' && /^FAILED: [^\n]+\n$/.test(run.stdout);
      checkMessage(label, failedTest ? run.stdout : run.stderr);
      // The CLI's own refusals are one line; commander's (an unknown command) come with the help text.
      if (!failedTest && !/^error: unknown command/.test(run.stderr) && !/^connectors: [^\n]+\n$/.test(run.stderr)) fail(label, `did not refuse with one line: ${run.stderr.slice(0, 300)}`);
    }
    if (expectation === 'refuse' && run.code !== 1) fail(label, `did not refuse (exit ${run.code}): ${run.stdout.slice(0, 200)}`);
    if (expectation === 'succeed' && run.code !== 0) fail(label, `failed: ${run.stderr.slice(0, 300)}`);
    if (run.code === 0 && args[0] === 'apply') {
      const docs = Array.isArray(sent) ? sent : [sent];
      const lines = run.stdout.trim().split('\n');
      for (const [i, line] of lines.entries()) {
        const match = /^(\S+): (?:created|updated to) version (\d+)$/.exec(line);
        if (!match) fail(label, `printed "${line.slice(0, 200)}" for an applied definition`);
        else await checkStored(label, docs[i], match[1], Number(match[2]));
      }
    }
  }

  test('the CLI refuses every hostile file and argument with one clear line (or stores the file unchanged), never a stack trace or a hang', async () => {
    random = seededRandom(SEED + 3);
    const rest = seeded[0];
    const namesYaml = 'name: cli-names\ntype: REST\nvalue:\n  url: http://127.0.0.1:9/\n  headers: {constructor: h0, prototype: h1, toString: h2}\n  query: {constructor: q0, prototype: q1, toString: q2}\n';
    // Each process costs a second or two of CPU: these are what the service and API cases cannot show,
    // a file read from disk and arguments typed by an operator, and the crash cases once more.
    const jobs: Array<() => Promise<void>> = [
      () => cliCase('apply of a YAML alias bomb', ['apply', '-f', file('bomb.yaml', yamlAliasBomb('cli-bomb'))], 'refuse'),
      () => cliCase('apply of YAML nested 10,000 deep', ['apply', '-f', file('deep.yaml', `name: cli-deep\ntype: REST\nvalue: {data: ${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}\n`)], 'refuse'),
      () => cliCase('apply of invalid UTF-8', ['apply', '-f', file('bad-utf8.yaml', Buffer.concat([Buffer.from('name: cli-utf\ntype: REST\ndescription: '), Buffer.from([0xc3, 0x28, 0xff])]))], 'refuse'),
      () => cliCase('apply of only a byte order mark, a comment and separators', ['apply', '-f', file('seps.yaml', '\ufeff# nothing\n---\n---\n')], 'refuse'),
      () => cliCase('apply of a 10 MB description', ['apply', '-f', file('big-desc.yaml', `name: cli-big\ntype: REST\ndescription: ${'d'.repeat(TEN_MB + 1)}\n`)], 'refuse'),
      () => cliCase('apply of constructor and prototype as header names', ['apply', '-f', file('names.yaml', namesYaml)], 'succeed', restWithKeys('cli-names', ['constructor', 'prototype', 'toString'])),
      () =>
        cliCase(
          'apply of NaN, -Infinity, a NUL and an unpaired surrogate',
          ['apply', '-f', file('nan.yaml', 'name: cli-nan\ntype: OPENAI\ndescription: "a\\0b"\nvalue: {api_key: k, extra_body: {a: .nan, b: -.inf, c: "\\ud800"}}\n')],
          'refuse',
        ),
      () => cliCase('get of a name with a terminal escape', ['get', '\u001b[2Jx'], 'refuse'),
      () => cliCase('get of a 100,000-character name', ['get', 'n'.repeat(100_000)], 'refuse'),
      () => cliCase('rollback to version 99999999999', ['rollback', rest.name, '99999999999'], 'refuse'),
      // Either way: an accepted mutation may have changed what the test reaches; its output must still be clean.
      () => cliCase('test of a seeded connector', ['test', rest.name], 'either'),
      () => cliCase('test of a connector that cannot connect', ['test', 'fuzz-pg', '--timeout', '15'], 'refuse'),
      () => cliCase('create, which is no command', ['create', 'x'], 'refuse'),
    ];
    for (let i = 0; i < RANDOM_CASES.cli; i++) {
      const { definition, label } = freshCase(`cli-${i}`, { json: true, keepName: true });
      const text = jsonText(definition);
      jobs.push(() => cliCase(`cli #${i} apply ${label}`, ['apply', '-f', file(`random-${i}.json`, text)], 'either', JSON.parse(text)));
    }
    await inPool(jobs, 3);
    expect(failures).toEqual([]);
  });

  // ---- afterwards ----

  test('afterwards every stored connector reads back: the seeded ones with their secrets, every version from 1 without gaps, also after a key rotation', async () => {
    if (serve && serve.child.exitCode === null) {
      serve.child.kill('SIGTERM');
      expect(await within(serve.exited, 'stopping connectors serve')).toBe(0);
    }
    expect(serve!.stderr()).not.toMatch(STACK_TRACE);

    const checkAll = async (reader: ConnectorService, when: string) => {
      const names = new Set([...(await reader.list()).map((c) => c.name), ...expected.keys()]);
      for (const name of names) {
        const history = await reader.history(name);
        const versions = history.map((v) => v.version);
        const gapFree = versions.map((_, i) => versions.length - i);
        if (canonical(versions) !== canonical(gapFree)) fail(`${when}: ${name}`, `versions ${versions.join(',')} are not ${versions.length}..1`);
        for (const version of versions) {
          const loaded = await reader.loadVersion(name, version);
          if (!loaded) {
            fail(`${when}: ${name}`, `version ${version} does not load`);
            continue;
          }
          const wanted = expected.get(name)?.get(version);
          if (wanted && (canonical(loaded.value) !== wanted.value || fieldsOf(loaded) !== wanted.fields)) fail(`${when}: ${name}`, `version ${version} changed since it was written`);
        }
      }
      for (const target of seeded) {
        const loaded = await reader.load(target.name);
        if (secretOf(target, loaded?.value) !== target.secret) fail(`${when}: ${target.name}`, 'the seeded secret does not decrypt to what was stored');
        if (loaded?.version !== currentVersion(target.name)) fail(`${when}: ${target.name}`, `is at version ${loaded?.version}, but ${currentVersion(target.name)} versions were written`);
      }
    };
    await checkAll(service, 'after fuzzing');
    // A rotation decrypts every value of every version: a stored ciphertext lookalike would stop it.
    const rotated = new ConnectorService({ store, registry: new ConnectorRegistry(), keyring: new Keyring([key2, key1]) });
    expect(await within(rotated.rotateKeys(), 'rotate-key')).toBeGreaterThan(0);
    await checkAll(new ConnectorService({ store, registry: new ConnectorRegistry(), keyring: new Keyring([key2]) }), 'after rotating keys');
    expect(failures).toEqual([]);
  });

  test('no error message, response or output of any case contains a stored secret', () => {
    expect(seen.length).toBeGreaterThan(200);
    expect(leaking(seen).map((text) => text.slice(0, 300))).toEqual([]);
  });
});
