/**
 * The HTTP management API: the service's operations over JSON, behind bearer tokens, with every
 * response masked (the service only ever hands out masked views) and optimistic concurrency by
 * version (`ETag` / `If-Match`).
 */
import { ApplicationFailure } from '@temporalio/common';
import { checkedAllowedHosts, checkedTokens, createBearerCheck, createHostCheck, HttpError, listen, type RunningHttpServer } from './http';
import { ConsoleSessions, isConsoleRequest, registerConsole, type ApiAccess, type ApiAuthentication, type ConsoleOptions } from './console';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { z } from 'zod';
import { FailureType, type FailureTypeName } from '../connectors/errors';
import { apiSettings, MIN_API_TOKEN_LENGTH, type ConnectorsConfig } from '../core/config';
import type { ConnectionRunner } from '../core/runner';
import { decodeDefinitionsText, DefinitionsParseError, duplicateJsonKey, parseDefinitions } from '../core/definitions-file';
import { isPlainObject, jsonValueIssues } from '../core/inputs';
import { KeyringError } from '../core/keyring';
import { CONNECTOR_NAME, ConnectorNotFoundError, ConnectorService, ConnectorValidationError, zodIssues, type FieldIssue } from '../core/service';
import { StoreConflictError, StoreUnavailableError } from '../core/store/connector-store';

/** Runs `test` and `introspect` for the API: the same pipeline the connector worker's activity uses. */
export type { ConnectionRunner };
export type { ConsoleOptions };

/** Bearer tokens the API accepts. Compared in constant time; never logged. */
export interface ApiTokens {
  /** Tokens allowed every route. */
  readWrite: string[];
  /**
   * Tokens allowed the GET routes and `POST .../test` and `.../introspect` of connectors as stored
   * (without `overrides`), which change nothing and send stored secrets nowhere new.
   */
  readOnly: string[];
}

export interface ManagementApiOptions {
  /** The service every route goes through. Required. */
  service: ConnectorService;
  /**
   * Runs connection tests and introspection. Default: none, and those routes answer
   * 501 Not Implemented.
   */
  runner?: ConnectionRunner;
  /** Who may call. At least one token in all is required, each at least 16 characters long (`MIN_API_TOKEN_LENGTH`). */
  tokens: ApiTokens;
  /**
   * Host names the API also answers to, besides `localhost`, loopback addresses and the address a
   * request arrives on: e.g. the name of a reverse proxy in front of it (`connectors.example.com`).
   * A request whose `Host` header names anything else is refused with 403 (DNS rebinding).
   * Default: none.
   */
  allowedHosts?: string[];
  /** Largest request body accepted, in bytes; a larger one is refused with 413. Default: 1 MiB (1048576). */
  bodyLimitBytes?: number;
  /**
   * Fastify's logger (pino options, or `true` for level `info`). The Authorization header is
   * redacted whatever is given. Default: `false` (no logging).
   */
  logger?: boolean | Exclude<FastifyServerOptions['logger'], boolean | undefined>;
  /** How long a `test` or `introspect` may run before the API gives up with 504, in milliseconds. Default: 60000 (60 s). */
  runTimeoutMs?: number;
  /**
   * The connector console: its page at `/`, and sign-in sessions (`/v1/session`) whose cookie the /v1
   * routes accept from the page; see {@link ConsoleOptions}. `false` serves neither, and only tokens
   * are accepted. Default: `{}` (the console, with the defaults of {@link ConsoleOptions}).
   */
  console?: ConsoleOptions | false;
  /**
   * The Temporal Web UI that the console links connectors' runs to: its base URL (e.g.
   * `http://127.0.0.1:8233`) and the namespace of the connector workers. Default: none (no links).
   */
  temporalUi?: { url: string; namespace: string };
}

export interface StartManagementApiOptions extends ManagementApiOptions {
  /** Interface to listen on. Default: `127.0.0.1` (this machine only). */
  host?: string;
  /** TCP port; `0` picks a free one. Default: 8080. */
  port?: number;
}

/** The API listening: its base URL (e.g. `http://127.0.0.1:8080`), the Fastify instance, and `close()`. */
export type RunningManagementApi = RunningHttpServer;

