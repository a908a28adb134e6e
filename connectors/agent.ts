import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { FailureType, permanentFailure } from './errors';
import { sensitivePaths } from './sensitivity';
import type { ConversationPort, DelegatingConnectorType } from './types';

/** Most tool calls one agent run makes when the profile does not say: 10. */
export const AGENT_DEFAULT_MAX_STEPS = 10;
/** Highest `max_steps` a profile may set: 50. Each step is a tool call and one more model call in the same attempt. */
export const AGENT_MAX_STEPS_LIMIT = 50;
/** Longest tool result text a step records: 2,000 characters (the model gets up to {@link TOOL_TEXT_FOR_MODEL}). */
export const STEP_RESULT_CHARS = 2_000;
/** Longest tool result text handed to the model: 20,000 characters. */
export const TOOL_TEXT_FOR_MODEL = 20_000;

// Chat Completions function names: letters, digits, `_` and `-`, at most 64 characters.
const FUNCTION_NAME_MAX = 64;

/**
 * An AI agent profile: a model, a system prompt, sampling settings and tools on top of a stored
 * OPENAI connector, which it references by name. Calls go through that connector, so its key,
 * base URL and Vault secrets apply to every agent that uses it. With `tool_connectors` it runs the
 * model ↔ tool loop, each tool call through the tool's own connector.
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
      .describe('Tool (function) definitions in the Chat Completions format, returned to the caller when the model calls one. Default: none. Not with `tool_connectors`.'),
    tool_connectors: z
      .array(z.string().min(1))
      .min(1)
      .max(20)
      .optional()
      .meta({
        description:
          'Stored MCP connectors whose tools the agent may call: their tools are offered to the model as `<connector>__<tool>`, and each call the model asks for goes through that connector, with its own secrets, limits and destination. The agent then answers `{ answer, steps, completion }`. Default: none (one chat call).',
        examples: [['orders_mcp']],
      }),
    max_steps: z
      .number()
      .int()
      .min(1)
      .max(AGENT_MAX_STEPS_LIMIT)
      .default(AGENT_DEFAULT_MAX_STEPS)
      .describe('Most tool calls one run may make (with `tool_connectors`); the model asking for one more fails the call with `Connector.Agent.MaxSteps`. Default 10, at most 50.'),
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
  .strict()
  .superRefine((inputs, ctx) => {
    // A tool the model could call but nobody runs would end the loop with a half-done task.
    if (inputs.tools && inputs.tool_connectors) ctx.addIssue({ code: 'custom', path: ['tools'], message: 'give tools or tool_connectors, not both' });
    const names = inputs.tool_connectors ?? [];
    const twice = names.find((name, i) => names.indexOf(name) !== i);
    if (twice) ctx.addIssue({ code: 'custom', path: ['tool_connectors'], message: `names ${twice} twice` });
  });

export type AgentInputs = z.output<typeof agentSchema>;

/** One tool call of an agent run, as its result records it. */
export interface AgentStep {
  /** The function name the model used, e.g. `orders_mcp__lookup_order`. */
  tool: string;
  /** The stored connector that ran it, and the tool's own name there. */
  connector: string;
  name: string;
  arguments: unknown;
  /** The tool's text (its text content, else its structured content as JSON), cut to 2,000 characters. */
  result: string;
  is_error: boolean;
  duration_ms: number;
}

/** `connector__tool`, made a valid function name, unique within `taken`. */
function functionName(connector: string, tool: string, taken: ReadonlyMap<string, unknown>): string {
  const plain = `${connector}__${tool}`.replace(/[^a-zA-Z0-9_-]/g, '_');
  if (plain.length <= FUNCTION_NAME_MAX && !taken.has(plain)) return plain;
  // Long or clashing after the replacement: a hash of the original names keeps it unique and stable.
  const hash = createHash('sha256').update(`${connector}\0${tool}`).digest('hex').slice(0, 10);
  return `${plain.slice(0, FUNCTION_NAME_MAX - hash.length - 1)}_${hash}`;
}

/** What the model reads of a tool result: its text parts, else its structured content, else the whole result, as text. */
function toolText(result: unknown): { text: string; isError: boolean } {
  const r = (result ?? {}) as { content?: unknown; structuredContent?: unknown; isError?: unknown };
  const parts = Array.isArray(r.content) ? r.content : [];
  const text = parts
    .map((part: { type?: unknown; text?: unknown }) => (part?.type === 'text' && typeof part.text === 'string' ? part.text : ''))
    .filter(Boolean)
    .join('\n');
  const fallback = r.structuredContent !== undefined ? JSON.stringify(r.structuredContent) : JSON.stringify(result ?? null);
  return { text: text || fallback, isError: r.isError === true };
}

/**
 * A tool call refused before it was sent because of the model's arguments (a field the tool connector
 * locks, arguments its schema refuses) as a tool error the model can read and correct, as a bad name
 * is; anything else fails the run. The message names fields, never values, and is redacted already.
 */
function refusedArguments(err: unknown): { text: string; isError: boolean } {
  const type = err instanceof ApplicationFailure ? err.type : undefined;
  if (type !== FailureType.LockedField && type !== FailureType.InvalidInput) throw err;
  return { text: `error: ${(err as ApplicationFailure).message}`, isError: true };
}

const cut = (text: string, max: number) => (text.length > max ? `${text.slice(0, max)}... (${text.length - max} more characters)` : text);

