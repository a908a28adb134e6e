// The resolution pipeline and the call, in one place and with no idea that it may run inside a
// Temporal activity: load, decrypt, Vault, overrides, validate, invoke, mask. The connector
// activities adapt it to Temporal; the CLI and the HTTP API call it directly.
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { FailureType, permanentFailure, transientFailure } from '../connectors/errors';
import type { ConnectorRegistry } from '../connectors/registry';
import { isDelegating, type AnyConnectorType, type ConnectorType, type ConversationPort, type DelegatedCall, type InvokeContext } from '../connectors/types';
import {
  getPath,
  jsonValueIssues,
  isPlainObject,
  mapSensitive,
  mergeLayers,
  MASK,
  objectAtPath,
  Redactor,
  secretParts,
  sensitiveValues,
  type InputLayer,
  type InputSources,
  type PlainObject,
} from './inputs';
import { bindingAllows, bindingOf, intersectAllowed, listAllows, type SecretBinding } from './destinations';
import { KeyringError } from './keyring';
import { secretRedactions } from './redaction';
import { ConnectorService, zodIssues } from './service';
import { StoreUnavailableError } from './store/connector-store';
import { VaultError, type VaultSecretRef, type VaultSecretSource } from './vault';
import type {
  ConnectionRequest,
  ConnectionResult,
  ConnectorDescriptor,
  ConnectorLimits,
  ConnectorRetry,
} from '../workflows/types';

/** What the runner needs; tests pass their own real instances. */
export interface ConnectionRunnerDeps {
  service: ConnectorService;
  /** Source of the Vault secrets connectors attach. Default: none (such connectors fail with `Connector.Vault.Unavailable`). */
  vault?: VaultSecretSource;
}

/** How deep delegation may go (an agent through its OPENAI connector is 1). */
const MAX_DELEGATION_DEPTH = 3;

type ConnectorRef = ConnectionResult['connector'];

/** Vault values this long are treated as secrets even where nothing says so: they look like keys. */
export const LONG_VAULT_VALUE = 20;

/** One connector's part of a call: its layers before overrides, and what it lets a caller change. */
interface ConnectorLayers {
  type: AnyConnectorType;
  connector: ConnectorRef;
  layers: InputLayer[];
  /** Where each layer holds secrets, aligned with `layers`: what a call sent elsewhere must go without. */
  secretRules: Array<{ patterns: readonly string[]; isSecret?: (value: unknown) => boolean }>;
  /**
   * Every secret of the layers by place, with the destinations a stored one was written for (a Vault
   * secret has none: it goes where the connector goes, by the operator's TC_VAULT_PATHS).
   */
  secretPaths: Array<{ layer: number; path: string; segments: readonly string[]; binding?: SecretBinding }>;
  locked: string[];
  /** For a call pinned to an older version: where the newest version's profile sends calls. */
  newestHome?: { home: string | undefined };
  allowedDestinations: string[];
  /**
   * Every secret value resolved so far: sensitive fields, URLs with credentials, and the Vault
   * values that land at sensitive inputs, are declared secret or are long. Never a plain value such
   * as a user name or a port, which redaction would otherwise cut out of ordinary text.
   */
  secrets: unknown[];
  retry?: ConnectorRetry;
  timeout?: string;
  limits?: ConnectorLimits;
}

/** Every secret of one layer, with the paths they stand at. */
function secretsOf(layer: InputLayer, patterns: readonly string[], isSecret?: (value: unknown) => boolean) {
  const secrets: unknown[] = [];
  const paths: Array<{ path: string; segments: readonly string[] }> = [];
  mapSensitive(
    layer.value,
    patterns,
    (secret, path, segments) => {
      secrets.push(secret, ...secretParts(secret));
      paths.push({ path, segments });
      return secret;
    },
    { isSecret },
  );
  return { secrets, paths };
}

