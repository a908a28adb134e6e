import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { durationSchema, parseDurationMs } from '../connectors/durations';
import type { ConnectorRegistry } from '../connectors/registry';
import { isDelegating, type AnyConnectorType } from '../connectors/types';
import { bindingOf, decodeBinding, encodeBinding, narrowedTo, sameBinding, widening, type DestinationSet, type SecretBinding } from './destinations';
import { getPath, isPlainObject, isSensitivePath, jsonValueIssues, mapSensitive, MASK, setOwn, shownKey, shownPath, type PlainObject } from './inputs';
import { Keyring, KeyringError } from './keyring';
import { checkedVaultPaths, DEFAULT_VAULT_PATHS } from './config';
import { ConnectorLimiter, MAX_BACKOFF_LIMIT_MS, type LimitsUsage } from './limits';
import type { ConnectorRecord, ConnectorStore, EncryptionKeyState, StoredConnector } from './store/connector-store';
import { vaultPathRefusal } from './vault';

/** `[a-z0-9][a-z0-9_.-]*`, up to 128 characters: safe in URLs, paths, workflow IDs and search attributes. */
export const CONNECTOR_NAME = /^[a-z0-9][a-z0-9_.-]{0,127}$/;

export const retrySchema = z
  .object({
    maximum_attempts: z.number().int().min(1).max(1000).optional().describe('Most attempts of a call, the first included, 1 to 1000. Default 5.'),
    initial_interval: durationSchema.optional().meta({ description: 'Wait before the first retry: milliseconds or a duration. Default 1 s.', examples: ['1s', 500] }),
    backoff_coefficient: z.number().min(1).max(100).optional().describe('Each wait is the previous one times this, 1 to 100. Default 2.'),
    maximum_interval: durationSchema.optional().meta({ description: 'Longest wait between two attempts: milliseconds or a duration. Default 1 min.', examples: ['1m'] }),
  })
  .strict();

export const limitsSchema = z
  .object({
    max_concurrent: z
      .number()
      .int()
      .min(1)
      .max(10_000)
      .optional()
      .describe('Most calls through this connector in flight at once, across every connector worker sharing the store, 1 to 10000. Default: no limit.'),
    rate: z
      .object({
        calls: z.number().int().min(1).max(1_000_000).describe('Most calls started per `per`, 1 to 1000000.'),
        per: durationSchema
          .refine((per) => (parseDurationMs(per) ?? 0) <= 3_600_000, { message: 'must be at most 1 h' })
          .meta({ description: 'The period: milliseconds or a duration, at most 1 h.', examples: ['1s', '1m'] }),
      })
      .strict()
      .optional()
      .meta({ description: 'Most calls started per period, across every connector worker. Default: no limit.', examples: [{ calls: 10, per: '1s' }] }),
    max_wait: durationSchema
      .refine((wait) => (parseDurationMs(wait) ?? 0) <= 3_600_000, { message: 'must be at most 1 h' })
      .optional()
      .meta({ description: "Longest a call waits for a slot, in all, before it fails with Connector.External.Timeout; at most 1 h; a call's own `maxWait` option wins. Default 10 min.", examples: ['2m'] }),
    max_backoff: durationSchema
      .refine((backoff) => {
        const ms = parseDurationMs(backoff) ?? 0;
        return ms >= 1_000 && ms <= MAX_BACKOFF_LIMIT_MS;
      }, { message: 'must be from 1 s to 1 h' })
      .optional()
      .meta({
        description:
          "Longest pause an answer of the external system may cause: a Retry-After beyond it counts as this long, for the back-off every call shares and for the call's next retry; 1 s to 1 h. Default 10 min.",
        examples: ['1m'],
      }),
  })
  .strict();

