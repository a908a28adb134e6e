/**
 * The REST connector type: one HTTP request per call, with auth, query, body encoding, a per-request
 * timeout, keep-alive pools per stored connector, and failures mapped by connectors/errors.ts.
 *
 * A profile usually holds `base_url` and `auth`; workflows override `path`, `method`, `query` and `data`.
 */
import { STATUS_CODES } from 'node:http';
import { Agent, request, type Dispatcher } from 'undici';
import { z } from 'zod';
import { durationSchema, parseDurationMs } from './durations';
import { FailureType, describeNetworkError, errorCode, httpStatusFailure, networkFailure, permanentFailure } from './errors';
import { headerName, headerValue, hasHeader, idempotencyHeaders, idempotencyKeyInput } from './http-headers';
import { PoolManager, type PoolOptions } from './pools';
import { SECRET_HEADER_NAMES, sensitive, sensitiveEntries, sensitivePaths } from './sensitivity';
import type { ConnectionTestResult, ConnectorType, InvokeContext } from './types';

export const HTTP_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

/** Per-request timeout when the inputs give none: 30 s. */
export const DEFAULT_TIMEOUT_MS = 30_000;

export { parseDurationMs } from './durations';

// RFC 9110 token characters; undici would refuse anything else, with a less helpful message.
// A key sent in one of these would move the call (Host picks the virtual host) or break its framing,
// and land in every proxy's logs: the destination check reads `headers`, not the auth header's name.
const ROUTING_HEADERS = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'te', 'upgrade', 'keep-alive', 'proxy-connection']);
const httpUrl = z.url({ protocol: /^https?$/, message: 'must be an absolute http:// or https:// URL' });
const queryScalar = z.union([z.string(), z.number(), z.boolean()]);
const formValue = z.union([queryScalar, z.array(queryScalar)]);

// Field documentation lives in the schema (`.describe()`/`.meta()`), so the JSON Schema that forms, the
// API and `connectors types` show carries it. Defaults and units stay in the text for readers that
// show only the description.
const restAuthSchema = z.discriminatedUnion('type', [
  z
    .strictObject({
      type: z.literal('basic').describe('`basic`: HTTP Basic authentication with a user name and a password.'),
      username: z.string().describe('User name for HTTP Basic authentication.'),
      password: sensitive(z.string().describe('Password for HTTP Basic authentication.')),
    })
    .describe('HTTP Basic authentication: sends `Authorization: Basic <base64 of username:password>`.'),
  z
    .strictObject({
      type: z.literal('bearer').describe('`bearer`: a bearer token.'),
      token: sensitive(z.string().min(1).describe('Sent as `Authorization: Bearer <token>`.')),
    })
    .describe('Bearer token authentication: sends `Authorization: Bearer <token>`.'),
  z
    .strictObject({
      type: z.literal('api_key').describe('`api_key`: a key sent in a header of its own.'),
      header: headerName
        .refine((name) => !ROUTING_HEADERS.has(name.toLowerCase()), { message: 'must not be Host or a header that frames or routes the request (Connection, Content-Length, Transfer-Encoding, TE, Upgrade, Keep-Alive, Proxy-Connection)' })
        .default('X-API-Key')
        .meta({ description: 'Header that carries the key; never Host or a header that frames or routes the request. Default `X-API-Key`.', examples: ['X-API-Key', 'api-key'] }),
      value: sensitive(headerValue.min(1).describe('The key itself.')),
    })
    .describe('API key authentication: sends the key in the header named by `header`.'),
]);

