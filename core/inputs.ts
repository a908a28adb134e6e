// Pure functions over connector inputs: which paths are sensitive, how layers merge, how values are
// masked and redacted. No I/O here, so the resolution pipeline and the management surfaces share them.

/** What a sensitive value looks like on every read. Writing it back means "keep the stored value". */
export const MASK = '********';

export type PlainObject = Record<string, unknown>;

export function isPlainObject(value: unknown): value is PlainObject {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** True when dotted `path` matches one of `patterns` (case-insensitive; `*` matches one segment). */
export function isSensitivePath(path: readonly string[], patterns: readonly string[]): boolean {
  return patterns.some((pattern) => {
    const parts = pattern.split('.');
    return parts.length === path.length && parts.every((p, i) => p === '*' || p.toLowerCase() === path[i].toLowerCase());
  });
}

// `scheme://user:password@host` or `scheme://token@host`: whatever stands before `@` authenticates.
const URL_WITH_CREDENTIALS = /^[a-z][a-z0-9+.-]*:\/\/[^/?#\s]*@/i;

/** True for a string URL that carries credentials (`user:password@` or `token@`). */
export function hasUrlCredentials(value: unknown): value is string {
  return typeof value === 'string' && URL_WITH_CREDENTIALS.test(value);
}

/**
 * A copy of `value` in which every secret is replaced by `fn(value, dottedPath)`: values at a
 * sensitive path, and URLs with credentials wherever they stand (a password in a `url` is as secret
 * as one in a `password` field). A sensitive object is handed over whole; nothing below it is visited.
 */
export function mapSensitive(
  value: PlainObject,
  patterns: readonly string[],
  fn: (sensitive: unknown, path: string) => unknown,
  options: { prefix?: string[]; isSecret?: (value: unknown) => boolean } = {},
): PlainObject {
  const { prefix = [], isSecret } = options;
  const out: PlainObject = {};
  for (const [key, child] of Object.entries(value)) {
    const path = [...prefix, key];
    if (isSensitivePath(path, patterns) || hasUrlCredentials(child) || isSecret?.(child)) {
      out[key] = child === undefined || child === null ? child : fn(child, path.join('.'));
    } else if (isPlainObject(child)) out[key] = mapSensitive(child, patterns, fn, { prefix: path, isSecret });
    else out[key] = child;
  }
  return out;
}

/** Every secret in `value` (see {@link mapSensitive}), with the parts of it that an echo may carry alone. */
export function sensitiveValues(value: PlainObject, patterns: readonly string[]): unknown[] {
  const found: unknown[] = [];
  mapSensitive(value, patterns, (v) => found.push(v, ...secretParts(v)));
  return found;
}

/**
 * What a secret URL gives away on its own: the credentials in it (a server that echoes the request
 * line, or a Basic header, shows them without the rest), and its path, which for webhooks is the key.
 * Messages name a call by origin and path, so a secret URL's path must be redacted from them too.
 */
export function secretParts(secret: unknown): string[] {
  if (typeof secret !== 'string' || !/^https?:\/\/|^[a-z][a-z0-9+.-]*:\/\/[^/?#\s]*@/i.test(secret)) return [];
  let url: URL;
  try {
    url = new URL(secret);
  } catch {
    return [];
  }
  const parts: string[] = [];
  const decode = (part: string) => {
    try {
      return decodeURIComponent(part);
    } catch {
      return part;
    }
  };
  // A user name alone (`https://token@host`) is the credential; beside a password it is only a name.
  for (const part of url.password ? [url.password] : [url.username]) if (part) parts.push(part, decode(part));
  if (url.pathname.length >= 8 && !hasUrlCredentials(secret)) parts.push(url.pathname + url.search, url.origin + url.pathname);
  return parts;
}

/** The value at dotted `path`, or undefined. */
export function getPath(value: PlainObject, path: string): unknown {
  let cursor: unknown = value;
  for (const key of path.split('.')) {
    if (!isPlainObject(cursor)) return undefined;
    cursor = cursor[key];
  }
  return cursor;
}

/** Builds `{a: {b: value}}` from `a.b`. */
export function objectAtPath(path: string, value: unknown): PlainObject {
  return path
    .split('.')
    .reverse()
    .reduce<unknown>((inner, key) => ({ [key]: inner }), value) as PlainObject;
}

/** One layer of inputs, named for provenance: `profile`, `vault:<path>`, `override`, `inline`. */
export interface InputLayer {
  source: string;
  value: PlainObject;
}

/** Which layer each input came from: the shallowest dotted path whose whole value one layer gave. */
export type InputSources = Record<string, string>;

/**
 * Applies layers in order, later wins. Plain objects merge key by key (an override of one header keeps
 * the others); arrays and scalars are replaced whole.
 */
export function mergeLayers(layers: readonly InputLayer[]): { value: PlainObject; sources: InputSources } {
  let value: PlainObject = {};
  const leaves = new Map<string, string>();
  for (const layer of layers) {
    recordLeaves(layer.value, [], layer.source, leaves);
    value = mergeInto(value, layer.value);
  }
  return { value, sources: collapseSources(leaves) };
}

function mergeInto(base: PlainObject, layer: PlainObject): PlainObject {
  const out: PlainObject = { ...base };
  for (const [key, child] of Object.entries(layer)) {
    if (child === undefined) continue;
    out[key] = isPlainObject(child) && isPlainObject(out[key]) ? mergeInto(out[key] as PlainObject, child) : child;
  }
  return out;
}

const SEP = '\u0000'; // joins path segments internally: keys may contain dots (header names, Vault keys)

// Records which layer set each leaf; a leaf replaces whatever stood at or below its path.
function recordLeaves(value: PlainObject, prefix: string[], source: string, leaves: Map<string, string>): void {
  for (const [key, child] of Object.entries(value)) {
    if (child === undefined) continue;
    const path = [...prefix, key];
    const id = path.join(SEP);
    if (isPlainObject(child) && Object.keys(child).length > 0) {
      leaves.delete(id);
      recordLeaves(child, path, source, leaves);
    } else {
      for (const existing of [...leaves.keys()]) if (existing === id || existing.startsWith(id + SEP)) leaves.delete(existing);
      leaves.set(id, source);
    }
  }
}

// Reports each subtree that one layer gave whole at its shallowest path.
function collapseSources(leaves: Map<string, string>): InputSources {
  const out: InputSources = {};
  const visit = (prefix: string[]): void => {
    const below = [...leaves].filter(([id]) => prefix.length === 0 || id === prefix.join(SEP) || id.startsWith(prefix.join(SEP) + SEP));
    const owners = new Set(below.map(([, source]) => source));
    if (prefix.length > 0 && owners.size === 1) {
      out[prefix.join('.')] = [...owners][0];
      return;
    }
    const children = new Set(below.map(([id]) => id.split(SEP)[prefix.length]));
    for (const child of children) visit([...prefix, child]);
  };
  visit([]);
  return out;
}

/**
 * Replaces every occurrence of a secret value inside strings, deep in any value. Built from all the
 * secrets one call resolved, it guards error messages, outputs and logs against echoes of them.
 */
export class Redactor {
  private readonly secrets: string[];

  /** Strings shorter than this are not redacted: replacing every `1` or `a` would garble text. Default: 3. */
  static readonly MIN_LENGTH = 3;

  constructor(values: Iterable<unknown>) {
    const found = new Set<string>();
    const collect = (v: unknown): void => {
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint') {
        const s = String(v);
        if (s.length >= Redactor.MIN_LENGTH && s !== MASK) found.add(s);
      } else if (Array.isArray(v)) v.forEach(collect);
      else if (isPlainObject(v)) Object.values(v).forEach(collect);
    };
    for (const v of values) collect(v);
    // Longest first, so a secret that contains another is replaced whole.
    this.secrets = [...found].sort((a, b) => b.length - a.length);
  }

  get size(): number {
    return this.secrets.length;
  }

  text(text: string): string {
    let out = text;
    for (const secret of this.secrets) if (out.includes(secret)) out = out.split(secret).join(MASK);
    return out;
  }

  value<T>(value: T): T {
    if (this.secrets.length === 0) return value;
    if (typeof value === 'string') return this.text(value) as T;
    if (Array.isArray(value)) return value.map((v) => this.value(v)) as T;
    if (isPlainObject(value)) {
      const out: PlainObject = {};
      for (const [k, v] of Object.entries(value)) out[this.text(k)] = this.value(v);
      return out as T;
    }
    return value;
  }
}
