import { LineCounter, parseAllDocuments } from 'yaml';

/**
 * Most alias expansions one document may make (the `yaml` package's `maxAliasCount`, which also
 * counts aliases nested in what an alias expands to). Far above what shared defaults need, far
 * below what a "billion laughs" document needs to expand to gigabytes.
 */
export const MAX_YAML_ALIAS_COUNT = 20;

/** A document that is not well-formed YAML/JSON: names where, never quotes the text (it may hold secrets). */
export class DefinitionsParseError extends Error {
  override name = 'DefinitionsParseError';
  constructor(
    readonly source: string,
    readonly line: number,
    readonly column: number,
    problem: string,
  ) {
    super(`${source}:${line}:${column}: ${problem}`);
  }
}

/**
 * Connector definitions from YAML or JSON text (YAML is a superset of JSON; comments are ignored).
 * Several `---`-separated documents, and documents that are lists of definitions, are flattened in
 * order. Throws {@link DefinitionsParseError} on the first malformed document, so nothing of a bad
 * file gets applied.
 */
export function parseDefinitions(text: string, source = 'input'): unknown[] {
  const lineCounter = new LineCounter();
  // uniqueKeys: a repeated key is a mistake, not "last one wins". prettyErrors off: its context
  // lines would quote the document, and with it any secret on those lines.
  const documents = parseAllDocuments(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const list = Array.isArray(documents) ? documents : [];
  for (const doc of list) {
    const error = doc.errors[0];
    if (error) {
      const { line, col } = lineCounter.linePos(error.pos[0]);
      throw new DefinitionsParseError(source, line, col, error.message.split('\n')[0]);
    }
  }
  const definitions: unknown[] = [];
  for (const [index, doc] of list.entries()) {
    let value: unknown;
    try {
      // A small alias budget stops "billion laughs" documents from expanding without bound.
      value = doc.toJS({ maxAliasCount: MAX_YAML_ALIAS_COUNT });
    } catch (err) {
      const { line, col } = lineCounter.linePos(doc.range[0]);
      throw new DefinitionsParseError(source, line, col, documentProblem(err, index));
    }
    if (value === null || value === undefined) continue; // an empty document, e.g. a trailing ---
    if (Array.isArray(value)) definitions.push(...value);
    else definitions.push(value);
  }
  return definitions;
}

/** Why `toJS` refused a document, in words; `yaml`'s own messages are sentences that quote no content. */
function documentProblem(err: unknown, index: number): string {
  const message = err instanceof Error ? err.message : '';
  const where = `document ${index + 1}`;
  if (/excessive alias count/i.test(message)) {
    return `${where} expands too many YAML aliases (more than ${MAX_YAML_ALIAS_COUNT} alias expansions): nested anchors and aliases that expand without bound ("billion laughs") are refused`;
  }
  if (err instanceof RangeError) return `${where} is too large or nests too deeply to read`;
  return `${where} cannot be read: ${message.split('\n')[0].slice(0, 200)}`;
}
