// Configuration from the environment, read in one place: the surfaces (worker, CLI, servers) call
// loadConfig() once at their edge and pass typed values down; nothing below them reads process.env.
// A leaf module (no imports from the rest of the project), so every layer can use its types.
import type { LogLevel } from '@temporalio/common';
import { loadClientConfigProfile, toClientOptions, type ClientConnectConfig } from '@temporalio/envconfig';
import { existsSync, readFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import * as path from 'node:path';

/** A configuration value that cannot be used. The message names the variable and the problem, never a secret value. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Keys as configured: `id:base64key` entries (see `Keyring.parse`) and where they came from, for messages. */
export interface KeyringSetting {
  /** The entries, separated by commas, semicolons or new lines; `#` starts a comment line. */
  text: string;
  /** Where the entries came from: `TC_KEYRING`, `TC_KEYRING_FILE <path>` or `TC_PAYLOAD_KEYRING`. */
  source: string;
}

/** How to reach Vault: the fields of `VaultSourceOptions` that the environment sets. */
export interface VaultSettings {
  /** `VAULT_ADDR`: base URL, e.g. `http://127.0.0.1:8200`. */
  address: string;
  /** `VAULT_TOKEN`: token auth. Default: none. */
  token?: string;
  /** `VAULT_ROLE_ID`, `VAULT_SECRET_ID` (default empty), `VAULT_APPROLE_MOUNT` (default `approle`): AppRole auth. Default: none. */
  appRole?: { roleId: string; secretId: string; mountPoint?: string };
  /** `VAULT_NAMESPACE`: Vault Enterprise namespace. Default: none. */
  namespace?: string;
  /** `TC_VAULT_CACHE_TTL_MS`: how long a read secret is reused, in milliseconds. Default: none (the source's own, 60000). */
  cacheTtlMs?: number;
}

/** Where the connector store lives. */
export interface StoreSettings {
  /** `DATABASE_URL`: a PostgreSQL server. Default: none (the embedded store). */
  databaseUrl?: string;
  /**
   * `TC_DATA_DIR`: folder of the embedded store, an absolute path, or `memory` for a store in memory.
   * Default: `.data/store` under the working directory. Used only without `databaseUrl`.
   */
  dataDir: string;
}

/** Everything the environment configures, typed and checked (README, Configuration). */
export interface ConnectorsConfig {
  /** How to reach Temporal, read by `@temporalio/envconfig` as the Temporal CLI reads it: see {@link temporalSettings}. */
  temporal: TemporalSettings;
  store: StoreSettings;
  /** `TC_KEYRING`, else `TC_KEYRING_FILE` (read here): keys of the store's sensitive fields. Default: none. */
  keyring?: KeyringSetting;
  /** `TC_PAYLOAD_KEYRING`: keys of payload encryption (standalone worker, codec server). Default: none. */
  payloadKeyring?: KeyringSetting;
  /** `VAULT_*` and `TC_VAULT_CACHE_TTL_MS`. Default: none (no `VAULT_ADDR`). */
  vault?: VaultSettings;
  /**
   * `TC_VAULT_PATHS`: the Vault path prefixes connectors may reference in `vault_secrets`, comma-separated
   * (e.g. `secret/data/connectors/`); matched as plain string prefixes, so end one with `/` to mean a
   * folder. Never under `auth/`, `sys/`, `identity/`, `cubbyhole/` or naming `lookup-self`
   * (see {@link checkedVaultPaths}). Default: `secret/`, the KV mount.
   */
  vaultPaths: string[];
  /**
   * `TC_MCP_STDIO`: `on` lets MCP connectors start stdio servers (`command`: a program the connector
   * worker, the CLI or the API process runs, chosen by whoever may edit connectors); `off` refuses them.
   * Default: off.
   */
  mcpStdio: boolean;
  /** `TC_LOG_LEVEL`: log level of a standalone connector worker, any case. Default: `INFO`. */
  logLevel: LogLevel;
  /**
   * `TC_LIMIT_LEASE_MS`: how long a slot of a connector with `limits` stays taken after the connector
   * worker running its call died, in milliseconds (a running call renews it every third). Default: none (15000).
   */
  limitLeaseMs?: number;
  api: {
    /**
     * `TC_API_TOKENS` (read-write) and `TC_API_READ_TOKENS` (read-only), comma-separated, each at least
     * {@link MIN_API_TOKEN_LENGTH} (16) characters. Default: none (the API then refuses to start).
     */
    tokens: { readWrite: string[]; readOnly: string[] };
    /** `TC_API_ALLOWED_HOSTS`: further host names of the API, comma-separated, lower-cased. Default: none. */
    allowedHosts: string[];
    /**
     * `TC_TEMPORAL_UI_URL`: base URL of the Temporal Web UI (http or https, no user name, password,
     * query or fragment; a trailing slash is dropped), which the connector console links connectors'
     * runs to, in the namespace of {@link ConnectorsConfig.temporal}. Default: none (no links).
     */
    temporalUiUrl?: string;
  };
  codec: {
    /** `TC_CODEC_TOKENS`, comma-separated. Default: none (the codec server then refuses to start without `--insecure-no-auth`). */
    tokens: string[];
    /** `TC_CODEC_CORS_ORIGINS`, comma-separated; set but empty means none. Default: the dev server's Web UI on port 8233. */
    corsOrigins: string[];
    /** `TC_CODEC_ALLOWED_HOSTS`: further host names of the codec server, comma-separated, lower-cased. Default: none. */
    allowedHosts: string[];
    /** `TC_CODEC_PORT`, 0-65535. Default: none (the server's own, 8888). */
    port?: number;
  };
}

/** The levels in increasing severity, as Temporal's `Logger` names them. */
export const LOG_LEVELS: readonly LogLevel[] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];
/** The Web UI of `temporal server start-dev`, by both of its usual names. */
export const DEFAULT_CODEC_CORS_ORIGINS: readonly string[] = ['http://127.0.0.1:8233', 'http://localhost:8233'];

