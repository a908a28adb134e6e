// Hostile inputs for the fuzz tests: a seeded random source, hostile keys and values, mutations of
// valid connector definitions, and a JSON writer that survives nesting JSON.stringify cannot.
// Everything here is deterministic for a given seed, so a failure reproduces with FUZZ_SEED.
import { randomInt } from 'node:crypto';

/** A small, fast, seedable random source (mulberry32). */
export function seededRandom(seed: number) {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    /** A whole number from 0 to n - 1. */
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)],
    chance: (p: number) => next() < p,
  };
}

export type Random = ReturnType<typeof seededRandom>;

/** The seed of this run: `FUZZ_SEED` when set (to reproduce a failure), else a fresh one. */
export function fuzzSeed(setting = process.env.FUZZ_SEED): number {
  if (setting === undefined || setting === '') return randomInt(2 ** 31);
  const seed = Number(setting);
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`FUZZ_SEED must be a whole number from 0, not "${setting}"`);
  return seed;
}

/** Keys that break naive code: prototype names, separators, control characters, broken Unicode, lookalikes of sensitive names. */
export const HOSTILE_KEYS: readonly string[] = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  '',
  ' ',
  'a.b',
  '0',
  '-1',
  'a\u0000b',
  '\ud800',
  'x\udc00',
  '\u001b[31mred',
  'line\nbreak',
  '\u202eevil',
  'Authorization',
  'x-api-key',
  '\u{1F600}',
  '********',
  'k'.repeat(300),
];

/** Strings that break naive code: NUL, unpaired surrogates, terminal escapes, ciphertext lookalikes, injections, the mask. */
export const HOSTILE_STRINGS: readonly string[] = [
  '',
  ' ',
  '\t\r\n',
  'x\u0000y',
  '\ud800',
  'a\udfffb',
  '\udc00\ud800',
  '\u{1F600}',
  '\u202eevil',
  '\ufeffbom',
  '\u001b[2J\u001b[H',
  '\u2028\u2029',
  '********',
  'tcenc:v1:k1:AAAA',
  'tcenc:v1:nokey:Zm9vYmFy:Zm9vYmFy',
  "x'); DROP TABLE tc_connector_versions; --",
  '${SECRET}',
  '{{ secret }}',
  '../../../etc/passwd',
  'http://user:pass@127.0.0.1:9/',
  'http://127.0.0.1:9/',
  'javascript:alert(1)',
  'NaN',
  'null',
  '1e400',
  '%00',
  'x'.repeat(5000),
];

export const HOSTILE_NUMBERS: readonly number[] = [NaN, Infinity, -Infinity, -0, 0, -1, 1e308, 2 ** 53 + 1, 0.1, 5e-324, 65536, 2147483648];

/** `depth` levels of arrays (`[[[...]]]`) or objects (`{a:{a:...}}`) around `leaf`, built without recursion. */
export function deepValue(depth: number, kind: 'array' | 'object', leaf: unknown = 1): unknown {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = kind === 'array' ? [value] : { a: value };
  return value;
}