/** Inputs of a REST connector (snake_case: they are data in profiles, Vault secrets and overrides). */
export const restSchema = z
  .strictObject({
    url: httpUrl
      .optional()
      .meta({ description: 'Full URL of the endpoint. Give either this, or `base_url` (plus an optional `path`).', examples: ['https://hooks.example.com/notify'] }),
    base_url: httpUrl
      .optional()
      .meta({ description: 'Base URL of the API; `path` is joined to it. Give either this or `url`.', examples: ['https://api.example.com/v1'] }),
    path: z
      .string()
      .optional()
      .meta({ description: 'Path joined to `base_url` with exactly one slash. Not allowed with `url`. Default: none.', examples: ['/invoices', 'invoices/42'] }),
    method: z
      .string()
      .transform((method) => method.toUpperCase())
      .pipe(z.enum(HTTP_METHODS))
      .default('GET')
      .meta({ description: `HTTP method, case-insensitive. Default \`GET\`. One of ${HTTP_METHODS.join(', ')}.` }),
    headers: sensitiveEntries(z.record(headerName, headerValue), SECRET_HEADER_NAMES)
      .optional()
      .describe(
        'Request headers, by name. A header given here wins over the default content-type; `auth` wins over it. ' +
          'Sensitive by name (case-insensitive): `authorization`, `proxy-authorization`, `cookie`, `set-cookie`, and every name containing ' +
          '`token`, `key`, `secret`, `signature`, `auth`, `password` or `session` (`X-Auth-Token`, `X-Api-Key`, `X-Hub-Signature`). Default: none.',
      ),
    query: z
      .record(z.string(), formValue)
      .optional()
      .meta({ description: 'Query parameters, added to any query already in the URL; an array repeats the key. Default: none.', examples: [{ customer: 'acme', status: ['open', 'late'] }] }),
    data: z.json().optional().describe('Request body: any JSON value. Default: no body (`null` also sends none).'),
    data_format: z
      .enum(['json', 'text', 'form'])
      .optional()
      .describe(
        'How `data` is encoded: `json`, `text` (a string sent as-is) or `form` (an object sent as application/x-www-form-urlencoded). Default: `text` when `data` is a string, else `json`.',
      ),
    auth: restAuthSchema
      .optional()
      .describe('Authentication: `basic`, `bearer` or `api_key`; sets the matching header and wins over the same header in `headers`. Default: none.'),
    timeout: durationSchema
      .default(DEFAULT_TIMEOUT_MS)
      .meta({
        description: "Per-request timeout covering connect, headers and body: milliseconds (a number) or a duration string such as '500ms', '30s', '2m'. Default 30 s.",
        examples: ['10s', 5000],
      }),
    idempotency_key: idempotencyKeyInput('`invoke`'),
    response_format: z
      .enum(['auto', 'json', 'text'])
      .default('auto')
      .describe('How the response body is read: `auto` (JSON when the content-type says json, else text), `json` or `text`. An empty body is always `null`. Default `auto`.'),
    health_path: z
      .string()
      .optional()
      .meta({ description: 'Path that the connection test GETs, joined to `base_url` (or to the origin of `url`). Default: `url` or `base_url` itself.', examples: ['/health'] }),
    openapi_path: z
      .string()
      .optional()
      .meta({
        description: "Path of the API's OpenAPI document, joined like `health_path`; introspection returns it (parsed JSON, or the text of a YAML document). Default: none (introspection is refused).",
        examples: ['/openapi.json'],
      }),
  })
  .superRefine((inputs, ctx) => {
    if (!inputs.url && !inputs.base_url) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'give either url, or base_url (with an optional path)' });
    }
    if (inputs.url && inputs.base_url) {
      ctx.addIssue({ code: 'custom', path: ['base_url'], message: 'give either url or base_url, not both' });
    }
    if (inputs.url && inputs.path !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['path'], message: 'path is joined to base_url; with url, put the path in url' });
    }
    const format = inputs.data_format;
    if (format === 'text' && inputs.data != null && typeof inputs.data !== 'string') {
      ctx.addIssue({ code: 'custom', path: ['data'], message: 'data_format text needs data to be a string' });
    }
    if (format === 'form' && inputs.data != null && typeof inputs.data !== 'string' && !formValues(inputs.data)) {
      ctx.addIssue({
        code: 'custom',
        path: ['data'],
        message: 'data_format form needs data to be an object of strings, numbers, booleans or arrays of them (or an encoded string)',
      });
    }
  });

// Derived once: every REST connector type made by createRestConnector shares the schema.
const REST_SENSITIVE = sensitivePaths(restSchema);

export type RestInputs = z.output<typeof restSchema>;
export type RestAuth = z.output<typeof restAuthSchema>;

/** What `invoke` returns: the answer of a 2xx call. */
export interface RestResponse {
  status: number;
  /** Response headers with lower-cased names; repeated headers are joined with `, `. */
  headers: Record<string, string>;
  /** Parsed JSON or text, per `response_format`; `null` for an empty body. */
  body: unknown;
}