/** A fully resolved call, ready for the type that performs it. */
interface ResolvedCall {
  /** The connector the workflow named (an agent, say). */
  requested: ConnectorRef;
  /** The connector whose type performs the call, when delegation led elsewhere. */
  via?: ConnectorRef;
  type: ConnectorType;
  inputs: unknown;
  value: PlainObject;
  sources: InputSources;
  redactor: Redactor;
  /** What `redactor` redacts: every secret of the call, for a conversation that redacts all of its calls' together. */
  secrets: unknown[];
  poolKey?: string;
  /**
   * For a delegating type that converses (an agent with tools): the conversation, run instead of one
   * call of `type` (which is then the model's connector, resolved once up front so that a bad profile
   * fails before any tool runs), and what each of its calls is resolved with.
   */
  conversation?: {
    run: (port: ConversationPort) => Promise<unknown>;
    model: DelegatedCall;
    source: string;
    chain: ConnectorRef[];
    secrets: unknown[];
  };
}

/** Where a run happens: inside an activity, or directly (CLI, HTTP API). */
export interface RunContext {
  signal: AbortSignal;
  /** Default: no-op. */
  heartbeat?(details?: unknown): void;
  /** Attempt number reported in the result. Default: 1. */
  attempt?: number;
  /**
   * Told which connector performs the call once it is resolved, before the external call; `conversation`
   * when it is an agent's loop, whose calls each go through {@link beforeSubCall}. Default: none.
   */
  onResolved?(call: { connector: ConnectorRef; via?: ConnectorRef; conversation?: boolean }): void;
  /**
   * Called right before each call of a conversation (a model call, a tool call) goes to stored connector
   * `connector`; a rejection fails the conversation with that call unsent. The connector activities take
   * a slot of that connector's `limits` here, and release it with the function returned. Default: none.
   */
  beforeSubCall?(connector: string): Promise<(() => Promise<unknown>) | undefined>;
  /**
   * Called once the call is resolved and validated, right before the type sends anything; a rejection
   * fails the call unsent. The connector activities take a limited call's start here, in the process
   * that sends, as late as it can be taken. Default: none.
   */
  beforeSend?(): Promise<void>;
  /** Handed to the type as {@link InvokeContext.idempotencyKey}. Default: none. */
  idempotencyKey?: string;
}

/**
 * The resolution pipeline and the call, usable outside Temporal too (the CLI's and the API's `test`
 * and `introspect`): `describe` returns secret-free facts; `run` does load, decrypt, Vault,
 * overrides, validate, invoke, and returns the masked result.
 */
