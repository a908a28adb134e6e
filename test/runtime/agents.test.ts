import { FIXTURE_API_KEY, startOpenAiServer } from '../fixtures/openai-server';
import { startHarness, type Harness } from '../support/harness';
import { uniqueName } from '../support/stack';

type Outcome = { output?: { choices: Array<{ message: { content: string } }> }; error?: { type: string | null; message: string } };

// Agent profiles call through a stored OPENAI connector, against a real OpenAI-compatible server via the real SDK.
describe('AI agent profiles', () => {
  let h: Harness;
  let llm: Awaited<ReturnType<typeof startOpenAiServer>>;

  beforeAll(async () => {
    [h, llm] = await Promise.all([startHarness(), startOpenAiServer()]);
  });
  afterAll(async () => {
    await h?.shutdown();
    await llm?.close();
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
});