type Env = NodeJS.ProcessEnv | Readonly<Record<string, string | undefined>>;

/**
 * The configuration of `env` (default: this process's environment), checked: a value that cannot be
 * used throws a {@link ConfigError} naming the variable. An empty variable counts as unset, except
 * `TC_CODEC_CORS_ORIGINS`, where empty means no origin. Reads `TC_KEYRING_FILE` when it is used.
 * What a surface requires (API tokens, a payload keyring) is checked by that surface.
 */
export function loadConfig(env: Env = process.env): ConnectorsConfig {
  return {
    temporal: temporalSettings(env),
    store: storeSettings(env),
    keyring: keyringSetting(env),
    payloadKeyring: payloadKeyringSetting(env),
    vault: vaultSettings(env),
    vaultPaths: vaultPathsSetting(env),
    mcpStdio: mcpStdioSetting(env),
    logLevel: parseLogLevel(env.TC_LOG_LEVEL),
    limitLeaseMs: millisecondsSetting(env, 'TC_LIMIT_LEASE_MS'),
    api: apiSettings(env),
    codec: codecSettings(env),
  };
}

/**
 * How to reach Temporal. The profile of a `temporal.toml` file (the Temporal CLI's: `TEMPORAL_CONFIG_FILE`,
 * else `~/.config/temporalio/temporal.toml`; profile `TEMPORAL_PROFILE`, else `default`), overridden by
 * `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS*` and `TEMPORAL_GRPC_META_*`.
 */
