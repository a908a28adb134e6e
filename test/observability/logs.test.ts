import { Runtime } from '@temporalio/worker';
import { ApplicationFailure } from '@temporalio/common';
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { runInNewContext } from 'node:vm';
import vault from 'node-vault';
import { MASK, Redactor } from '../../core/inputs';
import { installJsonLogging, JsonLogger, parseLogLevel, SecretRedactions, secretRedactions, type LogStream } from '../../worker/logging';
import { startTestHttpServer, type TestHttpServer } from '../fixtures/http-server';
import { startHarness, type Harness } from '../support/harness';
import { LOG_DIR, recordSecrets } from '../support/leak-sweep';
import { testStack, uniqueName } from '../support/stack';


type Line = Record<string, unknown>;

/** A stream that keeps every line in memory, for a unit test's assertions. */
function memoryStream(): LogStream & { lines: string[]; parsed(): Line[] } {
  const lines: string[] = [];
  return {
    lines,
    write(chunk: string) {
      lines.push(...chunk.split('\n').filter(Boolean));
    },
    parsed: () => lines.map((l) => JSON.parse(l) as Line),
  };
}

function parses(line: string): boolean {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}

describe('SecretRedactions', () => {
  test('redacts strings and numbers found deep in objects and arrays, longest first', () => {
    const r = new SecretRedactions();
    r.add([{ auth: { token: 'tok-abcdef', nested: [['pin', 424242]] } }, 'tok-abc', true, null, undefined, 7n ** 20n]);
    expect(r.redact('a tok-abcdef b tok-abc c 424242 d pin e 79792266297612001')).toBe(`a ${MASK} b ${MASK} c ${MASK} d ${MASK} e ${MASK}`);
    expect(r.size).toBe(5);
  });

  test('ignores strings shorter than Redactor.MIN_LENGTH and runs of asterisks, which would garble every line', () => {
    const r = new SecretRedactions();
    r.add(['ab', 'x'.repeat(Redactor.MIN_LENGTH), '***', MASK, '']);
    expect(r.size).toBe(1);
    expect(r.redact(`ab ${'x'.repeat(Redactor.MIN_LENGTH)} ***`)).toBe(`ab ${MASK} ***`);
  });

  test('is bounded: the least recently added secret goes first, and adding again makes one the newest', () => {
    const r = new SecretRedactions({ maxSize: 3 });
    r.add(['one1', 'two2', 'three3']);
    r.add(['one1']); // now the newest
    r.add(['four4']);
    expect(r.size).toBe(3);
    expect(r.redact('one1 two2 three3 four4')).toBe(`${MASK} two2 ${MASK} ${MASK}`);
    expect(new SecretRedactions().maxSize).toBe(SecretRedactions.DEFAULT_MAX_SIZE);
  });

  test('catches a secret inside a JSON string, where its quotes and backslashes are escaped', () => {
    const r = new SecretRedactions();
    r.add(['pa"ss\\word']);
    expect(r.redact(JSON.stringify({ body: 'x pa"ss\\word y' }))).toBe(`{"body":"x ${MASK} y"}`);
  });

  test('one set per process, even when the module is loaded twice', () => {
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const again = require('../../worker/logging') as typeof import('../../worker/logging');
      expect(again.SecretRedactions).not.toBe(SecretRedactions);
      expect(again.secretRedactions).toBe(secretRedactions);
    });
  });
});