function formValues(data: unknown): Record<string, z.output<typeof formValue>> | undefined {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return undefined;
  const parsed = z.record(z.string(), formValue).safeParse(data);
  return parsed.success ? parsed.data : undefined;
}

/** Joins a base URL and a path with exactly one slash; an empty path leaves the base as it is. */
export function joinUrl(base: string, path: string | undefined): string {
  if (!path) return base;
  return `${base.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;
}

type UrlInputs = { url?: unknown; base_url?: unknown; path?: unknown; query?: unknown };

/** The request URL from url, or base_url + path, plus `query`. Throws on unusable inputs. */
function requestUrl(inputs: UrlInputs, healthPath?: string): URL {
  let url: URL;
  if (typeof inputs.url === 'string') {
    url = new URL(inputs.url);
    if (healthPath) url = new URL(joinUrl(url.origin, healthPath));
  } else if (typeof inputs.base_url === 'string') {
    const path = healthPath ?? (typeof inputs.path === 'string' ? inputs.path : undefined);
    url = new URL(joinUrl(inputs.base_url, path));
  } else {
    throw new TypeError('neither url nor base_url');
  }
  if (inputs.query && typeof inputs.query === 'object') {
    for (const [key, value] of Object.entries(inputs.query)) {
      for (const item of Array.isArray(value) ? value : [value]) url.searchParams.append(key, String(item));
    }
  }
  return url;
}

/**
 * Where a call goes: the origin, and a `Host` header that names another host, since undici routes by
 * it (and verifies TLS against it): behind a shared ingress or CDN it picks another tenant's server
 * at the same address. E.g. `https://api.example.com`, or `https://api.example.com host=other.example`.
 */
export function restDestination(inputs: Record<string, unknown>): string | undefined {
  let url: URL;
  try {
    url = requestUrl({ ...(inputs as UrlInputs), query: undefined });
  } catch {
    return undefined;
  }
  // Anything else names no origin (`new URL('tcenc:…').origin` is the string "null"), and fails validation.
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  const headers = isRecord(inputs.headers) ? inputs.headers : {};
  const hostHeaders = Object.keys(headers).filter((key) => key.toLowerCase() === 'host');
  // Two spellings of Host with different values: which one is sent is the client's choice, so neither is.
  const hosts = [...new Set(hostHeaders.map((key) => String(headers[key]).trim().toLowerCase()))].filter((host) => host !== url.host);
  return hosts.length === 0 ? url.origin : `${url.origin} host=${hosts.join(',')}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Which call, for messages: origin and path only, since query strings and userinfo may carry keys. */
function describeTarget(method: string, url: URL): string {
  return `REST ${method} ${url.origin}${url.pathname}`;
}

function withoutHeader(headers: Record<string, string>, name: string): Record<string, string> {
  const lower = name.toLowerCase();
  return Object.fromEntries(Object.entries(headers).filter(([key]) => key.toLowerCase() !== lower));
}

function basicCredentials(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

function decodeUserinfo(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    // A stray `%` that is not an escape: the URL parser kept it literally, so do the same.
    return part;
  }
}

function authHeader(auth: RestAuth): [name: string, value: string] {
  switch (auth.type) {
    case 'basic':
      return ['Authorization', basicCredentials(auth.username, auth.password)];
    case 'bearer':
      return ['Authorization', `Bearer ${auth.token}`];
    case 'api_key':
      return [auth.header, auth.value];
  }
}

function encodeBody(inputs: RestInputs): { body?: string; contentType?: string } {
  const { data } = inputs;
  if (data === undefined || data === null) return {};
  const format = inputs.data_format ?? (typeof data === 'string' ? 'text' : 'json');
  if (format === 'json') return { body: JSON.stringify(data), contentType: 'application/json' };
  if (format === 'text') return { body: String(data), contentType: 'text/plain; charset=utf-8' };
  if (typeof data === 'string') return { body: data, contentType: 'application/x-www-form-urlencoded' };
  const form = new URLSearchParams();
  for (const [key, value] of Object.entries(formValues(data) ?? {})) {
    for (const item of Array.isArray(value) ? value : [value]) form.append(key, String(item));
  }
  return { body: form.toString(), contentType: 'application/x-www-form-urlencoded' };
}

interface PreparedRequest {
  url: URL;
  method: HttpMethod;
  headers: Record<string, string>;
  body?: string;
  /** Secret-free name of the call for messages, e.g. `REST POST http://host/invoices`. */
  what: string;
}

/**
 * The request for `inputs`; with `probe`, a bodiless GET of a side path of the same API instead
 * (the health check, the OpenAPI document), with the same auth.
 */
function prepareRequest(inputs: RestInputs, options: { probe?: { path: string | undefined } } = {}): PreparedRequest {
  const probing = options.probe !== undefined;
  const method: HttpMethod = probing ? 'GET' : inputs.method;
  let url: URL;
  try {
    url = requestUrl(inputs, options.probe?.path);
  } catch {
    // Node's URL error carries the input, which may hold credentials: say which field instead.
    throw permanentFailure(FailureType.InvalidInput, 'REST: url (or base_url joined with path) is not a usable URL');
  }

  let headers: Record<string, string> = { ...inputs.headers };
  // Credentials in the URL would otherwise go nowhere (undici ignores userinfo): send them as Basic
  // auth, unless the inputs authenticate explicitly.
  const userinfo = url.username || url.password ? [decodeUserinfo(url.username), decodeUserinfo(url.password)] : undefined;
  url.username = '';
  url.password = '';
  if (inputs.auth) {
    const [name, value] = authHeader(inputs.auth);
    headers = { ...withoutHeader(headers, name), [name]: value };
  } else if (userinfo && !hasHeader(headers, 'authorization')) {
    headers.Authorization = basicCredentials(userinfo[0], userinfo[1]);
  }

  const encoded = probing ? {} : encodeBody(inputs);
  if (encoded.contentType && !hasHeader(headers, 'content-type')) headers['Content-Type'] = encoded.contentType;
  return { url, method, headers, body: encoded.body, what: describeTarget(method, url) };
}

// One keep-alive agent per stored connector version, so repeated calls skip TCP and TLS set-up.
// Inline connectors get none: they have no identity to key a pool by, and must not keep sockets.
type Agents = PoolManager<Agent>;

// undici's default idle timeout for sockets (4 s, or less than the server's keep-alive hint) stays:
// a longer one risks writing to a socket the server has just closed.
const newAgent = () => new Agent();

interface Exchange {
  status: number;
  headers: Record<string, string>;
  /** The body, when asked for and the status is 2xx; otherwise drained and undefined. */
  bytes?: Buffer;
}

/**
 * Sends the request and reads the answer within the timeout. Throws the activity's cancellation
 * reason, a `TimeoutError` when the timeout fired, or the client's own error; callers map them.
 */
async function exchange(prepared: PreparedRequest, inputs: RestInputs, ctx: InvokeContext, agents: Agents, wantBody: boolean): Promise<Exchange> {
  const timeoutMs = parseDurationMs(inputs.timeout) ?? DEFAULT_TIMEOUT_MS;
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError')), timeoutMs);
  const onCancel = () => deadline.abort(ctx.signal.reason);
  if (ctx.signal.aborted) onCancel();
  else ctx.signal.addEventListener('abort', onCancel, { once: true });
  // Heartbeat on a clock rather than per chunk: it also covers a server that is slow to start
  // answering, and stays at most once a second however fast chunks arrive.
  let receivedBytes = 0;
  const heartbeats = setInterval(() => ctx.heartbeat({ received_bytes: receivedBytes }), 1_000);
  heartbeats.unref();

  const lease = ctx.poolKey === undefined ? undefined : agents.lease(ctx.poolKey, '', newAgent);
  const inline = lease ? undefined : new Agent();
  const dispatcher: Dispatcher = lease?.pool ?? (inline as Agent);
  try {
    const response = await request(prepared.url, {
      method: prepared.method,
      headers: prepared.headers,
      body: prepared.body,
      signal: deadline.signal,
      dispatcher,
      // The deadline above covers the whole exchange; undici's own 300 s limits would cut long timeouts short.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    const answer: Exchange = { status: response.statusCode, headers: lowerCaseHeaders(response.headers) };
    if (wantBody && answer.status >= 200 && answer.status < 300) {
      const chunks: Buffer[] = [];
      for await (const chunk of response.body) {
        chunks.push(chunk as Buffer);
        receivedBytes += (chunk as Buffer).length;
      }
      answer.bytes = Buffer.concat(chunks);
    } else {
      // Drained rather than destroyed, so the connection stays usable for the pool.
      await response.body.dump().catch(() => undefined);
    }
    // undici marks the connection idle a tick after the body ends; without this wait a call made
    // right after this one would open a second connection instead of reusing the first.
    if (!inline) await new Promise((resolve) => setImmediate(resolve));
    return answer;
  } catch (err) {
    // Whatever undici reports once an abort fired, the reason is the abort.
    if (ctx.signal.aborted) throw ctx.signal.reason;
    if (deadline.signal.aborted) throw deadline.signal.reason;
    throw err;
  } finally {
    clearTimeout(timer);
    clearInterval(heartbeats);
    ctx.signal.removeEventListener('abort', onCancel);
    lease?.release();
    if (inline) await inline.destroy().catch(() => undefined);
  }
}

function lowerCaseHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) result[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return result;
}

function decodeText(bytes: Buffer, contentType: string | undefined): string {
  const charset = /charset\s*=\s*"?([^";\s]+)/i.exec(contentType ?? '')?.[1];
  try {
    return new TextDecoder(charset ?? 'utf-8').decode(bytes);
  } catch {
    // An unknown charset label: UTF-8 is the best guess and keeps ASCII intact.
    return new TextDecoder('utf-8').decode(bytes);
  }
}