export interface TemporalSettings {
  /** The Temporal frontend, `host:port`. Default: `127.0.0.1:7233`. */
  address: string;
  /** Default: `default`. */
  namespace: string;
  /** `TC_TASK_QUEUE`: task queue of the connector worker. Default: `connectors`. */
  taskQueue: string;
  /** API key (Temporal Cloud), sent as a bearer token; turns TLS on unless TLS is configured. Default: none. */
  apiKey?: string;
  /** TLS: `true` with the system's roots, the configured certificates (mTLS), or `false`. Default: none (plain TCP). */
  tls?: TemporalConnectionOptions['tls'];
  /** gRPC headers sent with every call (`TEMPORAL_GRPC_META_<NAME>`, `grpc_meta`). Default: none. */
  metadata?: Record<string, string>;
  /** The profile read, and from which file, for messages. Default: none (no file). */
  source?: string;
  /**
   * `TC_WORKER_SHUTDOWN_GRACE_MS`: on SIGTERM, how long a standalone connector worker lets calls in flight
   * finish before it cancels them (they are then retried on another worker), in milliseconds. Default:
   * 25000, inside the 30 s an orchestrator such as Kubernetes waits before SIGKILL.
   */
  shutdownGraceMs: number;
}

/** What `NativeConnection.connect` and `Connection.connect` take from {@link TemporalSettings}. */
export type TemporalConnectionOptions = ClientConnectConfig['connectionOptions'] & { address: string };

/** {@link ConnectorsConfig.temporal} alone. Throws a {@link ConfigError} naming the file or profile that cannot be used. */
export function temporalSettings(env: Env = process.env): TemporalSettings {
  // envconfig reads an empty variable as a value; here, as everywhere in loadConfig, it counts as unset.
  // An empty TEMPORAL_GRPC_META_* keeps its meaning: it removes a header the file sets.
  const vars = Object.fromEntries(
    Object.entries(env).filter((entry): entry is [string, string] => typeof entry[1] === 'string' && (entry[1] !== '' || entry[0].startsWith('TEMPORAL_GRPC_META_'))),
  );
  const file = vars.TEMPORAL_CONFIG_FILE;
  const profileName = vars.TEMPORAL_PROFILE;
  const where = `${file ? `TEMPORAL_CONFIG_FILE ${file}` : 'temporal.toml'}${profileName ? `, TEMPORAL_PROFILE ${profileName}` : ''}`;
  // envconfig ignores a missing file; one named on purpose is a mistake worth saying.
  if (file !== undefined && !existsSync(file)) throw new ConfigError(`TEMPORAL_CONFIG_FILE ${file} does not exist`);
  let connect: ClientConnectConfig;
  try {
    connect = toClientOptions(loadClientConfigProfile({ overrideEnvVars: vars }));
  } catch (err) {
    throw new ConfigError(`Temporal connection settings (${where}): ${describeTemporalConfigError(err)}`);
  }
  const { apiKey, tls, metadata } = connect.connectionOptions;
  return {
    address: connect.connectionOptions.address || '127.0.0.1:7233',
    namespace: connect.namespace || 'default',
    taskQueue: setting(env, 'TC_TASK_QUEUE') ?? 'connectors',
    shutdownGraceMs: millisecondsSetting(env, 'TC_WORKER_SHUTDOWN_GRACE_MS') ?? 25_000,
    apiKey: typeof apiKey === 'string' ? apiKey : undefined,
    tls,
    metadata: metadata && Object.keys(metadata).length > 0 ? (metadata as Record<string, string>) : undefined,
    source: profileName || file ? where : undefined,
  };
}

/** The options of `NativeConnection.connect` (worker) and `Connection.connect` (client) for `settings`. */
export function temporalConnectionOptions(settings: TemporalSettings): TemporalConnectionOptions {
  const { address, apiKey, tls, metadata } = settings;
  return { address, ...(apiKey !== undefined && { apiKey }), ...(tls !== undefined && { tls }), ...(metadata && { metadata }) };
}

/** An envconfig failure in one line. A TOML error quotes the file, which may hold an API key: only its position is kept. */
function describeTemporalConfigError(err: unknown): string {
  const e = err as { name?: string; line?: number; column?: number; code?: string; path?: string; message?: string };
  if (typeof e.line === 'number' && typeof e.column === 'number') return `not valid TOML (line ${e.line}, column ${e.column})`;
  if (e.code && e.path) return `cannot read ${e.path}: ${e.code}`;
  return String(e.message ?? err).split('\n')[0];
}

