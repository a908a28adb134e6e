/**
 * The OPENAI connector type: the OpenAI API, or any server that speaks it (vLLM, Ollama, LiteLLM,
 * LocalAI, ...), through the official `openai` SDK.
 *
 * A profile usually holds `base_url`, `api_key` and `default_model`; workflows override `operation`
 * and the request parameters. Request parameters are flat inputs next to the connection settings:
 * the common ones are typed and validated (`model`, `messages`, `input`, `temperature`, `tools`, ...),
 * and `extra_body` carries anything else the API accepts (e.g. `seed`, `stop`, `reasoning`), sent
 * as given. Each operation sends only the parameters it takes (see OPERATION_PARAMETERS), so a
 * profile may hold chat defaults such as `temperature` and still list models.
 */
import { createHash } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, type ClientOptions } from 'openai';
import { Agent, fetch as undiciFetch } from 'undici';
import { z } from 'zod';
import { FailureType, describeNetworkError, httpStatusFailure, networkFailure, permanentFailure, transientFailure } from './errors';
import { idempotencyHeaders, idempotencyKeyInput } from './http-headers';
import { withHeartbeats } from './heartbeats';
import { PoolManager, type PoolOptions } from './pools';
import { durationSchema, parseDurationMs } from './durations';
import { sensitive, sensitivePaths } from './sensitivity';
import type { ConnectionTestResult, ConnectorType, InvokeContext } from './types';

type RequestOptions = OpenAI.RequestOptions;

export const OPENAI_OPERATIONS = ['models.list', 'chat.completions', 'embeddings', 'responses'] as const;
export type OpenAiOperation = (typeof OPENAI_OPERATIONS)[number];

/** Base URL when the inputs give none: OpenAI's own API. */
export const OPENAI_DEFAULT_BASE_URL = 'https://api.openai.com/v1';

/** Request timeout when the inputs give none: 60 s. */
export const OPENAI_DEFAULT_TIMEOUT_MS = 60_000;

/** How often a call in flight heartbeats when the connector is created without options: 5 s. */
export const OPENAI_HEARTBEAT_INTERVAL_MS = 5_000;

// The API's own error text is worth showing, but it is free text from the far side: keep it short.
const MAX_API_MESSAGE_CHARS = 300;

const httpUrl = z.url({ protocol: /^https?$/, message: 'must be an absolute http:// or https:// URL' });
const positiveInt = z.number().int().positive();
const jsonObject = z.record(z.string(), z.json());

// Field documentation lives in the schema (`.describe()`/`.meta()`), so the JSON Schema that forms, the
// API and `connectors types` show carries it. Defaults and units stay in the text for readers that
// show only the description.
const chatMessage = z
  .object({
    role: z.string().min(1).meta({ description: 'Who speaks: `system`, `developer`, `user`, `assistant` or `tool`.', examples: ['user'] }),
    content: z.unknown().describe('What is said: a string, or an array of content parts (text, images, ...).'),
  })
  .loose()
  .describe('One message: `role` and `content`, plus any other message fields the API takes (`name`, `tool_calls`, `tool_call_id`, ...).');