// Field documentation lives in the schema, so the JSON Schema the API serves (`definition_json_schema`)
// and `connectors types --definition` carry it.
/** A connector definition as operators write it (YAML, JSON, API). */
export const connectorDefinitionSchema = z
  .object({
    name: z
      .string()
      .regex(CONNECTOR_NAME, 'must be 1-128 characters of a-z 0-9 _ . -, starting with a letter or digit')
      .meta({ description: 'Unique name that workflows use: 1-128 characters of a-z 0-9 _ . -, starting with a letter or digit.', examples: ['billing_api'] }),
    type: z.string().min(1, 'is required').meta({ description: 'A registered connector type, e.g. REST, OPENAI, POSTGRES, MYSQL, AGENT.', examples: ['REST'] }),
    description: z.string().max(2000).default('').describe('What the connector is for, for people; up to 2000 characters. Default: empty.'),
    value: z
      .record(z.string(), z.unknown())
      .default({})
      .describe(
        "The type's inputs (its json_schema), snake_case; sensitive ones are encrypted at rest and masked on read. Required inputs may be left to Vault secrets and overrides. Default: none.",
      ),
    vault_secrets: z
      .array(
        z
          .object({
            path: z
              .string()
              .regex(/^[A-Za-z0-9_.\-/]+$/, 'must be a Vault API path such as secret/data/name')
              .meta({
                description: 'Vault API path of the secret: KV v2 `secret/data/<name>`, KV v1 `kv/<name>`; under a prefix the operator allows (TC_VAULT_PATHS, default `secret/`).',
                examples: ['secret/data/billing'],
              }),
            map: z
              .record(z.string(), z.string().min(1))
              .optional()
              .meta({ description: 'Secret key to input path; only the mapped keys are applied. Default: every key of the secret becomes the input of that name.', examples: [{ token: 'auth.token' }] }),
            secret_keys: z
              .array(z.string().min(1))
              .optional()
              .describe('Keys of the secret that are secrets wherever they land (redacted from outputs, messages and logs). Default: none besides sensitive inputs.'),
          })
          .strict()
          .describe('One Vault secret whose keys become inputs.'),
      )
      .default([])
      .describe("Vault secrets applied after `value`, in listed order (later wins), before the workflow's overrides. Default: none."),
    locked: z
      .array(z.string().min(1))
      .default([])
      .meta({ description: 'Inputs (dotted paths) a workflow may not override. Default: none.', examples: [['base_url']] }),
    allowed_destinations: z
      .array(z.string().min(1).max(300))
      .max(100)
      .default([])
      .meta({
        description:
          "Destinations besides the connector's own to which its stored and Vault secrets may follow an override: an origin such as https://api-eu.example.com (with ` host=<name>` for a Host header naming another host), a SQL host:port (with ` tls`, ` tls=no-verify` or ` tls ca=sha256:<hash>` when TLS is on), or * for any; at most 100. A stored secret follows only to destinations listed when it was written: list one and write the secret again in the same save. Default: none.",
        examples: [['https://api-eu.example.com', 'replica.internal:5432 tls']],
      }),
    retry: retrySchema
      .optional()
      .describe('Retry policy of calls through this connector; a call\'s own `retry` option wins. Default: 5 attempts from 1 s, x2, at most 1 min.'),
    timeout: durationSchema
      .optional()
      .meta({ description: "Per-attempt timeout of calls: milliseconds or a duration such as 500ms, 30s, 2m, 1h; a call's own `timeout` option wins. Default 60 s.", examples: ['30s'] }),
    limits: limitsSchema
      .optional()
      .describe(
        'Concurrency and rate limits of calls through this connector, held across every connector worker sharing the store; a waiting call holds no worker slot and spends no attempt. With limits (even `{}`), a 429 with Retry-After pauses every later call. Default: none.',
      ),
  })
  .strict();

export type ConnectorDefinition = z.input<typeof connectorDefinitionSchema>;

/** A field-level problem: `path` names the field, `message` the problem. Never a value. */
export interface FieldIssue {
  path: string;
  message: string;
}

/** Most issues one validation error carries: a list of a million wrong items is not a million messages. */
export const MAX_REPORTED_ISSUES = 20;

export class ConnectorValidationError extends Error {
  override name = 'ConnectorValidationError';
  /** The first {@link MAX_REPORTED_ISSUES} problems; the message says how many more there were. */
  readonly issues: FieldIssue[];
  constructor(issues: FieldIssue[], subject = 'connector definition') {
    const shown = issues.slice(0, MAX_REPORTED_ISSUES);
    const more = issues.length > shown.length ? `; and ${issues.length - shown.length} more` : '';
    super(`${subject} is invalid: ${shown.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')}${more}`);
    this.issues = shown;
  }
}

export class ConnectorNotFoundError extends Error {
  override name = 'ConnectorNotFoundError';
  constructor(readonly connector: string, version?: number) {
    super(version === undefined ? `connector ${connector} does not exist` : `connector ${connector} has no version ${version}`);
  }
}

/** Zod issues as field issues; zod's messages name expectations, not the values received. */
export function zodIssues(error: z.ZodError, prefix = ''): FieldIssue[] {
  return error.issues.map((issue) => ({
    path: [prefix, shownPath(issue.path)].filter(Boolean).join('.'),
    // The one zod message that quotes input: the keys it did not know, which may be anything.
    message: issue.code === 'unrecognized_keys' ? `Unrecognized key${issue.keys.length > 1 ? 's' : ''}: ${issue.keys.map((k) => `"${shownKey(k)}"`).join(', ')}` : issue.message,
  }));
}

/** A definition validated into a record (sensitive values still plain), with what its type says about them. */
interface PreparedRecord {
  record: ConnectorRecord;
  sensitive: readonly string[];
  /** Where the inputs send a call (`https://host:port`, `host:port`); none for types that reach no network address themselves. */
  destination?: (inputs: Record<string, unknown>) => string | undefined;
}

/** What every read shows: sensitive values masked, nothing encrypted or decrypted. */
export interface ConnectorView extends Omit<StoredConnector, 'created_at' | 'deleted'> {
  created_at: string;
}

/** A stored connector with its secrets decrypted: only ever inside the connector worker's activity. */
export interface DecryptedConnector extends StoredConnector {
  /**
   * The destinations each stored secret was written for, by dotted input path (core/destinations.ts).
   * A secret stored before bindings existed has none here: it is bound to its own version's destinations.
   */
  bindings: Record<string, SecretBinding>;
}

export interface ConnectorServiceOptions {
  store: ConnectorStore;
  registry: ConnectorRegistry;
  /** Encrypts sensitive fields. Without it, connectors with sensitive values cannot be saved. Default: none. */
  keyring?: Keyring;
  /**
   * Vault path prefixes a connector's `vault_secrets` may name (`TC_VAULT_PATHS`, see
   * `ConnectorsConfig.vaultPaths`); a save or rollback naming any other path is refused. Never under
   * Vault's own mounts or naming `lookup-self`, whatever is given here. Default: `['secret/']`.
   */
  vaultPaths?: readonly string[];
  /**
   * Longest time, in milliseconds, the profile cache (started by {@link ConnectorService.watch}) serves a
   * loaded profile without reading the store again. Change notifications drop entries sooner; this bounds
   * staleness when one is lost without the LISTEN connection noticing (a half-open TCP connection).
   * 0 turns the cache off. Default: 30000 (30 s).
   */
  cacheTtlMs?: number;
}