/**
 * Shortest bearer token of the management API: 16 characters. The API guards every stored secret's
 * destination and the console's session cookie; a short token can be guessed by trying, the more so as
 * nothing limits the attempts.
 */
export const MIN_API_TOKEN_LENGTH = 16;

/** {@link ConnectorsConfig.api} alone. */
export function apiSettings(env: Env = process.env): ConnectorsConfig['api'] {
  return {
    tokens: {
      readWrite: tokenList(env, 'TC_API_TOKENS', MIN_API_TOKEN_LENGTH),
      readOnly: tokenList(env, 'TC_API_READ_TOKENS', MIN_API_TOKEN_LENGTH),
    },
    allowedHosts: checkedHostNames(listSetting(env.TC_API_ALLOWED_HOSTS), 'TC_API_ALLOWED_HOSTS'),
    temporalUiUrl: webUrlSetting(env, 'TC_TEMPORAL_UI_URL', 'http://127.0.0.1:8233'),
  };
}

/** {@link ConnectorsConfig.codec} alone. */
export function codecSettings(env: Env = process.env): ConnectorsConfig['codec'] {
  return {
    tokens: tokenList(env, 'TC_CODEC_TOKENS'),
    corsOrigins: env.TC_CODEC_CORS_ORIGINS === undefined ? [...DEFAULT_CODEC_CORS_ORIGINS] : listSetting(env.TC_CODEC_CORS_ORIGINS),
    allowedHosts: checkedHostNames(listSetting(env.TC_CODEC_ALLOWED_HOSTS), 'TC_CODEC_ALLOWED_HOSTS'),
    port: portSetting(env, 'TC_CODEC_PORT'),
  };
}

/** {@link ConnectorsConfig.store} alone, for `openDatabaseFromEnv`. */
export function storeSettings(env: Env = process.env): StoreSettings {
  return { databaseUrl: setting(env, 'DATABASE_URL'), dataDir: setting(env, 'TC_DATA_DIR') ?? path.resolve('.data', 'store') };
}

/** {@link ConnectorsConfig.keyring} alone, for `Keyring.fromEnv`: `TC_KEYRING`, else the file `TC_KEYRING_FILE`. */
export function keyringSetting(env: Env = process.env): KeyringSetting | undefined {
  const text = setting(env, 'TC_KEYRING');
  if (text !== undefined) return { text, source: 'TC_KEYRING' };
  const file = setting(env, 'TC_KEYRING_FILE');
  if (file === undefined) return undefined;
  try {
    return { text: readFileSync(file, 'utf8'), source: `TC_KEYRING_FILE ${file}` };
  } catch (err) {
    throw new ConfigError(`TC_KEYRING_FILE ${file} cannot be read: ${(err as NodeJS.ErrnoException).code}`);
  }
}

/** {@link ConnectorsConfig.payloadKeyring} alone. */
export function payloadKeyringSetting(env: Env = process.env): KeyringSetting | undefined {
  const text = setting(env, 'TC_PAYLOAD_KEYRING');
  return text === undefined ? undefined : { text, source: 'TC_PAYLOAD_KEYRING' };
}

/** {@link ConnectorsConfig.vault} alone, for `VaultSecretSource.fromEnv`. Undefined without `VAULT_ADDR`. */
export function vaultSettings(env: Env = process.env): VaultSettings | undefined {
  const address = setting(env, 'VAULT_ADDR');
  if (address === undefined) return undefined;
  const roleId = setting(env, 'VAULT_ROLE_ID');
  const cacheTtlMs = millisecondsSetting(env, 'TC_VAULT_CACHE_TTL_MS');
  return {
    address,
    token: setting(env, 'VAULT_TOKEN'),
    appRole: roleId ? { roleId, secretId: env.VAULT_SECRET_ID ?? '', mountPoint: setting(env, 'VAULT_APPROLE_MOUNT') } : undefined,
    namespace: setting(env, 'VAULT_NAMESPACE'),
    cacheTtlMs,
  };
}