const openaiInputs = {
  base_url: httpUrl
    .default(OPENAI_DEFAULT_BASE_URL)
    .meta({ description: 'Base URL of the API, including its version path. Default `https://api.openai.com/v1`.', examples: ['http://127.0.0.1:11434/v1'] }),
  api_key: sensitive(z.string().min(1).describe('Sent as `Authorization: Bearer <api_key>`. Required.')),
  organization: z.string().min(1).optional().describe('Sent as the `OpenAI-Organization` header. Default: none.'),
  project: z.string().min(1).optional().describe('Sent as the `OpenAI-Project` header. Default: none.'),
  default_model: z.string().min(1).optional().meta({ description: 'Model used when a call gives no `model`. Default: none.', examples: ['gpt-4o-mini'] }),
  timeout: durationSchema
    .default(OPENAI_DEFAULT_TIMEOUT_MS)
    .meta({
      description:
        "Longest a call may take, from sending the request to having the whole answer: milliseconds (a number) or a duration string such as '500ms', '30s', '2m'. Default 60 s. There is no retry setting: the SDK's own retries are off, since Temporal retries the activity.",
      examples: ['2m', 30000],
    }),
  idempotency_key: idempotencyKeyInput('every operation but `models.list`'),
  operation: z
    .enum(OPENAI_OPERATIONS)
    .default('models.list')
    .describe('What to call: `models.list`, `chat.completions`, `embeddings` or `responses`. Default `models.list`.'),

  // Request parameters. Each is sent only by the operations listed in OPERATION_PARAMETERS.
  model: z.string().min(1).optional().meta({ description: 'Model of this call (chat.completions, embeddings, responses). Default: `default_model`.', examples: ['gpt-4o-mini'] }),
  messages: z
    .array(chatMessage)
    .min(1)
    .optional()
    .describe('The conversation (chat.completions, required there): objects with `role` and `content`, plus any other message fields.'),
  input: z.union([z.string(), z.array(z.unknown()).min(1)]).optional().describe('What to embed (embeddings) or the prompt (responses), required there: a string or an array.'),
  instructions: z.string().optional().describe('System or developer instructions (responses). Default: none.'),
  temperature: z.number().min(0).max(2).optional().describe('Sampling temperature, 0 to 2 (chat.completions, responses). Default: the model\'s.'),
  top_p: z.number().min(0).max(1).optional().describe('Nucleus sampling, 0 to 1 (chat.completions, responses). Default: the model\'s.'),
  max_tokens: positiveInt.optional().describe('Most tokens to generate (chat.completions; older models and most compatible servers). Default: the model\'s.'),
  max_completion_tokens: positiveInt.optional().describe('Most tokens to generate, reasoning included (chat.completions; newer OpenAI models). Default: the model\'s.'),
  max_output_tokens: positiveInt.optional().describe('Most tokens to generate (responses). Default: the model\'s.'),
  tools: z
    .array(z.object({ type: z.string().min(1).meta({ description: 'Kind of tool, e.g. `function`.', examples: ['function'] }) }).loose().describe('One tool definition in the API\'s format.'))
    .optional()
    .describe('Tool definitions, each with a `type` (chat.completions, responses). Default: none.'),
  tool_choice: z
    .union([z.string().min(1), jsonObject])
    .optional()
    .describe('`none`, `auto`, `required`, or an object naming a tool (chat.completions, responses). Default: the API\'s.'),
  response_format: z
    .object({ type: z.string().min(1).meta({ description: 'Format: `text`, `json_object` or `json_schema`.', examples: ['json_object'] }) })
    .loose()
    .optional()
    .meta({ description: 'Output format (chat.completions). Default: text.', examples: [{ type: 'json_object' }] }),
  dimensions: positiveInt.optional().describe('Length of the returned vectors (embeddings; newer models only). Default: the model\'s.'),
  encoding_format: z.enum(['float', 'base64']).optional().describe('`float` (arrays of numbers) or `base64` (embeddings). Default: float arrays.'),
  stream: z
    .boolean()
    .refine((stream) => !stream, { message: 'streaming is not supported: a Temporal activity returns one result; leave stream out or set it to false' })
    .optional()
    .describe('Only `false` is accepted: an activity returns one result, so streamed answers are refused rather than silently collected. Default: not streamed.'),
  extra_body: jsonObject
    .optional()
    .meta({
      description: 'Further request parameters, sent as given by every operation but `models.list`. May not repeat a parameter that has its own input. Default: none.',
      examples: [{ seed: 7, stop: ['\n'] }],
    }),
};

type RequestParameter = Exclude<
  keyof typeof openaiInputs,
  'base_url' | 'api_key' | 'organization' | 'project' | 'default_model' | 'timeout' | 'idempotency_key' | 'operation' | 'model' | 'stream' | 'extra_body'
>;

/** The request parameters each operation sends; others given in the inputs are left out of its request. */
export const OPERATION_PARAMETERS: Record<OpenAiOperation, readonly RequestParameter[]> = {
  'models.list': [],
  'chat.completions': ['messages', 'temperature', 'top_p', 'max_tokens', 'max_completion_tokens', 'tools', 'tool_choice', 'response_format'],
  embeddings: ['input', 'dimensions', 'encoding_format'],
  responses: ['input', 'instructions', 'temperature', 'top_p', 'max_output_tokens', 'tools', 'tool_choice'],
};