export function createConnectionRunner({ service, vault }: ConnectionRunnerDeps) {
  const registry = service.registry;

  /** Steps 1-3: the profile (loaded, decrypted) and, with `withVault`, its Vault secrets in order. */
  async function loadConnectorLayers(connector: ConnectionRequest['connector'], withVault: boolean, version?: number): Promise<ConnectorLayers> {
    if (typeof connector !== 'string') {
      const { type: typeName, ...inline } = connector;
      const type = requireType(registry, typeName, 'connector.type');
      const chosen = profileOnlyTouched(type, inline);
      if (chosen.length > 0) {
        throw permanentFailure(
          FailureType.InvalidInput,
          `inline ${type.name} connector: ${chosen.join(', ')} ${chosen.length > 1 ? 'choose' : 'chooses'} what the connector worker runs, which only a stored connector's profile may set`,
          { issues: chosen.map((path) => ({ path, message: 'only a stored profile may set it' })) },
        );
      }
      const layer: InputLayer = { source: 'inline', value: inline };
      return {
        type,
        connector: { name: null, type: type.name, version: null },
        layers: [layer],
        // An inline connector brings every secret it uses: there is nothing stored to withhold.
        secretRules: [{ patterns: type.sensitive }],
        secretPaths: [],
        locked: [],
        allowedDestinations: [],
        secrets: sensitiveValues(inline, type.sensitive),
      };
    }
    // 1 + 2: load (cached) and decrypt; a `connection` runs the version it started with, on every attempt.
    const profile = version === undefined ? await service.load(connector) : await service.loadVersion(connector, version);
    if (!profile) {
      const gone = version === undefined ? 'does not exist' : `does not exist any more (this connection started on its version ${version})`;
      throw permanentFailure(FailureType.NotFound, `connector ${connector} ${gone}`, { connector });
    }
    const type = requireType(registry, profile.type, `connector ${connector}: type`);
    // A call pinned to an older version still obeys the newest one's rules: what it locks, and where it
    // lets secrets go. Whoever tightened them meant every call, also those that started before.
    const latest = version === undefined ? profile : await service.load(connector);
    const older = latest !== undefined && latest.version !== profile.version;
    const locked = older ? [...new Set([...profile.locked, ...latest.locked])] : profile.locked;
    const allowed = older ? intersectAllowed(profile.allowed_destinations ?? [], latest.allowed_destinations ?? []) : (profile.allowed_destinations ?? []);
    const layers: InputLayer[] = [{ source: 'profile', value: profile.value }];
    const secretRules: ConnectorLayers['secretRules'] = [{ patterns: type.sensitive }];
    const own = secretsOf(layers[0], type.sensitive);
    let legacy: SecretBinding | undefined;
    const legacyBinding = () => (legacy ??= bindingOf({ type: type.name, home: destinationOf(type)?.(profile.value), allowed: profile.allowed_destinations ?? [] }));
    // A secret stored before bindings existed (or plain, by an older list of sensitive fields) is bound to its own version.
    const secretPaths: ConnectorLayers['secretPaths'] = own.paths.map(({ path, segments }) => ({ layer: 0, path, segments, binding: profile.bindings[path] ?? legacyBinding() }));
    const secrets = [...own.secrets];
    if (withVault) {
      const long = (value: unknown) => typeof value === 'string' && value.length >= LONG_VAULT_VALUE;
      for (const ref of profile.vault_secrets) {
        const secret = await readVaultSecret(vault, connector, ref); // 3: Vault, in listed order
        const declared = (ref.secret_keys ?? []).map((key) => (ref.map ? ref.map[key] : key)).filter((path): path is string => Boolean(path));
        const layer = { source: `vault:${ref.path}`, value: applyVaultMap(secret, ref) };
        const rule = { patterns: [...type.sensitive, ...declared], isSecret: long };
        const found = secretsOf(layer, rule.patterns, rule.isSecret);
        layers.push(layer);
        secretRules.push(rule);
        secretPaths.push(...found.paths.map(({ path, segments }) => ({ layer: layers.length - 1, path, segments })));
        secrets.push(...found.secrets);
      }
    }
    return {
      type,
      connector: { name: connector, type: type.name, version: profile.version },
      layers,
      secretRules,
      secretPaths,
      locked,
      ...(older && { newestHome: { home: destinationOf(registry.get(latest.type) ?? type)?.(latest.value) } }),
      allowedDestinations: allowed,
      secrets,
      retry: profile.retry,
      timeout: profile.timeout,
      limits: profile.limits,
    };
  }

  /**
   * The whole resolution, top to bottom: profile, Vault, overrides (locked fields refused), schema;
   * a delegating type (an agent) then hands its call to another connector, resolved the same way.
   */
  async function resolveCall(
    connector: ConnectionRequest['connector'],
    overrides: unknown,
    overrideSource: string,
    chain: ConnectorRef[] = [],
    inheritedSecrets: unknown[] = [],
    version?: number,
  ): Promise<ResolvedCall> {
    const own = await loadConnectorLayers(connector, true, chain.length === 0 ? version : undefined);
    const secrets = [...inheritedSecrets, ...own.secrets];
    if (isPlainObject(overrides)) secrets.push(...sensitiveValues(overrides, own.type.sensitive));
    // Every secret of the call, now that all are known and before the external call: any log line
    // from here on (the SDK's, a driver's) is redacted of them, not only what this call returns.
    secretRedactions.add(secrets);
    const override = overrideLayer(own, overrides, overrideSource); // 4: overrides
    const { value, sources } = mergeLayers([...bindSecretsToDestination(own, override), ...override]);
    const inputs = validate(own, value, new Redactor(secrets)); // 5: schema
    const requested = chain[0] ?? own.connector;

    if (isDelegating(own.type)) {
      const target = own.type.delegate(inputs as never);
      const seen = [...chain, own.connector];
      if (seen.length > MAX_DELEGATION_DEPTH || seen.some((c) => c.name === target.connector)) {
        const path = [...seen.map((c) => c.name), target.connector].join(' → ');
        throw permanentFailure(FailureType.InvalidInput, `connector ${own.connector.name}: delegation ${path} loops or is deeper than ${MAX_DELEGATION_DEPTH}`);
      }
      const source = `${own.type.name.toLowerCase()}:${own.connector.name ?? 'inline'}`;
      const delegated = await resolveCall(target.connector, target.overrides, source, seen, secrets);
      const conversation = own.type.conversation?.(inputs as never);
      if (!conversation) return delegated;
      return { ...delegated, conversation: { run: conversation, model: target, source, chain: seen, secrets } };
    }
    const sent = own.type.secretForms?.(inputs as never) ?? [];
    secretRedactions.add(sent);
    return {
      requested,
      via: chain.length > 0 ? own.connector : undefined,
      type: own.type,
      inputs,
      value,
      sources,
      redactor: new Redactor([...secrets, ...sent]),
      secrets: [...secrets, ...sent],
      poolKey: own.connector.name ? `${own.connector.name}@${own.connector.version}` : undefined,
    };
  }

  /**
   * An agent's model ↔ tool loop: every call it makes is resolved as a call of its own (profile, Vault,
   * overrides, locked fields, destination rule, schema) through the connector it names, newest version,
   * and its output is redacted of the secrets of every call so far before the conversation sees it.
   * So the model never receives a tool connector's secret, not even one a tool (or another tool's
   * server) echoes back.
   */
  async function converse(call: ResolvedCall, conversation: NonNullable<ResolvedCall['conversation']>, context: InvokeContext, runContext: RunContext): Promise<unknown> {
    const { model, source, chain, secrets } = conversation;
    const toolTypes = new Map<string, ConnectorType>();
    // Every secret of every call so far: what comes back from one call (a tool's log, a server that
    // saw another connector's token) is redacted of them all, so the model never reads any of them.
    const known: unknown[] = [...call.secrets];
    let calls = 0;
    // The step in flight, kept as the heartbeat details while its call heartbeats without details of its own.
    let progress: unknown;
    const heartbeat = (details?: unknown) => context.heartbeat(details ?? progress);
    const through = async (sub: ResolvedCall, perform: (type: ConnectorType, inputs: unknown, ctx: InvokeContext) => Promise<unknown>) => {
      const name = sub.via?.name ?? sub.requested.name ?? undefined;
      known.push(...sub.secrets);
      const redactor = new Redactor(known);
      if (sub.poolKey) registry.retireOlderVersions(sub.poolKey);
      let release: (() => Promise<unknown>) | undefined;
      try {
        if (name) release = await runContext.beforeSubCall?.(name);
        // Each call of the conversation a key of its own, the same on every attempt (its calls come in
        // the same order as long as the model answers the same): one key for all would let a system
        // that honours it drop every call after the first.
        const idempotencyKey = context.idempotencyKey === undefined ? undefined : `${context.idempotencyKey}-${++calls}`;
        const output = await perform(sub.type, sub.inputs, { ...context, heartbeat, poolKey: sub.poolKey, connector: name, idempotencyKey });
        return redactor.value(output);
      } catch (err) {
        // Named by the connector of this call (a tool's, the model's), which is the one to fix.
        throw toFailure(namingConnector(err, sub), redactor);
      } finally {
        await release?.();
      }
    };
    const subject = call.requested.name ? `agent ${call.requested.name}` : 'inline AGENT connector';
    const port: ConversationPort = {
      subject,
      model: async (overrides) => through(await resolveCall(model.connector, { ...model.overrides, ...overrides }, source, chain, secrets), (type, inputs, ctx) => type.invoke(inputs, ctx)),
      tools: async (connector) => {
        const sub = await resolveCall(connector, undefined, source, chain, secrets);
        // Only a connector that performs its own calls and offers tools: an agent as a tool would hide a loop.
        if (!sub.type.tools || !sub.type.toolCall || sub.via?.name !== connector) {
          throw permanentFailure(
            FailureType.InvalidInput,
            `${subject}: tool_connectors names ${connector} (${sub.via?.name === connector ? `type ${sub.type.name}` : 'a delegating connector'}), which offers no tools (MCP connectors do)`,
          );
        }
        toolTypes.set(connector, sub.type);
        return through(sub, (type, inputs, ctx) => type.tools!(inputs, ctx)) as ReturnType<ConversationPort['tools']>;
      },
      callTool: async (connector, tool, args) => {
        const type = toolTypes.get(connector);
        if (!type) throw permanentFailure(FailureType.InvalidInput, `${subject}: ${connector} is not one of its tool connectors`);
        return through(await resolveCall(connector, type.toolCall!(tool, args), source, chain, secrets), (t, inputs, ctx) => t.invoke(inputs, ctx));
      },
      heartbeat: (details) => heartbeat((progress = details)),
    };
    try {
      return new Redactor(known).value(await conversation.run(port));
    } catch (err) {
      throw toFailure(err, new Redactor(known));
    }
  }

  return {
    async describe(request: ConnectionRequest): Promise<ConnectorDescriptor> {
      let own: ConnectorLayers | undefined;
      try {
        own = await loadConnectorLayers(request.connector, false);
        const { value } = mergeLayers([...own.layers, ...overrideLayer(own, request.overrides, 'override')]);
        const action = request.action && request.action !== 'invoke' ? request.action : own.type.describeCall?.(value);
        // The summary lands in the parent's history, the child's and the Web UI: redact it of every
        // secret this request carries, the overrides' as much as the profile's.
        const secrets = [...own.secrets, ...(isPlainObject(request.overrides) ? sensitiveValues(request.overrides, own.type.sensitive) : [])];
        return {
          ...own.connector,
          summary: new Redactor(secrets).text([own.type.name, own.connector.name ?? '(inline)', action].filter(Boolean).join(' ')),
          retry: own.retry,
          timeout: own.timeout,
          ...(own.limits && { limits: own.limits }),
        };
      } catch (err) {
        throw toFailure(err, own && new Redactor(own.secrets));
      }
    },

    /**
     * Runs one call. With `descriptor.version` (a `connection`'s input), a stored connector runs
     * that version on every attempt; without it (CLI, API), its newest.
     */
    async run(input: ConnectionRequest & { descriptor?: Pick<ConnectorDescriptor, 'version'> }, runContext: RunContext): Promise<ConnectionResult> {
      const started = performance.now();
      let call: ResolvedCall | undefined;
      try {
        call = await resolveCall(input.connector, input.overrides, 'override', [], [], input.descriptor?.version ?? undefined);
        runContext.onResolved?.({ connector: call.requested, via: call.via, ...(call.conversation && { conversation: true }) });
        const { type, poolKey } = call;
        if (poolKey) registry.retireOlderVersions(poolKey);
        const context: InvokeContext = {
          signal: runContext.signal,
          heartbeat: runContext.heartbeat ?? (() => {}),
          poolKey,
          idempotencyKey: runContext.idempotencyKey,
          connector: call.via?.name ?? call.requested.name ?? undefined,
        };

        let output: unknown; // 6: the action
        const action = input.action ?? 'invoke';
        await runContext.beforeSend?.();
        if (action === 'test') output = await type.test(call.inputs, context);
        else if (call.conversation && action === 'invoke') output = await converse(call, call.conversation, context, runContext);
        else if (action === 'introspect') {
          if (!type.introspect) throw permanentFailure(FailureType.InvalidInput, `connector type ${type.name} cannot introspect`);
          output = await type.introspect(call.inputs, context);
        } else output = await type.invoke(call.inputs, context);

        return {
          output: call.redactor.value(output),
          connector: call.requested,
          ...(call.via ? { via: call.via as NonNullable<ConnectionResult['via']> } : {}),
          inputs: call.redactor.value(maskInputs(call.value, call.sources, type.sensitive)),
          sources: call.sources,
          duration_ms: Math.round(performance.now() - started),
          attempt: runContext.attempt ?? 1,
        };
      } catch (err) {
        // A conversation's calls named their own failures (through), each by the connector it went through.
        throw toFailure(call?.conversation ? err : namingConnector(err, call), call?.redactor ?? new Redactor([]));
      }
    },
  };
}

