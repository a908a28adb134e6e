import { createHash } from 'node:crypto';
import vault from 'node-vault';
import { MASK } from '../../core/inputs';
import { startTestHttpServer, type TestHttpServer } from '../fixtures/http-server';
import { FIXTURE_API_KEY, startOpenAiServer } from '../fixtures/openai-server';
import type { CallOutcome } from '../fixtures/connector-workflows';
import type { ConnectionOptions } from '../../workflows';
import { callSummary, historyText, startHarness, type Harness } from '../support/harness';
import { recordSecrets } from '../support/leak-sweep';
import { testStack, uniqueName } from '../support/stack';

// End to end on the real dev server, PostgreSQL and Vault: user workflow → `connection` child → activity → HTTP server.
describe('connections through the connector worker', () => {
  const stack = testStack();
  const vaultAdmin = vault({ apiVersion: 'v1', endpoint: stack.vault.address, token: stack.vault.token });
  let h: Harness;
  let api: TestHttpServer;

  beforeAll(async () => {
    [h, api] = await Promise.all([startHarness(), startTestHttpServer()]);
  });
  afterAll(async () => {
    await h?.shutdown();
    await api?.close();
  });

  async function vaultSecret(data: Record<string, unknown>): Promise<string> {
    const path = `secret/data/${uniqueName('conn')}`;
    await vaultAdmin.write(path, { data });
    return path;
  }

  function lastRequest() {
    return api.requests[api.requests.length - 1];
  }

  type History = Awaited<ReturnType<ReturnType<Harness['client']['workflow']['getHandle']>['fetchHistory']>>;

  /** How the `connection` ran: its activity tasks by type, and how many local activities (markers) it recorded. */
  function callShape(history: History): { activities: string[]; localActivities: number } {
    return {
      activities: history.events!.filter((e) => e.activityTaskScheduledEventAttributes).map((e) => e.activityTaskScheduledEventAttributes!.activityType!.name!),
      localActivities: history.events!.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity').length,
    };
  }

  test('profile, then Vault, then override: the later layer wins and provenance says which', async () => {
    const path = await vaultSecret({ path: '/from-vault' });
    const name = uniqueName('layers').toLowerCase();
    await h.service.apply({ name, type: 'REST', value: { base_url: api.url, path: '/from-profile' }, vault_secrets: [{ path }] });

    const withoutOverride = await h.call(name);
    expect(withoutOverride.result.error).toBeUndefined();
    expect(lastRequest().path).toBe('/from-vault');
    expect(withoutOverride.result.details!.sources).toMatchObject({ base_url: 'profile', path: `vault:${path}` });

    const withOverride = await h.call(name, { path: '/from-override' });
    expect(lastRequest().path).toBe('/from-override');
    expect(withOverride.result.details!.sources).toMatchObject({ base_url: 'profile', path: 'override' });
    // Whatever came from Vault is masked in the result, even a field that is not sensitive by type.
    expect(withoutOverride.result.details!.inputs.path).toBe(MASK);
  });

  test('one header overridden keeps the others, and a mapped Vault key lands at its input path', async () => {
    const path = await vaultSecret({ bearer: 'vault-bearer-7f3k' });
    const name = uniqueName('merge').toLowerCase();
    await h.service.apply({
      name,
      type: 'REST',
      value: { url: `${api.url}/merge`, headers: { 'x-team': 'billing', 'x-env': 'prod' }, auth: { type: 'bearer', token: 'profile-bearer-000' } },
      vault_secrets: [{ path, map: { bearer: 'auth.token' } }],
    });
    const { result } = await h.call(name, { headers: { 'x-env': 'staging' } });
    expect(lastRequest().headers).toMatchObject({ 'x-team': 'billing', 'x-env': 'staging', authorization: 'Bearer vault-bearer-7f3k' });
    expect(result.details!.sources).toMatchObject({ 'headers.x-team': 'profile', 'headers.x-env': 'override', 'auth.type': 'profile', 'auth.token': `vault:${path}` });
    expect(result.details!.inputs).toMatchObject({ auth: { type: 'bearer', token: MASK } });
  });

  test('a stored connector call is a `connection` child with its own input, result, summary and search attributes', async () => {
    const name = uniqueName('child').toLowerCase();
    await h.service.apply({ name, type: 'REST', value: { base_url: api.url, path: '/invoices', method: 'post', data: { amount: 12 } } });
    const { result, workflowId: parentId } = await h.call(name, { data: { amount: 13 } });
    expect(result.workflowId).toBe(`${parentId}/connection/1`);

    const child = h.client.workflow.getHandle(result.workflowId!);
    const description = await child.describe();
    expect(description.type).toBe('connection');
    expect(description.taskQueue).toBe(h.connectorQueue);
    expect(description.parentExecution?.workflowId).toBe(parentId);
    // The parent starts the child knowing only the name; the child resolves the rest itself (its
    // type, set as a search attribute, and the summary of its call).
    expect(await description.staticSummary()).toBe(name);
    expect(description.searchAttributes).toMatchObject({ ConnectorName: [name], ConnectorType: ['REST'] });

    const childResult = await child.result();
    expect(childResult).toEqual(result.details);
    expect(childResult.connector).toEqual({ name, type: 'REST', version: 1 });
    expect(childResult.output).toMatchObject({ status: 200, body: { method: 'POST', path: '/invoices', body: '{"amount":13}' } });

    const history = await child.fetchHistory();
    const started = history.events![0].workflowExecutionStartedEventAttributes!;
    const input = JSON.parse(Buffer.from(started.input!.payloads![0].data!).toString());
    expect(input).toMatchObject({ connector: name, overrides: { data: { amount: 13 } } });
    expect(input.descriptor).toBeUndefined();
    expect(await callSummary(h.client, result.workflowId!)).toBe(`REST ${name} POST /invoices`);
    // The connector was described and called by two local activities in the child's first workflow
    // task (a short call), and the parent spent no activity on it.
    expect(callShape(history)).toEqual({ activities: [], localActivities: 2 });
    expect(callShape(await h.client.workflow.getHandle(parentId).fetchHistory())).toEqual({ activities: [], localActivities: 0 });

    // Visibility is eventually consistent: poll the list query briefly.
    let found: string[] = [];
    for (let i = 0; i < 50 && !found.includes(result.workflowId!); i++) {
      found = [];
      for await (const wf of h.client.workflow.list({ query: `ConnectorName = "${name}" AND ConnectorType = "REST"` })) found.push(wf.workflowId);
      if (!found.includes(result.workflowId!)) await new Promise((r) => setTimeout(r, 200));
    }
    expect(found).toContain(result.workflowId);
  });

  test('with idempotency_key, every attempt of one connection sends the same key, derived from its workflow ID, and another connection another key', async () => {
    const connector = uniqueName('idem').toLowerCase();
    await h.service.apply({ name: connector, type: 'REST', value: { base_url: api.url, idempotency_key: 'Idempotency-Key' } });
    const from = api.requests.length;
    api.respondWith({ status: 503 }); // attempt 1 fails after reaching the API: attempt 2 must carry the same key
    const first = await h.call(connector, { method: 'post', data: { amount: 1 } });
    expect(first.result.details).toMatchObject({ attempt: 2 });
    const second = await h.call(connector, { method: 'post', data: { amount: 1 } });
    const keys = api.requests.slice(from).map((r) => r.headers['idempotency-key']);
    const keyOf = (workflowId: string) => `tc-${createHash('sha256').update(workflowId).digest('hex').slice(0, 32)}`;
    expect(keys).toEqual([keyOf(first.result.workflowId!), keyOf(first.result.workflowId!), keyOf(second.result.workflowId!)]);
    expect(keys[2]).not.toBe(keys[0]);
    // Off by default, and a key the call sets itself wins.
    const plain = uniqueName('noidem').toLowerCase();
    await h.service.apply({ name: plain, type: 'REST', value: { base_url: api.url } });
    await h.call(plain);
    expect(api.requests[api.requests.length - 1].headers['idempotency-key']).toBeUndefined();
    await h.call(connector, { headers: { 'Idempotency-Key': 'order-42' } });
    expect(api.requests[api.requests.length - 1].headers['idempotency-key']).toBe('order-42');
  });

  test('OPENAI with idempotency_key: a chat completion retried after a 503 sends the same key on both attempts', async () => {
    const model = await startOpenAiServer();
    try {
      const connector = uniqueName('idem_llm').toLowerCase();
      await h.service.apply({ name: connector, type: 'OPENAI', value: { base_url: model.url, api_key: FIXTURE_API_KEY, default_model: 'gpt-4o-mini', idempotency_key: 'Idempotency-Key' } });
      model.failNext(503);
      const call = await h.call(connector, { operation: 'chat.completions', messages: [{ role: 'user', content: 'hello' }] });
      expect(call.result.details).toMatchObject({ attempt: 2 });
      const keys = model.requests.filter((r) => r.path === '/v1/chat/completions').map((r) => r.headers['idempotency-key']);
      expect(keys).toEqual([
        `tc-${createHash('sha256').update(call.result.workflowId!).digest('hex').slice(0, 32)}`,
        `tc-${createHash('sha256').update(call.result.workflowId!).digest('hex').slice(0, 32)}`,
      ]);
    } finally {
      await model.close();
    }
  });

  test('an inline connector runs without being stored', async () => {
    // The type as a user may write it: the registry finds it whatever its case.
    const { result } = await h.call({ type: 'rest', url: `${api.url}/inline`, method: 'put', data: 'plain text' });
    expect(result.error).toBeUndefined();
    expect(result.details).toMatchObject({ connector: { name: null, type: 'REST', version: null }, sources: { url: 'inline', method: 'inline', data: 'inline' } });
    expect(lastRequest()).toMatchObject({ method: 'PUT', path: '/inline', body: 'plain text' });
    expect(await h.service.list()).not.toContainEqual(expect.objectContaining({ name: 'inline' }));
    const description = await h.client.workflow.getHandle(result.workflowId!).describe();
    // Nothing of an inline connector's values is in the summary the parent sets: they may hold secrets.
    expect(await description.staticSummary()).toBe('rest (inline)');
    // The search attribute names the type as the registry does, so `ConnectorType = "REST"` finds it.
    expect(description.searchAttributes).toMatchObject({ ConnectorType: ['REST'] });
    // A whole url is summarised by its host: its path may be a webhook's key.
    expect(await callSummary(h.client, result.workflowId!)).toBe(`REST (inline) PUT 127.0.0.1:${api.port}`);
  });

  test('a short call runs as a local activity of its connection, a long one or one with `localActivity: false` as an activity task; each is retried and masked', async () => {
    const name = uniqueName('local').toLowerCase();
    await h.service.apply({ name, type: 'REST', value: { base_url: api.url, path: '/local', headers: { 'x-api-key': 'local-key-5c1e' } }, retry: { maximum_attempts: 4 } });
    const ways: { options: ConnectionOptions; shape: ReturnType<typeof callShape> }[] = [
      { options: {}, shape: { activities: [], localActivities: 2 } },
      { options: { localActivity: false }, shape: { activities: ['connectors.invoke'], localActivities: 1 } },
      { options: { timeout: '2m' }, shape: { activities: ['connectors.invoke'], localActivities: 1 } },
      { options: { timeout: '2m', localActivity: true }, shape: { activities: [], localActivities: 2 } },
    ];
    for (const way of ways) {
      api.respondWith({ status: 503, headers: { 'retry-after': '0' } });
      const { result } = await h.call(name, undefined, { taskQueue: h.connectorQueue, retry: { initialInterval: '50ms' }, ...way.options });
      expect(result.error).toBeUndefined();
      // Retried by Temporal after the 503, under the connector's own retry policy.
      expect(result.details).toMatchObject({ connector: { name, type: 'REST', version: 1 }, attempt: 2, inputs: { headers: { 'x-api-key': MASK } } });
      expect(lastRequest()).toMatchObject({ path: '/local', headers: { 'x-api-key': 'local-key-5c1e' } });
      const child = h.client.workflow.getHandle(result.workflowId!);
      expect({ options: way.options, shape: callShape(await child.fetchHistory()) }).toEqual(way);
      expect((await child.describe()).searchAttributes).toMatchObject({ ConnectorName: [name], ConnectorType: ['REST'] });
      const text = await historyText(h.client, result.workflowId!);
      expect(text).toContain(MASK);
      expect(text).not.toContain('local-key-5c1e');
    }
  });

  test('a locked field cannot be overridden; the error names it', async () => {
    const name = uniqueName('locked').toLowerCase();
    await h.service.apply({ name, type: 'REST', value: { base_url: api.url, headers: { 'x-tenant': 'a' } }, locked: ['base_url', 'headers.x-tenant'] });
    const before = api.requests.length;
    const refused = await h.call(name, { base_url: 'http://127.0.0.1:1', headers: { 'x-tenant': 'b' } });
    expect(refused.result.error).toMatchObject({ type: 'Connector.LockedField', nonRetryable: true });
    expect(refused.result.error!.message).toContain('base_url');
    expect(refused.result.error!.message).toContain('headers.x-tenant');
    expect(api.requests.length).toBe(before);
    // Headers other than the locked one may still be overridden.
    const allowed = await h.call(name, { headers: { 'x-other': '1' } });
    expect(allowed.result.error).toBeUndefined();
    expect(lastRequest().headers).toMatchObject({ 'x-tenant': 'a', 'x-other': '1' });
  });

  test('startConnection handles run in parallel, each as its own connection child', async () => {
    const name = uniqueName('parallel').toLowerCase();
    await h.service.apply({ name, type: 'REST', value: { base_url: api.url } });
    let inFlight = 0;
    let maxInFlight = 0;
    const slow = await startTestHttpServer(async (req, res) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, 400));
      inFlight--;
      res.end(JSON.stringify({ path: req.path }));
    });
    try {
      const calls = ['/a', '/b', '/c'].map((path) => ({ connector: name, overrides: { base_url: slow.url, path }, options: { taskQueue: h.connectorQueue } }));
      const { result, workflowId } = await h.run<{ workflowIds: string[]; outputs: { body: string }[] }>('callInParallel', calls);
      expect(result.workflowIds).toEqual([1, 2, 3].map((n) => `${workflowId}/connection/${n}`));
      expect(result.outputs.map((o) => JSON.parse(o.body).path)).toEqual(['/a', '/b', '/c']);
      expect(maxInFlight).toBeGreaterThanOrEqual(2);
      for (const id of result.workflowIds) expect((await h.client.workflow.getHandle(id).describe()).type).toBe('connection');
    } finally {
      await slow.close();
    }
  });

  test('updating a connector between two runs changes the second run, with no worker restart', async () => {
    const name = uniqueName('update').toLowerCase();
    await h.service.apply({ name, type: 'REST', value: { base_url: api.url, path: '/v1' } });
    const first = await h.call(name);
    expect(lastRequest().path).toBe('/v1');
    await h.service.apply({ name, type: 'REST', value: { base_url: api.url, path: '/v2' } });
    const second = await h.call(name);
    expect(lastRequest().path).toBe('/v2');
    expect(first.result.details!.connector.version).toBe(1);
    expect(second.result.details!.connector.version).toBe(2);
  });

  test('no store or Vault secret appears in the parent or child history, on success or failure', async () => {
    const storeSecret = `store-secret-${uniqueName('s')}`;
    const vaultToken = `vault-secret-${uniqueName('v')}`;
    recordSecrets('the Vault token of connection.test.ts', [vaultToken]);
    const path = await vaultSecret({ token: vaultToken });
    const name = uniqueName('secret').toLowerCase();
    await h.service.apply({
      name,
      type: 'REST',
      value: { base_url: api.url, path: '/echo', headers: { 'x-api-key': storeSecret }, auth: { type: 'bearer' } },
      vault_secrets: [{ path, map: { token: 'auth.token' } }],
    });

    const ok = await h.call(name);
    expect(ok.result.error).toBeUndefined();
    // The echo server sent both secrets back; the activity redacted them before they reached history.
    expect(lastRequest().headers).toMatchObject({ 'x-api-key': storeSecret, authorization: `Bearer ${vaultToken}` });
    expect(JSON.stringify(ok.result.details)).not.toContain(storeSecret);

    api.respondWith({ status: 400, body: { error: `bad key ${storeSecret} / ${vaultToken}` } });
    const failed = await h.call(name);
    expect(failed.result.error).toMatchObject({ type: 'Connector.External.Http', nonRetryable: true });

    // The override is the workflow's own data and must be in both histories: it proves the check below can see payloads.
    const marker = `override-marker-${uniqueName('m')}`;
    api.respondWith({ status: 500, body: { error: `bad key ${storeSecret}` } }, { status: 500 }, { status: 500 });
    const retriedOut = await h.call(name, { path: `/echo`, query: { k: marker } });
    expect(retriedOut.result.error).toMatchObject({ type: 'Connector.External.Http' });

    for (const outcome of [ok, failed, retriedOut]) {
      for (const id of [outcome.workflowId, outcome.result.workflowId!]) {
        const text = await historyText(h.client, id);
        if (outcome === retriedOut) expect(text).toContain(marker);
        expect(text).not.toContain(storeSecret);
        expect(text).not.toContain(vaultToken);
      }
    }
  });

  describe('bad input gets a clear, typed error that names the problem and no secret', () => {
    const secret = 'never-show-this-9d8c';

    async function expectFailure(outcome: CallOutcome, type: string, mentions: string[], nonRetryable = true) {
      expect(outcome.error).toBeDefined();
      expect(outcome.error!.type).toBe(type);
      expect(outcome.error!.nonRetryable).toBe(nonRetryable);
      for (const m of mentions) expect(outcome.error!.message).toContain(m);
      expect(outcome.error!.message).not.toContain(secret);
      expect(outcome.error!.message).not.toMatch(/\n\s+at /); // no stack trace in the message
    }

    test('unknown connector', async () => {
      const { result } = await h.call('no-such-connector');
      await expectFailure(result, 'Connector.NotFound', ['no-such-connector']);
    });

    test('a name no connector can have (1,000 characters) fails the call with NotFound, not the parent', async () => {
      const { result } = await h.call('x'.repeat(1_000));
      await expectFailure(result, 'Connector.NotFound', ['xxxx']);
    });

    test('unknown type of an inline connector', async () => {
      const { result } = await h.call({ type: 'SMOKE_SIGNALS', url: 'http://x' });
      await expectFailure(result, 'Connector.UnknownType', ['SMOKE_SIGNALS', 'REST']);
    });

    test('schema violation after merging names the field', async () => {
      const name = uniqueName('schema').toLowerCase();
      await h.service.apply({ name, type: 'REST', value: { base_url: api.url, headers: { 'x-api-key': secret } } });
      const { result } = await h.call(name, { method: 'FETCH' });
      await expectFailure(result, 'Connector.InvalidInput', ['method']);
    });

    test('malformed overrides: an unknown input and a non-object', async () => {
      const name = uniqueName('override').toLowerCase();
      await h.service.apply({ name, type: 'REST', value: { base_url: api.url } });
      await expectFailure((await h.call(name, { bogus_field: 1 })).result, 'Connector.InvalidInput', ['bogus_field']);
      await expectFailure((await h.call(name, 'not-an-object' as unknown as Record<string, unknown>)).result, 'Connector.InvalidInput', ['overrides']);
    });

    test('overrides nested deeper than any input are refused as invalid input, not retried', async () => {
      const name = uniqueName('deep').toLowerCase();
      await h.service.apply({ name, type: 'REST', value: { base_url: api.url, headers: { 'x-api-key': secret } } });
      let data: unknown = 'bottom';
      for (let i = 0; i < 200; i++) data = { a: data };
      const before = api.requests.length;
      await expectFailure((await h.call(name, { data })).result, 'Connector.InvalidInput', ['overrides.data', 'levels']);
      expect(api.requests.length).toBe(before);
    });

    test('a Vault path that does not exist', async () => {
      const name = uniqueName('vaultmissing').toLowerCase();
      await h.service.apply({ name, type: 'REST', value: { base_url: api.url }, vault_secrets: [{ path: 'secret/data/does-not-exist' }] });
      await expectFailure((await h.call(name)).result, 'Connector.Vault.NotFound', ['secret/data/does-not-exist', name]);
    });

    test('an external 4xx is not retried', async () => {
      const name = uniqueName('four').toLowerCase();
      await h.service.apply({ name, type: 'REST', value: { base_url: api.url, path: '/missing', headers: { 'x-api-key': secret } } });
      const before = api.requests.length;
      api.respondWith({ status: 404, body: { detail: secret } });
      const { result } = await h.call(name);
      await expectFailure(result, 'Connector.External.Http', ['404', '/missing']);
      expect(api.requests.length - before).toBe(1);
    });

    test('an external 5xx is retried, then succeeds', async () => {
      const name = uniqueName('five').toLowerCase();
      await h.service.apply({ name, type: 'REST', value: { base_url: api.url, path: '/flaky' } });
      const before = api.requests.length;
      api.respondWith({ status: 503, headers: { 'retry-after': '0' } }, { status: 502 });
      const { result } = await h.call(name, undefined, { taskQueue: h.connectorQueue, retry: { initialInterval: '50ms', maximumAttempts: 5 } });
      expect(result.error).toBeUndefined();
      expect(result.details!.attempt).toBe(3);
      expect(api.requests.length - before).toBe(3);
    });
  });
});