/** Inputs of an OPENAI connector (snake_case: they are data in profiles, Vault secrets and overrides). */
export const openaiSchema = z.strictObject(openaiInputs).superRefine((inputs, ctx) => {
  const op = inputs.operation;
  if (op !== 'models.list' && !inputs.model && !inputs.default_model) {
    ctx.addIssue({ code: 'custom', path: ['model'], message: `${op} needs a model: give model, or default_model in the connector` });
  }
  if (op === 'chat.completions' && !inputs.messages) {
    ctx.addIssue({ code: 'custom', path: ['messages'], message: 'chat.completions needs messages: an array of { role, content }' });
  }
  if ((op === 'embeddings' || op === 'responses') && inputs.input === undefined) {
    ctx.addIssue({ code: 'custom', path: ['input'], message: `${op} needs input` });
  }
  // The payload of one operation given to another is always a mistake, usually a forgotten
  // `operation` (which defaults to models.list); sampling settings, by contrast, may be profile defaults.
  if (inputs.messages && op !== 'chat.completions') {
    ctx.addIssue({ code: 'custom', path: ['messages'], message: `messages belong to operation chat.completions, but operation is ${op}` });
  }
  if (inputs.input !== undefined && op !== 'embeddings' && op !== 'responses') {
    ctx.addIssue({ code: 'custom', path: ['input'], message: `input belongs to operation embeddings or responses, but operation is ${op}` });
  }
  // Otherwise extra_body would bypass the checks above (and could switch streaming on).
  for (const key of Object.keys(inputs.extra_body ?? {})) {
    if (Object.hasOwn(openaiInputs, key)) {
      ctx.addIssue({ code: 'custom', path: ['extra_body', key], message: `give ${key} as its own input, not in extra_body` });
    }
  }
});

const OPENAI_SENSITIVE = sensitivePaths(openaiSchema);

export type OpenAiInputs = z.output<typeof openaiSchema>;

/** Options of `createOpenAiConnector`. */
export interface OpenAiConnectorOptions {
  /** How often a call in flight heartbeats, in milliseconds. Default 5000 (5 s). */
  heartbeatIntervalMs?: number;
  /** How long pooled clients are kept, and how many (connectors/pools.ts). Default: its defaults. */
  pools?: PoolOptions;
}

function timeoutMs(inputs: OpenAiInputs): number {
  return parseDurationMs(inputs.timeout) ?? OPENAI_DEFAULT_TIMEOUT_MS;
}

/** The base URL for messages: origin and path only, since query strings and userinfo may carry keys. */
function baseTarget(baseUrl: unknown): string {
  try {
    const url = new URL(String(baseUrl));
    return `${url.origin}${url.pathname}`;
  } catch {
    return '(unusable base_url)';
  }
}

/** Which call, for messages: e.g. `OPENAI chat.completions https://api.openai.com/v1`. */
function describeTarget(inputs: OpenAiInputs): string {
  return `OPENAI ${inputs.operation} ${baseTarget(inputs.base_url)}`;
}

function requestBody(inputs: OpenAiInputs): Record<string, unknown> {
  const body: Record<string, unknown> = { ...inputs.extra_body, model: inputs.model ?? inputs.default_model };
  for (const key of OPERATION_PARAMETERS[inputs.operation]) {
    if (inputs[key] !== undefined) body[key] = inputs[key];
  }
  return body;
}

/** SDK results carry class prototypes and hidden fields; history wants plain JSON. */
function plainJson<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

async function perform(client: OpenAI, inputs: OpenAiInputs, options: RequestOptions): Promise<unknown> {
  // The schema has checked the parameters the SDK's types describe; the casts only hand them over.
  const body = requestBody(inputs);
  switch (inputs.operation) {
    case 'models.list': {
      const page = await client.models.list(options);
      return { data: plainJson(page.data) };
    }
    case 'chat.completions':
      return plainJson(await client.chat.completions.create(body as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming, options));
    case 'embeddings':
      return plainJson(await client.embeddings.create(body as unknown as OpenAI.EmbeddingCreateParams, options));
    case 'responses':
      return plainJson(await client.responses.create(body as unknown as OpenAI.Responses.ResponseCreateParamsNonStreaming, options));
  }
}

interface PooledClient {
  client: OpenAI;
  agent: Agent;
}

type Clients = PoolManager<PooledClient>;

function clientSettings(inputs: OpenAiInputs): string {
  const settings = [inputs.base_url, inputs.api_key, inputs.organization ?? null, inputs.project ?? null];
  return createHash('sha256').update(JSON.stringify(settings)).digest('hex');
}

