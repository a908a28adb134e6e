/**
 * The codec server: Temporal's remote codec protocol (`POST /encode`, `POST /decode`) over the payload
 * encryption codec, so the Web UI and `temporal workflow show --codec-endpoint` can show encrypted
 * payloads decoded. Decoded JSON is shown with the values of sensitive connector inputs masked: an
 * override a workflow passes (an API key, a token) is readable to whoever can decrypt history, but
 * not to whoever merely looks at the UI.
 */
import type { Payload } from '@temporalio/common';
import { checkedAllowedHosts, checkedTokens, createBearerCheck, createHostCheck, HttpError, isLoopbackHost, listen, type RunningHttpServer } from './http';
import Fastify, { type FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ConnectorRegistry } from '../connectors/registry';
import { createEncryptionCodec } from '../core/codec';
import { codecSettings, DEFAULT_CODEC_CORS_ORIGINS, keyringSetting, payloadKeyringSetting, type ConnectorsConfig } from '../core/config';
import { hasUrlCredentials, isPlainObject, isSensitivePath, MASK } from '../core/inputs';
import { Keyring, KeyringError } from '../core/keyring';

/** Options of {@link createCodecServer} and {@link startCodecServer}. */
export interface CodecServerOptions {
  /** Keys of payload encryption, the same ring the workers' `ConnectorsPlugin({ encryption })` uses. Required. */
  keyring: Keyring;
  /**
   * Bearer tokens accepted on `/encode` and `/decode` (`Authorization: Bearer <token>`), compared in
   * constant time. At least one is required unless {@link insecureNoAuth} is set. Default: none.
   */
  tokens?: string[];
  /**
   * Serve `/encode` and `/decode` without tokens, to whoever reaches the port: for development on
   * one machine only. {@link startCodecServer} then listens on a loopback address only and refuses
   * another (whoever listens with {@link createCodecServer} themselves must do the same).
   * Contradicts `tokens`. Default: `false` (tokens required).
   */
  insecureNoAuth?: boolean;
  /**
   * Host names the server also answers to, besides `localhost`, loopback addresses and the address
   * a request arrives on: e.g. the name of a reverse proxy in front of it (`codec.example.com`). A
   * request whose `Host` header names anything else is refused with 403 (DNS rebinding).
   * Default: none.
   */
  allowedHosts?: string[];
  /**
   * Browser origins allowed to call (the Web UI's), e.g. `http://localhost:8233`. Only these get CORS
   * headers; a browser refuses the answer for every other origin. Required (may be empty).
   */
  corsOrigins: string[];
  /**
   * Masks, in decoded `json/plain` payloads, the values of the sensitive inputs of every connector
   * type (`api_key`, `auth.token`, `headers.authorization`, `password`, ...) at any depth.
   * Default: `true`.
   */
  maskSensitive?: boolean;
  /** Connector types whose sensitive fields are masked. Default: the built-in types. */
  registry?: ConnectorRegistry;
  /** Largest request body accepted, in bytes; a larger one is refused with 413. Default: 16 MiB (16777216). */
  bodyLimitBytes?: number;
}

export interface StartCodecServerOptions extends CodecServerOptions {
  /** Interface to listen on. Default: `127.0.0.1` (this machine only). */
  host?: string;
  /** TCP port; `0` picks a free one. Default: 8888. */
  port?: number;
}

/** The codec server listening: its base URL (e.g. `http://127.0.0.1:8888`, the codec endpoint to configure), the Fastify instance, and `close()`. */
export type RunningCodecServer = RunningHttpServer;

/** Default port of the codec server. */
export const DEFAULT_CODEC_PORT = 8888;
/** The Web UI of `temporal server start-dev`, by both of its usual names. */
export { DEFAULT_CODEC_CORS_ORIGINS };
/** 16 MiB: a batch of payloads near Temporal's 2 MB payload limit fits; far larger bodies are refused. */
export const DEFAULT_CODEC_BODY_LIMIT_BYTES = 16 * 1024 * 1024;

/** Headers the Web UI sends: the body's type, the namespace it shows, and an access token if configured. */
const ALLOWED_HEADERS = 'Content-Type, X-Namespace, Authorization';

/**
 * The codec server's options from the environment: `TC_PAYLOAD_KEYRING` (entries as in `TC_KEYRING`;
 * falls back to `TC_KEYRING` / `TC_KEYRING_FILE`), `TC_CODEC_TOKENS` (comma-separated, default none),
 * `TC_CODEC_CORS_ORIGINS` (comma-separated, default the dev server's Web UI on port 8233),
 * `TC_CODEC_ALLOWED_HOSTS` (comma-separated, default none), `TC_CODEC_PORT` (default 8888).
 * Throws when there is no keyring. Running without tokens is never configured here: it takes
 * `insecureNoAuth` (the CLI's `--insecure-no-auth`). Reads `env` (default: this process's) as `loadConfig` does.
 */