/** Default of {@link ConnectorsConfig.vaultPaths}: `secret/`, the KV mount of a Vault dev server and Vault's usual one. */
export const DEFAULT_VAULT_PATHS: readonly string[] = ['secret/'];

/**
 * Vault's own mounts: tokens (`auth/token/lookup-self` answers with the caller's own token), the
 * server's configuration, identities and the per-token cubbyhole. No connector reads these, whatever
 * the operator configures: a connector editor could hand the worker's credentials to any destination.
 */
export const FORBIDDEN_VAULT_MOUNTS: readonly string[] = ['auth', 'sys', 'identity', 'cubbyhole'];

/** {@link ConnectorsConfig.vaultPaths} alone: `TC_VAULT_PATHS`, checked, else the default `secret/`. */
export function vaultPathsSetting(env: Env = process.env): string[] {
  const value = setting(env, 'TC_VAULT_PATHS');
  return value === undefined ? [...DEFAULT_VAULT_PATHS] : checkedVaultPaths(listSetting(value), 'TC_VAULT_PATHS');
}

/** {@link ConnectorsConfig.mcpStdio} alone: `TC_MCP_STDIO`, `on` or `off` in any case; unset is off. */
export function mcpStdioSetting(env: Env = process.env): boolean {
  const value = setting(env, 'TC_MCP_STDIO');
  if (value === undefined) return false;
  const normal = value.trim().toLowerCase();
  if (normal !== 'on' && normal !== 'off') throw new ConfigError(`TC_MCP_STDIO must be on or off, not "${value.slice(0, 40)}"`);
  return normal === 'on';
}

/**
 * Vault path prefixes that connectors may read, checked: at least one; each a Vault API path (letters,
 * digits, `_ . - /`, no leading `/`, no empty, `.` or `..` segment) outside Vault's own mounts
 * ({@link FORBIDDEN_VAULT_MOUNTS}) and not naming `lookup-self`. `what` names them in the error, e.g.
 * `TC_VAULT_PATHS`. Throws a {@link ConfigError} in one line.
 */
export function checkedVaultPaths(prefixes: readonly string[], what: string): string[] {
  if (prefixes.length === 0) throw new ConfigError(`${what} lists no path prefix: give at least one, such as secret/data/connectors/`);
  for (const prefix of prefixes) {
    const problem = vaultPathProblem(prefix, { prefix: true });
    if (problem !== undefined) throw new ConfigError(`${what}: "${String(prefix).slice(0, 100)}" ${problem}`);
  }
  return [...prefixes];
}

/**
 * What keeps `path` from being a Vault path a connector may read, whatever is configured; undefined
 * when nothing does. With `prefix`, `path` is a prefix of such paths: a trailing `/` is allowed, and
 * a prefix that a forbidden mount's name starts with (`a`, `sy`) is refused too.
 */
export function vaultPathProblem(path: string, options: { prefix?: boolean } = {}): string | undefined {
  if (typeof path !== 'string' || !/^[A-Za-z0-9_.\-/]+$/.test(path)) return 'is not a Vault API path such as secret/data/name (letters, digits, _ . - and / only)';
  const segments = path.split('/');
  if (options.prefix && segments.length > 1 && segments[segments.length - 1] === '') segments.pop();
  // An HTTP client resolves `.` and `..` (`secret/../auth/token/lookup-self`), and Vault an empty segment: refused, not normalised.
  if (segments.some((segment) => segment === '' || segment === '.' || segment === '..')) {
    return 'has an empty, . or .. segment, which would resolve to another path';
  }
  const mount = segments[0].toLowerCase();
  const forbidden = FORBIDDEN_VAULT_MOUNTS.find((name) => name === mount || (options.prefix && segments.length === 1 && !path.endsWith('/') && name.startsWith(mount)));
  if (forbidden !== undefined) return `reaches Vault's ${forbidden}/ mount, which connectors may never read (it holds tokens and Vault's own settings)`;
  if (/lookup-self/i.test(path)) return "names lookup-self, which would read the worker's own Vault token";
  return undefined;
}