/**
 * A refused login names the connector whose credentials to fix (`connector billing_mail: …`): the
 * type that reports it knows the server and the user, not which stored connector it ran for.
 */
function namingConnector(err: unknown, call: ResolvedCall | undefined): unknown {
  if (!(err instanceof ApplicationFailure) || err.type !== FailureType.AuthRefused || !call) return err;
  const owner = call.via ?? call.requested;
  const subject = owner.name ? `connector ${owner.name}` : `inline ${owner.type} connector`;
  // Types that know the name (InvokeContext.connector) say it themselves: `MCP connector orders_mcp …`.
  if (err.message.startsWith(`${subject}:`) || (owner.name && err.message.includes(`connector ${owner.name} `))) return err;
  return ApplicationFailure.create({
    type: err.type,
    message: `${subject}: ${err.message}`,
    nonRetryable: err.nonRetryable ?? true,
    details: err.details ?? [],
    nextRetryDelay: err.nextRetryDelay ?? undefined,
  });
}

/** The override layer, after refusing malformed overrides and locked fields. */
function overrideLayer(own: ConnectorLayers, overrides: unknown, source: string): InputLayer[] {
  if (overrides === undefined || overrides === null) return [];
  if (!isPlainObject(overrides)) throw permanentFailure(FailureType.InvalidInput, 'overrides must be an object of input names to values');
  // Before anything walks them recursively: a value nested thousands deep would overflow the stack
  // of the merge or the schema, a failure Temporal would retry as if it were transient.
  const issues = jsonValueIssues(overrides, ['overrides']);
  if (issues.length > 0) throw permanentFailure(FailureType.InvalidInput, issues.map((i) => `${i.path}: ${i.message}`).join('; '));
  const chosen = profileOnlyTouched(own.type, overrides);
  if (chosen.length > 0) {
    throw permanentFailure(
      FailureType.LockedField,
      `connector ${own.connector.name}: ${chosen.join(', ')} ${chosen.length > 1 ? 'choose' : 'chooses'} what the connector worker runs, which only the connector's profile may set: ${source === 'override' ? 'a workflow' : source} may not override ${chosen.length > 1 ? 'them' : 'it'}`,
      { fields: chosen },
    );
  }
  const refused = lockedFieldsTouched(overrides, own.locked);
  if (refused.length > 0) {
    throw permanentFailure(
      FailureType.LockedField,
      `connector ${own.connector.name} locks ${refused.join(', ')}: ${source === 'override' ? 'a workflow' : source} may not override ${refused.length > 1 ? 'them' : 'it'}`,
      { fields: refused },
    );
  }
  return [{ source, value: overrides }];
}