/** Default of {@link ConnectorServiceOptions.cacheTtlMs}: 30 s. */
export const DEFAULT_PROFILE_CACHE_TTL_MS = 30_000;

interface CachedProfile {
  profile: Promise<DecryptedConnector | undefined>;
  /** Date.now() after which the entry is read again from the store. */
  expiresAt: number;
}

/**
 * The one service layer behind the workflow runtime, the CLI and the HTTP API: validation,
 * encryption at rest, masking, versions.
 */
export class ConnectorService {
  readonly store: ConnectorStore;
  readonly registry: ConnectorRegistry;
  readonly keyring?: Keyring;
  readonly vaultPaths: readonly string[];
  private readonly cacheTtlMs: number;
  // Only existing profiles are cached (a miss is not), so the map holds at most one entry per stored connector.
  private cache?: Map<string, CachedProfile>;
  // The cache is trusted only while change notifications arrive; without them it is bypassed.
  private listening = false;
  private unwatch?: () => Promise<void>;

  constructor(options: ConnectorServiceOptions) {
    this.store = options.store;
    this.registry = options.registry;
    this.keyring = options.keyring;
    this.vaultPaths = options.vaultPaths === undefined ? DEFAULT_VAULT_PATHS : checkedVaultPaths(options.vaultPaths, 'vaultPaths');
    this.cacheTtlMs = options.cacheTtlMs ?? DEFAULT_PROFILE_CACHE_TTL_MS;
  }

  /** Validates and stores `definition` as the connector's next version; returns the masked view. */
  async apply(definition: unknown, options: { expectedVersion?: number; actor?: string } = {}): Promise<ConnectorView> {
    const [view] = await this.applyEach([{ definition, expectedVersion: options.expectedVersion }], options.actor);
    return view;
  }

  /**
   * Applies several definitions all-or-nothing: every one is validated first (issues are prefixed
   * `documents.<i>`), then all are written in one transaction.
   */
  async applyMany(definitions: unknown[], options: { actor?: string } = {}): Promise<ConnectorView[]> {
    return this.applyEach(definitions.map((definition) => ({ definition })), options.actor, true);
  }

  private async applyEach(items: Array<{ definition: unknown; expectedVersion?: number }>, actor?: string, numbered = false): Promise<ConnectorView[]> {
    const issues: FieldIssue[] = [];
    const prepared: Array<ReturnType<ConnectorService['prepareRecord']> & { expectedVersion?: number }> = [];
    for (const [i, { definition, expectedVersion }] of items.entries()) {
      // Enough to say what is wrong: validating the rest of a file of 100,000 bad documents only costs time.
      if (issues.length >= MAX_REPORTED_ISSUES) break;
      try {
        prepared.push({ ...this.prepareRecord(definition), expectedVersion });
      } catch (err) {
        if (!(err instanceof ConnectorValidationError)) throw err;
        for (const issue of err.issues) issues.push(numbered ? { ...issue, path: `documents.${i}${issue.path ? `.${issue.path}` : ''}` } : issue);
      }
    }
    if (issues.length > 0) throw new ConnectorValidationError(issues);
    // A set, not indexOf per name: a file of 100,000 connectors would take minutes to check.
    const names = new Set<string>();
    for (const { record } of prepared) {
      if (names.has(record.name)) throw new ConnectorValidationError([{ path: 'name', message: `connector ${record.name} appears more than once` }]);
      names.add(record.name);
    }
    const stored = await this.store.putMany(
      prepared.map((p) => ({
        record: p.record,
        expectedVersion: p.expectedVersion,
        // Inside the write transaction, so a masked value is matched against the version being replaced.
        prepare: (current: StoredConnector | undefined, { keys }: { keys: EncryptionKeyState }) => {
          const next: DestinationSet = { type: p.record.type, home: this.homeOf(p, current), allowed: p.record.allowed_destinations ?? [] };
          let legacy: SecretBinding | undefined;
          const legacyBinding = () => (legacy ??= this.legacyBinding(current!, p));
          this.checkKeptSecretsStayHome(p, current, next, legacyBinding);
          return { ...p.record, value: this.encryptValue(p.record.name, p.record.value, p.sensitive, current, keys, bindingOf(next), legacyBinding) };
        },
      })),
      actor,
    );
    await this.clearBackoffs(stored.map((c) => c.name));
    return stored.map((c) => this.view(c));
  }

