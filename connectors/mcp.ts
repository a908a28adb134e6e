/**
 * The MCP connector type: tools (and resources and prompts) of a Model Context Protocol server,
 * reached over Streamable HTTP through the official `@modelcontextprotocol/sdk` client.
 *
 * Why the SDK's client rather than JSON-RPC over fetch by hand: the protocol has a handshake
 * (`initialize`, protocol version negotiation, the `initialized` notification), sessions
 * (`Mcp-Session-Id`), answers that come as JSON or as a Server-Sent Events stream, and result shapes
 * that change between protocol versions. The SDK is the reference implementation of all of that and
 * validates every answer against the protocol's schemas, so this file only maps inputs, errors and pools.
 *
 * A profile holds `url` and the credentials (`bearer_token`, `headers`); a call names the `tool` and
 * its `arguments`. A stdio server (`command`: a process the connector worker starts) runs only where
 * the operator allows it with `TC_MCP_STDIO=on` at worker start (`createMcpConnector({ stdio: true })`).
 */
import { createHash } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ErrorCode, McpError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { ApplicationFailure } from '@temporalio/common';
import { Agent, fetch as undiciFetch } from 'undici';
import { z } from 'zod';
import { durationSchema, parseDurationMs } from './durations';
import { FailureType, describeNetworkError, errorCode, httpStatusFailure, networkFailure, permanentFailure, transientFailure } from './errors';
import { withHeartbeats } from './heartbeats';
import { PoolManager, type PoolOptions } from './pools';
import { SECRET_HEADER_NAMES, sensitive, sensitiveEntries, sensitivePaths } from './sensitivity';
import type { ConnectionTestResult, ConnectorTool, ConnectorType, InvokeContext } from './types';

export const MCP_OPERATIONS = ['tools.call', 'tools.list', 'resources.read', 'prompts.get'] as const;
export type McpOperation = (typeof MCP_OPERATIONS)[number];

/** Per-request timeout when the inputs give none: 30 s. */
export const MCP_DEFAULT_TIMEOUT_MS = 30_000;

/** How often a call in flight heartbeats: 5 s. */
export const MCP_HEARTBEAT_INTERVAL_MS = 5_000;

/**
 * Most bytes one HTTP answer of the server may hold: 8 MiB. The client reads an answer whole before it
 * parses it, so a server that answers without end would otherwise fill the worker's memory, and every
 * call on that worker with it; a result this large could not go into history anyway (2 MB per payload).
 */
export const MCP_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

/** Longest piece of a server's own error text kept in a message: 300 characters (it is free text from the far side). */
const MAX_SERVER_TEXT_CHARS = 300;

/** The name this client gives the server in `initialize`. */
const CLIENT_INFO = { name: 'temporal-connectors', version: '0.1.0' };

const httpUrl = z.url({ protocol: /^https?$/, message: 'must be an absolute http:// or https:// URL' });