describe('JsonLogger', () => {
  const secrets = new SecretRedactions();
  secrets.add(['s3cr3t-value', 987654]);

  test('writes one JSON object per line: time, level, message, then the metadata', () => {
    const out = memoryStream();
    const logger = new JsonLogger({ stream: out, redactions: secrets });
    logger.info('worker started', { task_queue: 'q', n: 1, ok: true, nothing: undefined, when: new Date(0), tags: new Set(['a']) });
    expect(out.lines).toHaveLength(1);
    const [line] = out.parsed();
    expect(Object.keys(line).slice(0, 3)).toEqual(['time', 'level', 'message']);
    expect(line).toEqual({ time: expect.any(String), level: 'INFO', message: 'worker started', task_queue: 'q', n: 1, ok: true, when: '1970-01-01T00:00:00.000Z', tags: ['a'] });
    expect(new Date(line.time as string).toISOString()).toBe(line.time);
  });

  test('writes entries at its level and above only; INFO by default', () => {
    const out = memoryStream();
    const logger = new JsonLogger({ stream: out, level: 'WARN', redactions: secrets });
    logger.trace('t');
    logger.debug('d');
    logger.info('i');
    logger.warn('w');
    logger.error('e');
    logger.log('INFO', 'i2');
    expect(out.parsed().map((l) => l.level)).toEqual(['WARN', 'ERROR']);
    expect(new JsonLogger({ stream: out }).level).toBe('INFO');
    expect(() => new JsonLogger({ level: 'LOUD' as never })).toThrow(/TRACE, DEBUG, INFO, WARN, ERROR/);
  });

  test('takes the time Temporal passes with an entry (nanoseconds), so forwarded core lines keep theirs', () => {
    const out = memoryStream();
    new JsonLogger({ stream: out, redactions: secrets }).info('from core', { [Symbol.for('log_timestamp')]: 1_700_000_000_123_000_000n });
    expect(out.parsed()[0]).toEqual({ time: '2023-11-14T22:13:20.123Z', level: 'INFO', message: 'from core' });
  });

  test('writes an Error as name and message (and a failure type), with its stack only at DEBUG or TRACE', () => {
    const failure = ApplicationFailure.create({ type: 'Connector.External.Http', message: 'REST GET answered HTTP 500' });
    const info = memoryStream();
    new JsonLogger({ stream: info, redactions: secrets }).warn('Activity failed', { error: failure, plain: new TypeError('bad') });
    expect(info.parsed()[0]).toMatchObject({
      error: { name: 'ApplicationFailure', message: 'REST GET answered HTTP 500', type: 'Connector.External.Http' },
      plain: { name: 'TypeError', message: 'bad' },
    });
    expect(JSON.stringify(info.parsed()[0])).not.toContain('stack');

    const debug = memoryStream();
    const withSecret = new Error('failed with s3cr3t-value', { cause: new Error('driver said s3cr3t-value') });
    new JsonLogger({ stream: debug, level: 'DEBUG', redactions: secrets }).warn('Activity failed', { error: withSecret });
    const { error } = debug.parsed()[0] as { error: { message: string; stack: string; cause: { message: string } } };
    expect(error.message).toBe(`failed with ${MASK}`);
    expect(error.stack).toContain(`Error: failed with ${MASK}`);
    expect(error.stack).toContain('logs.test.ts');
    expect(error.cause.message).toBe(`driver said ${MASK}`);
    expect(debug.lines[0]).not.toContain('s3cr3t-value');

    // An error of another realm (the workflow sandbox) is still an error, not `{}`.
    const foreign: unknown = runInNewContext('new RangeError("sandboxed s3cr3t-value")');
    expect(foreign instanceof Error).toBe(false);
    const sandbox = memoryStream();
    new JsonLogger({ stream: sandbox, redactions: secrets }).warn('Workflow failed', { error: foreign });
    expect(sandbox.parsed()[0].error).toEqual({ name: 'RangeError', message: `sandboxed ${MASK}` });
  });

  test('redacts secrets from the message, metadata keys and values, deep values, and numbers, keeping the line JSON', () => {
    const out = memoryStream();
    new JsonLogger({ stream: out, redactions: secrets }).info('calling with s3cr3t-value', {
      'x-s3cr3t-value': 'key',
      nested: { list: ['a s3cr3t-value b', { deeper: 'token=s3cr3t-value' }], pin: 987654, account: 19876540 },
      body: JSON.stringify({ echoed: 'pa s3cr3t-value' }),
    });
    const [raw] = out.lines;
    expect(raw).not.toContain('s3cr3t-value');
    expect(raw).not.toContain('987654');
    expect(JSON.parse(raw)).toMatchObject({
      message: `calling with ${MASK}`,
      [`x-${MASK}`]: 'key',
      nested: { list: [`a ${MASK} b`, { deeper: `token=${MASK}` }], pin: MASK, account: `1${MASK}0` },
    });
  });

  test('a secret that only appears across fields is caught on the whole line, and the line stays JSON', () => {
    const spanning = new SecretRedactions();
    spanning.add(['alpha","k":"beta']);
    const out = memoryStream();
    new JsonLogger({ stream: out, redactions: spanning }).info('x alpha', { k: 'beta' });
    expect(out.lines[0]).not.toContain('alpha","k":"beta');
    expect(parses(out.lines[0])).toBe(true);
  });

  test('never throws into the caller, and never writes what it cannot make JSON', () => {
    const out = memoryStream();
    const logger = new JsonLogger({ stream: out, redactions: secrets });
    const circular: Record<string, unknown> = { name: 'c' };
    circular.self = circular;
    const hostile = {
      get boom(): string {
        throw new Error('getter failed');
      },
    };
    logger.info('odd meta', { circular, bytes: new Uint8Array([115, 51, 99]), big: 12n, nan: NaN, fn: () => 1, message: 'mine', level: 'x' });
    expect(() => logger.info('hostile', hostile)).not.toThrow();
    const failing = new JsonLogger({ stream: { write: () => { throw new Error('EPIPE'); } }, redactions: secrets });
    expect(() => failing.error('lost')).not.toThrow();

    const [odd, lost] = out.parsed();
    expect(odd).toEqual({
      time: expect.any(String),
      level: 'INFO',
      message: 'odd meta',
      circular: { name: 'c', self: '[Circular]' },
      bytes: '[3 bytes]', // byte content is never written: it may be a payload, and bytes cannot be redacted as text
      big: '12',
      nan: 'NaN',
      meta_message: 'mine',
      meta_level: 'x',
    });
    expect(lost).toMatchObject({ level: 'ERROR', message: 'log entry could not be written', meta_level: 'INFO', error: { message: 'getter failed' } });
  });

  test('TC_LOG_LEVEL: any case, INFO when unset, an error naming the levels otherwise', () => {
    expect(parseLogLevel(undefined)).toBe('INFO');
    expect(parseLogLevel('')).toBe('INFO');
    expect(parseLogLevel(' debug ')).toBe('DEBUG');
    expect(() => parseLogLevel('loud')).toThrow('TC_LOG_LEVEL must be one of TRACE, DEBUG, INFO, WARN, ERROR; got "loud"');
  });
});