function parseBody(prepared: PreparedRequest, inputs: RestInputs, answer: Exchange): unknown {
  if (!answer.bytes || answer.bytes.length === 0) return null;
  const contentType = answer.headers['content-type'];
  const text = decodeText(answer.bytes, contentType);
  const asJson = inputs.response_format === 'json' || (inputs.response_format === 'auto' && /json/i.test(contentType ?? ''));
  if (!asJson) return text;
  try {
    return JSON.parse(text);
  } catch {
    // Never the parser's message: it quotes the body.
    const reason = inputs.response_format === 'auto' ? `its content-type (${contentType}) says JSON` : 'response_format is json';
    throw permanentFailure(
      FailureType.External,
      `${prepared.what} answered HTTP ${answer.status} with a body that is not valid JSON although ${reason}; set response_format: text to receive it as text`,
      { status: answer.status },
    );
  }
}

function statusText(status: number): string {
  return STATUS_CODES[status] ?? '';
}

/** The failure for a call that got no answer. The activity's cancellation passes through as is: Temporal must see it. */
function sendFailure(prepared: PreparedRequest, inputs: RestInputs, ctx: InvokeContext, err: unknown): unknown {
  if (ctx.signal.aborted) return ctx.signal.reason;
  if ((err as Error)?.name === 'TimeoutError') {
    const timeoutMs = parseDurationMs(inputs.timeout) ?? DEFAULT_TIMEOUT_MS;
    return networkFailure(`${prepared.what} (timeout ${timeoutMs} ms)`, err);
  }
  if (errorCode(err) === 'UND_ERR_INVALID_ARG') {
    // undici's message may quote what it refused; name the inputs to check instead.
    return permanentFailure(FailureType.InvalidInput, `${prepared.what} could not be sent: the HTTP client refused the request; check url, method and headers`);
  }
  return networkFailure(prepared.what, err);
}