const mcpInputs = {
  url: httpUrl
    .refine((url) => !/^[a-z]+:\/\/[^/]*@/i.test(url), { message: 'must not carry credentials (user:password@): give bearer_token or headers, which are kept as secrets' })
    .optional()
    .meta({ description: "The server's Streamable HTTP endpoint. Required, unless `command` names a stdio server.", examples: ['https://mcp.example.com/mcp'] }),
  bearer_token: sensitive(z.string().min(1).describe('Sent as `Authorization: Bearer <bearer_token>`. Default: none.')).optional(),
  headers: sensitiveEntries(
    z
      .record(z.string(), z.string())
      .refine((headers) => !Object.keys(headers).some((name) => name.toLowerCase() === 'host'), { message: 'a Host header is not supported: the destination is the origin of url' })
      .optional()
      .describe('Further request headers, e.g. an API key header. Those named like credentials (`Authorization`, `*token*`, `*key*`, ...) are secrets. Default: none.'),
    SECRET_HEADER_NAMES,
  ),
  timeout: durationSchema
    .default(MCP_DEFAULT_TIMEOUT_MS)
    .meta({
      description: "Longest one request may take (the handshake, a tool call): milliseconds or a duration string such as '500ms', '30s', '2m'. Default 30 s.",
      examples: ['2m', 30000],
    }),
  operation: z
    .enum(MCP_OPERATIONS)
    .optional()
    .describe('What `invoke` does: `tools.call`, `tools.list`, `resources.read` or `prompts.get`. Default: `tools.call` when `tool` is given, else `tools.list`.'),
  tool: z.string().min(1).optional().meta({ description: 'Name of the tool to call (tools.call, required there).', examples: ['lookup_order'] }),
  arguments: z
    .record(z.string(), z.json())
    .optional()
    .meta({ description: "Arguments of the tool (tools.call) or of the prompt (prompts.get, string values). Default: none.", examples: [{ id: 'A-1' }] }),
  tool_errors: z
    .enum(['fail', 'return'])
    .default('fail')
    .describe(
      'What a tool result with `isError: true` does: `fail` (default) fails the call with the non-retryable `Connector.External.ToolError` carrying the tool\'s text; `return` returns the result like any other. An agent using the connector as a tool always gets it returned, so the model can react.',
    ),
  uri: z.string().min(1).optional().meta({ description: 'URI of the resource to read (resources.read, required there).', examples: ['orders://recent'] }),
  prompt: z.string().min(1).optional().meta({ description: 'Name of the prompt to get (prompts.get, required there).', examples: ['summarise_order'] }),
  command: z
    .string()
    .min(1)
    .optional()
    .meta({
      description:
        'A stdio server instead of `url`: the program the connector worker starts (no shell), speaking MCP on its stdin and stdout. Refused unless the operator set TC_MCP_STDIO=on at worker start, since whoever edits the connector chooses what the worker runs. Default: none.',
      examples: ['/usr/local/bin/orders-mcp'],
    }),
  args: z.array(z.string()).optional().describe('Arguments of `command`. Default: none.'),
  env: sensitiveEntries(
    z
      .record(z.string(), z.string())
      .optional()
      .describe("Environment of `command`, on top of HOME, LOGNAME, PATH, SHELL, TERM and USER (nothing else of the worker's environment is passed on). Every value is a secret. Default: none."),
    ['*'],
  ),
};

/** Inputs of an MCP connector (snake_case: they are data in profiles, Vault secrets and overrides). */
export const mcpSchema = z.strictObject(mcpInputs).superRefine((inputs, ctx) => {
  if (inputs.url === undefined && inputs.command === undefined) ctx.addIssue({ code: 'custom', path: ['url'], message: 'give url (a Streamable HTTP endpoint), or command (a stdio server)' });
  if (inputs.url !== undefined && inputs.command !== undefined) ctx.addIssue({ code: 'custom', path: ['command'], message: 'give url or command, not both' });
  if (inputs.url === undefined) {
    for (const key of ['bearer_token', 'headers'] as const) {
      if (inputs[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: `${key} is sent to url only: a stdio server takes its credentials in env` });
    }
  }
  if (inputs.command === undefined) {
    for (const key of ['args', 'env'] as const) {
      if (inputs[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: `${key} belongs to command (a stdio server)` });
    }
  }
  // No `tool` is required when none is called: a profile names the server, and its test and
  // introspection (validated with the same schema) call no tool.
  if (inputs.operation === 'tools.call' && !inputs.tool) ctx.addIssue({ code: 'custom', path: ['tool'], message: 'tools.call needs tool: the name of the tool to call' });
  if (inputs.operation === 'resources.read' && !inputs.uri) ctx.addIssue({ code: 'custom', path: ['uri'], message: 'resources.read needs uri' });
  if (inputs.operation === 'prompts.get' && !inputs.prompt) ctx.addIssue({ code: 'custom', path: ['prompt'], message: 'prompts.get needs prompt: the name of the prompt' });
  if (inputs.operation === 'prompts.get' && Object.values(inputs.arguments ?? {}).some((v) => typeof v !== 'string')) {
    ctx.addIssue({ code: 'custom', path: ['arguments'], message: 'arguments of a prompt must all be strings' });
  }
});

export type McpInputs = z.output<typeof mcpSchema>;

/** The operation a call performs: as given, else `tools.call` when it names a tool, else `tools.list`. */
function operationOf(inputs: { operation?: unknown; tool?: unknown }): McpOperation | undefined {
  if (inputs.operation !== undefined) return (MCP_OPERATIONS as readonly unknown[]).includes(inputs.operation) ? (inputs.operation as McpOperation) : undefined;
  return inputs.tool !== undefined ? 'tools.call' : 'tools.list';
}

const MCP_SENSITIVE = sensitivePaths(mcpSchema);