/** 1 MiB: far above any connector definition, small enough that a flood of large bodies costs little. */
export const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024;
/** 60 s: a connection test or introspection that takes longer is better reported as a timeout. */
export const DEFAULT_RUN_TIMEOUT_MS = 60_000;
/** Written as `created_by` of every version the API writes. */
const API_ACTOR = 'api';

/**
 * The API tokens configured by the environment (default: this process's): `TC_API_TOKENS`
 * (read-write) and `TC_API_READ_TOKENS` (read-only), each comma-separated, as `loadConfig` reads
 * them (its `api`). Throws when there is none at all.
 */
export function tokensFromEnv(env?: NodeJS.ProcessEnv): ApiTokens {
  return requireTokens(apiSettings(env).tokens);
}

/** Further host names of the API from `TC_API_ALLOWED_HOSTS` (comma-separated; default none), as `loadConfig` reads them. */
export function allowedHostsFromEnv(env?: NodeJS.ProcessEnv): string[] {
  return apiSettings(env).allowedHosts;
}

/**
 * The API's options that the configuration sets: its tokens (at least one required), further host
 * names, and the Temporal Web UI (`TC_TEMPORAL_UI_URL`, with the namespace of `config.temporal`).
 */
export function managementApiOptionsFromConfig(
  config: Pick<ConnectorsConfig, 'api' | 'temporal'>,
): Pick<ManagementApiOptions, 'tokens' | 'allowedHosts' | 'temporalUi'> {
  const { temporalUiUrl } = config.api;
  return {
    tokens: requireTokens(config.api.tokens),
    allowedHosts: config.api.allowedHosts,
    temporalUi: temporalUiUrl === undefined ? undefined : { url: temporalUiUrl, namespace: config.temporal.namespace },
  };
}

function requireTokens(tokens: ApiTokens | undefined): ApiTokens {
  const all = [...(tokens?.readWrite ?? []), ...(tokens?.readOnly ?? [])];
  if (all.length === 0) {
    throw new Error(
      'the management API needs at least one bearer token: set TC_API_TOKENS (read-write) and/or TC_API_READ_TOKENS (read-only), comma-separated',
    );
  }
  checkedTokens(all, 'the management API tokens', MIN_API_TOKEN_LENGTH);
  return tokens!;
}

interface ErrorBody {
  error: { type: string; message: string; issues?: FieldIssue[]; current_version?: number };
}

/**
 * The HTTP status of each failure type: a failure upstream of the API (Vault refused, the external
 * system answered an error) is 502, one the caller can fix is 4xx. A type not listed here is 502.
 */
const FAILURE_STATUS: Readonly<Record<FailureTypeName, number>> = {
  [FailureType.NotFound]: 404,
  [FailureType.UnknownType]: 400,
  [FailureType.InvalidInput]: 400,
  [FailureType.LockedField]: 400,
  [FailureType.DestinationNotAllowed]: 403,
  [FailureType.VaultNotFound]: 502,
  [FailureType.VaultDenied]: 502,
  [FailureType.VaultUnavailable]: 503,
  [FailureType.StoreUnavailable]: 503,
  [FailureType.KeyringError]: 500,
  [FailureType.Http]: 502,
  [FailureType.Timeout]: 504,
  [FailureType.Network]: 502,
  [FailureType.External]: 502,
  [FailureType.AuthRefused]: 502,
  [FailureType.HostKeyMismatch]: 502,
  [FailureType.RemoteExitCode]: 502,
  [FailureType.ToolError]: 502,
  [FailureType.AgentMaxSteps]: 502,
  [FailureType.LimitsBusy]: 503,
  [FailureType.LimitsLeaseLost]: 503,
  [FailureType.InvalidDocument]: 400,
  [FailureType.Conflict]: 409,
};

const VERSION_TEXT = /^[0-9]{1,10}$/;
const MAX_VERSION = 2_147_483_647; // the store's integer column

const runBodySchema = z.strictObject({ overrides: z.record(z.string(), z.unknown()).optional() }).optional();
const rollbackBodySchema = z.strictObject({ version: z.number().int().min(1).max(MAX_VERSION) });

