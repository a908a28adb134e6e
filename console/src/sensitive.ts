// Which fields of a connector are secrets, as the server's JSON Schema of its type marks them: the
// keyword `sensitive` (`true` on a field, or a list of key patterns on a map such as REST `headers`).
// The server derives the type's sensitive paths from the same keyword (connectors/sensitivity.ts);
// test/connectors/sensitivity.test.ts checks that both read every type's schema alike.

/** A JSON Schema as the API serves it. */
type JsonSchema = { [key: string]: unknown };

/**
 * The sensitive input paths the JSON Schema `root` marks, dotted (`auth.token`, `headers.*token*`):
 * `*` alone stands for any one key, and within a key for any run of characters. Objects, maps, unions
 * and `$ref`s into `$defs` are followed; arrays hold no sensitive field (the server refuses to mark one).
 */
export function sensitivePatterns(root: JsonSchema): string[] {
  const found = new Set<string>();
  const visit = (node: unknown, path: string[], refs: ReadonlySet<string>): void => {
    if (!isObject(node)) return;
    const ref = typeof node.$ref === 'string' ? node.$ref : undefined;
    if (ref !== undefined && refs.has(ref)) return;
    const followed = ref === undefined ? refs : new Set(refs).add(ref);
    const schema = resolveRef(root, node);
    if (schema.sensitive === true) {
      found.add(path.join('.'));
      return;
    }
    if (Array.isArray(schema.sensitive)) for (const key of schema.sensitive) found.add([...path, String(key)].join('.'));
    for (const [key, child] of Object.entries(isObject(schema.properties) ? schema.properties : {})) visit(child, [...path, key], followed);
    if (isObject(schema.additionalProperties)) visit(schema.additionalProperties, [...path, '*'], followed);
    for (const keyword of ['anyOf', 'oneOf', 'allOf']) {
      const options = schema[keyword];
      if (Array.isArray(options)) for (const option of options) visit(option, path, followed);
    }
  };
  visit(root, [], new Set());
  return [...found];
}

/** True when `path` matches one of the dotted `patterns`, as the server matches them (core/inputs.ts `isSensitivePath`). */
export function matchesSensitive(path: ReadonlyArray<string | number>, patterns: readonly string[]): boolean {
  return patterns.some((pattern) => {
    const parts = pattern.split('.');
    return parts.length === path.length && parts.every((part, i) => segmentMatches(part, String(path[i])));
  });
}

function segmentMatches(pattern: string, segment: string): boolean {
  if (pattern === '*') return true;
  if (!pattern.includes('*')) return pattern.toLowerCase() === segment.toLowerCase();
  return new RegExp(`^${pattern.split('*').map((part) => part.replace(/[\\^$.|?+()[\]{}]/g, '\\$&')).join('.*')}$`, 'is').test(segment);
}

function isObject(value: unknown): value is JsonSchema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function resolveRef(root: JsonSchema, node: JsonSchema): JsonSchema {
  const ref = node.$ref;
  if (typeof ref !== 'string') return node;
  const target = ref === '#' ? root : ref.startsWith('#/$defs/') && isObject(root.$defs) ? root.$defs[decodeURIComponent(ref.slice('#/$defs/'.length))] : undefined;
  const { $ref: _ref, ...rest } = node;
  return isObject(target) ? { ...target, ...rest } : rest;
}