/** Options of `createMcpConnector`. */
export interface McpConnectorOptions {
  /** How often a call in flight heartbeats, in milliseconds. Default 5000 (5 s). */
  heartbeatIntervalMs?: number;
  /** How long initialized clients are kept, and how many (connectors/pools.ts). Default: its defaults. */
  pools?: PoolOptions;
  /**
   * Whether stdio servers (`command`) may run: the operator's `TC_MCP_STDIO=on`, read at worker start.
   * Default: false (such calls are refused, naming the setting).
   */
  stdio?: boolean;
}

/** The setting that allows stdio servers, for messages. */
export const MCP_STDIO_SETTING = 'TC_MCP_STDIO';

/** An HTTP answer outside 2xx to one of the client's POSTs, thrown by our fetch so that status and Retry-After survive the SDK. */
class McpHttpStatus extends Error {
  constructor(
    readonly status: number,
    readonly statusText: string,
    readonly retryAfter: string | null,
  ) {
    super(`HTTP ${status}`);
    this.name = 'McpHttpStatus';
  }
}

/** An answer that went past {@link MCP_MAX_RESPONSE_BYTES}: thrown into its body stream, so the client stops reading. */
class McpResponseTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`the answer is larger than ${limit} bytes`);
    this.name = 'McpResponseTooLarge';
  }
}

/** `response` with a body that fails once more than `limit` bytes came through it. */
function boundedResponse(response: globalThis.Response, limit: number): globalThis.Response {
  if (!response.body) return response;
  let seen = 0;
  const counter = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      seen += chunk.byteLength;
      if (seen > limit) controller.error(new McpResponseTooLarge(limit));
      else controller.enqueue(chunk);
    },
  });
  return new Response(response.body.pipeThrough(counter), { status: response.status, statusText: response.statusText, headers: response.headers });
}

/** Whether `err` (or what it wraps, as a body read does) is an answer past the size limit. */
function tooLarge(err: unknown): McpResponseTooLarge | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) if (e instanceof McpResponseTooLarge) return e;
  return undefined;
}

/**
 * One initialized client, kept per connector version and settings: the handshake (two round trips)
 * is paid once, and its session serves later calls. `connecting` is dropped when it fails or the
 * server forgets the session, so the next call starts afresh.
 */
interface McpSession {
  connecting?: Promise<Client>;
  agent: Agent;
}

type Sessions = PoolManager<McpSession>;

function timeoutMs(inputs: McpInputs): number {
  return parseDurationMs(inputs.timeout) ?? MCP_DEFAULT_TIMEOUT_MS;
}

/** The endpoint for messages: origin and path only, since a query string may carry a key; a stdio server's program (not its arguments). */
function endpoint(url: unknown, command?: unknown): string {
  if (command !== undefined) return `stdio ${String(command).slice(0, 200)}`;
  try {
    const parsed = new URL(String(url));
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return '(unusable url)';
  }
}

/** `MCP <connector> <endpoint>`: which server, for messages (never credentials). */
function describeTarget(inputs: McpInputs, ctx: InvokeContext): string {
  return `MCP ${ctx.connector ? `connector ${ctx.connector} ` : ''}${endpoint(inputs.url, inputs.command)}`;
}

function requestHeaders(inputs: McpInputs): Record<string, string> {
  return { ...inputs.headers, ...(inputs.bearer_token ? { authorization: `Bearer ${inputs.bearer_token}` } : {}) };
}

function sessionSettings(inputs: McpInputs): string {
  return createHash('sha256')
    .update(JSON.stringify([inputs.url ?? null, inputs.bearer_token ?? null, inputs.headers ?? null, inputs.command ?? null, inputs.args ?? null, inputs.env ?? null]))
    .digest('hex');
}

function newSession(): McpSession {
  // Node's fetch gives up on a quiet server after 5 min whatever the timeout says; our own agent lifts
  // that (the request timeout covers it) and gives close() sockets to release.
  return { agent: new Agent({ headersTimeout: 0, bodyTimeout: 0 }) };
}