  /** Validates a definition into a record (sensitive values still plain). */
  private prepareRecord(definition: unknown): PreparedRecord {
    // Of the definition as given: zod's records drop `__proto__` keys from what they parse. And before
    // the type's schema sees the value: that schema, masking and encryption all recurse into it.
    const shapeIssues = jsonValueIssues(definition);
    const parsed = connectorDefinitionSchema.safeParse(definition);
    if (!parsed.success || shapeIssues.length > 0) throw new ConnectorValidationError([...shapeIssues, ...(parsed.success ? [] : zodIssues(parsed.error))]);
    const def = parsed.data;
    const storedIssues = [...storedFormIssues(def.value), ...this.vaultPathIssues(def.vault_secrets)];
    if (storedIssues.length > 0) throw new ConnectorValidationError(storedIssues);
    const type = this.registry.get(def.type);
    if (!type) {
      const known = this.registry.names().join(', ');
      throw new ConnectorValidationError([{ path: 'type', message: `"${shownKey(def.type)}" is not a known connector type; known types: ${known}` }]);
    }
    const valueIssues = profileValueIssues(type, def.value as PlainObject);
    if (valueIssues.length > 0) throw new ConnectorValidationError(valueIssues);
    const record: ConnectorRecord = {
      name: def.name,
      type: type.name,
      description: def.description,
      value: def.value as PlainObject,
      vault_secrets: def.vault_secrets,
      locked: def.locked,
      allowed_destinations: def.allowed_destinations,
      retry: def.retry,
      timeout: def.timeout === undefined ? undefined : String(def.timeout),
      limits: def.limits,
    };
    return { record, sensitive: type.sensitive, destination: isDelegating(type) ? undefined : type.destination?.bind(type) };
  }

  /**
   * Vault references outside {@link vaultPaths}: whoever may edit a connector must not read, and aim
   * elsewhere, what else the worker's Vault token can read (its own token, another team's secrets).
   */
  private vaultPathIssues(refs: ReadonlyArray<{ path: string }> | undefined): FieldIssue[] {
    return (refs ?? []).flatMap((ref, i) => {
      const refusal = vaultPathRefusal(ref.path, this.vaultPaths);
      return refusal === undefined ? [] : [{ path: `vault_secrets.${i}.path`, message: refusal }];
    });
  }