async function send(prepared: PreparedRequest, inputs: RestInputs, ctx: InvokeContext, agents: Agents): Promise<RestResponse> {
  let answer: Exchange;
  try {
    answer = await exchange(prepared, inputs, ctx, agents, true);
  } catch (err) {
    throw sendFailure(prepared, inputs, ctx, err);
  }
  if (answer.status < 200 || answer.status >= 300) {
    throw httpStatusFailure(prepared.what, answer.status, statusText(answer.status), answer.headers['retry-after']);
  }
  return { status: answer.status, headers: answer.headers, body: parseBody(prepared, inputs, answer) };
}

async function testRest(inputs: RestInputs, ctx: InvokeContext, agents: Agents): Promise<ConnectionTestResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  let prepared: PreparedRequest;
  try {
    prepared = prepareRequest(inputs, { probe: { path: inputs.health_path } });
  } catch {
    return { ok: false, message: 'The URL to test is not usable: check url, base_url and health_path.', latency_ms: 0 };
  }
  const target = `${prepared.url.origin}${prepared.url.pathname}`;
  try {
    const { status } = await exchange(prepared, inputs, ctx, agents, false);
    const answered = `HTTP ${status} ${statusText(status)}`.trim();
    const latency = elapsed();
    if (status >= 200 && status < 300) return { ok: true, message: `${answered} from ${target} in ${latency} ms`, latency_ms: latency };
    if (status === 401 || status === 403) {
      return {
        ok: false,
        message: `${target} refused authentication (${answered}): check auth and the authorization headers.`,
        latency_ms: latency,
      };
    }
    return { ok: false, message: `${target} answered ${answered} in ${latency} ms.`, latency_ms: latency };
  } catch (err) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    return { ok: false, message: `Could not reach ${target}: ${describeNetworkError(err)}.`, latency_ms: elapsed() };
  }
}

