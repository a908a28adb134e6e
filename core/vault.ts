import vault from 'node-vault';
import { checkedVaultPaths, DEFAULT_VAULT_PATHS, vaultPathProblem, vaultPathsSetting, vaultSettings } from './config';
import { isPlainObject, shownKey, type PlainObject } from './inputs';

/** A Vault secret attached to a connector. Every key of the secret becomes an input key, unless `map` says otherwise. */
export interface VaultSecretRef {
  /** API path as Vault serves it: `secret/data/openai` for KV v2, `kv/openai` for KV v1. */
  path: string;
  /** Secret key → dotted input path (e.g. `{ token: 'auth.token' }`); only mapped keys are applied. Default: every key as is. */
  map?: Record<string, string>;
  /**
   * Keys of the secret that are secrets wherever they land (a webhook URL, a user name that must not
   * show), on top of those landing at the type's sensitive inputs and long values. Default: none.
   */
  secret_keys?: string[];
}

export type VaultErrorKind = 'not_found' | 'denied' | 'unavailable' | 'invalid';

/** A Vault problem, naming the path and never a secret. */
export class VaultError extends Error {
  override name = 'VaultError';
  constructor(
    readonly kind: VaultErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/** How the worker reaches Vault. */
export interface VaultSourceOptions {
  /** Base URL, e.g. `http://127.0.0.1:8200`. */
  address: string;
  /** Token auth. Either this or `appRole`. */
  token?: string;
  /** AppRole auth: the worker logs in and logs in again when its token expires or is refused. */
  appRole?: { roleId: string; secretId: string; /** Auth mount. Default: `approle`. */ mountPoint?: string };
  /** Vault Enterprise / OpenBao namespace. Default: none. */
  namespace?: string;
  /** How long a read secret is reused, in milliseconds; 0 disables the cache. Default: 60000. */
  cacheTtlMs?: number;
  /** Most secrets cached at once; reading one more drops the one read from Vault longest ago. Default: 1000. */
  cacheMaxEntries?: number;
  /** Per-request timeout, in milliseconds. Default: 10000. */
  requestTimeoutMs?: number;
  /**
   * Path prefixes connectors may read (`TC_VAULT_PATHS`, see `ConnectorsConfig.vaultPaths`); any other
   * path is refused before Vault is asked, as `denied`. Never under `auth/`, `sys/`, `identity/`,
   * `cubbyhole/` or naming `lookup-self`, whatever is given here. Default: `['secret/']`.
   */
  allowedPaths?: readonly string[];
}

/**
 * Why a connector may not read the Vault path `path` when `allowed` lists the prefixes it may read;
 * undefined when it may. The message names the allowed prefixes, never a secret.
 */
export function vaultPathRefusal(path: string, allowed: readonly string[]): string | undefined {
  const listed = `${allowed.join(', ')} (TC_VAULT_PATHS)`;
  const problem = vaultPathProblem(path);
  if (problem !== undefined) return `${problem}; connectors may read only ${listed}`;
  return allowed.some((prefix) => path.startsWith(prefix)) ? undefined : `is outside the Vault paths connectors may read: ${listed}`;
}

interface CacheEntry {
  value: PlainObject;
  expiresAt: number;
}

/**
 * Reads Vault secrets for connectors. Caches each path per worker for `cacheTtlMs` and shares
 * in-flight reads, so a busy worker sends Vault one request per path per TTL, not one per call.
 * Expired secrets leave memory when they expire, not when next read, and at most `cacheMaxEntries` are kept.
 */
export class VaultSecretSource {
  private readonly client: vault.client;
  // Oldest first: every entry lives cacheTtlMs from when it was stored, so this is also expiry order.
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inFlight = new Map<string, Promise<PlainObject>>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private loggedIn: Promise<void> | undefined;
  private tokenExpiresAt = Infinity;
  readonly cacheTtlMs: number;
  readonly cacheMaxEntries: number;
  readonly allowedPaths: readonly string[];

  constructor(private readonly options: VaultSourceOptions) {
    if (!options.token && !options.appRole) throw new VaultError('invalid', 'Vault needs a token or AppRole credentials');
    this.allowedPaths = options.allowedPaths === undefined ? DEFAULT_VAULT_PATHS : checkedVaultPaths(options.allowedPaths, 'allowedPaths');
    this.cacheTtlMs = options.cacheTtlMs ?? 60_000;
    this.cacheMaxEntries = options.cacheMaxEntries ?? 1_000;
    this.client = vault({
      apiVersion: 'v1',
      endpoint: options.address,
      token: options.token,
      namespace: options.namespace,
      requestOptions: { timeout: options.requestTimeoutMs ?? 10_000 },
    });
  }

  /**
   * From `VAULT_ADDR` with `VAULT_TOKEN`, or `VAULT_ROLE_ID` + `VAULT_SECRET_ID` (AppRole,
   * mount `VAULT_APPROLE_MOUNT`), `VAULT_NAMESPACE`, `TC_VAULT_CACHE_TTL_MS` and `TC_VAULT_PATHS`, in
   * `env` (default: this process's environment; see `loadConfig`). Undefined without `VAULT_ADDR`.
   */
  static fromEnv(env?: NodeJS.ProcessEnv): VaultSecretSource | undefined {
    const settings = vaultSettings(env);
    return settings && new VaultSecretSource({ ...settings, allowedPaths: vaultPathsSetting(env) });
  }

  /**
   * The secret's key/value pairs (KV v2's `data.data`, KV v1's `data`). A path outside
   * {@link allowedPaths} is refused as `denied` before Vault is asked: the service refuses it on save,
   * but a connector stored before the setting changed, or given inline, still names it.
   */
  async read(path: string): Promise<PlainObject> {
    const refusal = vaultPathRefusal(path, this.allowedPaths);
    // A refused path may be anything an inline connector gave: escaped, so it cannot rewrite a terminal or a log line.
    if (refusal !== undefined) throw new VaultError('denied', `Vault secret ${/^[A-Za-z0-9_.\-/]{1,200}$/.test(path) ? path : shownKey(String(path))} ${refusal}`);
    this.dropExpired();
    const cached = this.cache.get(path);
    if (cached && cached.expiresAt > Date.now()) return cached.value;
    const pending = this.inFlight.get(path);
    if (pending) return pending;
    const read = this.readFromVault(path).finally(() => this.inFlight.delete(path));
    this.inFlight.set(path, read);
    const value = await read;
    this.remember(path, value);
    return value;
  }

  /** Forgets cached secrets: one path, or all. */
  invalidate(path?: string): void {
    if (path === undefined) this.cache.clear();
    else this.cache.delete(path);
  }

  /** How many secrets the cache holds now. */
  get cacheSize(): number {
    return this.cache.size;
  }

  private remember(path: string, value: PlainObject): void {
    if (this.cacheTtlMs <= 0) return;
    // Deleted first, so that a refreshed path moves to the end and the map stays in expiry order.
    this.cache.delete(path);
    this.cache.set(path, { value, expiresAt: Date.now() + this.cacheTtlMs });
    for (const oldest of this.cache.keys()) {
      if (this.cache.size <= this.cacheMaxEntries) break;
      this.cache.delete(oldest);
    }
    this.scheduleSweep();
  }

  private dropExpired(): void {
    const now = Date.now();
    for (const [path, entry] of this.cache) {
      if (entry.expiresAt > now) break;
      this.cache.delete(path);
    }
  }

  /** One unref'd timer at a time, set for the oldest entry's expiry: an idle worker keeps no expired secret. */
  private scheduleSweep(): void {
    const oldest = this.cache.values().next();
    if (this.sweepTimer || oldest.done) return;
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = undefined;
      this.dropExpired();
      this.scheduleSweep();
    }, Math.max(0, oldest.value.expiresAt - Date.now()) + 1);
    this.sweepTimer.unref();
  }