/** Opens a client on `session` (its `initialize` handshake), or returns the one already open. */
function clientOf(session: McpSession, inputs: McpInputs): Promise<Client> {
  if (!session.connecting) {
    const fetchAnswer = async (url: string | URL, init?: RequestInit) => {
      // The optional GET stream carries only what the server starts itself (notifications, requests to
      // the client), none of which this client takes: answers come on each POST. Kept open, it would
      // hold a request in flight per pooled session, and keep a CLI process from ending. A 405 is how
      // the protocol says "no such stream", and the SDK goes on without one.
      if (init?.method === 'GET') return new Response(null, { status: 405, statusText: 'Method Not Allowed' });
      const response = await undiciFetch(url, { ...(init as object), dispatcher: session.agent } as Parameters<typeof undiciFetch>[1]);
      // The SDK turns a refused POST into an error whose text is the server's body, and drops the
      // status's headers: keep both facts (401 versus 503, Retry-After) and none of the body.
      if (!response.ok && init?.method === 'POST') {
        await response.body?.cancel().catch(() => undefined);
        throw new McpHttpStatus(response.status, response.statusText, response.headers.get('retry-after'));
      }
      return boundedResponse(response as unknown as globalThis.Response, MCP_MAX_RESPONSE_BYTES);
    };
    const transport = inputs.command !== undefined ? stdioTransport(inputs) : new StreamableHTTPClientTransport(new URL(inputs.url!), {
      // Redirects are not followed (as REST): the response is a refusal, so headers never reach another URL.
      requestInit: { headers: requestHeaders(inputs), redirect: 'manual' },
      fetch: fetchAnswer as unknown as FetchLike,
      // Temporal retries the call; the SDK's own reconnects of the optional GET stream would only hide a broken server.
      reconnectionOptions: { maxReconnectionDelay: 1_000, initialReconnectionDelay: 1_000, reconnectionDelayGrowFactor: 1, maxRetries: 0 },
    });
    const client = new Client(CLIENT_INFO, { capabilities: {} });
    // Transport errors that reach no request (the optional GET stream) are not the call's business.
    client.onerror = () => undefined;
    // No call's signal: a pooled handshake serves every call waiting for it, and one call's
    // cancellation must not fail the others. The timeout bounds it.
    const connecting = client.connect(transport, { timeout: timeoutMs(inputs) }).then(
      () => client,
      async (err: unknown) => {
        if (session.connecting === connecting) session.connecting = undefined;
        await client.close().catch(() => undefined);
        throw err;
      },
    );
    session.connecting = connecting;
    // A client that closes (a stdio server's process exited, say) is dropped, so the next call (a
    // retry) starts afresh rather than meeting a dead one until the pool's idle timeout.
    client.onclose = () => {
      if (session.connecting === connecting) session.connecting = undefined;
    };
  }
  return session.connecting;
}

/**
 * A stdio server: the program, started without a shell, with only a few harmless variables of the
 * worker's environment (the SDK's default: HOME, LOGNAME, PATH, SHELL, TERM, USER), never its keyring,
 * Vault token or database URL, plus the connector's `env`. Its stderr is dropped: it is free text that
 * may hold anything, and the worker's log is no place for it.
 */
function stdioTransport(inputs: McpInputs): StdioClientTransport {
  return new StdioClientTransport({ command: inputs.command!, args: inputs.args ?? [], env: inputs.env ?? {}, stderr: 'ignore' });
}

async function closeSession(session: McpSession): Promise<void> {
  const connecting = session.connecting;
  session.connecting = undefined;
  if (connecting) {
    const client = await connecting.catch(() => undefined);
    // Ends the session on the server too (DELETE), so it does not pile up there; a stdio server ends with its process.
    if (client?.transport instanceof StreamableHTTPClientTransport) await client.transport.terminateSession().catch(() => undefined);
    await client?.close().catch(() => undefined);
  }
  await session.agent.close().catch(() => undefined);
}

/** Free text from the server, on one line and cut short; redaction of known secrets happens in the runner. */
function serverText(text: unknown): string {
  const flat = String(text ?? '').replace(/\s+/g, ' ').trim();
  return flat.length > MAX_SERVER_TEXT_CHARS ? `${flat.slice(0, MAX_SERVER_TEXT_CHARS)}...` : flat;
}

/** The text parts of a tool result's content, joined; what a person (or a model) reads of it. */
export function toolResultText(result: { content?: unknown }): string {
  const parts = Array.isArray(result.content) ? result.content : [];
  return parts
    .map((part: { type?: unknown; text?: unknown; resource?: { text?: unknown } }) =>
      part?.type === 'text' && typeof part.text === 'string' ? part.text : typeof part?.resource?.text === 'string' ? part.resource.text : '',
    )
    .filter(Boolean)
    .join('\n');
}

