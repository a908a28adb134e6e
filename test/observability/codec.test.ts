import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import type { Payload, PayloadCodec } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import { NativeConnection, Worker } from '@temporalio/worker';
import { randomBytes } from 'node:crypto';
import { codecServerOptionsFromEnv, createCodecServer, startCodecServer, type RunningCodecServer } from '../../api/codec-server';
import { ConnectorRegistry } from '../../connectors/registry';
import { createEncryptionCodec, ENCRYPTED_ENCODING, ENCRYPTION_KEY_ID } from '../../core/codec';
import { MASK } from '../../core/inputs';
import { Keyring, KeyringError } from '../../core/keyring';
import { ConnectorsPlugin } from '../../worker/plugin';
import { ConnectorService } from '../../core/service';
import { ConnectorStore } from '../../core/store/connector-store';
import { PgDatabase } from '../../core/store/database';
import { VaultSecretSource } from '../../core/vault';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';
import type { CallOutcome } from '../fixtures/connector-workflows';
import { startTestHttpServer, type TestHttpServer } from '../fixtures/http-server';
import { historyText } from '../support/harness';
import { rawRequest } from '../support/raw-http';
import { testStack, uniqueName } from '../support/stack';

type History = temporal.api.history.v1.IHistory;

const utf8 = (bytes: Uint8Array | null | undefined) => Buffer.from(bytes ?? new Uint8Array()).toString('utf8');

/** A user's own codec: marks each payload on encode and unmarks it on decode, counting both. */
function countingCodec() {
  const calls = { encode: 0, decode: 0 };
  const codec: PayloadCodec = {
    async encode(payloads: Payload[]) {
      calls.encode += payloads.length;
      return payloads.map((p) => ({ ...p, metadata: { ...p.metadata, 'x-user-codec': Buffer.from('1') } }));
    },
    async decode(payloads: Payload[]) {
      calls.decode += payloads.length;
      return payloads.map((p) => {
        const { 'x-user-codec': _mark, ...metadata } = p.metadata ?? {};
        return { ...p, metadata };
      });
    },
  };
  return { codec, calls };
}

/** Every payload in a history, with where it sits; search attributes are left out (Temporal indexes them, so no codec touches them). */
/**
 * Payloads the SDK's core writes itself, outside the data converter and so outside any codec: a
 * patch marker's ID, a local activity marker's bookkeeping (type, attempt, times). Told apart by their
 * exact fields, so that no payload of the workflow's own data can pass for one.
 */
const SDK_MARKER_FIELDS: Record<string, string[]> = {
  'patch-data': ['deprecated', 'id'],
  data: ['activity_id', 'activity_type', 'attempt', 'backoff', 'complete_time', 'original_schedule_time', 'seq'],
};
function isSdkMarkerData({ path, payload }: { path: string; payload: Payload }): boolean {
  const field = /\.markerRecordedEventAttributes\.details\.([\w-]+)\.payloads\.0$/.exec(path)?.[1];
  if (!field || !SDK_MARKER_FIELDS[field] || utf8(payload.metadata?.encoding) !== 'json/plain') return false;
  const fields = Object.keys(JSON.parse(utf8(payload.data) || '{}') as object);
  expect({ path, fields: fields.filter((f) => !SDK_MARKER_FIELDS[field].includes(f)) }).toEqual({ path, fields: [] });
  return true;
}

function payloadsOf(history: History): Array<{ path: string; payload: Payload }> {
  const found: Array<{ path: string; payload: Payload }> = [];
  const walk = (value: unknown, path: string) => {
    if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return;
    if (path.endsWith('.searchAttributes')) return;
    const record = value as Record<string, unknown>;
    if ('metadata' in record && 'data' in record && (record.data === null || record.data instanceof Uint8Array)) {
      found.push({ path, payload: record as Payload });
      return;
    }
    for (const [key, child] of Object.entries(record)) walk(child, `${path}.${key}`);
  };
  walk(history, 'history');
  return found;
}