/** The API as a Fastify instance, not listening (`inject()` it, or {@link startManagementApi}). */
export function createManagementApi(options: ManagementApiOptions): FastifyInstance {
  requireTokens(options.tokens);
  const { service, runner } = options;
  const runTimeoutMs = options.runTimeoutMs ?? DEFAULT_RUN_TIMEOUT_MS;
  const levels = [
    ['write', options.tokens.readWrite],
    ['read', options.tokens.readOnly ?? []],
  ] as const;
  const bearer = createBearerCheck<ApiAccess>({ tokens: levels, server: 'this API', realm: 'temporal-connectors' });
  const consoleOptions = options.console === false ? undefined : (options.console ?? {});
  const sessions = consoleOptions && new ConsoleSessions(levels, consoleOptions.sessionTtlMs);
  /**
   * The one check of every route that is not public: a bearer token when there is one; else, for a
   * request from the console's page (`X-TC-Console: 1`), its session cookie.
   */
  const authenticate = (request: FastifyRequest): ApiAuthentication =>
    request.headers.authorization === undefined && sessions && isConsoleRequest(request) ? sessions.authenticate(request) : { access: bearer(request) };
  const checkHost = createHostCheck({
    allowedHosts: checkedAllowedHosts(options.allowedHosts ?? [], 'allowedHosts (TC_API_ALLOWED_HOSTS)'),
    setting: 'TC_API_ALLOWED_HOSTS',
    server: 'this API',
  });

  const app = Fastify({
    logger: loggerOptions(options.logger),
    bodyLimit: options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES,
    // Names may be 128 characters; the router's default of 100 would turn longer ones into a 404.
    routerOptions: { maxParamLength: 256 },
    // A malformed URL (bad %-escape, over-long segment) gets the same error shape as everything else.
    frameworkErrors: (error, _request, reply) => {
      // The reply's generics here are the framework's, not a route's; the plain reply type suffices.
      const message = error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'a segment of the request path is too long' : 'the request URL is malformed';
      void (reply as FastifyReply).code(error.statusCode ?? 400).send(errorBody('Request.InvalidUrl', message));
    },
  });

  // Keep the request's authentication off the request object's shape (no decorator typing needed).
  const authentication = new WeakMap<FastifyRequest, ApiAuthentication>();

  // Empty JSON bodies are allowed (test and introspect take an optional one); anything else goes
  // through Fastify's own parser, which refuses __proto__ and constructor poisoning, and then is
  // refused if it repeats a key, as the YAML reader refuses it: JSON.parse would let the last one win.
  // Bodies are read as bytes and refused unless UTF-8: read as a string, invalid bytes would become
  // replacement characters and be stored so.
  const defaultJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    let text: string;
    try {
      text = decodeDefinitionsText(body as Buffer, 'request body');
    } catch (err) {
      return done(err as Error, undefined);
    }
    if (text.trim() === '') return done(null, undefined);
    void defaultJson(request, text, (err, parsed) => {
      const repeated = err ? undefined : duplicateJsonKey(text);
      if (repeated) {
        const problem = `the key ${repeated.path} appears twice in one object: repeated keys are refused, not "last one wins"`;
        return done(new DefinitionsParseError('request body', repeated.line, repeated.column, problem), undefined);
      }
      done(err, parsed);
    });
  });
  app.addContentTypeParser(['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml', 'text/plain'], { parseAs: 'buffer' }, (_request, body, done) => {
    try {
      done(null, decodeDefinitionsText(body as Buffer, 'request body'));
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  // Authentication comes first, before body parsing: an unauthenticated caller learns nothing about
  // routes and gets no body parsed. Only routes marked public skip it: the console's page and assets,
  // which hold no data, and signing out of it.
  app.addHook('onRequest', async (request, reply) => {
    void reply.header('cache-control', 'no-store');
    checkHost(request);
    if (request.routeOptions.config?.public === true) return;
    authentication.set(request, authenticate(request));
  });

  /** Route-level check, after authentication and before the body is read. */
  const requireWrite = async (request: FastifyRequest) => {
    if (authentication.get(request)?.access !== 'write') {
      throw new HttpError(403, 'Request.Forbidden', 'this token is read-only: it may read connectors, and test and introspect them as stored, but not change them');
    }
  };
  const write = { onRequest: requireWrite };

  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send(errorBody('Request.NoRoute', `no route ${request.method} ${request.url.split('?')[0].slice(0, 200)}`));
  });

  app.setErrorHandler((error, request, reply) => {
    const { status, body, headers } = describeError(error);
    if (status >= 500 && body.error.type === 'Internal') {
      // Name and code only: a driver's message may carry hosts, users or SQL.
      const err = error as { name?: string; code?: string } | undefined;
      request.log.error({ error: { class: err?.constructor?.name, name: err?.name, code: err?.code } }, 'internal error');
    }
    void reply.code(status).headers(headers).send(body);
  });

  // ---- types ----

  // Both carry the schema of the document around a type's inputs, so one answer is enough to build a whole form.
  app.get('/v1/types', async () => ({ types: service.types(), definition_json_schema: service.definitionJsonSchema() }));

  app.get('/v1/types/:type', async (request) => {
    const wanted = String((request.params as { type: string }).type).toUpperCase();
    const types = service.types();
    const type = types.find((t) => t.name.toUpperCase() === wanted);
    if (!type) throw new HttpError(404, FailureType.UnknownType, `no connector type of that name; known types: ${types.map((t) => t.name).join(', ')}`);
    return { ...type, definition_json_schema: service.definitionJsonSchema() };
  });

  // ---- connectors ----

  app.get('/v1/connectors', async () => ({ connectors: await service.list() }));

  app.get('/v1/connectors/:name', async (request, reply) => {
    const name = connectorName(request);
    const version = optionalVersion((request.query as { version?: unknown }).version);
    const view = await service.get(name, version);
    // Only the current version is something an If-Match can name, and has limits in use.
    if (version === undefined) void reply.header('etag', etag(view.version));
    const usage = version === undefined ? await service.limitsUsage(view) : undefined;
    return usage ? { ...view, usage } : view;
  });

  app.get('/v1/connectors/:name/history', async (request) => ({ versions: await service.history(connectorName(request)) }));

  app.post('/v1/connectors', write, async (request, reply) => {
    const definition = singleDefinition(request.body);
    const view = await service.apply(definition, { expectedVersion: 0, actor: API_ACTOR });
    return reply
      .code(201)
      .header('etag', etag(view.version))
      .header('location', `/v1/connectors/${view.name}`)
      .send(view);
  });

  app.put('/v1/connectors/:name', write, async (request, reply) => {
    const name = connectorName(request);
    const expectedVersion = ifMatchVersion(request, true);
    let definition = singleDefinition(request.body);
    if (isPlainObject(definition)) {
      if (definition.name !== undefined && definition.name !== name) {
        throw new ConnectorValidationError([{ path: 'name', message: `must equal the name in the path (${name}), or be omitted` }], 'request body');
      }
      definition = { ...definition, name };
    }
    const view = await service.apply(definition, { expectedVersion, actor: API_ACTOR });
    return reply.header('etag', etag(view.version)).send(view);
  });

  app.delete('/v1/connectors/:name', write, async (request) => {
    const name = connectorName(request);
    return service.delete(name, { expectedVersion: ifMatchVersion(request, false), actor: API_ACTOR });
  });

  app.post('/v1/connectors/:name/rollback', write, async (request, reply) => {
    const name = connectorName(request);
    const parsed = rollbackBodySchema.safeParse(request.body);
    if (!parsed.success) throw new ConnectorValidationError(zodIssues(parsed.error), 'request body');
    const view = await service.rollback(name, parsed.data.version, { expectedVersion: ifMatchVersion(request, false), actor: API_ACTOR });
    return reply.header('etag', etag(view.version)).send(view);
  });

  // Ends a 429's back-off at once; what limits the connector has is changed by saving it.
  app.post('/v1/connectors/:name/limits/reset', write, async (request) => service.resetLimits(connectorName(request)));

  for (const action of ['test', 'introspect'] as const) {
    app.post(`/v1/connectors/:name/${action}`, async (request, reply) => {
      const name = connectorName(request);
      const parsed = runBodySchema.safeParse(request.body);
      if (!parsed.success) throw new ConnectorValidationError(zodIssues(parsed.error), 'request body');
      const overrides = parsed.data?.overrides;
      // The runner validates, masks and merges overrides recursively: bound their depth and form first.
      const overrideIssues = overrides === undefined ? [] : jsonValueIssues(overrides, ['overrides']);
      if (overrideIssues.length > 0) throw new ConnectorValidationError(overrideIssues, 'request body');
      // An override can send the stored secrets elsewhere (base_url, host) or make the connector read
      // something else with them (openapi_path): that is for those who may change the connector anyway.
      if (authentication.get(request)?.access !== 'write' && overrides !== undefined && Object.keys(overrides).length > 0) {
        throw new HttpError(
          403,
          'Request.Forbidden',
          `read-only tokens cannot override inputs: this token may ${action} connector ${name} only as stored (send no overrides), or use a read-write token`,
        );
      }
      if (!runner) {
        throw new HttpError(501, 'Request.NotImplemented', `this API runs no connections, so it cannot ${action} connectors: start it with a runner`);
      }
      const deadline = AbortSignal.timeout(runTimeoutMs);
      // A caller who hangs up should not keep a connection attempt running.
      const hungUp = new AbortController();
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished) hungUp.abort(new Error('the caller closed the connection'));
      });
      try {
        const result = await runner.run(
          { connector: name, action, overrides },
          { signal: AbortSignal.any([deadline, hungUp.signal]) },
        );
        return result.output;
      } catch (err) {
        if (deadline.aborted) {
          throw new HttpError(504, 'Request.Timeout', `the ${action} of connector ${name} did not finish within ${Math.round(runTimeoutMs / 1000)} s`);
        }
        throw err;
      }
    });
  }

  app.post('/v1/apply', write, async (request) => {
    const definitions = definitionsFromBody(request.body);
    if (definitions.length === 0) {
      throw new ConnectorValidationError([{ path: '', message: 'holds no connector definitions' }], 'request body');
    }
    return { applied: await service.applyMany(definitions, { actor: API_ACTOR }) };
  });

  app.post('/v1/rotate-key', write, async () => ({ rewritten: await service.rotateKeys() }));

  if (sessions) {
    registerConsole(app, {
      assetsDir: consoleOptions?.assetsDir,
      sessions,
      authenticationOf: (request) => authentication.get(request)!,
      temporalUi: options.temporalUi,
    });
  }

  return app;
}

