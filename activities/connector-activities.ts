import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType, permanentFailure, transientFailure } from '../connectors/errors';
import type { ConnectorRegistry } from '../connectors/registry';
import type { ConnectorType, InvokeContext } from '../connectors/types';
import {
  getPath,
  isPlainObject,
  mapSensitive,
  mergeLayers,
  MASK,
  objectAtPath,
  Redactor,
  sensitiveValues,
  type InputLayer,
  type PlainObject,
} from '../worker/inputs';
import { KeyringError } from '../worker/keyring';
import { ConnectorService, zodIssues } from '../worker/service';
import { StoreUnavailableError } from '../worker/store/connector-store';
import { VaultError, type VaultSecretRef, type VaultSecretSource } from '../worker/vault';
import type {
  ConnectionInput,
  ConnectionRequest,
  ConnectionResult,
  ConnectorActivities,
  ConnectorDescriptor,
} from '../workflows/types';

/** What the connector activities need; tests pass their own real instances. */
export interface ConnectorActivityDeps {
  service: ConnectorService;
  /** Source of the Vault secrets connectors attach. Default: none (such connectors fail with `Connector.Vault.Unavailable`). */
  vault?: VaultSecretSource;
}

/** Resolved inputs of one call, with every secret it touched (for redaction). */
interface ResolvedCall {
  type: ConnectorType;
  connector: ConnectionResult['connector'];
  layers: InputLayer[];
  locked: string[];
  /** Every secret value resolved so far: the profile's sensitive fields and whole Vault secrets. */
  secrets: unknown[];
  poolKey?: string;
  retry?: ConnectorDescriptor['retry'];
  timeout?: string;
}

/** The connector worker's activities: `connectors.describe` (no secrets) and `connectors.invoke` (the whole call). */
export function createConnectorActivities({ service, vault }: ConnectorActivityDeps): ConnectorActivities {
  const registry = service.registry;
  // Per connector name, the pool key of the version last used: pools of replaced versions get closed.
  const lastPoolKey = new Map<string, string>();

  /**
   * Steps 1-4 of the pipeline: load the profile (decrypted), apply its Vault secrets in order, then the
   * overrides. `withVault: false` stops before Vault, for secret-free descriptions.
   */
  async function resolveConnectorInputs(request: ConnectionRequest, withVault: boolean): Promise<ResolvedCall> {
    if (typeof request.connector !== 'string') {
      const { type: typeName, ...inline } = request.connector;
      const type = requireType(registry, typeName, 'connector.type');
      const secrets = sensitiveValues(inline, type.sensitive);
      return { type, connector: { name: null, type: type.name, version: null }, layers: [{ source: 'inline', value: inline }], locked: [], secrets };
    }

    const name = request.connector;
    const profile = await service.load(name); // 1 + 2: load (cached) and decrypt
    if (!profile) throw permanentFailure(FailureType.NotFound, `connector ${name} does not exist`, { connector: name });
    const type = requireType(registry, profile.type, `connector ${name}: type`);
    const secrets: unknown[] = sensitiveValues(profile.value, type.sensitive);
    const layers: InputLayer[] = [{ source: 'profile', value: profile.value }];

    if (withVault) {
      for (const ref of profile.vault_secrets) {
        const secret = await readVaultSecret(vault, name, ref); // 3: Vault, in listed order
        secrets.push(...Object.values(secret));
        layers.push({ source: `vault:${ref.path}`, value: applyVaultMap(secret, ref) });
      }
    }
    return {
      type,
      connector: { name, type: type.name, version: profile.version },
      layers,
      locked: profile.locked,
      secrets,
      poolKey: `${name}@${profile.version}`,
      retry: profile.retry as ConnectorDescriptor['retry'],
      timeout: profile.timeout,
    };
  }

  /** Step 4: overrides, refusing locked fields. Returns the layers with the override on top. */
  function applyOverrides(call: ResolvedCall, overrides: unknown): InputLayer[] {
    if (overrides === undefined || overrides === null) return call.layers;
    if (!isPlainObject(overrides)) throw permanentFailure(FailureType.InvalidInput, 'overrides must be an object of input names to values');
    const refused = lockedFieldsTouched(overrides, call.locked);
    if (refused.length > 0) {
      throw permanentFailure(
        FailureType.LockedField,
        `connector ${call.connector.name} locks ${refused.join(', ')}: a workflow may not override ${refused.length > 1 ? 'them' : 'it'}`,
        { fields: refused },
      );
    }
    return [...call.layers, { source: 'override', value: overrides }];
  }

  return {
    async 'connectors.describe'(request: ConnectionRequest): Promise<ConnectorDescriptor> {
      let call: ResolvedCall | undefined;
      try {
        call = await resolveConnectorInputs(request, false);
        const { value } = mergeLayers(applyOverrides(call, request.overrides));
        const what = call.type.describeCall?.(value);
        const label = call.connector.name ?? '(inline)';
        return {
          ...call.connector,
          summary: new Redactor(call.secrets).text([call.type.name, label, what].filter(Boolean).join(' ')),
          retry: call.retry,
          timeout: call.timeout,
        };
      } catch (err) {
        throw toFailure(err, call && new Redactor(call.secrets));
      }
    },

    async 'connectors.invoke'(input: ConnectionInput): Promise<ConnectionResult> {
      const started = performance.now();
      const activity = Context.current();
      let call: ResolvedCall | undefined;
      let redactor: Redactor | undefined;
      try {
        call = await resolveConnectorInputs(input, true);
        const { type } = call;
        redactor = new Redactor(call.secrets);
        const layers = applyOverrides(call, input.overrides);
        // Secrets a workflow passes as overrides are its own history data, but echoes of them are still redacted.
        if (isPlainObject(input.overrides)) redactor = new Redactor([...call.secrets, ...sensitiveValues(input.overrides, type.sensitive)]);
        const { value, sources } = mergeLayers(layers);

        const parsed = type.schema.safeParse(value); // 5: validate the merged inputs
        if (!parsed.success) {
          const issues = zodIssues(parsed.error);
          throw permanentFailure(
            FailureType.InvalidInput,
            `inputs of ${describeConnector(call)} are invalid: ${issues.map((i) => `${i.path || '(inputs)'}: ${i.message}`).join('; ')}`,
            { issues },
          );
        }

        if (call.poolKey && call.connector.name) {
          const previous = lastPoolKey.get(call.connector.name);
          if (previous && previous !== call.poolKey) void type.close?.(previous);
          lastPoolKey.set(call.connector.name, call.poolKey);
        }
        const context: InvokeContext = {
          signal: activity.cancellationSignal,
          heartbeat: (details) => activity.heartbeat(details),
          poolKey: call.poolKey,
        };
        const output = await type.invoke(parsed.data, context); // 6: the external call

        return {
          output: redactor.value(output),
          connector: call.connector,
          inputs: redactor.value(maskInputs(value, sources, type.sensitive)),
          sources,
          duration_ms: Math.round(performance.now() - started),
          attempt: activity.info.attempt,
        };
      } catch (err) {
        throw toFailure(err, redactor ?? (call && new Redactor(call.secrets)));
      }
    },
  };
}