/** A payload in the remote codec protocol's JSON form (bytes as base64). */
function toJson(payload: Payload) {
  return {
    metadata: Object.fromEntries(Object.entries(payload.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')])),
    data: Buffer.from(payload.data ?? new Uint8Array()).toString('base64'),
  };
}

function jsonOf(payload: { metadata: Record<string, string>; data: string }): unknown {
  expect(Buffer.from(payload.metadata.encoding, 'base64').toString()).toBe('json/plain');
  return JSON.parse(Buffer.from(payload.data, 'base64').toString('utf8'));
}

// End to end on the real dev server and PostgreSQL: a user worker and a client with the plugin's
// encryption, the in-process connector worker, a REST connector, and the codec server.
describe('payload encryption and the codec server', () => {
  const stack = testStack();
  const k1 = { id: 'payload-k1', key: randomBytes(32) };
  const keyring = new Keyring([k1]);
  const overrideValue = `override-note-${randomBytes(6).toString('hex')}`;
  const overrideToken = `override-token-${randomBytes(6).toString('hex')}`;
  const overrideKey = `override-apikey-${randomBytes(6).toString('hex')}`;
  const outputValue = `output-receipt-${randomBytes(6).toString('hex')}`;
  const failureMark = `missing-${randomBytes(6).toString('hex')}`;
  const codecToken = `codec-${randomBytes(12).toString('hex')}`;
  const uiOrigin = 'http://localhost:8233';

  let database: ScratchDatabase;
  let store: ConnectorStore;
  let api: TestHttpServer;
  let nativeConnection: NativeConnection;
  let connection: Connection;
  let rawClient: Client;
  let client: Client;
  let worker: Worker;
  let running: Promise<void>;
  let codecServer: RunningCodecServer;
  const workerCodec = countingCodec();
  const clientCodec = countingCodec();
  const connectorQueue = uniqueName('codec-connectors');
  const userQueue = uniqueName('codec-user');
  const connectorName = uniqueName('enc').toLowerCase();

  beforeAll(async () => {
    [database, api] = await Promise.all([
      createScratchDatabase('tc_codec'),
      startTestHttpServer((request, res) => {
        const missing = request.path.includes('missing-');
        res.writeHead(missing ? 404 : 200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(missing ? { error: 'no such thing' } : { receipt: outputValue }));
      }),
    ]);
    store = new ConnectorStore(new PgDatabase({ connectionString: database.url }));
    await store.migrate();
    // The store's keyring (connector secrets at rest) is a different one from the payload keyring.
    const service = new ConnectorService({ store, registry: new ConnectorRegistry(), keyring: new Keyring([{ id: 'store-key', key: randomBytes(32) }]) });
    const vault = new VaultSecretSource({ address: stack.vault.address, token: stack.vault.token, cacheTtlMs: 0, requestTimeoutMs: 3_000 });
    await service.apply({ name: connectorName, type: 'REST', value: { base_url: api.url, path: '/orders' } });

    nativeConnection = await NativeConnection.connect({ address: stack.temporal.address });
    connection = await Connection.connect({ address: stack.temporal.address });
    rawClient = new Client({ connection, namespace: stack.temporal.namespace });
    client = new Client({
      connection,
      namespace: stack.temporal.namespace,
      dataConverter: { payloadCodecs: [clientCodec.codec] },
      plugins: [new ConnectorsPlugin({ encryption: { keyring } })],
    });
    worker = await Worker.create({
      connection: nativeConnection,
      taskQueue: userQueue,
      workflowsPath: require.resolve('../fixtures/connector-workflows'),
      dataConverter: { payloadCodecs: [workerCodec.codec] },
      plugins: [new ConnectorsPlugin({ encryption: { keyring }, connectorWorker: { service, vault, taskQueue: connectorQueue } })],
    });
    running = worker.run();
    codecServer = await startCodecServer({ keyring, tokens: [codecToken], corsOrigins: [uiOrigin, 'http://127.0.0.1:8233'], port: 0 });
  });

  afterAll(async () => {
    if (worker?.getState() === 'RUNNING') worker.shutdown();
    await running;
    await codecServer?.close();
    await store?.close();
    await connection?.close();
    await nativeConnection?.close();
    await api?.close();
    await database?.drop();
  });

  async function call(overrides: Record<string, unknown>): Promise<{ result: CallOutcome; workflowId: string }> {
    const workflowId = uniqueName('codec-call');
    const result = await client.workflow.execute<(a: unknown) => Promise<CallOutcome>>('callConnector', {
      taskQueue: userQueue,
      workflowId,
      args: [{ connector: connectorName, overrides, options: { taskQueue: connectorQueue, retry: { initialInterval: '50ms', maximumInterval: '200ms', maximumAttempts: 2 } } }],
    });
    return { result, workflowId };
  }

  async function codecRequest(path: string, body: unknown, headers: Record<string, string> = { authorization: `Bearer ${codecToken}` }) {
    return fetch(`${codecServer.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-namespace': 'default', ...headers },
      body: JSON.stringify(body),
    });
  }

  // One successful call shared by the tests that look at its history.
  let success: { result: CallOutcome; workflowId: string };
  const successOverrides = () => ({ method: 'post', data: { note: overrideValue }, query: { api_key: overrideKey }, auth: { type: 'bearer', token: overrideToken } });
  async function successfulCall() {
    success ??= await call(successOverrides());
    return success;
  }

  test('with encryption, neither overrides nor outputs are readable in the parent or connection history, and every payload is binary/encrypted', async () => {
    const { result, workflowId } = await successfulCall();
    // The client with the codec reads the plaintext result.
    expect(result.error).toBeUndefined();
    expect(result.details!.output).toMatchObject({ status: 200, body: { receipt: outputValue } });
    expect(api.requests.at(-1)).toMatchObject({ method: 'POST', path: '/orders', query: { api_key: overrideKey } });
    expect(api.requests.at(-1)!.headers.authorization).toBe(`Bearer ${overrideToken}`);

    for (const id of [workflowId, result.workflowId!]) {
      const text = await historyText(rawClient, id);
      for (const value of [overrideValue, overrideToken, overrideKey, outputValue]) expect(text).not.toContain(value);
      const payloads = payloadsOf(await rawClient.workflow.getHandle(id).fetchHistory()).filter((p) => !isSdkMarkerData(p));
      expect(payloads.length).toBeGreaterThan(2);
      for (const { path, payload } of payloads) {
        expect({ path, encoding: utf8(payload.metadata?.encoding) }).toEqual({ path, encoding: ENCRYPTED_ENCODING });
        expect({ path, keyId: utf8(payload.metadata?.[ENCRYPTION_KEY_ID]) }).toEqual({ path, keyId: k1.id });
      }
    }
    // The in-process connector worker shares the user worker's data converter: it could read the child's input.
    expect(await client.workflow.getHandle(result.workflowId!).result()).toEqual(result.details);
  });

  test("the user's own codec stays, runs inside the encryption, and the connector worker uses it too", async () => {
    const { result } = await successfulCall();
    expect(workerCodec.calls.encode).toBeGreaterThan(0);
    expect(workerCodec.calls.decode).toBeGreaterThan(0);
    expect(clientCodec.calls.encode).toBeGreaterThan(0);
    expect(clientCodec.calls.decode).toBeGreaterThan(0);
    // Encryption is the outer layer: decrypting a payload of the child's history (written by the
    // connector worker) shows the user codec's mark on the plaintext payload beneath.
    const childPayloads = payloadsOf(await rawClient.workflow.getHandle(result.workflowId!).fetchHistory());
    const [inner] = await createEncryptionCodec(keyring).decode([childPayloads[0].payload]);
    expect(utf8(inner.metadata?.['x-user-codec'])).toBe('1');
    expect(utf8(inner.metadata?.encoding)).toBe('json/plain');
  });

  test("a failing call's message is encoded in history, and the client with the codec reads it", async () => {
    const { result, workflowId } = await call({ path: `/${failureMark}` });
    expect(result.error).toMatchObject({ type: 'Connector.External.Http', nonRetryable: true });
    expect(result.error!.message).toContain(failureMark);
    expect(result.error!.message).toContain('404');

    for (const id of [workflowId, result.workflowId!]) expect(await historyText(rawClient, id)).not.toContain(failureMark);
    const childHistory = await rawClient.workflow.getHandle(result.workflowId!).fetchHistory();
    const failed = childHistory.events!.find((e) => e.workflowExecutionFailedEventAttributes)!.workflowExecutionFailedEventAttributes!;
    expect(failed.failure!.message).toBe('Encoded failure');
    expect(failed.failure!.stackTrace ?? '').toBe('');
    expect(utf8(failed.failure!.encodedAttributes!.metadata!.encoding)).toBe(ENCRYPTED_ENCODING);

    const failure = await client.workflow
      .getHandle(result.workflowId!)
      .result()
      .catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect((failure as WorkflowFailedError).cause!.message).toContain(failureMark);
  });

  test('a replay worker with the plugin decodes the encrypted history and replays it', async () => {
    const { workflowId } = await successfulCall();
    const history = await rawClient.workflow.getHandle(workflowId).fetchHistory();
    await Worker.runReplayHistory(
      {
        workflowsPath: require.resolve('../fixtures/connector-workflows'),
        dataConverter: { payloadCodecs: [countingCodec().codec] },
        plugins: [new ConnectorsPlugin({ encryption: { keyring } })],
      },
      history,
      workflowId,
    );
  });

  test('the codec server decodes payloads from history with api_key and auth.token masked, other values readable', async () => {
    const { result, workflowId } = await successfulCall();
    const parentHistory = await rawClient.workflow.getHandle(workflowId).fetchHistory();
    const started = parentHistory.events![0].workflowExecutionStartedEventAttributes!;
    const childHistory = await rawClient.workflow.getHandle(result.workflowId!).fetchHistory();
    const completed = childHistory.events!.find((e) => e.workflowExecutionCompletedEventAttributes)!.workflowExecutionCompletedEventAttributes!;

    const response = await codecRequest('/decode', { payloads: [toJson(started.input!.payloads![0]), toJson(completed.result!.payloads![0])] });
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const { payloads } = (await response.json()) as { payloads: Array<{ metadata: Record<string, string>; data: string }> };
    const [input, output] = payloads.map(jsonOf) as [Record<string, any>, Record<string, any>]; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(input.overrides).toEqual({ method: 'post', data: { note: overrideValue }, query: { api_key: MASK }, auth: { type: 'bearer', token: MASK } });
    expect(input.connector).toBe(connectorName);
    expect(output.output.body).toEqual({ receipt: outputValue });
    expect(output.inputs.query).toEqual({ api_key: MASK });
    expect(output.inputs.auth.token).toBe(MASK);
    const text = JSON.stringify(payloads.map(jsonOf));
    expect(text).not.toContain(overrideKey);
    expect(text).not.toContain(overrideToken);
  });

  test('/encode then /decode round-trips, and masks sensitive values at any depth', async () => {
    const value = { keep: 'visible', password: 'pw-1', calls: [{ headers: { Authorization: 'Bearer x', accept: 'json' } }], nested: { api_key: 'k', n: 1 } };
    const plain = { metadata: { encoding: Buffer.from('json/plain').toString('base64') }, data: Buffer.from(JSON.stringify(value)).toString('base64') };
    const encoded = await codecRequest('/encode', { payloads: [plain] });
    expect(encoded.status).toBe(200);
    const encodedBody = (await encoded.json()) as { payloads: Array<{ metadata: Record<string, string>; data: string }> };
    expect(Buffer.from(encodedBody.payloads[0].metadata.encoding, 'base64').toString()).toBe(ENCRYPTED_ENCODING);
    expect(Buffer.from(encodedBody.payloads[0].metadata[ENCRYPTION_KEY_ID], 'base64').toString()).toBe(k1.id);
    expect(Buffer.from(encodedBody.payloads[0].data, 'base64').toString()).not.toContain('visible');

    const decoded = await codecRequest('/decode', encodedBody);
    expect(decoded.status).toBe(200);
    const [payload] = ((await decoded.json()) as { payloads: Array<{ metadata: Record<string, string>; data: string }> }).payloads;
    expect(jsonOf(payload)).toEqual({ keep: 'visible', password: MASK, calls: [{ headers: { Authorization: MASK, accept: 'json' } }], nested: { api_key: MASK, n: 1 } });

    // Payloads that are not encrypted pass through /decode (masked all the same); binary ones untouched.
    const binary = { metadata: { encoding: Buffer.from('binary/plain').toString('base64') }, data: Buffer.from([1, 2, 3]).toString('base64') };
    const passed = await codecRequest('/decode', { payloads: [binary] });
    expect(((await passed.json()) as { payloads: unknown[] }).payloads).toEqual([binary]);

    // Without masking, /decode gives the payload exactly back.
    const unmasked = await startCodecServer({ keyring, insecureNoAuth: true, corsOrigins: [], port: 0, maskSensitive: false });
    try {
      const answer = await fetch(`${unmasked.url}/decode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(encodedBody) });
      expect(((await answer.json()) as { payloads: unknown[] }).payloads).toEqual([plain]);
    } finally {
      await unmasked.close();
    }
  });

  test('a missing or wrong bearer token is 401; a malformed body is 400', async () => {
    const body = { payloads: [] };
    const missing = await codecRequest('/decode', body, {});
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toContain('Bearer');
    expect((await codecRequest('/encode', body, { authorization: 'Bearer not-the-token' })).status).toBe(401);
    expect((await codecRequest('/decode', body, { authorization: codecToken })).status).toBe(401);
    expect((await codecRequest('/decode', body)).status).toBe(200);
    const malformed = await codecRequest('/decode', { payloads: 'nope' });
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ error: { type: 'Request.InvalidBody' } });
  });

  test('the codec server will not start without tokens, unless started open on a loopback address for development', async () => {
    expect(() => createCodecServer({ keyring, corsOrigins: [] })).toThrow(/needs at least one bearer token \(TC_CODEC_TOKENS.*--insecure-no-auth/);
    expect(() => createCodecServer({ keyring, tokens: [], corsOrigins: [] })).toThrow(/TC_CODEC_TOKENS/);
    expect(() => createCodecServer({ keyring, tokens: [codecToken], insecureNoAuth: true, corsOrigins: [] })).toThrow(/at once/);
    // Were the refusal missing, the server would listen: close it, and the test fails on the message.
    const attempt = (host: string) =>
      startCodecServer({ keyring, insecureNoAuth: true, corsOrigins: [], host, port: 0 }).then(
        async (server) => {
          await server.close();
          return `started on ${server.url}`;
        },
        (err: Error) => err.message,
      );
    for (const host of ['0.0.0.0', '::']) {
      expect(await attempt(host)).toMatch(new RegExp(`^refusing to serve /decode without tokens on ${host.replace(/\./g, '\\.')}: .*loopback`));
    }
    // Open on loopback: /decode answers without a token.
    for (const host of ['127.0.0.1', 'localhost']) {
      const open = await startCodecServer({ keyring, insecureNoAuth: true, corsOrigins: [], host, port: 0 });
      try {
        const answer = await fetch(`${open.url}/decode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ payloads: [] }) });
        expect(answer.status).toBe(200);
      } finally {
        await open.close();
      }
    }
  });

  test('a request whose Host names another site is refused with 403 and decodes nothing (DNS rebinding); loopback names and allowed hosts are served', async () => {
    const marker = `rebinding-marker-${randomBytes(6).toString('hex')}`;
    const [encrypted] = await createEncryptionCodec(keyring).encode([{ metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from(JSON.stringify({ note: marker })) }]);
    const body = JSON.stringify({ payloads: [toJson(encrypted)] });
    const decode = (server: RunningCodecServer, host: string) =>
      rawRequest(`${server.url}/decode`, { method: 'POST', headers: { host, 'content-type': 'application/json', authorization: `Bearer ${codecToken}` }, body });
    const decodedNote = (text: string) => (jsonOf((JSON.parse(text) as { payloads: Array<{ metadata: Record<string, string>; data: string }> }).payloads[0]) as { note: string }).note;

    const open = await startCodecServer({ keyring, insecureNoAuth: true, corsOrigins: [], port: 0 });
    const behindProxy = await startCodecServer({ keyring, tokens: [codecToken], allowedHosts: ['codec.example.test'], corsOrigins: [], port: 0 });
    try {
      for (const server of [codecServer, open, behindProxy]) {
        const port = new URL(server.url).port;
        // The marker is readable through every name of the server, so its absence below means something.
        for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'LOCALHOST', `[::1]:${port}`, `127.0.0.2:${port}`]) {
          const served = await decode(server, host);
          expect([host, served.status]).toEqual([host, 200]);
          expect(decodedNote(served.text)).toBe(marker);
        }
        for (const host of [`evil.example:${port}`, 'evil.example', `localhost.evil.example:${port}`, `127.0.0.1.nip.example:${port}`, `codec.example.test.evil.example:${port}`]) {
          const refused = await decode(server, host);
          expect([host, refused.status]).toEqual([host, 403]);
          const error = (JSON.parse(refused.text) as { error: { type: string; message: string } }).error;
          expect(error.type).toBe('Request.HostNotAllowed');
          expect(error.message).toMatch(/TC_CODEC_ALLOWED_HOSTS.*DNS-rebinding/);
          expect(refused.text).not.toContain('payloads');
        }
      }
      const viaProxy = await decode(behindProxy, 'Codec.Example.Test');
      expect(viaProxy.status).toBe(200);
      expect(decodedNote(viaProxy.text)).toBe(marker);
      expect((await decode(codecServer, 'codec.example.test')).status).toBe(403);
    } finally {
      await open.close();
      await behindProxy.close();
    }
  });

  test('CORS: the allowed origin gets the headers on preflight and on the call, another origin gets none', async () => {
    const preflight = (origin: string) =>
      fetch(`${codecServer.url}/decode`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-namespace,authorization' },
      });
    const allowed = await preflight(uiOrigin);
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe(uiOrigin);
    expect(allowed.headers.get('access-control-allow-credentials')).toBe('true');
    expect(allowed.headers.get('access-control-allow-headers')).toBe('Content-Type, X-Namespace, Authorization');
    expect(allowed.headers.get('access-control-allow-methods')).toContain('POST');
    expect(allowed.headers.get('vary')).toContain('Origin');

    const other = await preflight('http://evil.example:8233');
    const corsHeaders: string[] = [];
    other.headers.forEach((_value, name) => void (name.startsWith('access-control-') && corsHeaders.push(name)));
    expect(corsHeaders).toEqual([]);

    const call = await codecRequest('/decode', { payloads: [] }, { authorization: `Bearer ${codecToken}`, origin: uiOrigin });
    expect(call.headers.get('access-control-allow-origin')).toBe(uiOrigin);
    // A refused call still carries CORS headers, so the UI sees a 401 and not a network error.
    const refused = await codecRequest('/decode', { payloads: [] }, { origin: uiOrigin });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-origin')).toBe(uiOrigin);
    const foreign = await codecRequest('/decode', { payloads: [] }, { authorization: `Bearer ${codecToken}`, origin: 'http://evil.example:8233' });
    expect(foreign.headers.get('access-control-allow-origin')).toBeNull();
  });

  test('key rotation: payloads encrypted with k1 still decode with the ring [k2, k1], new ones use k2; without k1 they do not', async () => {
    const k2 = { id: 'payload-k2', key: randomBytes(32) };
    const rotated = new Keyring([k2, k1]);
    const plain: Payload = { metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from('{"a":1}') };
    const [old] = await createEncryptionCodec(keyring).encode([plain]);
    const [decoded] = await createEncryptionCodec(rotated).decode([old]);
    expect(utf8(decoded.data)).toBe('{"a":1}');
    const [fresh] = await createEncryptionCodec(rotated).encode([plain]);
    expect(utf8(fresh.metadata?.[ENCRYPTION_KEY_ID])).toBe(k2.id);
    await expect(createEncryptionCodec(new Keyring([k2])).decode([old])).rejects.toThrow(KeyringError);
    await expect(createEncryptionCodec(new Keyring([k2])).decode([old])).rejects.toThrow(/no key "payload-k1"/);

    // End to end: a client whose ring has moved on to k2 reads a result the workers wrote under k1.
    const { workflowId, result } = await successfulCall();
    const rotatedClient = new Client({
      connection,
      namespace: stack.temporal.namespace,
      dataConverter: { payloadCodecs: [countingCodec().codec] },
      plugins: [new ConnectorsPlugin({ encryption: { keyring: rotated } })],
    });
    expect(await rotatedClient.workflow.getHandle(workflowId).result()).toEqual(result);

    // And the codec server with the rotated ring decodes the old history.
    const server = await startCodecServer({ keyring: rotated, insecureNoAuth: true, corsOrigins: [], port: 0 });
    try {
      const answer = await fetch(`${server.url}/decode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ payloads: [toJson(old)] }) });
      expect(answer.status).toBe(200);
      // Without k1 the server says which key is missing, and nothing more.
      const k2Only = await startCodecServer({ keyring: new Keyring([k2]), insecureNoAuth: true, corsOrigins: [], port: 0 });
      try {
        const refused = await fetch(`${k2Only.url}/decode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ payloads: [toJson(old)] }) });
        expect(refused.status).toBe(400);
        expect(await refused.json()).toMatchObject({ error: { type: 'Codec.DecodeFailed', message: expect.stringContaining('payload-k1') } });
      } finally {
        await k2Only.close();
      }
    } finally {
      await server.close();
    }
  });

  test('codecServerOptionsFromEnv: TC_PAYLOAD_KEYRING first, else the store keyring; tokens, origins and port', () => {
    const entry = Keyring.generateEntry('pk1');
    const fromPayload = codecServerOptionsFromEnv({ TC_PAYLOAD_KEYRING: entry, TC_KEYRING: Keyring.generateEntry('sk1'), TC_CODEC_TOKENS: 'a, b', TC_CODEC_PORT: '0' });
    expect(fromPayload.keyring.primaryId).toBe('pk1');
    expect(fromPayload.tokens).toEqual(['a', 'b']);
    expect(fromPayload.port).toBe(0);
    expect(fromPayload.corsOrigins).toEqual(['http://127.0.0.1:8233', 'http://localhost:8233']);
    const fromStore = codecServerOptionsFromEnv({ TC_KEYRING: Keyring.generateEntry('sk1'), TC_CODEC_CORS_ORIGINS: 'https://ui.example.com' });
    expect(fromStore.keyring.primaryId).toBe('sk1');
    expect(fromStore.tokens).toEqual([]);
    expect(fromStore.corsOrigins).toEqual(['https://ui.example.com']);
    expect(() => codecServerOptionsFromEnv({})).toThrow(/TC_PAYLOAD_KEYRING/);
    expect(() => codecServerOptionsFromEnv({ TC_KEYRING: entry, TC_CODEC_PORT: 'x' })).toThrow(/TC_CODEC_PORT/);
  });

  test('TC_CODEC_ALLOWED_HOSTS is read comma-separated, and a value with a scheme or a port is refused naming the variable', () => {
    const entry = Keyring.generateEntry('pk1');
    expect(codecServerOptionsFromEnv({ TC_PAYLOAD_KEYRING: entry }).allowedHosts).toEqual([]);
    expect(codecServerOptionsFromEnv({ TC_PAYLOAD_KEYRING: entry, TC_CODEC_ALLOWED_HOSTS: ' Codec.Example.com, 10.0.0.5 ,[fd00::5]' }).allowedHosts).toEqual([
      'codec.example.com',
      '10.0.0.5',
      'fd00::5',
    ]);
    for (const bad of ['https://codec.example.com', 'codec.example.com:8888', 'cafe.de:80', 'codec.example.com/decode', 'a..b']) {
      expect(() => codecServerOptionsFromEnv({ TC_PAYLOAD_KEYRING: entry, TC_CODEC_ALLOWED_HOSTS: bad })).toThrow(/^TC_CODEC_ALLOWED_HOSTS: .* is not a host name/);
    }
  });
});