/** Options of {@link createRestConnector}. */
export interface RestConnectorOptions {
  /** How long keep-alive agents are kept, and how many (connectors/pools.ts). Default: its defaults. */
  pools?: PoolOptions;
}

/** Creates the REST type with its own agents; `restConnector` is the one workers use. */
export function createRestConnector(options: RestConnectorOptions = {}): ConnectorType<typeof restSchema> {
  const agents: Agents = new PoolManager((agent) => agent.close(), options.pools);
  return {
    name: 'REST',
    description: 'Any HTTP/JSON API: one request per call, with basic, bearer or API-key auth.',
    schema: restSchema,
    // Marked on the fields of restSchema (`sensitive`, `sensitiveEntries`), and derived from there.
    sensitive: REST_SENSITIVE,
    invoke: (inputs, ctx) => {
      const prepared = prepareRequest(inputs);
      Object.assign(prepared.headers, idempotencyHeaders(inputs.idempotency_key, ctx, prepared.headers));
      return send(prepared, inputs, ctx, agents);
    },
    test: (inputs, ctx) => testRest(inputs, ctx, agents),
    async introspect(inputs, ctx) {
      if (!inputs.openapi_path) {
        throw permanentFailure(FailureType.InvalidInput, "REST: introspection needs openapi_path, the path of the API's OpenAPI document");
      }
      const prepared = prepareRequest(inputs, { probe: { path: inputs.openapi_path } });
      const answer = await send(prepared, { ...inputs, response_format: 'auto' }, ctx, agents);
      return { openapi_url: `${prepared.url.origin}${prepared.url.pathname}`, document: answer.body };
    },
    describeCall(inputs) {
      try {
        const method = inputs.method === undefined ? 'GET' : String(inputs.method).toUpperCase();
        if (!(HTTP_METHODS as readonly string[]).includes(method)) return undefined;
        // A whole `url` is often a webhook whose path is its key: name its host only. With base_url,
        // the path is the API's route (`/invoices`), which is what a person looks for in a summary.
        const url = requestUrl({ ...inputs, query: undefined });
        return `${method} ${typeof inputs.url === 'string' ? url.host : url.pathname}`;
      } catch {
        return undefined;
      }
    },
    secretForms(inputs) {
      let userinfo: [string, string] | undefined;
      if (inputs.auth?.type === 'basic') userinfo = [inputs.auth.username, inputs.auth.password];
      else if (!inputs.auth) {
        try {
          const url = requestUrl({ ...inputs, query: undefined });
          if (url.password) userinfo = [decodeUserinfo(url.username), decodeUserinfo(url.password)];
        } catch {
          // No usable URL: nothing will be sent.
        }
      }
      return userinfo ? [basicCredentials(...userinfo).slice('Basic '.length)] : [];
    },
    destination: restDestination,
    close: (poolKey) => agents.close(poolKey),
    pools: agents,
  };
}

/** The REST connector type. */
export const restConnector: ConnectorType<typeof restSchema> = createRestConnector();