  /** The connector types this service knows: fields, sensitive paths, and a JSON Schema for forms. */
  types(): ConnectorTypeInfo[] {
    return this.registry.all().map((type) => ({
      name: type.name,
      description: type.description,
      fields: inputKeys(type.schema) ?? [],
      sensitive: [...type.sensitive],
      json_schema: z.toJSONSchema(type.schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>,
    }));
  }

  /** JSON Schema of a connector document (name, type, value, vault_secrets, ...), with each field described. */
  definitionJsonSchema(): Record<string, unknown> {
    return z.toJSONSchema(connectorDefinitionSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  }

  async get(name: string, version?: number): Promise<ConnectorView> {
    checkName(name);
    if (version !== undefined) checkVersion(version);
    const stored = await this.store.get(name, version);
    if (!stored) throw new ConnectorNotFoundError(name, version);
    return this.view(stored);
  }

  /**
   * What a connector's `limits` have in use now, across every connector worker: calls in flight and
   * waiting, starts in the current rate period, a 429's back-off. Undefined without limits.
   */
  async limitsUsage(view: Pick<ConnectorView, 'name' | 'limits'>): Promise<LimitsUsage | undefined> {
    if (!view.limits) return undefined;
    return new ConnectorLimiter(this.store.db).usage(view.name, view.limits);
  }

  /**
   * Ends the back-off a 429 set on connector `name` (`connectors limits reset`): its calls go ahead
   * at once. Says whether one was in force.
   */
  async resetLimits(name: string): Promise<{ name: string; backoff_cleared: boolean }> {
    checkName(name);
    if (!(await this.store.get(name))) throw new ConnectorNotFoundError(name);
    const cleared = await new ConnectorLimiter(this.store.db).clearBackoff([name]);
    return { name, backoff_cleared: cleared > 0 };
  }

  /**
   * After a write (save, delete, rollback): whoever changed the connector, possibly its endpoint or
   * its limits, decides afresh, so a pause an answer of the old endpoint asked for ends. The write has
   * committed by now: a failure here must not report it as failed (a back-off left behind ends within
   * its cap, and `limits reset` clears it).
   */
  private async clearBackoffs(names: string[]): Promise<void> {
    await new ConnectorLimiter(this.store.db).clearBackoff(names).catch(() => undefined);
  }

  async list(): Promise<ConnectorView[]> {
    return (await this.store.list()).map((c) => this.view(c));
  }

  /** Every version, newest first, with the names of the fields each changed (never their values). */
  async history(name: string): Promise<Array<ConnectorView & { deleted: boolean; changed: string[] }>> {
    checkName(name);
    const versions = await this.store.history(name);
    if (versions.length === 0) throw new ConnectorNotFoundError(name);
    return versions.map((c, i) => ({ ...this.view(c), deleted: c.deleted, changed: changedFields(versions[i + 1], c) }));
  }

  async delete(name: string, options: { expectedVersion?: number; actor?: string } = {}): Promise<ConnectorView> {
    checkName(name);
    const deleted = await this.store.delete(name, options);
    if (!deleted) throw new ConnectorNotFoundError(name);
    await this.clearBackoffs([name]);
    return this.view(deleted);
  }

  /** Writes an old version's content (ciphertext included) as the newest version. */
  async rollback(name: string, version: number, options: { expectedVersion?: number; actor?: string } = {}): Promise<ConnectorView> {
    checkName(name);
    checkVersion(version);
    // An old version may name a Vault path that TC_VAULT_PATHS has allowed no longer.
    const vaultIssues = this.vaultPathIssues((await this.store.get(name, version))?.vault_secrets);
    if (vaultIssues.length > 0) throw new ConnectorValidationError(vaultIssues, `version ${version} of connector ${name}`);
    const restored = await this.store.restore(name, version, { ...options, prepare: (old, versions, { keys }) => ({ ...old, value: this.narrowRestored(old, versions, keys) }) });
    if (!restored) throw new ConnectorNotFoundError(name, version);
    await this.clearBackoffs([name]);
    return this.view(restored);
  }

  /**
   * An old version's value as a rollback writes it: each secret bound no wider than its newest binding,
   * so a save that narrowed where a secret may go is not undone by restoring a version from before it.
   * A secret written again since is another secret (another id), and keeps its own binding.
   */
  private narrowRestored(old: StoredConnector, versions: readonly StoredConnector[], keys: EncryptionKeyState): PlainObject {
    const newest = new Map<string, SecretBinding>();
    // Newest first: the first binding met for an id is its newest, and bindings of one id only narrow.
    for (const version of versions) {
      mapCiphertexts(version.value, (ciphertext) => {
        const label = Keyring.labelOf(ciphertext);
        const binding = label === undefined ? undefined : decodeBinding(label);
        if (binding?.id !== undefined && !newest.has(binding.id)) newest.set(binding.id, binding);
        return ciphertext;
      });
    }
    return mapCiphertexts(old.value, (ciphertext, path) => {
      const label = Keyring.labelOf(ciphertext);
      const binding = label === undefined ? undefined : decodeBinding(label);
      const latest = binding?.id === undefined ? undefined : newest.get(binding.id);
      if (!binding || !latest) return ciphertext;
      const narrowed = narrowedTo(binding, latest);
      if (sameBinding(narrowed, binding)) return ciphertext;
      const keyring = this.requireKeyring(`roll back connector ${old.name}, whose secret value.${path} was narrowed since`);
      const context = cipherContext(old.name, path);
      return keyring.encrypt(keyring.decrypt(ciphertext, context), context, encryptionKeyId(keyring, keys, `value.${path}`), encodeBinding(narrowed));
    });
  }

  /**
   * Re-encrypts every sensitive value of every version under the keyring's primary key, and records
   * that key as the store's and the keys it replaced as retired. Writes wait while it runs. Returns the
   * values rewritten.
   */
  async rotateKeys(): Promise<number> {
    const keyring = this.requireKeyring('rotate keys');
    let rewritten = 0;
    const replaced = new Set<string>();
    await this.store.rewriteAllValues({
      check: ({ keys }) => {
        // Most likely a process with an out-of-date keyring: rotating would move every secret back to a
        // key that operators were told they may drop.
        if (keys.retired.has(keyring.primaryId)) {
          throw new KeyringError(
            `cannot rotate to key "${keyring.primaryId}": an earlier rotate-key retired it and moved the store to key "${keys.current}". ` +
              `Put a newer key first; to use the same key material again, give it a new id`,
          );
        }
      },
      transform: (row) =>
        mapCiphertexts(row.value, (ciphertext, path) => {
          const keyId = Keyring.keyIdOf(ciphertext);
          if (keyId === keyring.primaryId) return ciphertext;
          rewritten++;
          replaced.add(keyId);
          return keyring.reencrypt(ciphertext, cipherContext(row.name, path));
        }),
      keys: () => ({ current: keyring.primaryId, retired: replaced }),
    });
    return rewritten;
  }

  /**
   * The current version with secrets decrypted, for the activity. Cached once {@link watch} runs:
   * a change notification drops the entry, so an update takes effect on the next call; an entry lives
   * at most `cacheTtlMs`; while the store's change notifications do not arrive (the LISTEN connection
   * dropped), every load reads the store, and everything cached is dropped when they arrive again.
   */
  async load(name: string): Promise<DecryptedConnector | undefined> {
    const cache = this.cache;
    if (!cache || !this.listening || this.cacheTtlMs <= 0) return this.loadFromStore(name);
    const now = Date.now();
    const cached = cache.get(name);
    if (cached && cached.expiresAt > now) return cached.profile;
    const entry: CachedProfile = { profile: this.loadFromStore(name), expiresAt: now + this.cacheTtlMs };
    cache.set(name, entry);
    // Misses and failures are not kept: a caller could otherwise grow the map by asking for any name.
    const forget = () => cache.get(name) === entry && cache.delete(name);
    entry.profile.then((profile) => profile || forget(), forget);
    return entry.profile;
  }

  /** How many profiles the cache holds (0 when it is not running): for monitoring and tests. */
  get cachedProfiles(): number {
    return this.cache?.size ?? 0;
  }

  /**
   * Version `version` with secrets decrypted, for a `connection` pinned to it. Undefined when the
   * connector has been deleted since (deleting a connector stops every call through it) or never
   * had that version.
   */
  async loadVersion(name: string, version: number): Promise<DecryptedConnector | undefined> {
    const latest = await this.load(name);
    if (!latest || latest.version === version) return latest;
    // Only a retry that outlived an update gets here: rare, so not cached.
    const stored = await this.store.get(name, version);
    return stored && !stored.deleted ? this.decrypt(stored) : undefined;
  }

  /** Starts the profile cache, invalidated through the store's change notifications. */
  async watch(): Promise<void> {
    if (this.unwatch) return;
    this.cache = new Map();
    this.unwatch = await this.store.watch(
      (name) => (name === undefined ? this.cache?.clear() : this.cache?.delete(name)),
      (listening) => {
        // Dropped both ways: what was cached before a drop, or loaded while notifications were lost, may be stale.
        this.listening = listening;
        this.cache?.clear();
      },
    );
  }

  async close(): Promise<void> {
    await this.unwatch?.();
    this.unwatch = undefined;
    this.cache = undefined;
    this.listening = false;
  }

  private async loadFromStore(name: string): Promise<DecryptedConnector | undefined> {
    const stored = await this.store.get(name);
    return stored && this.decrypt(stored);
  }

  private decrypt(stored: StoredConnector): DecryptedConnector {
    const bindings: Record<string, SecretBinding> = {};
    // One pass: the keyring is required only when a ciphertext is actually met.
    const value = mapCiphertexts(stored.value, (ciphertext, path) => {
      const keyring = this.requireKeyring(`read the secrets of connector ${stored.name}`);
      const plain = JSON.parse(keyring.decrypt(ciphertext, cipherContext(stored.name, path)));
      const label = Keyring.labelOf(ciphertext);
      // A label this version cannot read binds the secret to nowhere: never widened by guessing.
      if (label !== undefined) bindings[path] = decodeBinding(label) ?? { type: stored.type, destinations: [] };
      return plain;
    });
    return { ...stored, value, bindings };
  }

  /**
   * Where the version being saved sends calls, as its profile names it: the masked secrets it keeps
   * read as the stored ones. Decrypts only when the destination is itself a kept secret (a URL with
   * credentials), so a save that keeps plain destinations needs no keyring that can read them.
   */
  private homeOf(p: PreparedRecord, current: StoredConnector | undefined): string | undefined {
    if (!p.destination) return undefined;
    const kept = (from: PlainObject) =>
      mapSensitive(p.record.value, p.sensitive, (secret, _path, segments) => (secret === MASK ? (getPath(from, segments) ?? secret) : secret), { isSecret: (v) => v === MASK });
    const home = p.destination(current && !current.deleted ? kept(current.value) : p.record.value);
    if (home !== undefined || !current || current.deleted || !hasCiphertext(current.value)) return home;
    return p.destination(kept(this.decrypt(current).value));
  }

  /**
   * A sensitive value written back as the mask keeps the stored secret, but only within the
   * destinations that secret was written for: whoever may change a connector cannot read its secrets,
   * and must not be able to send them elsewhere by changing `base_url`, `host`, `tls`, a `Host` header
   * or the type, by listing a new `allowed_destinations`, or by doing so over several saves. A secret
   * written again in the same save is bound anew (whoever writes it knows it).
   */
  private checkKeptSecretsStayHome(p: PreparedRecord, current: StoredConnector | undefined, next: DestinationSet, legacyBinding: () => SecretBinding): void {
    if (!current || current.deleted || !p.destination) return;
    const kept: Array<{ path: string; stored: unknown }> = [];
    mapSensitive(p.record.value, p.sensitive, (secret, path, segments) => {
      const stored = getPath(current.value, segments);
      if (secret === MASK && (Keyring.isCiphertext(stored) || isStoredPlainSecret(stored, segments, p.sensitive))) kept.push({ path, stored });
      return secret;
    }, { isSecret: (v) => v === MASK });
    const issues: FieldIssue[] = [];
    for (const { path, stored } of kept) {
      const label = Keyring.isCiphertext(stored) ? Keyring.labelOf(stored) : undefined;
      // Stored before bindings existed (or in plain text, before its field counted as sensitive):
      // bound to the destinations of the version it is stored in.
      const binding = label === undefined ? legacyBinding() : (decodeBinding(label) ?? { type: current.type, destinations: [] });
      const why = widening(binding, next);
      if (why) {
        issues.push({
          path: `value.${path}`,
          message: `keeps the stored secret (${MASK}), but ${why}: a stored secret never follows a new destination; write the secret again in the same save`,
        });
      }
    }
    if (issues.length > 0) throw new ConnectorValidationError(issues);
  }

  private legacyBinding(stored: StoredConnector, p: PreparedRecord): SecretBinding {
    let home = p.destination?.(stored.value);
    if (home === undefined && hasCiphertext(stored.value)) home = p.destination?.(this.decrypt(stored).value);
    return bindingOf({ type: stored.type, home, allowed: stored.allowed_destinations ?? [] });
  }

  private encryptValue(
    name: string,
    value: PlainObject,
    sensitive: readonly string[],
    current: StoredConnector | undefined,
    keys: EncryptionKeyState,
    binding: SecretBinding,
    legacyBinding: () => SecretBinding,
  ): PlainObject {
    let keyId: string | undefined;
    const encrypt = (secret: unknown, path: string, bound: SecretBinding) => {
      const keyring = this.requireKeyring(`store the sensitive field value.${path}`);
      keyId ??= encryptionKeyId(keyring, keys, `value.${path}`);
      return keyring.encrypt(JSON.stringify(secret), cipherContext(name, path), keyId, encodeBinding({ ...bound, id: bound.id ?? randomUUID() }));
    };
    // The mask is met like a secret wherever it stands: a URL with credentials is a secret only by
    // its content, so the mask written back in its place must keep it as well.
    return mapSensitive(value, sensitive, (secret, path, segments) => {
      if (secret !== MASK) return encrypt(secret, path, binding);
      const kept = current ? getPath(current.value, segments) : undefined;
      if (Keyring.isCiphertext(kept)) {
        // checkKeptSecretsStayHome let it stay within its destinations; a save that names fewer narrows
        // them for good, or a later save could take it back to one the owner has since dropped.
        const label = Keyring.labelOf(kept);
        const was = label === undefined ? legacyBinding() : decodeBinding(label);
        if (was && sameBinding(was, binding)) return kept;
        const keyring = this.requireKeyring(`narrow where the stored secret value.${path} may go`);
        return encrypt(JSON.parse(keyring.decrypt(kept, cipherContext(name, path))), path, { ...binding, id: was?.id });
      }
      // Stored in plain text by a version that did not count the field as sensitive (a header named
      // X-Auth-Token, say): kept, and encrypted now, bound to where that version sent it.
      if (isStoredPlainSecret(kept, segments, sensitive)) return encrypt(kept, path, legacyBinding());
      if (!isSensitivePath(segments, sensitive)) return MASK; // ordinary data that happens to read ********
      throw new ConnectorValidationError([
        { path: `value.${path}`, message: `is the mask ${MASK}, which keeps a stored value, but connector ${name} has none stored there` },
      ]);
    }, { isSecret: (v) => v === MASK });
  }

  private requireKeyring(what: string): Keyring {
    if (!this.keyring) {
      throw new KeyringError(`cannot ${what}: no encryption key is configured (set TC_KEYRING or TC_KEYRING_FILE)`);
    }
    return this.keyring;
  }

  private view(stored: StoredConnector): ConnectorView {
    const sensitive = this.registry.get(stored.type)?.sensitive ?? [];
    // Ciphertext is masked wherever it is, even if the type's list of sensitive fields changed since.
    const value = mapCiphertexts(mapSensitive(stored.value, sensitive, () => MASK), () => MASK);
    const { deleted: _deleted, created_at, ...rest } = stored;
    return { ...rest, value, created_at: created_at.toISOString() };
  }
}

/** A connector type as the CLI (`types`) and the API (`/v1/types`) describe it. */
export interface ConnectorTypeInfo {
  name: string;
  description: string;
  /** Top-level input names. */
  fields: string[];
  /** Dotted input paths that are encrypted at rest and masked on read (`*` alone: any key; within a key: any characters). */
  sensitive: string[];
  /**
   * JSON Schema (draft 2020-12) of the inputs, generated from the type's zod schema. Secrets carry the
   * keyword `sensitive` (`true`, or key patterns on a map), from which `sensitive` is derived.
   */
  json_schema: Record<string, unknown>;
}

/**
 * Dotted names of what `next` changed relative to `previous` (everything, for a first version).
 * Ciphertexts compare as they are: a secret written back masked keeps its ciphertext, a re-entered
 * one gets a new one, so both cases read right without decrypting.
 */
function changedFields(previous: StoredConnector | undefined, next: StoredConnector): string[] {
  if (!previous) return ['created'];
  if (next.deleted) return ['deleted'];
  const changed: string[] = previous.deleted ? ['restored'] : [];
  for (const field of ['type', 'description', 'vault_secrets', 'locked', 'allowed_destinations', 'retry', 'timeout', 'limits'] as const) {
    if (JSON.stringify(previous[field] ?? null) !== JSON.stringify(next[field] ?? null)) changed.push(field);
  }
  const walk = (a: unknown, b: unknown, path: string[]): void => {
    if (isPlainObject(a) && isPlainObject(b)) {
      for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) walk(a[key], b[key], [...path, key]);
    } else if (JSON.stringify(a ?? null) !== JSON.stringify(b ?? null)) changed.push(path.join('.'));
  };
  walk(previous.value, next.value, ['value']);
  return changed;
}

/**
 * The key new ciphertext is made with: the keyring's primary, unless rotate-key has retired it. A retired
 * primary means this process's keyring is older than the store's last rotation (TC_KEYRING not yet
 * updated here). Its ciphertext would break once the operator drops the retired key, as the rotation
 * procedure says to, so the store's current key is used when this keyring holds it (a rolling update of
 * TC_KEYRING keeps working), and the write is refused when it does not.
 */
function encryptionKeyId(keyring: Keyring, keys: EncryptionKeyState, field: string): string {
  if (!keys.retired.has(keyring.primaryId)) return keyring.primaryId;
  if (keys.current && keyring.has(keys.current)) return keys.current;
  throw new KeyringError(
    `cannot store the sensitive field ${field}: key "${keyring.primaryId}", first in this process's keyring, was retired by rotate-key, ` +
      `which moved the store to key "${keys.current ?? 'unknown'}"; put that key first in TC_KEYRING or TC_KEYRING_FILE`,
  );
}

/**
 * What saving a profile's `value` refuses, judged by the type's schema: fields the type does not know,
 * at any depth, and values of the wrong type or form. Not refused: a missing required input and a rule
 * over several inputs (a refinement of an object), because Vault secrets and workflow overrides are
 * merged in before a call, which validates the whole again. A masked sensitive value stands for the
 * stored one, so it is judged as absent.
 */
function profileValueIssues(type: AnyConnectorType, value: PlainObject): FieldIssue[] {
  // Wherever it stands: a URL with credentials is masked too, and the mask written back keeps it.
  const unmasked = mapSensitive(value, type.sensitive, (secret) => (secret === MASK ? undefined : secret), { isSecret: (v) => v === MASK });
  const parsed = type.schema.safeParse(unmasked, { reportInput: true });
  const issues = parsed.success ? [] : parsed.error.issues.flatMap((issue) => savingIssues(issue, [], type.name));
  // A type whose schema strips unknown keys instead of refusing them still gets its top level checked.
  const known = inputKeys(type.schema);
  for (const key of known ? Object.keys(value).filter((k) => !known.includes(k)) : []) {
    const path = shownPath(['value', key]);
    if (!issues.some((i) => i.path === path)) issues.push({ path, message: `is not an input of type ${type.name}` });
  }
  return issues;
}

function savingIssues(issue: z.core.$ZodIssue, prefix: PropertyKey[], typeName: string): FieldIssue[] {
  const path = [...prefix, ...issue.path];
  const at = (p: PropertyKey[]) => shownPath(['value', ...p]);
  switch (issue.code) {
    case 'invalid_type':
      // With reportInput, only an absent value has no input (JSON has no undefined).
      if (issue.input === undefined) return [];
      break;
    case 'custom':
      // A refinement of an object relates several inputs (url or base_url; a model for an operation):
      // only the merged inputs can be judged. One of a single value (a duration's form) is judged now.
      if (isPlainObject(issue.input)) return [];
      break;
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({ path: at([...path, key]), message: `is not an input of type ${typeName}` }));
    case 'invalid_union': {
      if (issue.errors.length === 0) break; // no option matched the discriminator
      const options = issue.errors.map((errors) => errors.flatMap((e) => savingIssues(e, path, typeName)));
      if (options.some((o) => o.length === 0)) return [];
      const expected = issue.errors.map((errors) => (errors.length === 1 && errors[0].code === 'invalid_type' && errors[0].path.length === 0 ? errors[0].expected : undefined));
      if (expected.every(Boolean)) return [{ path: at(path), message: `expected ${[...new Set(expected)].join(' or ')}` }];
      // One option that got past its type check says best what is wrong.
      const closest = options.filter((_, i) => !expected[i]);
      if (closest.length === 1) return closest[0];
      break;
    }
  }
  return [{ path: at(path), message: issue.message }];
}