/** The type's destination function, for types that reach a network address themselves. */
function destinationOf(type: AnyConnectorType): ((inputs: Record<string, unknown>) => string | undefined) | undefined {
  return isDelegating(type) ? undefined : type.destination?.bind(type);
}

/**
 * The connector's own layers, less every secret that may not go where this call goes. A stored secret
 * goes only to a destination it was written for (core/destinations.ts) that the connector still names
 * or allows; a Vault secret only where the connector goes or allows. Like a browser dropping
 * credentials on a redirect to another origin: whoever may override a URL, a host, a TLS setting or a
 * `Host` header must not thereby receive the key that goes with it. Such a call must bring its own
 * secrets; one that does not is refused, so it never goes out half-authenticated.
 */
function bindSecretsToDestination(own: ConnectorLayers, override: InputLayer[]): InputLayer[] {
  const destination = destinationOf(own.type);
  if (!destination || own.secretPaths.length === 0) return own.layers;
  const home = destination(mergeLayers(own.layers).value);
  const target = override.length === 0 ? home : destination(mergeLayers([...own.layers, ...override]).value);
  // A call pinned to an older version goes only where the newest version goes or allows: a secret
  // moved away from a server (one the owner stopped trusting, say) does not go back there on a retry.
  const current = own.newestHome === undefined ? home : own.newestHome.home;
  const connectorAllows = target !== undefined && (target === current || listAllows(own.allowedDestinations, target));
  const call = { type: own.type.name, target };
  const withheld = own.secretPaths.filter((s) => !connectorAllows || (s.binding !== undefined && !bindingAllows(s.binding, call)));
  if (withheld.length === 0) return own.layers;
  const layers = own.layers.map((layer, i) => {
    const here = new Set(withheld.filter((s) => s.layer === i).map((s) => s.path));
    if (here.size === 0) return layer;
    const rule = own.secretRules[i];
    return { source: layer.source, value: mapSensitive(layer.value, rule.patterns, (secret, path) => (here.has(path) ? undefined : secret), { isSecret: rule.isSecret }) };
  });
  // Inputs that name no usable destination fail validation, which names the field better than we could.
  if (target === undefined) return layers;
  const given = (segments: readonly string[]) => override.length > 0 && getPath(override[0].value, segments) !== undefined;
  const missing = [...new Set(withheld.filter((s) => !given(s.segments)).map((s) => s.path))];
  if (missing.length > 0) {
    const them = missing.length > 1 ? 'them' : 'it';
    const where =
      target === home
        ? `this call goes to ${target}, which the stored secrets (${missing.join(', ')}) were not written for: a stored secret goes only to the destination ` +
          `its profile named (or allowed) when it was written, never to one its Vault secrets name; write ${them} again with the destination in the profile, or keep ${them} in Vault too`
        : `the overrides send this call to ${target} instead of ${home ?? 'the destination the connector names'}, ` +
          `and the connector's secrets (${missing.join(', ')}) never go to another destination: give ${them} in the overrides, ` +
          `or save the connector with ${target} in its allowed_destinations, writing ${them} again in that save`;
    throw permanentFailure(FailureType.DestinationNotAllowed, `connector ${own.connector.name}: ${where}`, { fields: missing, destination: target });
  }
  return layers;
}