interface ToolCallRequest {
  id?: unknown;
  function?: { name?: unknown; arguments?: unknown };
}

/**
 * The model ↔ tool loop. The model gets every tool of the tool connectors; each tool call it asks for
 * runs through its connector (the port), and its result goes back to the model, until the model
 * answers without a tool call. At most `max_steps` tool calls.
 */
async function converse(inputs: AgentInputs, port: ConversationPort): Promise<{ answer: unknown; steps: AgentStep[]; completion: unknown }> {
  const exposed = new Map<string, { connector: string; tool: string }>();
  const functions: unknown[] = [];
  for (const connector of inputs.tool_connectors ?? []) {
    for (const tool of await port.tools(connector)) {
      const name = functionName(connector, tool.name, exposed);
      exposed.set(name, { connector, tool: tool.name });
      const description = tool.description ?? tool.title ?? `Tool ${tool.name} of ${connector}.`;
      functions.push({ type: 'function', function: { name, description, parameters: tool.input_schema ?? { type: 'object', properties: {} } } });
    }
  }
  const messages: unknown[] = [...(inputs.system_prompt ? [{ role: 'system', content: inputs.system_prompt }] : []), ...inputs.messages];
  const steps: AgentStep[] = [];
  for (;;) {
    const completion = (await port.model({ messages, ...(functions.length > 0 && { tools: functions }) })) as { choices?: Array<{ message?: { content?: unknown; tool_calls?: unknown } }> };
    const message = completion?.choices?.[0]?.message;
    if (!message) throw permanentFailure(FailureType.External, `${port.subject}: the model answered without a message`);
    const calls = (Array.isArray(message.tool_calls) ? message.tool_calls : []) as ToolCallRequest[];
    if (calls.length === 0) return { answer: message.content ?? null, steps, completion };
    messages.push({ role: 'assistant', content: message.content ?? null, tool_calls: calls });
    for (const call of calls) {
      const requested = typeof call.function?.name === 'string' ? call.function.name : '';
      if (steps.length >= inputs.max_steps) {
        throw permanentFailure(
          FailureType.AgentMaxSteps,
          `${port.subject}: the model asked for tool call ${steps.length + 1} (${requested.slice(0, 64) || 'unnamed'}), but max_steps is ${inputs.max_steps}; raise max_steps (at most ${AGENT_MAX_STEPS_LIMIT}) or narrow the task`,
          { steps },
        );
      }
      const started = performance.now();
      const target = exposed.get(requested);
      let args: unknown;
      let outcome: { text: string; isError: boolean };
      try {
        args = typeof call.function?.arguments === 'string' && call.function.arguments.trim() ? JSON.parse(call.function.arguments) : {};
      } catch {
        args = call.function?.arguments;
      }
      if (!target) outcome = { text: `error: there is no tool named ${requested.slice(0, 64)}`, isError: true };
      else if (typeof args !== 'object' || args === null || Array.isArray(args)) outcome = { text: 'error: the arguments must be a JSON object', isError: true };
      else {
        port.heartbeat({ step: steps.length + 1, tool: requested });
        outcome = await port.callTool(target.connector, target.tool, args as Record<string, unknown>).then(toolText, refusedArguments);
      }
      // The model reads a bad name or bad arguments as a tool error, and may correct itself.
      steps.push({
        // As the model wrote it, but bounded: a made-up name is the model's text and may be of any length.
        tool: requested.slice(0, FUNCTION_NAME_MAX),
        connector: target?.connector ?? '',
        name: target?.tool ?? '',
        arguments: args ?? null,
        result: cut(outcome.text, STEP_RESULT_CHARS),
        is_error: outcome.isError,
        duration_ms: Math.round(performance.now() - started),
      });
      messages.push({ role: 'tool', tool_call_id: typeof call.id === 'string' ? call.id : String(call.id ?? ''), content: cut(outcome.text, TOOL_TEXT_FOR_MODEL) });
    }
  }
}

export const agentConnector: DelegatingConnectorType<typeof agentSchema> = {
  name: 'AGENT',
  description: 'An AI agent profile (model, system prompt, temperature, tools) that calls through a stored OPENAI connector, and may use MCP connectors as tools',
  schema: agentSchema,
  // Nothing in agentSchema is marked: the agent's secrets are its connectors'.
  sensitive: sensitivePaths(agentSchema),
  delegate(inputs) {
    const messages = inputs.system_prompt ? [{ role: 'system', content: inputs.system_prompt }, ...inputs.messages] : inputs.messages;
    const overrides: Record<string, unknown> = { operation: 'chat.completions', messages };
    for (const key of ['model', 'temperature', 'max_tokens', 'tools'] as const) {
      if (inputs[key] !== undefined) overrides[key] = inputs[key];
    }
    return { connector: inputs.connector, overrides };
  },
  conversation(inputs) {
    if (!inputs.tool_connectors) return undefined;
    return (port) => converse(inputs, port);
  },
  describeCall(inputs) {
    if (typeof inputs.connector !== 'string') return undefined;
    const tools = Array.isArray(inputs.tool_connectors) ? ` with tools of ${inputs.tool_connectors.filter((t) => typeof t === 'string').join(', ').slice(0, 100)}` : '';
    return `via ${inputs.connector}${typeof inputs.model === 'string' ? ` ${inputs.model}` : ''}${tools}`;
  },
};
