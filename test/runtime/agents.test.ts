import { randomBytes } from 'node:crypto';
import { FIXTURE_ORDERS, startMcpServer } from '../fixtures/mcp-server';
import { FIXTURE_API_KEY, startOpenAiServer } from '../fixtures/openai-server';
import { historyText, startHarness, type Harness } from '../support/harness';
import { recordSecrets } from '../support/leak-sweep';
import { uniqueName } from '../support/stack';

// The tool server's token: distinctive, so a leak cannot be a coincidence.
const MCP_TOKEN = `mcp-agent-tok-${randomBytes(8).toString('hex')}`;
recordSecrets('the MCP token of agents.test.ts', [MCP_TOKEN]);

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- results are read field by field

type Outcome = { output?: { choices: Array<{ message: { content: string } }> }; error?: { type: string | null; message: string } };

// Agent profiles call through a stored OPENAI connector, against a real OpenAI-compatible server via the real SDK.
describe('AI agent profiles', () => {
  let h: Harness;
  let llm: Awaited<ReturnType<typeof startOpenAiServer>>;
  let mcp: Awaited<ReturnType<typeof startMcpServer>>;

  beforeAll(async () => {
    [h, llm, mcp] = await Promise.all([startHarness(), startOpenAiServer(), startMcpServer({ token: MCP_TOKEN })]);
  });
  afterAll(async () => {
    await h?.shutdown();
    await llm?.close();
    await mcp?.close();
  });

  const options = () => ({ taskQueue: h.connectorQueue, retry: { maximumAttempts: 1 } });

  test('runAgent sends the profile’s model, system prompt, temperature and tools through the named connector', async () => {
    const openai = uniqueName('llm').toLowerCase();
    const agent = uniqueName('support').toLowerCase();
    await h.service.apply({ name: openai, type: 'OPENAI', value: { base_url: llm.url, api_key: FIXTURE_API_KEY } });
    await h.service.apply({
      name: agent,
      type: 'AGENT',
      value: {
        connector: openai,
        model: 'fixture-small',
        system_prompt: 'You are a support agent.',
        temperature: 0.2,
        tools: [{ type: 'function', function: { name: 'lookup_order', parameters: { type: 'object', properties: {} } } }],
      },
    });
    const { result, workflowId } = await h.run<Outcome>('agent', { agent, messages: [{ role: 'user', content: 'where is my order?' }], options: options() });
    expect(result.error).toBeUndefined();
    expect(result.output!.choices[0].message.content).toBe('echo: where is my order?');
    const sent = llm.requests[llm.requests.length - 1];
    expect(sent.path).toBe('/v1/chat/completions');
    expect(sent.body).toMatchObject({
      model: 'fixture-small',
      temperature: 0.2,
      messages: [
        { role: 'system', content: 'You are a support agent.' },
        { role: 'user', content: 'where is my order?' },
      ],
      tools: [{ type: 'function', function: { name: 'lookup_order' } }],
    });

    const child = h.client.workflow.getHandle(`${workflowId}/connection/1`);
    const details = await child.result();
    expect(details.connector).toMatchObject({ name: agent, type: 'AGENT', version: 1 });
    expect(details.via).toMatchObject({ name: openai, type: 'OPENAI', version: 1 });
    expect(details.sources).toMatchObject({ api_key: 'profile', model: `agent:${agent}`, messages: `agent:${agent}` });
    expect(details.inputs.api_key).toBe('********');
    expect((await child.describe()).searchAttributes).toMatchObject({ ConnectorName: [agent], ConnectorType: ['AGENT'] });
  });

  test('changing the OPENAI connector’s key changes every agent that uses it', async () => {
    const openai = uniqueName('llmkey').toLowerCase();
    const agents = [uniqueName('a1').toLowerCase(), uniqueName('a2').toLowerCase()];
    await h.service.apply({ name: openai, type: 'OPENAI', value: { base_url: llm.url, api_key: 'sk-old-key-0001', default_model: 'fixture-small' } });
    for (const agent of agents) await h.service.apply({ name: agent, type: 'AGENT', value: { connector: openai } });
    const ask = (agent: string) => h.run<Outcome>('agent', { agent, messages: [{ role: 'user', content: 'hi' }], options: options() });

    for (const agent of agents) {
      const { result } = await ask(agent);
      expect(result.error).toMatchObject({ type: 'Connector.External.Http' });
      expect(result.error!.message).toContain('401');
      expect(result.error!.message).not.toContain('sk-old-key-0001');
    }
    const current = await h.service.get(openai);
    await h.service.apply({ name: openai, type: 'OPENAI', value: { ...current.value, api_key: FIXTURE_API_KEY } });
    for (const agent of agents) {
      const { result } = await ask(agent);
      expect(result.error).toBeUndefined();
      expect(result.output!.choices[0].message.content).toBe('echo: hi');
    }
  });

  test('an agent cannot override what its connector locks, and a delegation loop is refused', async () => {
    const openai = uniqueName('llmlock').toLowerCase();
    const agent = uniqueName('locked').toLowerCase();
    await h.service.apply({ name: openai, type: 'OPENAI', value: { base_url: llm.url, api_key: FIXTURE_API_KEY, default_model: 'fixture-small' }, locked: ['model'] });
    await h.service.apply({ name: agent, type: 'AGENT', value: { connector: openai, model: 'fixture-large' } });
    const locked = await h.run<Outcome>('agent', { agent, messages: [{ role: 'user', content: 'x' }], options: options() });
    expect(locked.result.error).toMatchObject({ type: 'Connector.LockedField', message: expect.stringContaining('model') });

    const loop = uniqueName('loop').toLowerCase();
    await h.service.apply({ name: loop, type: 'AGENT', value: { connector: loop } });
    const looped = await h.run<Outcome>('agent', { agent: loop, messages: [{ role: 'user', content: 'x' }], options: options() });
    expect(looped.result.error).toMatchObject({ type: 'Connector.InvalidInput', message: expect.stringContaining('loops') });
  });

  describe('with MCP connectors as tools', () => {
    /** An OPENAI connector, an MCP connector and an agent using its tools, under fresh names. */
    async function agentWithTools(value: Record<string, unknown> = {}) {
      const openai = uniqueName('llmtools').toLowerCase();
      const desk = uniqueName('desk').toLowerCase();
      const agent = uniqueName('tooled').toLowerCase();
      await h.service.apply({ name: openai, type: 'OPENAI', value: { base_url: llm.url, api_key: FIXTURE_API_KEY, default_model: 'fixture-small' } });
      await h.service.apply({ name: desk, type: 'MCP', value: { url: mcp.url, bearer_token: MCP_TOKEN } });
      await h.service.apply({ name: agent, type: 'AGENT', value: { connector: openai, system_prompt: 'You run the order desk.', tool_connectors: [desk], ...value } });
      return { openai, desk, agent };
    }
    const toolMessages = (messages: Json[]) => messages.filter((m) => m.role === 'tool').map((m) => m.content);

    test('a two-step tool loop: each tool call goes through the MCP connector with its token, and the answer uses both results', async () => {
      const { desk, agent } = await agentWithTools();
      const llmBefore = llm.requests.length;
      const mcpBefore = mcp.requests.length;
      llm.replyNext({ tool_calls: [{ name: `${desk}__add`, arguments: { a: 2, b: 3 } }] });
      llm.replyNext({ tool_calls: [{ name: `${desk}__lookup_order`, arguments: { id: 'A-1' } }] });
      llm.replyNext({ content: (messages) => `sum ${toolMessages(messages)[0]}; order ${JSON.parse(toolMessages(messages)[1]).status}` });

      const { result, workflowId } = await h.run<Json>('agent', { agent, messages: [{ role: 'user', content: 'add 2 and 3, then find order A-1' }], options: options() });
      expect(result.error).toBeUndefined();
      expect(result.output.answer).toBe('sum 5; order shipped');
      expect(result.output.steps).toEqual([
        { tool: `${desk}__add`, connector: desk, name: 'add', arguments: { a: 2, b: 3 }, result: '5', is_error: false, duration_ms: expect.any(Number) },
        { tool: `${desk}__lookup_order`, connector: desk, name: 'lookup_order', arguments: { id: 'A-1' }, result: JSON.stringify(FIXTURE_ORDERS['A-1']), is_error: false, duration_ms: expect.any(Number) },
      ]);
      expect(mcp.toolCalls.slice(-2)).toEqual([
        { name: 'add', arguments: { a: 2, b: 3 } },
        { name: 'lookup_order', arguments: { id: 'A-1' } },
      ]);

      // The model was offered the tools, got their results, and was called three times.
      const chats = llm.requests.slice(llmBefore);
      expect(chats.map((r) => r.path)).toEqual(['/v1/chat/completions', '/v1/chat/completions', '/v1/chat/completions']);
      expect(chats[0].body.tools.map((t: Json) => t.function.name)).toEqual([`${desk}__add`, `${desk}__lookup_order`, `${desk}__echo_auth`, `${desk}__wait`]);
      expect(chats[0].body.messages).toEqual([
        { role: 'system', content: 'You run the order desk.' },
        { role: 'user', content: 'add 2 and 3, then find order A-1' },
      ]);
      expect(toolMessages(chats[2].body.messages)).toEqual(['5', JSON.stringify(FIXTURE_ORDERS['A-1'])]);

      // The token first where it must be: on every request the tool server received ...
      const received = mcp.requests.slice(mcpBefore);
      expect(received.filter((r) => r.rpc === 'tools/call')).toHaveLength(2);
      for (const request of received) expect(request.headers.authorization).toBe(`Bearer ${MCP_TOKEN}`);
      // ... and nowhere the model could see it, nor in the histories.
      expect(JSON.stringify(chats)).not.toContain(MCP_TOKEN);
      for (const id of [workflowId, `${workflowId}/connection/1`]) expect(await historyText(h.client, id)).not.toContain(MCP_TOKEN);

      // The Web UI shows the steps with their durations in the connection's result.
      const details = await h.client.workflow.getHandle(`${workflowId}/connection/1`).result();
      expect(details.output.steps).toHaveLength(2);
      expect(details.via).toMatchObject({ type: 'OPENAI' });
    });

    test('a tool that echoes its credential gives the model the redacted text; a tool error goes back to the model', async () => {
      const { desk, agent } = await agentWithTools();
      const llmBefore = llm.requests.length;
      llm.replyNext({ tool_calls: [{ name: `${desk}__echo_auth`, arguments: {} }, { name: `${desk}__lookup_order`, arguments: { id: 'Z-9' } }] });
      llm.replyNext({ content: (messages) => toolMessages(messages).join(' | ') });
      const { result } = await h.run<Json>('agent', { agent, messages: [{ role: 'user', content: 'who am I?' }], options: options() });
      expect(result.error).toBeUndefined();
      expect(result.output.answer).toBe('you sent: Bearer ******** | no order Z-9');
      expect(result.output.steps.map((s: Json) => [s.name, s.is_error])).toEqual([
        ['echo_auth', false],
        ['lookup_order', true],
      ]);
      // The tool server did receive the token (it echoed it) ...
      expect(mcp.requests[mcp.requests.length - 1].headers.authorization).toBe(`Bearer ${MCP_TOKEN}`);
      // ... and the model never saw it.
      expect(JSON.stringify(llm.requests.slice(llmBefore))).not.toContain(MCP_TOKEN);
    });

    test('a model that asks for more tool calls than max_steps fails clearly, not retried', async () => {
      const { desk, agent } = await agentWithTools({ max_steps: 2 });
      const toolCallsBefore = mcp.toolCalls.length;
      llm.replyNext({ tool_calls: [{ name: `${desk}__add`, arguments: { a: 1, b: 1 } }] });
      llm.replyNext({ tool_calls: [{ name: `${desk}__add`, arguments: { a: 1, b: 2 } }] });
      llm.replyNext({ tool_calls: [{ name: `${desk}__add`, arguments: { a: 1, b: 3 } }] });
      const { result } = await h.run<Json>('agent', { agent, messages: [{ role: 'user', content: 'keep adding' }], options: { taskQueue: h.connectorQueue, retry: { maximumAttempts: 3, initialInterval: '50ms' } } });
      expect(result.error).toMatchObject({ type: 'Connector.Agent.MaxSteps', nonRetryable: true });
      expect(result.error.message).toBe(`agent ${agent}: the model asked for tool call 3 (${desk}__add), but max_steps is 2; raise max_steps (at most 50) or narrow the task`);
      // Two tool calls made, once each: the failure was not retried.
      expect(mcp.toolCalls.length - toolCallsBefore).toBe(2);
    });

    test('each tool call obeys the limits of the tool connector it goes through', async () => {
      const { desk, agent } = await agentWithTools();
      await h.service.apply({ name: desk, type: 'MCP', value: { url: mcp.url, bearer_token: MCP_TOKEN }, limits: { rate: { calls: 2, per: '1h' } } });
      const toolCallsBefore = mcp.toolCalls.length;
      llm.replyNext({ tool_calls: [{ name: `${desk}__add`, arguments: { a: 1, b: 1 } }] });
      llm.replyNext({ tool_calls: [{ name: `${desk}__add`, arguments: { a: 2, b: 2 } }] });
      llm.replyNext({ content: 'unreachable' });
      const { result } = await h.run<Json>('agent', { agent, messages: [{ role: 'user', content: 'add twice' }], options: options() });
      // Listing the tools and the first call took the two starts the hour allows; the second call was not sent.
      expect(result.error).toMatchObject({ type: 'Connector.Limits.Busy', nonRetryable: false });
      expect(result.error.message).toContain(`connector ${desk}: the call was not sent`);
      expect(mcp.toolCalls.slice(toolCallsBefore)).toEqual([{ name: 'add', arguments: { a: 1, b: 1 } }]);
    });

    test('a tool connector that offers no tools is refused, naming it; max_steps is bounded', async () => {
      const { openai } = await agentWithTools();
      const agent = uniqueName('notools').toLowerCase();
      await h.service.apply({ name: agent, type: 'AGENT', value: { connector: openai, tool_connectors: [openai] } });
      const { result } = await h.run<Json>('agent', { agent, messages: [{ role: 'user', content: 'x' }], options: options() });
      expect(result.error).toMatchObject({ type: 'Connector.InvalidInput', message: `agent ${agent}: tool_connectors names ${openai} (type OPENAI), which offers no tools (MCP connectors do)` });
      await expect(h.service.apply({ name: uniqueName('toomany').toLowerCase(), type: 'AGENT', value: { connector: openai, tool_connectors: [openai], max_steps: 51 } })).rejects.toThrow(/max_steps/);
    });
  });
});