/** `TC_LOG_LEVEL` (any case) as a level; unset or empty gives `INFO`. Throws, naming the valid levels, on anything else. */
export function parseLogLevel(value: string | undefined): LogLevel {
  if (value === undefined || value.trim() === '') return 'INFO';
  const level = value.trim().toUpperCase() as LogLevel;
  if (!LOG_LEVELS.includes(level)) throw new ConfigError(`TC_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}; got "${value}"`);
  return level;
}

/** A comma-separated setting's items, trimmed, empty ones dropped. */
export function listSetting(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
}

/**
 * Bearer tokens, checked: each non-empty, without whitespace or commas (such a token could never be
 * presented as `Bearer <token>`, nor configured as a comma-separated list), and at least `minLength`
 * characters (default 1). `what` names them in the error, e.g. `the management API tokens`; the
 * tokens themselves are never shown, nor their length (a hint for whoever reads the log).
 */
export function checkedTokens(tokens: readonly string[], what: string, minLength = 1): string[] {
  if (tokens.some((token) => typeof token !== 'string' || token.length === 0 || /[\s,]/.test(token))) {
    throw new ConfigError(`${what} must be non-empty and contain no whitespace or commas`);
  }
  if (tokens.some((token) => token.length < minLength)) {
    throw new ConfigError(`${what} must each be at least ${minLength} characters long: use long random tokens, e.g. from openssl rand -hex 24`);
  }
  return [...tokens];
}

/**
 * Host names configured as further names of a server (a reverse proxy's name, say), checked and
 * lower-cased: names or IP addresses only, no scheme, port or path. `setting` names where they came from.
 */
export function checkedHostNames(hosts: readonly string[], setting: string): string[] {
  return hosts.map((host) => {
    const bare = typeof host === 'string' ? host.replace(/^\[(.*)\]$/, '$1') : '';
    // A colon is an IPv6 address or a port; only the former is a host.
    if (!(bare.includes(':') ? isIPv6(bare) : /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/i.test(bare))) {
      throw new ConfigError(`${setting}: "${String(host).slice(0, 100)}" is not a host name such as codec.example.com (no scheme, port or path)`);
    }
    return bare.toLowerCase();
  });
}

function setting(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

function millisecondsSetting(env: Env, name: string): number | undefined {
  const value = setting(env, name);
  if (value === undefined) return undefined;
  const ms = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(ms)) {
    throw new ConfigError(`${name} must be a whole number of milliseconds (0 or more), not "${value.slice(0, 40)}"`);
  }
  return ms;
}

/**
 * A base URL that a page links to: http or https, without credentials (a link would hand them to every
 * reader of the page), query or fragment (paths are appended to it). The value is never quoted in the
 * error, as it may hold a password. Returned without a trailing slash.
 */
function webUrlSetting(env: Env, name: string, example: string): string | undefined {
  const value = setting(env, name)?.trim();
  if (value === undefined || value === '') return undefined;
  const url = URL.canParse(value) ? new URL(value) : undefined;
  const problem = webUrlProblem(value, url);
  if (problem !== undefined || url === undefined) throw new ConfigError(`${name} ${problem ?? 'is not a URL'}: give a base URL such as ${example}`);
  return url.href.replace(/\/+$/, '');
}

function webUrlProblem(value: string, url: URL | undefined): string | undefined {
  if (url === undefined) return 'is not a URL';
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be an http or https URL';
  if (url.username !== '' || url.password !== '') return 'must not hold a user name or password';
  if (/[?#]/.test(value)) return 'must have no query or fragment';
  return undefined;
}

function tokenList(env: Env, name: string, minLength?: number): string[] {
  return checkedTokens(listSetting(env[name]), name, minLength);
}

function portSetting(env: Env, name: string): number | undefined {
  const value = setting(env, name);
  if (value === undefined) return undefined;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`${name} must be a port number (0-65535), not "${value.slice(0, 40)}"`);
  return port;
}
