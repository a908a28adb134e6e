import { z } from 'zod';
import { sensitivePaths } from './sensitivity';
import type { DelegatingConnectorType } from './types';

/**
 * An AI agent profile: a model, a system prompt, sampling settings and tools on top of a stored
 * OPENAI connector, which it references by name. Calls go through that connector, so its key,
 * base URL and Vault secrets apply to every agent that uses it.
 */
export const agentSchema = z
  .object({
    connector: z
      .string()
      .min(1, 'must name a stored OPENAI connector')
      .meta({ description: 'Name of the stored OPENAI (or OpenAI-compatible) connector to call through. Required.', examples: ['my_openai_connector'] }),
    model: z.string().min(1).optional().meta({ description: "Model. Default: the connector's `default_model`.", examples: ['gpt-4o-mini'] }),
    system_prompt: z.string().optional().describe('System prompt, sent as the first message. Default: none.'),
    temperature: z.number().min(0).max(2).optional().describe("Sampling temperature, 0 to 2. Default: the model's."),
    max_tokens: z.number().int().positive().optional().describe("Most tokens to generate. Default: the model's."),
    tools: z
      .array(z.record(z.string(), z.unknown()).describe('One tool definition, e.g. `{ type: function, function: { name, parameters } }`.'))
      .optional()
      .describe('Tool (function) definitions in the Chat Completions format. Default: none.'),
    messages: z
      .array(
        z
          .object({
            role: z.string().min(1).meta({ description: 'Who speaks: `system`, `user`, `assistant` or `tool`.', examples: ['user'] }),
            content: z.unknown().describe('What is said: a string, or an array of content parts.'),
          })
          .loose()
          .describe('One message: `role` and `content`, plus any other message fields the API takes.'),
      )
      .min(1, 'must hold at least one message: pass them to runAgent(name, messages)')
      .describe('The conversation of this call; `runAgent(name, messages)` supplies it, so a profile leaves it out.'),
  })
  .strict();

export const agentConnector: DelegatingConnectorType<typeof agentSchema> = {
  name: 'AGENT',
  description: 'An AI agent profile (model, system prompt, temperature, tools) that calls through a stored OPENAI connector',
  schema: agentSchema,
  // Nothing in agentSchema is marked: the agent's secrets are its OPENAI connector's.
  sensitive: sensitivePaths(agentSchema),
  delegate(inputs) {
    const messages = inputs.system_prompt ? [{ role: 'system', content: inputs.system_prompt }, ...inputs.messages] : inputs.messages;
    const overrides: Record<string, unknown> = { operation: 'chat.completions', messages };
    for (const key of ['model', 'temperature', 'max_tokens', 'tools'] as const) {
      if (inputs[key] !== undefined) overrides[key] = inputs[key];
    }
    return { connector: inputs.connector, overrides };
  },
  describeCall(inputs) {
    return typeof inputs.connector === 'string' ? `via ${inputs.connector}${typeof inputs.model === 'string' ? ` ${inputs.model}` : ''}` : undefined;
  },
};
