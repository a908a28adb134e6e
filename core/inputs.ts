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

/**
 * Sets `key` of `target` as its own property. A plain `target[key] = value` with the key `__proto__`
 * (which JSON and YAML allow, say as a header or query name) would change the object's prototype
 * instead, and the key would vanish from what is stored, merged or masked.
 */
export function setOwn(target: PlainObject, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

/** Longest part of a key that messages show: a key is the user's text, and may be a megabyte long. */
const SHOWN_KEY_CHARS = 64;

/**
 * A key as messages show it: control characters, line breaks and unpaired surrogates escaped
 * (`\u001b`), so a key cannot rewrite an operator's terminal or a log line, and cut to 64 characters.
 */
export function shownKey(key: string): string {
  const cut = key.length > SHOWN_KEY_CHARS ? `${key.slice(0, SHOWN_KEY_CHARS)}...` : key;
  return cut.replace(UNSHOWABLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Dotted path of keys as messages show them (see {@link shownKey}). */
export function shownPath(path: readonly PropertyKey[]): string {
  return path.map((key) => shownKey(String(key))).join('.');
}

// C0 and C1 controls, DEL, the line and paragraph separators, and surrogates that are not part of a pair.
const UNSHOWABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const UNPAIRED_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Deepest nesting of objects and arrays that a connector definition or a call's overrides may have:
 * 64 levels. Real inputs nest a handful of levels; validating, masking and merging walk the value
 * recursively, and a value nested thousands of levels deep would exhaust the stack of each.
 */
export const MAX_NESTING_DEPTH = 64;

// zod drops such a key from what it parses (a record, a JSON value), so a call would silently go
// without it; the API's JSON parser refuses it outright. Refused everywhere, it means the same everywhere.
const PROTO_KEY = 'is named __proto__, which connectors refuse: validation would drop it without a word';

/** What keeps a string from being stored as it is: PostgreSQL's text and jsonb hold no NUL and no unpaired surrogate. */
function textProblem(text: string): string | undefined {
  if (text.includes('\u0000')) return 'contains a NUL character (\\u0000), which cannot be stored';
  if (UNPAIRED_SURROGATE.test(text)) return 'contains an unpaired UTF-16 surrogate, which is not valid Unicode';
  return undefined;
}

/**
 * What keeps `value` from being stored and read back as it is, one issue per place: nesting deeper
 * than {@link MAX_NESTING_DEPTH}, numbers JSON cannot hold (NaN, Infinity), strings and keys that
 * PostgreSQL cannot hold, `__proto__` keys, and values that are not JSON at all (a bigint, a
 * function, a Date). Each
 * issue names the dotted path from `prefix`, never the value. Walks without recursion, so any depth
 * is judged safely.
 */
export function jsonValueIssues(value: unknown, prefix: readonly string[] = []): Array<{ path: string; message: string }> {
  const issues: Array<{ path: string; message: string }> = [];
  const pending: Array<{ value: unknown; path: string[]; depth: number }> = [{ value, path: [...prefix], depth: 0 }];
  // One message per problem is plenty; a million bad array items would otherwise make a million.
  while (pending.length > 0 && issues.length < 20) {
    const item = pending.pop()!;
    const problem = jsonScalarProblem(item.value);
    if (problem) issues.push({ path: shownPath(item.path), message: problem });
    if (problem || item.value === null || typeof item.value !== 'object') continue;
    if (item.depth >= MAX_NESTING_DEPTH) {
      issues.push({ path: shownPath(item.path), message: `nests objects and arrays more than ${MAX_NESTING_DEPTH} levels deep` });
      continue;
    }
    const entries: Array<[string, unknown]> = Array.isArray(item.value) ? item.value.map((child, i) => [String(i), child]) : Object.entries(item.value);
    for (let i = entries.length - 1; i >= 0; i--) {
      const [key, child] = entries[i];
      const keyProblem = key === '__proto__' ? PROTO_KEY : textProblem(key);
      if (keyProblem) issues.push({ path: shownPath([...item.path, key]), message: `is a key that ${keyProblem}` });
      else pending.push({ value: child, path: [...item.path, key], depth: item.depth + 1 });
    }
  }
  return issues;
}

function jsonScalarProblem(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
      return textProblem(value);
    case 'number':
      return Number.isFinite(value) ? undefined : `is ${value}, which JSON cannot hold: give a finite number`;
    case 'bigint':
    case 'function':
    case 'symbol':
      return `is not a JSON value (a ${typeof value})`;
    case 'object':
      if (value === null || Array.isArray(value) || isPlainObject(value)) return undefined;
      return `is not a JSON value (an object of class ${shownKey(String(value.constructor?.name ?? 'unknown'))})`;
    default:
      return undefined; // boolean; undefined stands for an absent value
  }
}

/**
 * True when `path` matches one of the dotted `patterns`, case-insensitively: `*` alone matches any one
 * segment, and within a segment any run of characters (`headers.*token*` matches `headers.X-Auth-Token`).
 */
export function isSensitivePath(path: readonly string[], patterns: readonly string[]): boolean {
  return patterns.some((pattern) => {
    const parts = pattern.split('.');
    return parts.length === path.length && parts.every((p, i) => segmentMatches(p, path[i]));
  });
}

// Compiled glob segments. Patterns come from the types' schemas and Vault map targets: few, but the
// latter are user data, so the cache is emptied rather than allowed to grow without bound.
const GLOB_SEGMENTS = new Map<string, RegExp>();

function segmentMatches(pattern: string, segment: string): boolean {
  if (pattern === '*') return true;
  if (!pattern.includes('*')) return pattern.toLowerCase() === segment.toLowerCase();
  let glob = GLOB_SEGMENTS.get(pattern);
  if (!glob) {
    if (GLOB_SEGMENTS.size >= 1_000) GLOB_SEGMENTS.clear();
    glob = new RegExp(`^${pattern.split('*').map((part) => part.replace(/[\\^$.|?+()[\]{}]/g, '\\$&')).join('.*')}$`, 'is');
    GLOB_SEGMENTS.set(pattern, glob);
  }
  return glob.test(segment);
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
  fn: (sensitive: unknown, path: string, segments: readonly string[]) => unknown,
  options: { prefix?: string[]; isSecret?: (value: unknown) => boolean } = {},
): PlainObject {
  const { prefix = [], isSecret } = options;
  const out: PlainObject = {};
  for (const [key, child] of Object.entries(value)) {
    const path = [...prefix, key];
    if (isSensitivePath(path, patterns) || hasUrlCredentials(child) || isSecret?.(child)) {
      setOwn(out, key, child === undefined || child === null ? child : fn(child, path.join('.'), path));
    } else if (isPlainObject(child)) setOwn(out, key, mapSensitive(child, patterns, fn, { prefix: path, isSecret }));
    else setOwn(out, key, child);
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

/** The value at dotted `path` (or at the keys of `path`), or undefined. */
export function getPath(value: PlainObject, path: string | readonly string[]): unknown {
  let cursor: unknown = value;
  // Segments as given, where a key may hold a dot (a header named `x.api-key`); a string splits on dots.
  for (const key of typeof path === 'string' ? path.split('.') : path) {
    // Own keys only: `constructor` or `toString` of an object that lacks them is not a value there.
    if (!isPlainObject(cursor) || !Object.hasOwn(cursor, key)) return undefined;
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
    const current = Object.hasOwn(out, key) ? out[key] : undefined;
    setOwn(out, key, isPlainObject(child) && isPlainObject(current) ? mergeInto(current, child) : child);
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
      for (const [k, v] of Object.entries(value)) setOwn(out, this.text(k), this.value(v));
      return out as T;
    }
    return value;
  }
}