function validate(own: ConnectorLayers, value: PlainObject, redactor: Redactor): unknown {
  const parsed = own.type.schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issues = zodIssues(parsed.error);
  const subject = own.connector.name ? `connector ${own.connector.name}` : `inline ${own.type.name} connector`;
  throw permanentFailure(
    FailureType.InvalidInput,
    redactor.text(`inputs of ${subject} are invalid: ${issues.map((i) => `${i.path || '(inputs)'}: ${i.message}`).join('; ')}`),
    { issues: redactor.value(issues) },
  );
}

function requireType(registry: ConnectorRegistry, name: unknown, field: string): AnyConnectorType {
  const type = typeof name === 'string' ? registry.get(name) : undefined;
  if (!type) {
    const given = typeof name === 'string' ? ` "${name.slice(0, 64)}"` : '';
    throw permanentFailure(FailureType.UnknownType, `${field}${given} is not a known connector type; known types: ${registry.names().join(', ')}`);
  }
  return type;
}

async function readVaultSecret(vault: VaultSecretSource | undefined, connector: string, ref: VaultSecretRef): Promise<PlainObject> {
  if (!vault) {
    throw transientFailure(
      FailureType.VaultUnavailable,
      `connector ${connector} uses Vault secret ${ref.path}, but this connector worker has no Vault configured (set VAULT_ADDR and VAULT_TOKEN or AppRole)`,
    );
  }
  try {
    return await vault.read(ref.path);
  } catch (err) {
    if (err instanceof VaultError) throw vaultFailure(err, connector);
    throw err;
  }
}