  private async readFromVault(path: string, relogin = true): Promise<PlainObject> {
    await this.ensureLogin();
    let response: { data?: unknown };
    try {
      response = await this.client.read(path);
    } catch (err) {
      const status = (err as { response?: { statusCode?: number } }).response?.statusCode;
      if (status === 403 && this.options.appRole && relogin) {
        this.loggedIn = undefined; // the AppRole token may have expired: log in again, once
        return this.readFromVault(path, false);
      }
      throw vaultError(path, err, status);
    }
    const data = response.data;
    // KV v2 wraps the secret as { data, metadata }; KV v1 returns it directly.
    const secret = isPlainObject(data) && isPlainObject(data.data) && isPlainObject(data.metadata) ? data.data : data;
    if (!isPlainObject(secret)) throw new VaultError('not_found', `Vault secret ${path} has no key/value data`);
    return secret;
  }

  private ensureLogin(): Promise<void> {
    const appRole = this.options.appRole;
    if (!appRole) return Promise.resolve();
    if (this.loggedIn && Date.now() < this.tokenExpiresAt) return this.loggedIn;
    this.loggedIn = (async () => {
      try {
        const result = await this.client.approleLogin({
          role_id: appRole.roleId,
          secret_id: appRole.secretId,
          mount_point: appRole.mountPoint ?? 'approle',
        });
        // Log in again a little before the token lapses rather than after a refused read.
        const ttlSeconds = Number(result?.auth?.lease_duration ?? 0);
        this.tokenExpiresAt = ttlSeconds > 0 ? Date.now() + ttlSeconds * 900 : Infinity;
      } catch (err) {
        this.loggedIn = undefined;
        const status = (err as { response?: { statusCode?: number } }).response?.statusCode;
        throw vaultError(`auth/${appRole.mountPoint ?? 'approle'}/login`, err, status, 'AppRole login');
      }
    })();
    return this.loggedIn;
  }
}

function vaultError(path: string, err: unknown, status: number | undefined, what = 'secret'): VaultError {
  if (status === 404) return new VaultError('not_found', `Vault ${what} ${path} does not exist`);
  if (status === 403 || status === 401 || status === 400) {
    return new VaultError('denied', `Vault refused ${what} ${path} (HTTP ${status}): check the token or AppRole policy`);
  }
  if (status !== undefined) return new VaultError('unavailable', `Vault answered HTTP ${status} for ${what} ${path}`);
  const code = (err as { code?: string }).code ?? (err as { cause?: { code?: string } }).cause?.code;
  return new VaultError('unavailable', `Vault is unreachable for ${what} ${path}${code ? ` (${code})` : ''}`);
}
