// Where a connector's secrets may go, decided in one place for saving (core/service.ts) and for
// calling (core/runner.ts). A stored secret is bound, when it is written, to the destinations of that
// moment: the connector's type, the destination its profile names and its `allowed_destinations`.
// The binding travels with the ciphertext (as its label, bound into AES-GCM's associated data), so no
// later save, rollback or pinned version can widen it: only writing the secret again can.

/** `*` in `allowed_destinations`: any destination. */
export const ANY_DESTINATION = '*';

/** The destinations one stored secret was written for. */
export interface SecretBinding {
  /** The connector type it was written for: another type reads the same fields differently (a port, a scheme). */
  type: string;
  /**
   * Destinations it may go to: the one the profile named (with the type's defaults), and the
   * `allowed_destinations` of that save. Never one a Vault secret names: whoever may edit a connector
   * may point its `vault_secrets` at any secret under TC_VAULT_PATHS, so a destination read from
   * Vault would let an editor aim a stored secret without writing it.
   */
  destinations: string[];
  /**
   * Which secret this is, kept while a save narrows its destinations and a rotation re-encrypts it;
   * new when the secret is written again. A rollback narrows a restored secret by its newest binding.
   */
  id?: string;
}

/** The destination facts of one version, from which a new secret's binding is made. */
export interface DestinationSet {
  type: string;
  /** Where the profile itself sends calls; undefined when it leaves that to Vault or overrides. */
  home: string | undefined;
  allowed: readonly string[];
}

export function bindingOf(set: DestinationSet): SecretBinding {
  return { type: set.type, destinations: [...new Set([...(set.home === undefined ? [] : [set.home]), ...set.allowed])] };
}

/** The binding as a ciphertext label: compact JSON, versioned so that its form may change. */
export function encodeBinding(binding: SecretBinding): string {
  return JSON.stringify({ v: 1, t: binding.type, d: binding.destinations, ...(binding.id !== undefined && { i: binding.id }) });
}

/** The binding of a label; undefined for a label this version does not read (never widened by guessing). */
export function decodeBinding(label: string): SecretBinding | undefined {
  try {
    const parsed = JSON.parse(label) as { v?: unknown; t?: unknown; d?: unknown; i?: unknown };
    if (parsed.v !== 1 || typeof parsed.t !== 'string' || !Array.isArray(parsed.d) || !parsed.d.every((d) => typeof d === 'string')) return undefined;
    return { type: parsed.t, destinations: parsed.d, ...(typeof parsed.i === 'string' && { id: parsed.i }) };
  } catch {
    return undefined;
  }
}

/** True when `list` (an `allowed_destinations` or a binding's destinations) lets a secret go to `target`. */
export function listAllows(list: readonly string[], target: string | undefined): boolean {
  return target !== undefined && (list.includes(target) || list.includes(ANY_DESTINATION));
}

/** What a version lets its secrets reach: `allowed` of both, when a call runs an older version than the newest. */
export function intersectAllowed(a: readonly string[], b: readonly string[]): string[] {
  if (a.includes(ANY_DESTINATION)) return [...b];
  if (b.includes(ANY_DESTINATION)) return [...a];
  return a.filter((d) => b.includes(d));
}

/** Whether a secret with `binding` may go to `target` in a call through a connector of type `type`. */
export function bindingAllows(binding: SecretBinding, call: { type: string; target: string | undefined }): boolean {
  return binding.type === call.type && listAllows(binding.destinations, call.target);
}

/**
 * Why a version with destination set `next` may not keep a secret bound by `binding` (written back
 * as the mask), or undefined when it may: another type, a destination or an allowed destination the
 * secret was not written for. Narrowing is always allowed.
 */
export function widening(binding: SecretBinding, next: DestinationSet): string | undefined {
  if (next.type !== binding.type) return `the type would now be ${next.type} instead of ${binding.type}, which the secret was written for`;
  if (next.home === undefined) {
    // Its Vault secrets (or overrides) would name the destination: never one a stored secret follows.
    return `the profile would name no destination (its Vault secrets or overrides would), instead of ${describe(binding)}`;
  }
  if (!listAllows(binding.destinations, next.home)) return `the connector would now go to ${next.home} instead of ${describe(binding)}`;
  const added = next.allowed.filter((d) => !listAllows(binding.destinations, d));
  if (added.length > 0) return `allowed_destinations now lists ${added.join(', ')}, which the secret was not written for (${describe(binding)})`;
  return undefined;
}

/** `binding` less every destination `newest` (a later binding of the same secret) no longer lists. */
export function narrowedTo(binding: SecretBinding, newest: SecretBinding): SecretBinding {
  if (newest.destinations.includes(ANY_DESTINATION)) return binding;
  const destinations = binding.destinations.includes(ANY_DESTINATION) ? newest.destinations : binding.destinations.filter((d) => newest.destinations.includes(d));
  return { ...binding, destinations };
}

/** Whether two bindings name the same type and destinations, in any order. */
export function sameBinding(a: SecretBinding, b: SecretBinding): boolean {
  return a.type === b.type && a.destinations.length === b.destinations.length && a.destinations.every((d) => b.destinations.includes(d));
}

function describe(binding: SecretBinding): string {
  return binding.destinations.length === 0 ? 'no destination' : binding.destinations.join(', ');
}