function newClient(inputs: OpenAiInputs): PooledClient {
  // Node's built-in fetch gives up after 5 minutes whatever the timeout says; an own agent lifts that
  // limit (the deadline in `call` covers the whole call instead) and gives close() sockets to release.
  const agent = new Agent({ headersTimeout: 0, bodyTimeout: 0 });
  const options: ClientOptions = {
    baseURL: inputs.base_url,
    apiKey: inputs.api_key,
    // Explicit nulls: left undefined, the SDK would read OPENAI_ORG_ID, OPENAI_PROJECT_ID, ... from the
    // worker's environment and mix the worker's account into every connector's calls.
    organization: inputs.organization ?? null,
    project: inputs.project ?? null,
    adminAPIKey: null,
    webhookSecret: null,
    // Temporal retries the activity, with the connector's retry policy and Retry-After honoured.
    maxRetries: 0,
    fetch: undiciFetch as unknown as ClientOptions['fetch'],
    fetchOptions: { dispatcher: agent } as ClientOptions['fetchOptions'],
  };
  return { client: new OpenAI(options), agent };
}

/** Calls `use` with a client: the pooled one for `poolKey`, or a fresh one closed afterwards. */
async function withClient<T>(clients: Clients, inputs: OpenAiInputs, poolKey: string | undefined, use: (client: OpenAI) => Promise<T>): Promise<T> {
  if (poolKey === undefined) {
    const inline = newClient(inputs);
    try {
      return await use(inline.client);
    } finally {
      await inline.agent.destroy().catch(() => undefined);
    }
  }
  // One connector version can still see a new key (rotated in Vault) or a base URL overridden by a
  // workflow: such calls get a client of their own, and the old one closes once idle.
  return clients.use(poolKey, clientSettings(inputs), () => newClient(inputs), async (pooled) => {
    const result = await use(pooled.client);
    // undici marks the connection idle a tick after the body ends; without this wait a call made right
    // after this one would open a second connection instead of reusing the first.
    await new Promise((resolve) => setImmediate(resolve));
    return result;
  });
}

/** The API's own error message, without the key and cut short; undefined when the body was not OpenAI-shaped. */
function apiMessage(err: APIError, apiKey: string): string | undefined {
  // Only `error.message` of an OpenAI-shaped body: the SDK's own message may quote a raw (HTML) body.
  const text = (err.error as { message?: unknown } | undefined)?.message;
  if (typeof text !== 'string' || !text.trim()) return undefined;
  const redacted = text.split(apiKey).join('***').replace(/\s+/g, ' ').trim();
  return redacted.length > MAX_API_MESSAGE_CHARS ? `${redacted.slice(0, MAX_API_MESSAGE_CHARS)}...` : redacted;
}

function retryAfter(headers: Headers | undefined): string | null | undefined {
  // OpenAI also sends the finer `retry-after-ms`, which the SDK prefers; so do we.
  const ms = Number(headers?.get('retry-after-ms') ?? Number.NaN);
  if (Number.isFinite(ms) && ms > 0) return String(ms / 1_000);
  return headers?.get('retry-after');
}

/**
 * The failure for whatever the SDK threw. The activity's cancellation passes through as is: Temporal
 * must see it. Messages name the call and never hold the key, the request body or headers.
 */
function openAiFailure(err: unknown, inputs: OpenAiInputs, ctx: InvokeContext): unknown {
  if (ctx.signal.aborted) return ctx.signal.reason ?? err;
  const what = describeTarget(inputs);
  if (err instanceof APIConnectionTimeoutError) {
    return transientFailure(FailureType.Timeout, `${what} failed: no answer within ${timeoutMs(inputs)} ms (timeout)`, {
      details: { timeout_ms: timeoutMs(inputs) },
    });
  }
  if (err instanceof APIConnectionError) return networkFailure(what, err);
  if (err instanceof APIError && typeof err.status === 'number') {
    const hint = err.status === 401 ? 'the API refused the key (check api_key)' : undefined;
    const said = apiMessage(err, inputs.api_key);
    // httpStatusFailure's status text is free text: the hint and the API's words ride on it.
    const statusText = [STATUS_CODES[err.status] ?? '', hint && `: ${hint}`, said && `; the API says: ${said}`].filter(Boolean).join('');
    return httpStatusFailure(what, err.status, statusText, retryAfter(err.headers));
  }
  if (err instanceof SyntaxError) {
    // Never the parser's message: it quotes the body.
    return permanentFailure(FailureType.External, `${what} answered with a body that is not JSON: check base_url`);
  }
  return transientFailure(FailureType.External, `${what} failed: ${(err as Error)?.name ?? 'unknown error'} in the OpenAI client`);
}