describe('connections when a dependency is down', () => {
  test('Vault down: a retryable Connector.Vault.Unavailable naming the path', async () => {
    const h = await startHarness({ vaultAddress: 'http://127.0.0.1:9' });
    try {
      const name = uniqueName('vaultdown').toLowerCase();
      await h.service.apply({ name, type: 'REST', value: { base_url: 'http://127.0.0.1:9' }, vault_secrets: [{ path: 'secret/data/x' }] });
      const { result } = await h.call(name);
      expect(result.error).toMatchObject({ type: 'Connector.Vault.Unavailable', nonRetryable: false });
      expect(result.error!.message).toContain('secret/data/x');
      expect(result.error!.message).toContain('unreachable');
    } finally {
      await h.shutdown();
    }
  });

  test('store down: a retryable Connector.Store.Unavailable naming the store, not its password', async () => {
    const h = await startHarness({ databaseUrl: 'postgres://tc_user:pg-password-123@127.0.0.1:9/connectors' });
    try {
      const { result } = await h.call('anything');
      expect(result.error).toMatchObject({ type: 'Connector.Store.Unavailable', nonRetryable: false });
      expect(result.error!.message).toContain('127.0.0.1:9');
      expect(result.error!.message).not.toContain('pg-password-123');
    } finally {
      await h.shutdown();
    }
  });
});
