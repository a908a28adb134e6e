import { createOpenAiConnector, openaiConnector, openaiSchema } from '../../connectors/openai';
import type { ConnectorType, InvokeContext } from '../../connectors/types';
import { unusedLocalUrl } from '../fixtures/http-server';
import { FIXTURE_MODELS, fixtureEmbedding, startOpenAiServer, type OpenAiTestServer } from '../fixtures/openai-server';
import { failureOf, invokeContext as context } from '../support/connector-calls';
import { waitFor } from '../support/wait';

// Distinctive, so a leak into a message cannot be a coincidence.
const API_KEY = 'sk-test-Zq7Kx2vB9mN4pL8w';
const WRONG_KEY = 'sk-wrong-Hd83Jf02Kq9zX7Lm';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- results are read field by field

async function invoke(inputs: Record<string, unknown>, ctx: InvokeContext = context(), type: ConnectorType<typeof openaiSchema> = openaiConnector): Promise<Json> {
  return (await type.invoke(openaiSchema.parse(inputs), ctx)) as Json;
}

/** The failure an invoke ends with; fails the test when the call succeeds. */
const invokeFailure = (inputs: Record<string, unknown>, ctx: InvokeContext = context()) => failureOf(invoke(inputs, ctx));

/** The zod issues of `inputs`, as `path: message` lines; fails the test when they are valid. */
function issuesOf(inputs: Record<string, unknown>): string[] {
  const parsed = openaiSchema.safeParse(inputs);
  expect(parsed.success).toBe(false);
  return parsed.error!.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
}

const chat = { operation: 'chat.completions', messages: [{ role: 'user', content: 'hello there' }] };