/**
 * The failure for whatever the client threw. The activity's cancellation passes through as is.
 * Messages name the connector and the endpoint, never the token, the headers or the server's body.
 */
function mcpFailure(err: unknown, inputs: McpInputs, ctx: InvokeContext): unknown {
  if (ctx.signal.aborted) return ctx.signal.reason ?? err;
  if (err instanceof ApplicationFailure) return err; // ours already (a tool's error)
  const what = describeTarget(inputs, ctx);
  const large = tooLarge(err);
  // The same request gets the same answer: not retried.
  if (large) return permanentFailure(FailureType.External, `${what} failed: its answer is larger than ${large.limit} bytes, which the connector does not read`, { limit_bytes: large.limit });
  if (err instanceof McpHttpStatus) {
    if (err.status === 401 || err.status === 403) {
      return permanentFailure(
        FailureType.AuthRefused,
        `${what} refused the credentials (HTTP ${err.status} ${STATUS_CODES[err.status] ?? ''}): check bearer_token and headers of ${ctx.connector ? `connector ${ctx.connector}` : 'the inline connector'}`.replace('  ', ' '),
        { status: err.status },
      );
    }
    return httpStatusFailure(what, err.status, STATUS_CODES[err.status] ?? err.statusText, err.retryAfter);
  }
  if (err instanceof McpError) {
    if (err.code === ErrorCode.RequestTimeout) {
      return transientFailure(FailureType.Timeout, `${what} failed: no answer within ${timeoutMs(inputs)} ms (timeout)`, { details: { timeout_ms: timeoutMs(inputs) } });
    }
    if (err.code === ErrorCode.ConnectionClosed) return transientFailure(FailureType.Network, `${what} failed: the connection (or the server process) closed before the answer arrived`);
    // The server's own refusal of the request (an unknown tool, invalid arguments): a retry sends the same.
    const retryable = err.code === ErrorCode.InternalError;
    const message = `${what} answered MCP error ${err.code}: ${serverText(err.message.replace(/^MCP error -?\d+: /, ''))}`;
    return retryable ? transientFailure(FailureType.External, message, { details: { code: err.code } }) : permanentFailure(FailureType.External, message, { code: err.code });
  }
  const code = errorCode(err);
  // A program that cannot be started stays so until someone fixes `command`.
  if (inputs.command !== undefined && (code === 'ENOENT' || code === 'EACCES')) {
    return permanentFailure(FailureType.InvalidInput, `${what}: command cannot be started (${code === 'ENOENT' ? 'no such program' : 'not allowed to run it'}, ${code})`);
  }
  if (code || (err as Error)?.name === 'TimeoutError' || err instanceof TypeError) return networkFailure(what, err);
  // The SDK's own errors (an answer that breaks the protocol, say) may quote the server: only their kind.
  return transientFailure(FailureType.External, `${what} failed: ${(err as Error)?.name ?? 'unknown error'} in the MCP client`);
}

/** A tool as an agent and introspection see it: name, description and JSON Schema of its arguments. */
function toolOf(tool: { name: string; title?: string; description?: string; inputSchema: unknown }): ConnectorTool {
  return { name: tool.name, ...(tool.title && { title: tool.title }), ...(tool.description && { description: tool.description }), input_schema: tool.inputSchema };
}

/** Every page of a paginated list (tools, resources, prompts). */
async function allPages<T>(list: (cursor: string | undefined) => Promise<{ nextCursor?: string; items: T[] }>): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  // A server that keeps answering with cursors is not followed for ever.
  for (let page = 0; page < 100; page++) {
    const answer = await list(cursor);
    items.push(...answer.items);
    if (!answer.nextCursor) break;
    cursor = answer.nextCursor;
  }
  return items;
}

