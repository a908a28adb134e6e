// The model ↔ tool loop through the runner alone (no Temporal): the embedded store, a real
// OpenAI-compatible server and a real MCP server.
import { randomBytes } from 'node:crypto';
import { builtInTypes, ConnectorRegistry } from '../../connectors/registry';
import { Keyring } from '../../core/keyring';
import { createConnectionRunner } from '../../core/runner';
import { ConnectorService } from '../../core/service';
import { ConnectorStore } from '../../core/store/connector-store';
import { PgliteDatabase } from '../../core/store/database';
import { startMcpServer } from '../fixtures/mcp-server';
import { FIXTURE_API_KEY, startOpenAiServer } from '../fixtures/openai-server';
import { failureOf } from '../support/connector-calls';
import { recordSecrets } from '../support/leak-sweep';

const MCP_TOKEN = `mcp-loop-tok-${randomBytes(8).toString('hex')}`;
const WRONG_TOKEN = `mcp-loop-wrong-${randomBytes(8).toString('hex')}`;
const OTHER_TOKEN = `mcp-loop-other-${randomBytes(8).toString('hex')}`;
recordSecrets('the MCP tokens of agent-loop.test.ts', [MCP_TOKEN, WRONG_TOKEN, OTHER_TOKEN]);

describe('an agent’s tool loop, through the runner', () => {
  let store: ConnectorStore;
  let service: ConnectorService;
  let llm: Awaited<ReturnType<typeof startOpenAiServer>>;
  let mcp: Awaited<ReturnType<typeof startMcpServer>>;
  const run = (agent: string) =>
    createConnectionRunner({ service }).run({ connector: agent, overrides: { messages: [{ role: 'user', content: 'hi' }] } }, { signal: new AbortController().signal });

  beforeAll(async () => {
    store = new ConnectorStore(await PgliteDatabase.open());
    await store.migrate();
    service = new ConnectorService({ store, registry: new ConnectorRegistry(builtInTypes()), keyring: new Keyring([{ id: 'k1', key: randomBytes(32) }]) });
    [llm, mcp] = await Promise.all([startOpenAiServer(), startMcpServer({ token: MCP_TOKEN })]);
    await service.apply({ name: 'llm', type: 'OPENAI', value: { base_url: llm.url, api_key: FIXTURE_API_KEY, default_model: 'fixture-small' } });
  });
  afterAll(async () => {
    await service?.registry.close();
    await store?.close();
    await llm?.close();
    await mcp?.close();
  });

  test('a tool connector whose token is refused fails the run naming that connector, not the model’s', async () => {
    await service.apply({ name: 'desk_wrong', type: 'MCP', value: { url: mcp.url, bearer_token: WRONG_TOKEN } });
    await service.apply({ name: 'agent_wrong', type: 'AGENT', value: { connector: 'llm', tool_connectors: ['desk_wrong'] } });
    const failure = await failureOf(run('agent_wrong'));
    expect(failure.type).toBe('Connector.External.Auth');
    expect(failure.message).toMatch(/^MCP connector desk_wrong /);
    expect(failure.message).not.toContain('connector llm');
    expect(failure.message).not.toContain(WRONG_TOKEN);
  });

  test('arguments the tool connector locks go back to the model as a tool error, and the model may correct itself; nothing reaches the tool', async () => {
    await service.apply({ name: 'desk_locked', type: 'MCP', value: { url: mcp.url, bearer_token: MCP_TOKEN, arguments: { id: 'A-1' } }, locked: ['arguments.id'] });
    await service.apply({ name: 'agent_locked', type: 'AGENT', value: { connector: 'llm', tool_connectors: ['desk_locked'] } });
    const callsBefore = mcp.toolCalls.length;
    llm.replyNext({ tool_calls: [{ name: 'desk_locked__lookup_order', arguments: { id: 'Z-9' } }] });
    llm.replyNext({ tool_calls: [{ name: 'desk_locked__lookup_order', arguments: {} }] });
    llm.replyNext({ content: (messages) => messages.filter((m) => m.role === 'tool').map((m) => String(m.content)).join(' | ') });
    const result = await run('agent_locked');
    const output = result.output as { answer: string; steps: Array<{ is_error: boolean; result: string }> };
    expect(output.steps.map((s) => s.is_error)).toEqual([true, false]);
    expect(output.steps[0].result).toContain('locks arguments.id');
    expect(output.answer).toMatch(/locks arguments\.id.* \| .*"id":"A-1"/);
    // The refused call never reached the server; the corrected one ran with the profile's id.
    expect(mcp.toolCalls.slice(callsBefore)).toEqual([{ name: 'lookup_order', arguments: { id: 'A-1' } }]);
  });

  test('a tool name the model makes up is recorded cut to 64 characters, in the steps and the heartbeats', async () => {
    await service.apply({ name: 'desk_ok', type: 'MCP', value: { url: mcp.url, bearer_token: MCP_TOKEN } });
    await service.apply({ name: 'agent_names', type: 'AGENT', value: { connector: 'llm', tool_connectors: ['desk_ok'] } });
    const made_up = 'n'.repeat(100_000);
    llm.replyNext({ tool_calls: [{ name: made_up, arguments: {} }, { name: 'desk_ok__add', arguments: { a: 1, b: 2 } }] });
    llm.replyNext({ content: 'done' });
    const beats: unknown[] = [];
    const result = await createConnectionRunner({ service }).run(
      { connector: 'agent_names', overrides: { messages: [{ role: 'user', content: 'hi' }] } },
      { signal: new AbortController().signal, heartbeat: (details) => beats.push(details) },
    );
    const steps = (result.output as { steps: Array<{ tool: string; is_error: boolean }> }).steps;
    expect(steps.map((s) => [s.tool.length, s.is_error])).toEqual([
      [64, true],
      ['desk_ok__add'.length, false],
    ]);
    expect(Math.max(...beats.map((b) => JSON.stringify(b ?? null).length))).toBeLessThan(200);
  });

  test('a tool that echoes another tool connector’s credential gives the model neither: the loop redacts every secret of the conversation', async () => {
    const logs = await startMcpServer({ token: MCP_TOKEN, otherTokens: [OTHER_TOKEN], accessLogTool: true });
    try {
      await service.apply({ name: 'desk_logs', type: 'MCP', value: { url: logs.url, bearer_token: MCP_TOKEN } });
      await service.apply({ name: 'desk_other', type: 'MCP', value: { url: logs.url, bearer_token: OTHER_TOKEN } });
      await service.apply({ name: 'agent_logs', type: 'AGENT', value: { connector: 'llm', tool_connectors: ['desk_other', 'desk_logs'] } });
      const llmBefore = llm.requests.length;
      llm.replyNext({ tool_calls: [{ name: 'desk_logs__access_log', arguments: {} }] });
      llm.replyNext({ content: 'done' });
      const result = await run('agent_logs');
      const sent = JSON.stringify(llm.requests.slice(llmBefore));
      expect(sent).toContain('Bearer ********');
      expect(sent).not.toContain(OTHER_TOKEN);
      expect(sent).not.toContain(MCP_TOKEN);
      expect(JSON.stringify(result)).not.toContain(OTHER_TOKEN);
    } finally {
      await logs.close();
    }
  });
});