/** Creates the OPENAI type with its own client pool; `openaiConnector` is the one workers use. */
export function createOpenAiConnector(options: OpenAiConnectorOptions = {}): ConnectorType<typeof openaiSchema> {
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? OPENAI_HEARTBEAT_INTERVAL_MS;
  // One client (and keep-alive agent) per stored connector version and settings; inline connectors get none.
  const clients: Clients = new PoolManager((pooled) => pooled.agent.close(), options.pools);

  /**
   * Runs one SDK call within the timeout, heartbeating. Throws the SDK's errors, with a timeout
   * always as APIConnectionTimeoutError, and the activity's cancellation as its reason.
   */
  async function call<T>(inputs: OpenAiInputs, ctx: InvokeContext, run: (client: OpenAI, options: RequestOptions) => Promise<T>): Promise<T> {
    const ms = timeoutMs(inputs);
    // The SDK's own timeout stops counting once headers arrive, and its error can lose its identity
    // when it crosses realms (as under Jest); a deadline of our own covers the whole call and is
    // recognised by its signal. The SDK's timeout, a little longer, stays only as a backstop.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), ms);
    const requestOptions: RequestOptions = { signal: AbortSignal.any([ctx.signal, deadline.signal]), timeout: ms + 1_000 };
    try {
      return await withHeartbeats(ctx, heartbeatIntervalMs, () => withClient(clients, inputs, ctx.poolKey, (client) => run(client, requestOptions)));
    } catch (err) {
      if (ctx.signal.aborted) throw ctx.signal.reason ?? err;
      if (deadline.signal.aborted) throw new APIConnectionTimeoutError();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  async function testOpenAi(inputs: OpenAiInputs, ctx: InvokeContext): Promise<ConnectionTestResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const target = baseTarget(inputs.base_url);
    try {
      const page = await call(inputs, ctx, (client, requestOptions) => client.models.list(requestOptions));
      const latency = elapsed();
      const count = page.data.length;
      return { ok: true, message: `${count} model${count === 1 ? '' : 's'} available at ${target} (in ${latency} ms)`, latency_ms: latency };
    } catch (err) {
      if (ctx.signal.aborted) throw ctx.signal.reason ?? err;
      const latency = elapsed();
      if (err instanceof APIConnectionTimeoutError) {
        return { ok: false, message: `${target} did not answer within ${timeoutMs(inputs)} ms.`, latency_ms: latency };
      }
      if (err instanceof APIConnectionError) {
        return { ok: false, message: `Could not reach ${target}: ${describeNetworkError(err)}.`, latency_ms: latency };
      }
      if (err instanceof APIError && typeof err.status === 'number') {
        const answered = `HTTP ${err.status} ${STATUS_CODES[err.status] ?? ''}`.trim();
        if (err.status === 401 || err.status === 403) {
          return {
            ok: false,
            message: `${target} refused the key (${answered}): check api_key, and organization and project if set.`,
            latency_ms: latency,
          };
        }
        return { ok: false, message: `${target} answered ${answered} when listing models.`, latency_ms: latency };
      }
      return { ok: false, message: `Listing models at ${target} failed: ${(err as Error)?.name ?? 'unknown error'}.`, latency_ms: latency };
    }
  }

  return {
    name: 'OPENAI',
    description: 'The OpenAI API or any OpenAI-compatible server: models, chat completions, embeddings and responses.',
    schema: openaiSchema,
    // Marked on the fields of openaiSchema (`sensitive`), and derived from there.
    sensitive: OPENAI_SENSITIVE,
    async invoke(inputs, ctx) {
      try {
        const headers = inputs.operation === 'models.list' ? {} : idempotencyHeaders(inputs.idempotency_key, ctx);
        return await call(inputs, ctx, (client, requestOptions) => perform(client, inputs, { ...requestOptions, headers }));
      } catch (err) {
        throw openAiFailure(err, inputs, ctx);
      }
    },
    test: testOpenAi,
    destination(inputs) {
      try {
        const url = new URL(String(inputs.base_url ?? OPENAI_DEFAULT_BASE_URL));
        return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : undefined;
      } catch {
        return undefined;
      }
    },
    describeCall(inputs) {
      const operation = inputs.operation ?? 'models.list';
      if (!(OPENAI_OPERATIONS as readonly unknown[]).includes(operation)) return undefined;
      if (operation === 'models.list') return operation as string;
      const model = typeof inputs.model === 'string' ? inputs.model : typeof inputs.default_model === 'string' ? inputs.default_model : undefined;
      return model ? `${operation} ${model.slice(0, 100)}` : (operation as string);
    },
    close: (poolKey) => clients.close(poolKey),
    pools: clients,
  };
}

/** The OPENAI connector type. */
export const openaiConnector: ConnectorType<typeof openaiSchema> = createOpenAiConnector();