/** Creates the MCP type with its own client pool; `mcpConnector` is the one workers use. */
export function createMcpConnector(options: McpConnectorOptions = {}): ConnectorType<typeof mcpSchema> {
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? MCP_HEARTBEAT_INTERVAL_MS;
  const stdio = options.stdio ?? false;

  /** Refuses a stdio server on a worker whose operator has not allowed them. */
  function allowed(inputs: McpInputs, ctx: InvokeContext): void {
    if (inputs.command === undefined || stdio) return;
    throw permanentFailure(
      FailureType.InvalidInput,
      `${describeTarget(inputs, ctx)}: command: stdio MCP servers (a program the connector worker starts) are off on this worker; the operator allows them with ${MCP_STDIO_SETTING}=on at worker start. Or give url, a Streamable HTTP endpoint`,
    );
  }

  // One initialized client per stored connector version and settings: sound because a Streamable HTTP
  // client is a session plus stateless POSTs, and requests on it are told apart by their JSON-RPC IDs,
  // so concurrent calls share it. A session the server forgot (404) is reopened once. Inline
  // connectors get none.
  const sessions: Sessions = new PoolManager(closeSession, options.pools);

  /** Runs `use` with an initialized client, within the timeout, heartbeating. Throws what the client throws. */
  async function withSession<T>(inputs: McpInputs, ctx: InvokeContext, use: (client: Client, request: { signal: AbortSignal; timeout: number }) => Promise<T>): Promise<T> {
    allowed(inputs, ctx);
    const request = { signal: ctx.signal, timeout: timeoutMs(inputs) };
    const once = async (session: McpSession) => use(await clientOf(session, inputs), request);
    const pooled = async (session: McpSession) => {
      try {
        return await once(session);
      } catch (err) {
        // A server that restarted (or expired the session) answers 404 for its ID: the spec says to
        // start a new session, and the request was not processed, so sending it again is safe.
        if (!(err instanceof McpHttpStatus && err.status === 404) || ctx.signal.aborted) throw err;
        const stale = session.connecting;
        session.connecting = undefined;
        void stale?.then((client) => client.close()).catch(() => undefined);
        return once(session);
      }
    };
    return withHeartbeats(ctx, heartbeatIntervalMs, async () => {
      if (ctx.poolKey === undefined) {
        const inline = newSession();
        try {
          return await once(inline);
        } finally {
          await closeSession(inline);
        }
      }
      return sessions.use(ctx.poolKey, sessionSettings(inputs), newSession, pooled);
    });
  }

  async function listTools(client: Client, request: { signal: AbortSignal; timeout: number }): Promise<ConnectorTool[]> {
    const tools = await allPages(async (cursor) => {
      const page = await client.listTools(cursor ? { cursor } : {}, request);
      return { nextCursor: page.nextCursor, items: page.tools };
    });
    // Plain JSON, as every other result: an agent hands these schemas on as inputs of the model's call.
    return plainJson(tools.map(toolOf));
  }

  async function perform(inputs: McpInputs, ctx: InvokeContext): Promise<unknown> {
    return withSession(inputs, ctx, async (client, request) => {
      switch (operationOf(inputs)) {
        case 'tools.list':
          return { tools: await listTools(client, request) };
        case 'resources.read':
          return plainJson(await client.readResource({ uri: inputs.uri! }, request));
        case 'prompts.get':
          return plainJson(await client.getPrompt({ name: inputs.prompt!, arguments: inputs.arguments as Record<string, string> | undefined }, request));
        default: {
          const result = (await client.callTool({ name: inputs.tool!, arguments: inputs.arguments ?? {} }, undefined, request)) as CallToolResult;
          const output = {
            content: result.content ?? [],
            ...(result.structuredContent !== undefined && { structuredContent: result.structuredContent }),
            isError: result.isError === true,
          };
          if (output.isError && inputs.tool_errors === 'fail') {
            // The tool ran and said it failed: the same arguments would fail again.
            throw permanentFailure(FailureType.ToolError, `${describeTarget(inputs, ctx)}: tool ${inputs.tool} failed: ${serverText(toolResultText(output)) || '(no text)'}`, plainJson(output));
          }
          return plainJson(output);
        }
      }
    });
  }

  async function testMcp(inputs: McpInputs, ctx: InvokeContext): Promise<ConnectionTestResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const target = endpoint(inputs.url, inputs.command);
    try {
      const { count, server } = await withSession(inputs, ctx, async (client, request) => {
        await client.ping(request);
        const capabilities = client.getServerCapabilities();
        const tools = capabilities?.tools ? await listTools(client, request) : [];
        const info = client.getServerVersion();
        return { count: tools.length, server: info ? `${info.name} ${info.version}` : 'an MCP server' };
      });
      const latency = elapsed();
      return { ok: true, message: `${server} at ${target} offers ${count} tool${count === 1 ? '' : 's'} (in ${latency} ms)`, latency_ms: latency };
    } catch (err) {
      if (ctx.signal.aborted) throw ctx.signal.reason ?? err;
      const latency = elapsed();
      if (err instanceof ApplicationFailure) return { ok: false, message: err.message, latency_ms: latency };
      if (inputs.command !== undefined && ['ENOENT', 'EACCES'].includes(errorCode(err) ?? '')) return { ok: false, message: `${target} cannot be started (${errorCode(err)}).`, latency_ms: latency };
      if (err instanceof McpHttpStatus) {
        const answered = `HTTP ${err.status} ${STATUS_CODES[err.status] ?? ''}`.trim();
        if (err.status === 401 || err.status === 403) return { ok: false, message: `${target} refused the credentials (${answered}): check bearer_token and headers.`, latency_ms: latency };
        return { ok: false, message: `${target} answered ${answered} to the MCP handshake.`, latency_ms: latency };
      }
      if (err instanceof McpError && err.code === ErrorCode.RequestTimeout) return { ok: false, message: `${target} did not answer within ${timeoutMs(inputs)} ms.`, latency_ms: latency };
      if (err instanceof McpError) return { ok: false, message: `${target} answered MCP error ${err.code} to the handshake.`, latency_ms: latency };
      return { ok: false, message: `Could not reach ${target}: ${describeNetworkError(err)}.`, latency_ms: latency };
    }
  }

  return {
    name: 'MCP',
    description: 'Tools, resources and prompts of a Model Context Protocol server over Streamable HTTP.',
    schema: mcpSchema,
    // Marked on the fields of mcpSchema (`sensitive`, `sensitiveEntries`), and derived from there.
    sensitive: MCP_SENSITIVE,
    async invoke(inputs, ctx) {
      try {
        return await perform(inputs, ctx);
      } catch (err) {
        throw mcpFailure(err, inputs, ctx);
      }
    },
    test: testMcp,
    async introspect(inputs, ctx) {
      try {
        return await withSession(inputs, ctx, async (client, request) => {
          const capabilities = client.getServerCapabilities() ?? {};
          const info = client.getServerVersion();
          const description: Record<string, unknown> = {
            server: info ? { name: info.name, version: info.version } : null,
            ...(client.getInstructions() && { instructions: client.getInstructions() }),
            tools: capabilities.tools ? await listTools(client, request) : [],
          };
          if (capabilities.resources) {
            description.resources = await allPages(async (cursor) => {
              const page = await client.listResources(cursor ? { cursor } : {}, request);
              return { nextCursor: page.nextCursor, items: page.resources };
            });
          }
          if (capabilities.prompts) {
            description.prompts = await allPages(async (cursor) => {
              const page = await client.listPrompts(cursor ? { cursor } : {}, request);
              return { nextCursor: page.nextCursor, items: page.prompts };
            });
          }
          return plainJson(description);
        });
      } catch (err) {
        throw mcpFailure(err, inputs, ctx);
      }
    },
    async tools(inputs, ctx) {
      try {
        return await withSession(inputs, ctx, listTools);
      } catch (err) {
        throw mcpFailure(err, inputs, ctx);
      }
    },
    // What a stdio server runs is the profile's editor's choice (with TC_MCP_STDIO=on), never a
    // workflow's: an override of env alone (NODE_OPTIONS=--import=...) would run its code with the stored env.
    profileOnly: ['command', 'args', 'env'],
    // An agent's tool call: its isError comes back as data, for the model to read.
    toolCall: (tool, args) => ({ operation: 'tools.call', tool, arguments: args, tool_errors: 'return' }),
    destination(inputs) {
      // A stdio server's secrets (its env) go only to the program and arguments they were written for.
      if (typeof inputs.command === 'string') return `stdio:${[inputs.command, ...(Array.isArray(inputs.args) ? inputs.args.map(String) : [])].join(' ')}`;
      try {
        const url = new URL(String(inputs.url));
        return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : undefined;
      } catch {
        return undefined;
      }
    },
    describeCall(inputs) {
      const operation = operationOf(inputs);
      if (!operation) return undefined;
      const subject = operation === 'tools.call' ? inputs.tool : operation === 'prompts.get' ? inputs.prompt : undefined;
      return typeof subject === 'string' ? `${operation} ${subject.slice(0, 100)}` : (operation as string);
    },
    close: (poolKey) => sessions.close(poolKey),
    pools: sessions,
  };
}

/** SDK results are validated objects; history wants plain JSON. */
function plainJson<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** The MCP connector type. */
export const mcpConnector: ConnectorType<typeof mcpSchema> = createMcpConnector();