/** {@link createManagementApi}, listening. */
export async function startManagementApi(options: StartManagementApiOptions): Promise<RunningManagementApi> {
  return listen(createManagementApi(options), { host: options.host ?? '127.0.0.1', port: options.port ?? 8080 });
}

function loggerOptions(logger: ManagementApiOptions['logger']): FastifyServerOptions['logger'] {
  if (!logger) return false;
  const base = logger === true ? { level: 'info' } : logger;
  // Fastify's default serializers leave headers out; this holds even if someone adds them back.
  return { ...base, redact: ['req.headers.authorization', 'req.headers["proxy-authorization"]', 'req.headers.cookie'] };
}

function errorBody(type: string, message: string, extra: Omit<ErrorBody['error'], 'type' | 'message'> = {}): ErrorBody {
  return { error: { type, message, ...extra } };
}

/**
 * The one mapping from errors to answers. Messages come from errors that are written to name
 * fields and problems, never values; anything unknown becomes a bare 500.
 */
function describeError(error: unknown): { status: number; body: ErrorBody; headers: Record<string, string> } {
  const answer = (status: number, body: ErrorBody, headers: Record<string, string> = {}) => ({ status, body, headers });
  if (error instanceof HttpError) return answer(error.statusCode, errorBody(error.type, error.message), error.headers);
  if (error instanceof ConnectorValidationError) {
    return answer(400, errorBody(FailureType.InvalidInput, error.message, { issues: error.issues }));
  }
  if (error instanceof DefinitionsParseError) return answer(400, errorBody(FailureType.InvalidDocument, error.message));
  if (error instanceof ConnectorNotFoundError) return answer(404, errorBody(FailureType.NotFound, error.message));
  if (error instanceof StoreConflictError) return answer(409, errorBody(FailureType.Conflict, conflictMessage(error), { current_version: error.currentVersion }));
  // A missing or wrong key is the server's configuration, not the caller's request.
  if (error instanceof KeyringError) return answer(500, errorBody(FailureType.KeyringError, error.message));
  if (error instanceof StoreUnavailableError) return answer(503, errorBody(FailureType.StoreUnavailable, error.message));
  if (error instanceof ApplicationFailure) {
    const type = error.type ?? FailureType.External;
    const status = FAILURE_STATUS[type as FailureTypeName] ?? 502;
    const issues = (error.details?.[0] as { issues?: FieldIssue[] } | undefined)?.issues;
    return answer(status, errorBody(type, error.message, Array.isArray(issues) ? { issues } : {}));
  }
  const fastifyError = error as { code?: unknown; statusCode?: unknown };
  if (typeof fastifyError.code === 'string' && fastifyError.code.startsWith('FST_')) {
    switch (fastifyError.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return answer(413, errorBody('Request.TooLarge', 'the request body is larger than this API accepts'));
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return answer(
          415,
          errorBody('Request.UnsupportedMediaType', 'the request body must be application/json, or YAML as application/yaml, text/yaml or text/plain'),
        );
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
        return answer(400, errorBody('Request.InvalidJson', 'the request body is not valid JSON (or holds a __proto__ or constructor.prototype key)'));
    }
    // Fastify's own 4xx messages are fixed sentences (they never quote the body).
    const status = typeof fastifyError.statusCode === 'number' ? fastifyError.statusCode : 500;
    if (status >= 400 && status < 500) return answer(status, errorBody('Request.Invalid', (error as Error).message));
  }
  return answer(500, errorBody('Internal', 'internal error'));
}