export function codecServerOptionsFromEnv(env?: NodeJS.ProcessEnv): StartCodecServerOptions {
  const payloadKeyring = payloadKeyringSetting(env);
  return codecServerOptionsFromConfig({ payloadKeyring, keyring: payloadKeyring ? undefined : keyringSetting(env), codec: codecSettings(env) });
}

/** The codec server's options that the configuration sets (see {@link codecServerOptionsFromEnv}). Throws when there is no keyring. */
export function codecServerOptionsFromConfig(config: Pick<ConnectorsConfig, 'payloadKeyring' | 'keyring' | 'codec'>): StartCodecServerOptions {
  const keyring = Keyring.fromSetting(config.payloadKeyring ?? config.keyring);
  if (!keyring) {
    throw new Error('the codec server needs the payload keyring: set TC_PAYLOAD_KEYRING (or TC_KEYRING / TC_KEYRING_FILE) to the keys the workers encrypt with');
  }
  const { tokens, corsOrigins, allowedHosts, port } = config.codec;
  const options: StartCodecServerOptions = { keyring, tokens: [...tokens], corsOrigins: [...corsOrigins], allowedHosts: [...allowedHosts] };
  if (port !== undefined) options.port = port;
  return options;
}

/** The remote codec protocol's body: payloads in proto JSON form, bytes as base64. */
const codecBodySchema = z.object({
  payloads: z.array(
    z.object({
      metadata: z.record(z.string(), z.string()).nullish(),
      data: z.string().nullish(),
    }),
  ),
});
type JsonPayload = z.infer<typeof codecBodySchema>['payloads'][number];

/** The codec server as a Fastify instance, not listening (`inject()` it, or {@link startCodecServer}). */
export function createCodecServer(options: CodecServerOptions): FastifyInstance {
  const codec = createEncryptionCodec(options.keyring);
  const tokens = checkedTokens(options.tokens ?? [], 'the codec server tokens');
  const open = options.insecureNoAuth === true;
  if (open && tokens.length > 0) {
    throw new Error('the codec server was given tokens (TC_CODEC_TOKENS) and insecureNoAuth (--insecure-no-auth) at once: drop one of them');
  }
  if (!open && tokens.length === 0) {
    throw new Error(
      'the codec server needs at least one bearer token (TC_CODEC_TOKENS, comma-separated): without one, anyone who reaches it can decrypt payloads. ' +
        'For development on this machine only, start it with --insecure-no-auth (insecureNoAuth: true) on a loopback address',
    );
  }
  const authenticate = createBearerCheck({ tokens: [['valid', tokens]], server: 'this codec server', realm: 'temporal-connectors-codec' });
  const checkHost = createHostCheck({
    allowedHosts: checkedAllowedHosts(options.allowedHosts ?? [], 'allowedHosts (TC_CODEC_ALLOWED_HOSTS)'),
    setting: 'TC_CODEC_ALLOWED_HOSTS',
    server: 'this codec server',
  });
  const allowedOrigins = new Set(options.corsOrigins.map(normalizeOrigin));
  const maskSensitive = options.maskSensitive ?? true;
  const patterns = [...new Set((options.registry ?? new ConnectorRegistry()).all().flatMap((type) => type.sensitive))];

  const app = Fastify({ logger: false, bodyLimit: options.bodyLimitBytes ?? DEFAULT_CODEC_BODY_LIMIT_BYTES });

  // CORS first, so that even a 401 reaches the UI as a 401 rather than as an opaque network error.
  app.addHook('onRequest', async (request, reply) => {
    // Decoded payloads must not linger in caches; the answer also differs by Origin.
    void reply.header('cache-control', 'no-store').header('vary', 'Origin');
    const origin = request.headers.origin;
    if (origin === undefined || !allowedOrigins.has(origin)) return;
    void reply.header('access-control-allow-origin', origin).header('access-control-allow-credentials', 'true');
    if (request.method === 'OPTIONS') {
      void reply
        .header('access-control-allow-methods', 'POST, OPTIONS')
        .header('access-control-allow-headers', ALLOWED_HEADERS)
        .header('access-control-max-age', '600');
    }
  });

  // After CORS, so that a Web UI configured with an unlisted name reads why it is refused.
  app.addHook('onRequest', async (request) => checkHost(request));

  // A browser's preflight never carries credentials, so OPTIONS is never authenticated.
  app.addHook('onRequest', async (request) => {
    if (request.method === 'OPTIONS' || open) return;
    authenticate(request);
  });

  app.route({ method: 'OPTIONS', url: '/*', handler: async (_request, reply) => reply.code(204).send() });

  app.post('/encode', async (request) => {
    const payloads = parsePayloads(request.body);
    return { payloads: (await codec.encode(payloads)).map(toJsonPayload) };
  });

  app.post('/decode', async (request) => {
    const payloads = parsePayloads(request.body);
    let decoded: Payload[];
    try {
      decoded = await codec.decode(payloads);
    } catch (err) {
      // Names a key id or says the ciphertext is damaged; never key material or plaintext.
      if (err instanceof KeyringError) throw new HttpError(400, 'Codec.DecodeFailed', err.message);
      throw new HttpError(400, 'Codec.DecodeFailed', 'a payload is not a valid encrypted payload');
    }
    return { payloads: decoded.map((payload) => toJsonPayload(maskSensitive ? maskPayload(payload, patterns) : payload)) };
  });

  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send(errorBody('Request.NoRoute', `no route ${request.method} ${request.url.split('?')[0].slice(0, 200)}; this server has POST /encode and POST /decode`));
  });

  app.setErrorHandler((error, _request, reply) => {
    if (error instanceof HttpError) {
      return void reply.code(error.statusCode).headers(error.headers).send(errorBody(error.type, error.message));
    }
    const fastifyError = error as { code?: unknown; statusCode?: unknown; message?: unknown };
    if (fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return void reply.code(413).send(errorBody('Request.TooLarge', 'the request body is larger than this server accepts'));
    if (typeof fastifyError.statusCode === 'number' && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
      // Fastify's own 4xx messages are fixed sentences (they never quote the body).
      return void reply.code(fastifyError.statusCode).send(errorBody('Request.Invalid', String(fastifyError.message)));
    }
    void reply.code(500).send(errorBody('Internal', 'internal error'));
  });

  return app;
}