// A real connector worker in this jest worker process, logging through installJsonLogging: a successful
// and a failing call, with a stored secret and a Vault secret that the HTTP service echoes back.
describe('logs of a real connector worker', () => {
  const stack = testStack();
  const vaultAdmin = vault({ apiVersion: 'v1', endpoint: stack.vault.address, token: stack.vault.token });
  const storedSecret = `stored-${uniqueName('key')}`;
  const vaultSecret = `vault-${uniqueName('token')}`;
  recordSecrets('the Vault token of logs.test.ts', [vaultSecret]);
  const lines: string[] = [];
  const logFile = path.join(LOG_DIR, `worker-${process.pid}.jsonl`);
  let h: Harness | undefined;
  let api: TestHttpServer;
  let name: string;
  /** The same connector with a failing path that names the stored secret, so failure messages (and the SDK's log of them) would carry it. */
  let failName: string;

  /** Lines parsed, once these exist: the Runtime buffers lines for 100 ms to order them with core's. */
  async function linesWhere(predicate: (l: Line) => boolean, count = 1): Promise<Line[]> {
    for (let i = 0; ; i++) {
      const found = lines.map((l) => JSON.parse(l) as Line).filter(predicate);
      if (found.length >= count || i >= 100) return found;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  beforeAll(async () => {
    mkdirSync(LOG_DIR, { recursive: true });
    writeFileSync(logFile, '');
    // Before the harness: its NativeConnection creates the Runtime, which takes its logger only then.
    // Jest gives each test file a fresh module registry, so the Runtime singleton of @temporalio/worker
    // is this file's own even when an earlier file in this jest worker process ran workers (the native
    // addon is shared, the JS singleton is not): installing here succeeds. Asserted, not assumed.
    const installed = installJsonLogging({
      level: 'DEBUG', // the SDK's debug lines (Activity failed, with error stacks) must be clean too
      stream: {
        write(chunk: string) {
          lines.push(...chunk.split('\n').filter(Boolean));
          appendFileSync(logFile, chunk);
        },
      },
    });
    expect(installed).toBe(true);
    expect(installJsonLogging({ level: 'ERROR' })).toBe(true); // a second call keeps the first logger

    api = await startTestHttpServer((request, res) => {
      // Echo every header back, secrets included: the failure, the output and the logs must still hold none.
      res.writeHead(request.path.startsWith('/fail') ? 500 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ echo: request.headers }));
    });
    h = await startHarness();
    const vaultPath = `secret/data/${uniqueName('logs')}`;
    await vaultAdmin.write(vaultPath, { data: { token: vaultSecret } });
    name = uniqueName('logs').toLowerCase();
    failName = `${name}-fail`;
    for (const [connector, path] of [
      [name, '/ok'],
      // In the profile, not in an override: an override is the workflow's own data and sits in its history.
      [failName, `/fail/${storedSecret}`],
    ]) {
      await h.service.apply({
        name: connector,
        type: 'REST',
        value: { base_url: api.url, path, headers: { 'x-api-key': storedSecret }, auth: { type: 'bearer' } },
        vault_secrets: [{ path: vaultPath, map: { token: 'auth.token' } }],
      });
    }
  });

  afterAll(async () => {
    await h?.shutdown();
    await api?.close();
  });

  test('every line is one JSON object with time, level and message; each finished call has its line', async () => {
    const ok = await h!.call(name);
    expect(ok.result.error).toBeUndefined();
    expect(api.requests[0].headers).toMatchObject({ 'x-api-key': storedSecret, authorization: `Bearer ${vaultSecret}` });
    const failed = await h!.call(failName, undefined, { retry: { maximumAttempts: 2, initialInterval: '50ms' } });
    expect(failed.result.error).toMatchObject({ type: 'Connector.External.Http' });
    expect(failed.result.error!.message).toContain(`/fail/${MASK} answered HTTP 500`);

    const finished = [
      ...(await linesWhere((l) => l.message === 'connector call finished' && l.connector === name)),
      ...(await linesWhere((l) => l.message === 'connector call finished' && l.connector === failName, 2)),
    ];
    const common = { level: 'INFO', sdkComponent: 'activity', connector_type: 'REST', connector_version: 1, action: 'invoke', duration_ms: expect.any(Number) };
    const failure = { connector: failName, outcome: 'failed', failure_type: 'Connector.External.Http', retryable: true };
    expect(finished).toEqual([
      expect.objectContaining({ ...common, connector: name, outcome: 'ok', attempt: 1 }),
      expect.objectContaining({ ...common, ...failure, attempt: 1 }),
      expect.objectContaining({ ...common, ...failure, attempt: 2 }),
    ]);
    // Who and how, never what: no inputs, no outputs.
    for (const line of finished) for (const key of ['inputs', 'output', 'overrides', 'headers']) expect(line).not.toHaveProperty(key);

    // The SDK's own lines about the failure went through the same logger, redacted; the workflow's
    // error comes from the sandbox's realm and is still written as an error, not as `{}`.
    const failedWorkflowId = `${failed.workflowId}/connection/1`;
    const sdkFailures = await linesWhere((l) => l.message === 'Activity failed' && l.workflowId === failedWorkflowId, 2);
    expect(sdkFailures.map((l) => l.error)).toEqual([1, 2].map(() => expect.objectContaining({ name: 'ApplicationFailure', type: 'Connector.External.Http', message: expect.stringContaining(`/fail/${MASK} answered HTTP 500`) })));
    const [workflowFailed] = await linesWhere((l) => l.message === 'Workflow failed' && l.workflowId === failedWorkflowId);
    expect(workflowFailed.error).toEqual(expect.objectContaining({ name: expect.any(String), message: expect.any(String) }));

    for (const raw of lines) {
      const line = JSON.parse(raw) as Line;
      expect(line).toEqual(expect.objectContaining({ time: expect.any(String), level: expect.stringMatching(/^(TRACE|DEBUG|INFO|WARN|ERROR)$/), message: expect.any(String) }));
    }
  });

  test('no line the worker process wrote holds a secret, though the calls carried and echoed both', async () => {
    // The runner added both secrets to the process-wide set before the external call.
    expect(secretRedactions.redact(`key ${storedSecret}, token ${vaultSecret}`)).toBe(`key ${MASK}, token ${MASK}`);
    // Any line through the Runtime logger (as activity and workflow `log` lines are) is redacted of them.
    Runtime.instance().logger.warn(`echo ${storedSecret}`, { body: { token: vaultSecret }, error: new Error(`refused ${vaultSecret}`) });
    const [echo] = await linesWhere((l) => typeof l.message === 'string' && l.message.startsWith('echo '));
    expect(echo).toMatchObject({ level: 'WARN', message: `echo ${MASK}`, body: { token: MASK }, error: { message: `refused ${MASK}` } });

    await h!.shutdown(); // flushes what the Runtime still buffers
    h = undefined;
    const written = readFileSync(logFile, 'utf8');
    expect(written.split('\n').filter(Boolean)).toEqual(lines);
    for (const text of [lines.join('\n'), written]) {
      expect(text).not.toContain(storedSecret);
      expect(text).not.toContain(vaultSecret);
    }
    expect(lines.length).toBeGreaterThan(10);
  });

  test('the Temporal and Vault server logs of this run hold no secret, and Temporal writes JSON lines', () => {
    const temporal = readFileSync(path.join(LOG_DIR, 'temporal.log'), 'utf8');
    const vaultLog = readFileSync(path.join(LOG_DIR, 'vault.log'), 'utf8');
    for (const text of [temporal, vaultLog]) {
      // Also with line breaks removed: a secret must not hide across a broken line either.
      for (const view of [text, text.replace(/\n/g, '')]) {
        expect(view).not.toContain(storedSecret);
        expect(view).not.toContain(vaultSecret);
      }
    }

    // `temporal server start-dev` prints a plain-text banner on stdout whatever --log-format says;
    // everything else must be JSON.
    const banner = /^(CLI \S+ \(Server .*\)|Server: .*|UI: .*|Metrics: .*|Stopping server\.\.\.)$/;
    const notJson: string[] = [];
    const raw = temporal.split('\n').filter((l) => l.trim() !== '' && !banner.test(l.trim()));
    for (let i = 0; i < raw.length; i++) {
      if (parses(raw[i])) continue;
      // scripts/devstack/process.ts splits each pipe chunk at line breaks without carrying a partial
      // line over to the next chunk, so a burst can break one JSON line in two. Rejoined here; the
      // last line may be such a first half whose rest the server has not written yet.
      if (i + 1 < raw.length && parses(raw[i] + raw[i + 1])) {
        i++;
        continue;
      }
      if (i === raw.length - 1 && raw[i].startsWith('{')) continue;
      notJson.push(raw[i]);
    }
    expect(notJson).toEqual([]);
  });
});

// Last: this creates a Runtime with the SDK's default options in this process.
describe('installJsonLogging, too late', () => {
  test('installJsonLogging returns false once a Runtime exists: its logger cannot be replaced then', async () => {
    // A module registry of its own, hence a Runtime singleton of its own, created the way a Worker would.
    let runtime: { shutdown(): Promise<void> } | undefined;
    let installed: boolean | undefined;
    jest.isolateModules(() => {
      /* eslint-disable @typescript-eslint/no-require-imports */
      const worker = require('@temporalio/worker') as typeof import('@temporalio/worker');
      const logging = require('../../worker/logging') as typeof import('../../worker/logging');
      /* eslint-enable @typescript-eslint/no-require-imports */
      runtime = worker.Runtime.instance();
      installed = logging.installJsonLogging({ stream: memoryStream() });
    });
    await runtime?.shutdown();
    expect(installed).toBe(false);
  });
});