function conflictMessage(error: StoreConflictError): string {
  const name = error.connector;
  if (error.expectedVersion === 0) {
    return `connector ${name} already exists at version ${error.currentVersion}: change it with PUT /v1/connectors/${name} and If-Match: "${error.currentVersion}"`;
  }
  if (error.currentVersion === 0) return `connector ${name} does not exist (any more): create it with POST /v1/connectors`;
  return `connector ${name} is at version ${error.currentVersion}, not ${error.expectedVersion}: nothing was changed; reload it and apply your change again`;
}

/**
 * The connector name from the path, checked before it reaches the store. Fastify has decoded it
 * already, so `..%2F..` arrives as `../..` and is refused here.
 */
function connectorName(request: FastifyRequest): string {
  const name = (request.params as { name?: unknown }).name;
  if (typeof name !== 'string' || !CONNECTOR_NAME.test(name)) {
    throw new ConnectorValidationError(
      [{ path: 'name', message: 'must be 1-128 characters of a-z 0-9 _ . -, starting with a letter or digit' }],
      'the connector name in the path',
    );
  }
  return name;
}

function optionalVersion(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const version = typeof value === 'string' && VERSION_TEXT.test(value) ? Number(value) : NaN;
  if (!(version >= 1 && version <= MAX_VERSION)) {
    throw new ConnectorValidationError([{ path: 'version', message: 'must be a version number, a whole number from 1' }], 'query');
  }
  return version;
}