/**
 * {@link createCodecServer}, listening. Refuses to start without tokens on an address other than a
 * loopback one.
 */
export async function startCodecServer(options: StartCodecServerOptions): Promise<RunningCodecServer> {
  const host = options.host ?? '127.0.0.1';
  if (options.insecureNoAuth && !isLoopbackHost(host.replace(/^\[(.*)\]$/, '$1'))) {
    throw new Error(
      `refusing to serve /decode without tokens on ${host}: --insecure-no-auth (insecureNoAuth) is for loopback addresses only (127.0.0.1, ::1, localhost); set TC_CODEC_TOKENS to serve other machines`,
    );
  }
  return listen(createCodecServer(options), { host, port: options.port ?? DEFAULT_CODEC_PORT });
}

/**
 * A copy of `value` in which every value whose object path ends in a sensitive pattern is `MASK`:
 * `api_key` anywhere, `auth.token` under `overrides`, `headers.authorization` in a list of calls.
 * Array elements keep their index as a path segment, so a suffix never spans one.
 */
export function maskSensitiveValues(value: unknown, patterns: readonly string[], path: string[] = []): unknown {
  if (Array.isArray(value)) return value.map((item, i) => maskSensitiveValues(item, patterns, [...path, String(i)]));
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    const childPath = [...path, key];
    const sensitive = hasUrlCredentials(child) || (child !== null && child !== undefined && childPath.some((_, i) => isSensitivePath(childPath.slice(i), patterns)));
    out[key] = sensitive ? MASK : maskSensitiveValues(child, patterns, childPath);
  }
  return out;
}

/** A `json/plain` payload with sensitive values masked and re-encoded; any other payload as it is. */
function maskPayload(payload: Payload, patterns: readonly string[]): Payload {
  const encoding = payload.metadata?.encoding;
  if (!encoding || Buffer.from(encoding).toString('utf8') !== 'json/plain' || !payload.data) return payload;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(payload.data).toString('utf8'));
  } catch {
    return payload;
  }
  return { ...payload, data: Buffer.from(JSON.stringify(maskSensitiveValues(parsed, patterns)), 'utf8') };
}

function parsePayloads(body: unknown): Payload[] {
  const parsed = codecBodySchema.safeParse(body);
  if (!parsed.success) {
    throw new HttpError(400, 'Request.InvalidBody', 'the body must be {"payloads": [{"metadata": {"<key>": "<base64>"}, "data": "<base64>"}]}');
  }
  return parsed.data.payloads.map((payload) => ({
    metadata: Object.fromEntries(Object.entries(payload.metadata ?? {}).map(([key, value]) => [key, Buffer.from(value, 'base64')])),
    data: Buffer.from(payload.data ?? '', 'base64'),
  }));
}

function toJsonPayload(payload: Payload): JsonPayload {
  return {
    metadata: Object.fromEntries(Object.entries(payload.metadata ?? {}).map(([key, value]) => [key, Buffer.from(value ?? new Uint8Array()).toString('base64')])),
    data: Buffer.from(payload.data ?? new Uint8Array()).toString('base64'),
  };
}

function errorBody(type: string, message: string) {
  return { error: { type, message } };
}

/** `http://localhost:8233/` → `http://localhost:8233`: browsers send the origin without path or slash. */
function normalizeOrigin(origin: string): string {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    throw new Error(`CORS origin "${origin}" is not an origin such as http://localhost:8233`);
  }
  if (url.origin === 'null' || (url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
    throw new Error(`CORS origin "${origin}" must be scheme://host[:port] only, such as http://localhost:8233`);
  }
  return url.origin;
}