function vaultFailure(err: VaultError, connector: string): ApplicationFailure {
  const message = `connector ${connector}: ${err.message}`;
  // A missing secret or a refused token needs a person; an unreachable Vault may come back.
  if (err.kind === 'not_found') return permanentFailure(FailureType.VaultNotFound, message);
  if (err.kind === 'denied' || err.kind === 'invalid') return permanentFailure(FailureType.VaultDenied, message);
  return transientFailure(FailureType.VaultUnavailable, message);
}

/** A Vault secret as an input layer: every key as is, or only the mapped keys at their input paths. */
function applyVaultMap(secret: PlainObject, ref: VaultSecretRef): PlainObject {
  if (!ref.map) return secret;
  const mapped = Object.entries(ref.map)
    .filter(([secretKey]) => Object.hasOwn(secret, secretKey))
    .map(([secretKey, inputPath]) => ({ source: 'vault', value: objectAtPath(inputPath, secret[secretKey]) }));
  return mergeLayers(mapped).value;
}

/** The type's {@link ConnectorType.profileOnly} inputs that `value` (overrides, an inline connector) sets or replaces. */
function profileOnlyTouched(type: AnyConnectorType, value: PlainObject): string[] {
  const paths = isDelegating(type) ? undefined : type.profileOnly;
  return paths ? lockedFieldsTouched(value, paths) : [];
}

