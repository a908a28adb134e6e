// Which inputs of a connector type are secrets, declared once, on the fields of its zod schema, and
// derived from there for everything else: the type's `sensitive` paths (encryption at rest, masking,
// redaction, destination binding), the JSON Schema the API serves, and the console's masking, which
// reads the same keyword from that JSON Schema (console/src/sensitive.ts walks it the same way).
import { z } from 'zod';

/**
 * Header names whose values are secrets, matched case-insensitively; `*` stands for any run of
 * characters. Broad on purpose: `X-Auth-Token`, `X-Api-Key`, `X-Hub-Signature`, `X-Session-Id` all
 * carry credentials somewhere, and a header wrongly taken for a secret is only masked, while one
 * wrongly taken for data is stored in plain text and follows a changed destination.
 */
export const SECRET_HEADER_NAMES: readonly string[] = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  '*token*',
  '*key*',
  '*secret*',
  '*signature*',
  '*auth*',
  '*password*',
  '*session*',
];

/**
 * Marks a field as sensitive (`.meta({ sensitive: true })`): its value, whole, is a secret. The mark
 * travels into the JSON Schema as the keyword `sensitive: true`.
 */
export function sensitive<T extends z.ZodType>(schema: T): T {
  return schema.meta({ sensitive: true });
}

/**
 * Marks a string field as text of several lines (`.meta({ multiline: true })`), such as a private key
 * or a certificate: the console shows it in a text area (masked when the field is sensitive too), as
 * the JSON Schema's keyword `multiline: true` tells it.
 */
export function multiline<T extends z.ZodType>(schema: T): T {
  return schema.meta({ multiline: true });
}

/**
 * Marks the entries of a map (a `z.record`) whose keys match one of `keys` as sensitive
 * (`.meta({ sensitive: [...] })`): e.g. the headers named in {@link SECRET_HEADER_NAMES}. Keys match
 * case-insensitively, and `*` stands for any run of characters.
 */
export function sensitiveEntries<T extends z.ZodType>(schema: T, keys: readonly string[]): T {
  return schema.meta({ sensitive: [...keys] });
}

/** A JSON Schema as `z.toJSONSchema` writes it. */
type JsonSchema = { [key: string]: unknown };

/**
 * The sensitive input paths of `schema`, dotted (`auth.token`, `headers.*token*`): `*` alone stands
 * for any one key (an entry of a map), and within a key for any run of characters. Read from its JSON
 * Schema, so the server and the console (which has only the JSON Schema) derive the same paths.
 */
export function sensitivePaths(schema: z.ZodType): string[] {
  return sensitivePathsOfJsonSchema(z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema);
}

/**
 * The sensitive paths a JSON Schema marks with the keyword `sensitive`: `true` on a field marks the
 * field; a list of key patterns on an object marks its entries with such keys. Objects (`properties`,
 * `additionalProperties`), unions (`anyOf`, `oneOf`, `allOf`) and `$ref`s into `$defs` are followed.
 * Throws when an array item or a recursive part of the schema holds a mark: masking and encryption do
 * not look into arrays, and no finite list of paths covers every depth, so such a secret would be
 * stored in plain text.
 */
export function sensitivePathsOfJsonSchema(root: JsonSchema): string[] {
  const found = new Set<string>();
  // `refs` holds the $refs followed on the way down, so a recursive schema ends.
  const visit = (node: unknown, path: string[], refs: ReadonlySet<string>, into: Set<string>): void => {
    if (!isObject(node)) return;
    const ref = typeof node.$ref === 'string' ? node.$ref : undefined;
    const schema = resolveRef(root, node);
    if (ref !== undefined && refs.has(ref)) {
      // A recursive schema: its marks would need paths of every depth, which the patterns cannot say.
      if (JSON.stringify(schema).includes('"sensitive":')) throw new Error(`${path.join('.')}: a sensitive field inside a recursive schema is not supported`);
      return;
    }
    const followed = ref === undefined ? refs : new Set(refs).add(ref);
    if (schema.sensitive === true) {
      into.add(path.join('.'));
      return; // a secret is handed over whole: nothing below it is visited
    }
    if (Array.isArray(schema.sensitive)) for (const key of schema.sensitive) into.add([...path, String(key)].join('.'));
    for (const [key, child] of Object.entries(isObject(schema.properties) ? schema.properties : {})) visit(child, [...path, key], followed, into);
    if (isObject(schema.additionalProperties)) visit(schema.additionalProperties, [...path, '*'], followed, into);
    for (const keyword of ['anyOf', 'oneOf', 'allOf']) {
      const options = schema[keyword];
      if (Array.isArray(options)) for (const option of options) visit(option, path, followed, into);
    }
    for (const keyword of ['items', 'prefixItems']) {
      const items = schema[keyword];
      for (const item of Array.isArray(items) ? items : [items]) {
        const below = new Set<string>();
        visit(item, [...path, '[]'], followed, below);
        if (below.size > 0) throw new Error(`${[...below][0]}: a sensitive field inside an array is not supported (masking and encryption do not look into arrays)`);
      }
    }
  };
  visit(root, [], new Set(), found);
  return [...found];
}

function isObject(value: unknown): value is JsonSchema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `node`, or the schema its `$ref` (`#` or `#/$defs/<name>`) points to; a `$ref` beside other keywords adds them. */
function resolveRef(root: JsonSchema, node: JsonSchema): JsonSchema {
  const ref = node.$ref;
  if (typeof ref !== 'string') return node;
  const target = ref === '#' ? root : ref.startsWith('#/$defs/') && isObject(root.$defs) ? root.$defs[decodeURIComponent(ref.slice('#/$defs/'.length))] : undefined;
  const { $ref: _ref, ...rest } = node;
  return isObject(target) ? { ...target, ...rest } : rest;
}