/** The store's integer column: the largest version number there can be. */
const MAX_VERSION = 2_147_483_647;

/** Refuses, before the store sees it, a name no connector can have (a NUL in it would fail the query itself). */
function checkName(name: unknown): void {
  if (typeof name !== 'string' || !CONNECTOR_NAME.test(name)) {
    throw new ConnectorValidationError([{ path: 'name', message: 'must be 1-128 characters of a-z 0-9 _ . -, starting with a letter or digit' }], 'the connector name');
  }
}

function checkVersion(version: unknown): void {
  if (!Number.isInteger(version) || (version as number) < 1 || (version as number) > MAX_VERSION) {
    throw new ConnectorValidationError([{ path: 'version', message: `must be a whole number from 1 to ${MAX_VERSION}` }], 'the version');
  }
}

/**
 * Strings in a value that look like the store's own ciphertext. Only the store writes ciphertext:
 * one given in a definition would be taken for a stored secret on every read, fail to decrypt there
 * and make the connector unusable, and one under an unknown key id would make rotate-key fail for
 * every connector.
 */
function storedFormIssues(value: unknown, path: string[] = ['value']): FieldIssue[] {
  const issues: FieldIssue[] = [];
  // jsonValueIssues has bounded the depth already, so this walk may recurse.
  const visit = (child: unknown, at: string[]) => {
    if (Keyring.isCiphertext(child)) {
      issues.push({ path: shownPath(at), message: 'looks like a value encrypted by the store; give the plain value (sensitive inputs are encrypted when saved)' });
    } else if (Array.isArray(child)) child.forEach((item, i) => visit(item, [...at, String(i)]));
    else if (isPlainObject(child)) for (const [key, item] of Object.entries(child)) visit(item, [...at, key]);
  };
  visit(value, path);
  return issues;
}