/** Dotted locked paths that `overrides` would set or replace. */
function lockedFieldsTouched(overrides: PlainObject, locked: readonly string[]): string[] {
  const touched = new Set<string>();
  const visit = (value: PlainObject, prefix: string[]) => {
    for (const [key, child] of Object.entries(value)) {
      const path = [...prefix, key];
      const dotted = path.join('.');
      for (const lock of locked) {
        const replacesLock = dotted === lock || dotted.startsWith(`${lock}.`) || (!isPlainObject(child) && lock.startsWith(`${dotted}.`));
        if (replacesLock) touched.add(lock);
      }
      if (isPlainObject(child)) visit(child, path);
    }
  };
  visit(overrides, []);
  return [...touched];
}

/** Sensitive inputs and everything that came from Vault, masked. */
function maskInputs(value: PlainObject, sources: InputSources, sensitive: readonly string[]): PlainObject {
  const vaultPaths = Object.entries(sources)
    .filter(([path, source]) => source.startsWith('vault:') && getPath(value, path) !== undefined)
    .map(([path]) => ({ source: 'mask', value: objectAtPath(path, MASK) }));
  return mergeLayers([{ source: 'value', value: mapSensitive(value, sensitive, () => MASK) }, ...vaultPaths]).value;
}

/**
 * Every failure that leaves the activity: an ApplicationFailure with a namespaced type, its message
 * and details redacted of every secret this call resolved, and no driver `cause` attached.
 */
function toFailure(err: unknown, redactor: Redactor | undefined): Error {
  // Cancellation is Temporal's own signal, not a connector failure: it must reach the SDK as it is.
  if (err instanceof CancelledFailure) return err;
  const clean = (text: string) => (redactor ? redactor.text(text) : text);
  if (err instanceof ApplicationFailure) {
    return ApplicationFailure.create({
      type: err.type ?? FailureType.External,
      message: clean(err.message),
      nonRetryable: err.nonRetryable ?? false,
      details: redactor ? redactor.value(err.details ?? []) : (err.details ?? []),
      nextRetryDelay: err.nextRetryDelay ?? undefined,
    });
  }
  if (err instanceof StoreUnavailableError) return transientFailure(FailureType.StoreUnavailable, clean(err.message));
  if (err instanceof KeyringError) return permanentFailure(FailureType.KeyringError, clean(err.message));
  if (err instanceof VaultError) return permanentFailure(FailureType.VaultDenied, clean(err.message));
  const message = err instanceof Error ? err.message : String(err);
  return transientFailure(FailureType.External, clean(`connector call failed: ${message}`));
}

/** The runner: `describe` and `run`. */
export type ConnectionRunner = ReturnType<typeof createConnectionRunner>;