describe('OPENAI connector', () => {
  let server: OpenAiTestServer;
  let base: Record<string, unknown>;

  beforeEach(async () => {
    server = await startOpenAiServer({ apiKey: API_KEY });
    base = { base_url: server.url, api_key: API_KEY };
  });

  afterEach(async () => {
    await openaiConnector.close?.();
    await server.close();
  });

  describe('operations', () => {
    test('models.list is the default operation and returns the models as plain data', async () => {
      const result = await invoke(base);
      expect(result).toEqual({ data: FIXTURE_MODELS });
      expect(Object.getPrototypeOf(result.data[0])).toBe(Object.prototype);
      expect(server.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /v1/models']);
    });

    test('chat.completions falls back to default_model and returns the completion', async () => {
      const result = await invoke({ ...base, default_model: 'gpt-4o-mini', ...chat });
      expect(result.object).toBe('chat.completion');
      expect(result.model).toBe('gpt-4o-mini');
      expect(result.choices[0].message.content).toBe('echo: hello there');
      expect(result.usage.total_tokens).toBeGreaterThan(0);
      expect(server.requests[0].body.model).toBe('gpt-4o-mini');
    });

    test('a model given with the call wins over default_model', async () => {
      await invoke({ ...base, default_model: 'gpt-4o-mini', model: 'gpt-4.1', ...chat });
      expect(server.requests[0].body.model).toBe('gpt-4.1');
    });

    test('chat.completions passes sampling parameters, tools and extra_body through to the request', async () => {
      const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } }];
      const result = await invoke({
        ...base,
        ...chat,
        model: 'gpt-4o-mini',
        temperature: 0.2,
        max_tokens: 50,
        tools,
        tool_choice: 'auto',
        response_format: { type: 'json_object' },
        extra_body: { seed: 7, stop: ['END'] },
      });
      expect(result.tool_names).toEqual(['get_weather']);
      expect(server.requests[0].body).toEqual({
        model: 'gpt-4o-mini',
        messages: chat.messages,
        temperature: 0.2,
        max_tokens: 50,
        tools,
        tool_choice: 'auto',
        response_format: { type: 'json_object' },
        seed: 7,
        stop: ['END'],
      });
    });

    test('parameters the operation does not take stay out of its request', async () => {
      await invoke({ ...base, temperature: 0.5, max_tokens: 10, operation: 'embeddings', model: 'text-embedding-3-small', input: 'x' });
      expect(server.requests[0].body).not.toHaveProperty('temperature');
      expect(server.requests[0].body).not.toHaveProperty('max_tokens');
    });

    test('embeddings returns one float vector per input', async () => {
      const result = await invoke({ ...base, operation: 'embeddings', model: 'text-embedding-3-small', input: ['first', 'second'] });
      expect(result.data.map((d: Json) => d.embedding)).toEqual([fixtureEmbedding('first'), fixtureEmbedding('second')]);
      expect(result.data[0].embedding).toHaveLength(8);
      expect(result.model).toBe('text-embedding-3-small');
    });

    test('responses returns the response with its output_text', async () => {
      const result = await invoke({ ...base, operation: 'responses', model: 'gpt-4o-mini', instructions: 'Be brief.', input: 'what is up' });
      expect(result.object).toBe('response');
      expect(result.output_text).toBe('echo: what is up');
      expect(server.requests[0].body).toEqual({ model: 'gpt-4o-mini', input: 'what is up', instructions: 'Be brief.' });
    });
  });

  describe('authentication and headers', () => {
    test('the key travels as Authorization: Bearer, organization and project as OpenAI headers', async () => {
      await invoke({ ...base, organization: 'org-fixture', project: 'proj_fixture' });
      const { headers } = server.requests[0];
      expect(headers.authorization).toBe(`Bearer ${API_KEY}`);
      expect(headers['openai-organization']).toBe('org-fixture');
      expect(headers['openai-project']).toBe('proj_fixture');
    });

    test('without organization and project no such headers are sent', async () => {
      await invoke(base);
      expect(server.requests[0].headers).not.toHaveProperty('openai-organization');
      expect(server.requests[0].headers).not.toHaveProperty('openai-project');
    });
  });

  describe('failures', () => {
    test.each([400, 401, 403, 404])('HTTP %i is a non-retryable Connector.External.Http failure with the status in details', async (status) => {
      server.failNext(status);
      const failure = await invokeFailure({ ...base, default_model: 'gpt-4o-mini', ...chat });
      expect(failure.type).toBe('Connector.External.Http');
      expect(failure.nonRetryable).toBe(true);
      expect(failure.details).toEqual([{ status }]);
      expect(failure.message).toContain(`OPENAI chat.completions ${server.url} answered HTTP ${status}`);
      expect(failure.message).toContain('scripted failure');
    });

    test('429 with retry-after: 3 is retryable after 3 s, and the SDK did not retry on its own', async () => {
      server.failNext(429, undefined, { 'retry-after': '3' });
      const failure = await invokeFailure(base);
      expect(failure.type).toBe('Connector.External.Http');
      expect(failure.nonRetryable).toBe(false);
      expect(failure.nextRetryDelay).toBe(3_000);
      expect(server.requests).toHaveLength(1);
    });

    test('retry-after-ms wins over retry-after', async () => {
      server.failNext(429, undefined, { 'retry-after': '3', 'retry-after-ms': '1500' });
      expect((await invokeFailure(base)).nextRetryDelay).toBe(1_500);
    });

    test('500 is retryable, and the SDK did not retry on its own', async () => {
      server.failNext(500);
      const failure = await invokeFailure({ ...base, operation: 'embeddings', model: 'm', input: 'x' });
      expect(failure.type).toBe('Connector.External.Http');
      expect(failure.nonRetryable).toBe(false);
      expect(failure.details).toEqual([{ status: 500 }]);
      expect(server.requests).toHaveLength(1);
    });

    test('a refused key says so, and the key never appears in the message although the API quoted it', async () => {
      const failure = await invokeFailure({ ...base, api_key: WRONG_KEY });
      expect(failure.message).toContain('answered HTTP 401 Unauthorized');
      expect(failure.message).toContain('the API refused the key');
      expect(failure.message).toContain('Incorrect API key provided: ***');
      expect(failure.message).not.toContain(WRONG_KEY);
      expect(JSON.stringify(failure.details)).not.toContain(WRONG_KEY);
    });

    test('an error body that is not OpenAI-shaped is not quoted', async () => {
      server.failNext(502, '<html>proxy page with internal-host-name</html>');
      const failure = await invokeFailure(base);
      expect(failure.message).toBe(`OPENAI models.list ${server.url} answered HTTP 502 Bad Gateway`);
    });

    test('a refused connection is a retryable Connector.External.Network failure', async () => {
      const failure = await invokeFailure({ ...base, base_url: `${await unusedLocalUrl()}/v1` });
      expect(failure.type).toBe('Connector.External.Network');
      expect(failure.nonRetryable).toBe(false);
      expect(failure.message).toContain('ECONNREFUSED');
    });

    test('a timeout shorter than the answer gives a retryable Connector.External.Timeout failure', async () => {
      server.delayNext(2_000);
      const started = Date.now();
      const failure = await invokeFailure({ ...base, timeout: '200ms' });
      expect(Date.now() - started).toBeLessThan(1_500);
      expect(failure.type).toBe('Connector.External.Timeout');
      expect(failure.nonRetryable).toBe(false);
      expect(failure.message).toBe(`OPENAI models.list ${server.url} failed: no answer within 200 ms (timeout)`);
      expect(server.requests).toHaveLength(1);
    });
  });

  describe('cancellation and liveness', () => {
    test('cancelling the activity aborts the call in flight and rethrows the cancellation reason', async () => {
      server.delayNext(5_000);
      const controller = new AbortController();
      const reason = new Error('activity cancelled');
      const started = Date.now();
      const pending = invoke({ ...base, default_model: 'gpt-4o-mini', ...chat }, context({ signal: controller.signal }));
      await waitFor(() => server.requests.length === 1);
      controller.abort(reason);
      await expect(pending).rejects.toBe(reason);
      expect(Date.now() - started).toBeLessThan(2_000);
    });

    test('an already cancelled activity sends nothing', async () => {
      const controller = new AbortController();
      const reason = new Error('cancelled before start');
      controller.abort(reason);
      await expect(invoke(base, context({ signal: controller.signal }))).rejects.toBe(reason);
      expect(server.requests).toHaveLength(0);
    });

    test('a slow call heartbeats while in flight, and stops when it ends', async () => {
      const connector = createOpenAiConnector({ heartbeatIntervalMs: 20 });
      let heartbeats = 0;
      server.delayNext(300);
      await invoke(base, context({ heartbeat: () => void heartbeats++ }), connector);
      const afterCall = heartbeats;
      expect(afterCall).toBeGreaterThanOrEqual(5);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(heartbeats).toBe(afterCall);
    });
  });

  describe('client pools', () => {
    test('calls through one pool key reuse one connection, and close() releases it', async () => {
      const ctx = context({ poolKey: 'my_openai@1' });
      await invoke(base, ctx);
      await invoke(base, ctx);
      expect(server.requests[1].remotePort).toBe(server.requests[0].remotePort);
      await openaiConnector.close?.('my_openai@1');
      await invoke(base, ctx);
      expect(server.requests[2].remotePort).not.toBe(server.requests[0].remotePort);
    });

    test("calls alternating between two versions do not close each other's clients, and only the newest version's client stays open", async () => {
      for (let i = 0; i < 4; i++) server.delayNext(300);
      const answers = await Promise.all(['my_openai@1', 'my_openai@2', 'my_openai@1', 'my_openai@2'].map((poolKey) => invoke(base, context({ poolKey }))));
      expect(answers).toEqual(Array(4).fill({ data: FIXTURE_MODELS }));
      expect(openaiConnector.pools?.list()).toEqual([{ poolKey: 'my_openai@2', leases: 0, retired: false }]);
    });

    test('a new key under the same pool key is used at once (e.g. rotated in Vault)', async () => {
      const ctx = context({ poolKey: 'my_openai@1' });
      await invokeFailure({ ...base, api_key: WRONG_KEY }, ctx);
      await invoke(base, ctx);
      expect(server.requests.map((r) => r.headers.authorization)).toEqual([`Bearer ${WRONG_KEY}`, `Bearer ${API_KEY}`]);
    });
  });

  describe('inputs', () => {
    test('defaults: OpenAI base URL, models.list, 60 s timeout; api_key is the sensitive field', () => {
      expect(openaiSchema.parse({ api_key: 'k' })).toEqual({ api_key: 'k', base_url: 'https://api.openai.com/v1', operation: 'models.list', timeout: 60_000 });
      expect(openaiConnector.sensitive).toEqual(['api_key']);
    });

    test('an unknown key is rejected by name', () => {
      const parsed = openaiSchema.safeParse({ api_key: 'k', max_retries: 3 });
      expect(parsed.success).toBe(false);
      expect(JSON.stringify(parsed.error!.issues)).toContain('max_retries');
    });

    test('stream: true is refused, naming stream', () => {
      expect(issuesOf({ api_key: 'k', model: 'm', ...chat, stream: true })).toEqual([expect.stringMatching(/^stream: streaming is not supported/)]);
      expect(openaiSchema.safeParse({ api_key: 'k', model: 'm', ...chat, stream: false }).success).toBe(true);
    });

    test('chat.completions without model and without default_model is refused, naming model', () => {
      expect(issuesOf({ api_key: 'k', ...chat })).toEqual([expect.stringMatching(/^model: chat.completions needs a model/)]);
    });

    test('each operation names its missing payload', () => {
      expect(issuesOf({ api_key: 'k', model: 'm', operation: 'chat.completions' })).toEqual([expect.stringMatching(/^messages: /)]);
      expect(issuesOf({ api_key: 'k', model: 'm', operation: 'embeddings' })).toEqual([expect.stringMatching(/^input: /)]);
      expect(issuesOf({ api_key: 'k', model: 'm', operation: 'responses' })).toEqual([expect.stringMatching(/^input: /)]);
    });

    test('messages without operation chat.completions are refused rather than silently ignored', () => {
      expect(issuesOf({ api_key: 'k', messages: chat.messages })).toEqual([expect.stringMatching(/^messages: .*operation is models.list/)]);
    });

    test('out-of-range parameters are refused, naming them', () => {
      const issues = issuesOf({ api_key: 'k', model: 'm', ...chat, temperature: 3, max_tokens: 0, timeout: 'soon' });
      expect(issues.map((issue) => issue.split(':')[0]).sort()).toEqual(['max_tokens', 'temperature', 'timeout']);
    });

    test('extra_body may not repeat a parameter that has its own input', () => {
      expect(issuesOf({ api_key: 'k', model: 'm', ...chat, extra_body: { stream: true, seed: 1 } })).toEqual([
        'extra_body.stream: give stream as its own input, not in extra_body',
      ]);
    });

    test('describeCall names the operation and model, and never throws', () => {
      const describe = openaiConnector.describeCall!;
      expect(describe({ operation: 'chat.completions', model: 'gpt-4o-mini' })).toBe('chat.completions gpt-4o-mini');
      expect(describe({ operation: 'embeddings', default_model: 'text-embedding-3-small' })).toBe('embeddings text-embedding-3-small');
      expect(describe({ api_key: 'k' })).toBe('models.list');
      expect(describe({ operation: 'images.generate' })).toBeUndefined();
      expect(describe({ operation: { nested: true }, model: 7 })).toBeUndefined();
    });
  });

  describe('connection test', () => {
    test('lists the models and reports how many, where and how fast', async () => {
      const result = await openaiConnector.test(openaiSchema.parse(base), context());
      expect(result.ok).toBe(true);
      expect(result.message).toMatch(new RegExp(`^2 models available at ${server.url} \\(in \\d+ ms\\)$`));
      expect(result.latency_ms).toBeGreaterThanOrEqual(0);
    });

    test('a wrong key gives ok false with a sentence saying the key was refused, without the key', async () => {
      const result = await openaiConnector.test(openaiSchema.parse({ ...base, api_key: WRONG_KEY }), context());
      expect(result.ok).toBe(false);
      expect(result.message).toContain('refused the key (HTTP 401 Unauthorized)');
      expect(result.message).not.toContain(WRONG_KEY);
    });

    test('a closed port gives ok false with a sentence about the refused connection', async () => {
      const url = `${await unusedLocalUrl()}/v1`;
      const result = await openaiConnector.test(openaiSchema.parse({ ...base, base_url: url }), context());
      expect(result.ok).toBe(false);
      expect(result.message).toBe(`Could not reach ${url}: the connection was refused: nothing listens at that address and port (ECONNREFUSED).`);
    });
  });
});