/** Associated data binding a ciphertext to its connector and field. */
function cipherContext(name: string, path: string): string {
  return `connector:${name}:${path}`;
}

/** A value stored in plain text at a path that is sensitive now: it is kept by the mask, and encrypted when next saved. */
function isStoredPlainSecret(stored: unknown, segments: readonly string[], sensitive: readonly string[]): boolean {
  return stored !== undefined && stored !== null && stored !== MASK && !Keyring.isCiphertext(stored) && isSensitivePath(segments, sensitive);
}

function hasCiphertext(value: PlainObject): boolean {
  let found = false;
  mapCiphertexts(value, (ciphertext) => ((found = true), ciphertext));
  return found;
}

/** Applies `fn` to every ciphertext string in `value`; returns `value` itself when there is none. */
function mapCiphertexts(value: PlainObject, fn: (ciphertext: string, path: string) => unknown, prefix: string[] = []): PlainObject {
  let changed = false;
  const out: PlainObject = {};
  for (const [key, child] of Object.entries(value)) {
    const path = [...prefix, key];
    let next = child;
    if (Keyring.isCiphertext(child)) next = fn(child, path.join('.'));
    else if (isPlainObject(child)) next = mapCiphertexts(child, fn, path);
    if (next !== child) changed = true;
    setOwn(out, key, next);
  }
  return changed ? out : value;
}

/** Top-level input names of an object schema; undefined when the schema is not an object. */
export function inputKeys(schema: z.ZodType): string[] | undefined {
  const shape = (schema as unknown as { shape?: Record<string, unknown> }).shape;
  return shape ? Object.keys(shape) : undefined;
}