function etag(version: number): string {
  return `"${version}"`;
}

/** The version an `If-Match` header names (`"3"`, quotes optional); with `required`, its absence is 428. */
function ifMatchVersion(request: FastifyRequest, required: true): number;
function ifMatchVersion(request: FastifyRequest, required: false): number | undefined;
function ifMatchVersion(request: FastifyRequest, required: boolean): number | undefined {
  const header = request.headers['if-match'];
  if (header === undefined || header === '') {
    if (!required) return undefined;
    throw new HttpError(
      428,
      'Request.PreconditionRequired',
      'this change needs an If-Match header with the version being changed, e.g. If-Match: "3" (the ETag of GET /v1/connectors/<name>)',
    );
  }
  const match = /^\s*(?:"([0-9]{1,10})"|([0-9]{1,10}))\s*$/.exec(header);
  const version = match ? Number(match[1] ?? match[2]) : NaN;
  if (!(version >= 0 && version <= MAX_VERSION)) {
    throw new HttpError(400, 'Request.InvalidHeader', 'If-Match must be one version number, e.g. "3", as the ETag gives it');
  }
  return version;
}

/** Connector definitions in a body: a JSON array or object, or YAML text with any number of documents. */
function definitionsFromBody(body: unknown): unknown[] {
  if (body === undefined || body === null) return [];
  if (typeof body === 'string') return parseDefinitions(body, 'request body');
  return Array.isArray(body) ? body : [body];
}

function singleDefinition(body: unknown): unknown {
  const definitions = definitionsFromBody(body);
  if (definitions.length !== 1) {
    throw new ConnectorValidationError(
      [{ path: '', message: `must hold exactly one connector definition, not ${definitions.length} (POST /v1/apply takes several)` }],
      'request body',
    );
  }
  return definitions[0];
}