/** Sets an own property, `__proto__` included (a plain assignment would change the prototype). */
export function setKey(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * One hostile value. `json`: only what JSON text can carry (no bigint, Date, Map or function);
 * NaN and Infinity still appear, for the JSON writer to turn into null as JSON.stringify does.
 */
export function hostileValue(random: Random, options: { json: boolean }, budget = 2): unknown {
  const roll = random.int(100);
  if (roll < 35) return random.pick(HOSTILE_STRINGS);
  if (roll < 55) return random.pick(HOSTILE_NUMBERS);
  if (roll < 60) return random.pick([true, false, null]);
  if (roll < 70 && budget > 0) return Array.from({ length: random.int(4) }, () => hostileValue(random, options, budget - 1));
  if (roll < 85 && budget > 0) {
    const object: Record<string, unknown> = {};
    for (let i = random.int(4); i > 0; i--) setKey(object, random.pick(HOSTILE_KEYS), hostileValue(random, options, budget - 1));
    return object;
  }
  if (roll < 92) return deepValue(random.pick([65, 300, 10_000]), random.pick(['array', 'object'] as const), random.pick(HOSTILE_STRINGS));
  if (!options.json) return random.pick<unknown>([10n, new Date(0), new Map([['a', 1]]), () => 1, Symbol('s'), undefined, new (class Custom {})()]);
  return random.pick(HOSTILE_STRINGS);
}

/** What a case did, short enough for a failure message: kind, path, and a preview of the value. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return value.length > 40 ? `string(${value.length} chars)` : JSON.stringify(value);
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function' || typeof value === 'symbol' || value === undefined) return typeof value;
  if (value === null) return 'null';
  if (Array.isArray(value) || Object.getPrototypeOf(value) === Object.prototype) {
    let depth = 0;
    let cursor: unknown = value;
    while (cursor !== null && typeof cursor === 'object' && depth < 20_000) {
      const children: unknown[] = Array.isArray(cursor) ? cursor : Object.values(cursor);
      if (children.length !== 1) break;
      cursor = children[0];
      depth++;
    }
    if (depth > 10) return `${Array.isArray(value) ? 'array' : 'object'} nested ${depth} deep`;
    const keys = Array.isArray(value) ? `${value.length} items` : Object.keys(value).map((k) => JSON.stringify(k.length > 20 ? `${k.slice(0, 20)}...` : k)).join(',');
    return `${Array.isArray(value) ? 'array' : 'object'}[${keys}]`;
  }
  return `${(value as object).constructor?.name ?? 'object'} instance`;
}

type PlainRecord = Record<string, unknown>;

function isRecord(value: unknown): value is PlainRecord {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && Object.getPrototypeOf(value) === Object.prototype;
}

/** Dotted paths of every object and leaf of `value`, down to `maxDepth`, for choosing where to mutate. */
function pathsOf(value: unknown, maxDepth = 5, prefix: string[] = []): string[][] {
  const paths: string[][] = [prefix];
  if (prefix.length >= maxDepth || value === null || typeof value !== 'object') return paths;
  const entries: Array<[string, unknown]> = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
  for (const [key, child] of entries) paths.push(...pathsOf(child, maxDepth, [...prefix, key]));
  return paths;
}

function parentOf(root: unknown, path: string[]): unknown {
  let cursor = root;
  for (const key of path.slice(0, -1)) {
    if (cursor === null || typeof cursor !== 'object') return undefined;
    cursor = (cursor as PlainRecord)[key];
  }
  return cursor;
}

/** A deep copy of a definition made of plain data (no cycles, own `__proto__` keys kept). */
export function copyPlain<T>(value: T): T {
  if (Array.isArray(value)) return value.map(copyPlain) as T;
  if (isRecord(value)) {
    const out: PlainRecord = {};
    for (const [key, child] of Object.entries(value)) setKey(out, key, copyPlain(child));
    return out as T;
  }
  return value;
}

/**
 * A copy of `definition` with one to three hostile mutations: a value replaced by a hostile one (often
 * of the wrong type), a hostile key added, a field removed, or (unless `protect` says otherwise) the
 * whole document replaced. Paths under or above a `protect` path are left alone, so a seeded
 * connector's secret stays where its read-back check expects it.
 */
export function mutateDefinition(random: Random, definition: PlainRecord, options: { json: boolean; protect?: string[] }): { definition: unknown; label: string } {
  const protect = (options.protect ?? []).map((p) => p.split('.'));
  const touchesProtected = (path: string[]) =>
    protect.some((p) => path.length === 0 || p.slice(0, path.length).join('.') === path.join('.') || path.slice(0, p.length).join('.') === p.join('.'));
  if (protect.length === 0 && random.chance(0.05)) {
    const whole = hostileValue(random, options);
    return { definition: whole, label: `document = ${describeValue(whole)}` };
  }
  const mutated = copyPlain(definition);
  const labels: string[] = [];
  for (let n = 1 + random.int(3); n > 0; n--) {
    const candidates = pathsOf(mutated).filter((path) => path.length > 0 && !touchesProtected(path));
    if (candidates.length === 0) break;
    const path = random.pick(candidates);
    const parent = parentOf(mutated, path);
    const key = path[path.length - 1];
    if (parent === null || typeof parent !== 'object') continue;
    const kind = random.int(10);
    const value = hostileValue(random, options);
    if (kind < 6) {
      setKey(parent as PlainRecord, key, value);
      labels.push(`${path.join('.')} = ${describeValue(value)}`);
    } else if (kind < 9) {
      const target = (parent as PlainRecord)[key];
      if (!isRecord(target) || touchesProtected([...path, 'x'])) continue;
      const newKey = random.pick(HOSTILE_KEYS);
      setKey(target, newKey, value);
      labels.push(`${path.join('.')}[${describeValue(newKey)}] = ${describeValue(value)}`);
    } else {
      if (Array.isArray(parent)) parent.splice(Number(key), 1);
      else delete (parent as PlainRecord)[key];
      labels.push(`${path.join('.')} removed`);
    }
  }
  return { definition: mutated, label: labels.join('; ') || 'unchanged' };
}

/**
 * JSON text of `value` as JSON.stringify writes it (NaN and Infinity as null, undefined members left
 * out, lone surrogates escaped), but without recursion: JSON.stringify overflows the stack on values
 * nested some thousands deep, which are exactly what the fuzz tests send.
 */
export function jsonText(value: unknown): string {
  const out: string[] = [];
  // Each job is a value to write or literal text; jobs are pushed in reverse so they pop in order.
  const jobs: Array<{ value: unknown } | string> = [{ value }];
  while (jobs.length > 0) {
    const job = jobs.pop()!;
    if (typeof job === 'string') {
      out.push(job);
      continue;
    }
    const v = job.value;
    if (Array.isArray(v)) {
      const parts: Array<{ value: unknown } | string> = ['['];
      v.forEach((item, i) => parts.push(...(i > 0 ? [','] : []), { value: item === undefined || typeof item === 'function' || typeof item === 'symbol' ? null : item }));
      parts.push(']');
      pushReversed(jobs, parts);
    } else if (v !== null && typeof v === 'object') {
      const parts: Array<{ value: unknown } | string> = ['{'];
      const entries = Object.entries(v).filter(([, child]) => child !== undefined && typeof child !== 'function' && typeof child !== 'symbol');
      entries.forEach(([key, child], i) => parts.push(`${i > 0 ? ',' : ''}${JSON.stringify(key)}:`, { value: child }));
      parts.push('}');
      pushReversed(jobs, parts);
    } else out.push(v === undefined ? 'null' : JSON.stringify(v));
  }
  return out.join('');
}

// A loop, not push(...items): spreading a list of 100,000 items as arguments overflows the stack.
function pushReversed<T>(target: T[], items: T[]): void {
  for (let i = items.length - 1; i >= 0; i--) target.push(items[i]);
}