function requireType(registry: ConnectorRegistry, name: unknown, field: string): ConnectorType {
  const type = typeof name === 'string' ? registry.get(name) : undefined;
  if (!type) {
    const given = typeof name === 'string' ? ` "${name.slice(0, 64)}"` : '';
    throw permanentFailure(FailureType.UnknownType, `${field}${given} is not a known connector type; known types: ${registry.names().join(', ')}`);
  }
  return type;
}

function describeConnector(call: ResolvedCall): string {
  return call.connector.name ? `connector ${call.connector.name}` : `inline ${call.type.name} connector`;
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
  let layer: PlainObject = {};
  for (const [secretKey, inputPath] of Object.entries(ref.map)) {
    if (!(secretKey in secret)) continue;
    layer = mergeLayers([
      { source: 'a', value: layer },
      { source: 'b', value: objectAtPath(inputPath, secret[secretKey]) },
    ]).value;
  }
  return layer;
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
function maskInputs(value: PlainObject, sources: Record<string, string>, sensitive: readonly string[]): PlainObject {
  let masked = mapSensitive(value, sensitive, () => MASK);
  for (const [path, source] of Object.entries(sources)) {
    if (source.startsWith('vault:') && getPath(masked, path) !== undefined) {
      masked = mergeLayers([
        { source: 'a', value: masked },
        { source: 'b', value: objectAtPath(path, MASK) },
      ]).value;
    }
  }
  return masked;
}

/**
 * Every failure that leaves the activity: an ApplicationFailure with a namespaced type, its message
 * and details redacted of every secret this call resolved, and no driver `cause` attached.
 */
function toFailure(err: unknown, redactor: Redactor | undefined): ApplicationFailure {
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
