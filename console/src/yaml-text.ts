// The code view's text and the document the form edits, both ways, and where in the text a field
// the API names (`value.auth.token`) is written.
import { isMap, isPair, isScalar, isSeq, parseAllDocuments, stringify, type Node as YamlNode } from 'yaml';

export class YamlProblem extends Error {
  constructor(
    message: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(message);
  }
}

/** YAML of a document, keys in the order given. */
export function toYaml(document: Record<string, unknown>): string {
  return stringify(document, { lineWidth: 0 });
}

/**
 * The one connector definition the text holds (YAML or JSON). Throws a {@link YamlProblem} with the
 * line and column of a syntax error, or when the text holds no mapping or several documents.
 */
export function fromYaml(text: string): Record<string, unknown> {
  const documents = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true });
  if (!Array.isArray(documents)) throw new YamlProblem('the text is not a YAML document', 1, 1);
  for (const doc of documents) {
    const error = doc.errors[0];
    if (error) {
      const where = error.linePos?.[0];
      // prettyErrors appends the position to the first line; it is reported as the problem's place instead.
      throw new YamlProblem(error.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, ''), where?.line ?? 1, where?.col ?? 1);
    }
  }
  const nonEmpty = documents.filter((d) => d.contents !== null);
  if (nonEmpty.length !== 1) {
    const second = nonEmpty[1];
    const line = second ? lineOf(text, second.range[0]) : 1;
    throw new YamlProblem(nonEmpty.length === 0 ? 'the text holds no connector' : 'the code view holds one connector; use `connectors apply` or POST /v1/apply for several', line, 1);
  }
  const value = nonEmpty[0].toJS({ maxAliasCount: 20 }) as unknown;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new YamlProblem('a connector is a mapping of keys (name, type, value, ...)', 1, 1);
  return value as Record<string, unknown>;
}

/**
 * The character range where `path` (`value.auth.token`, `vault_secrets.0.path`) is written in
 * `text`: the key of the deepest part of the path found, so a problem with a key the schema does not
 * know still lands next to its parent. Undefined when the text does not parse.
 */
export function rangeOfPath(text: string, path: string): { from: number; to: number } | undefined {
  const documents = parseAllDocuments(text);
  if (!Array.isArray(documents)) return undefined;
  const doc = documents.find((d) => d.contents !== null);
  if (!doc) return undefined;
  let node: YamlNode | null = doc.contents as YamlNode | null;
  let found: { from: number; to: number } | undefined = node?.range ? { from: node.range[0], to: node.range[1] } : undefined;
  for (const segment of path === '' ? [] : path.split('.')) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === segment);
      if (!pair) break;
      const key = pair.key as YamlNode;
      if (key.range) found = { from: key.range[0], to: key.range[1] };
      node = pair.value as YamlNode | null;
    } else if (isSeq(node) && /^\d+$/.test(segment)) {
      const item = node.items[Number(segment)] as YamlNode | undefined;
      if (!item) break;
      if (item.range) found = { from: item.range[0], to: item.range[1] };
      node = item;
    } else {
      break;
    }
  }
  return found;
}

function lineOf(text: string, offset: number): number {
  return text.slice(0, offset).split('\n').length;
}
