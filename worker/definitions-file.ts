import { LineCounter, parseAllDocuments } from 'yaml';

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
  for (const doc of list) {
    // A small alias budget stops "billion laughs" documents from expanding without bound.
    const value: unknown = doc.toJS({ maxAliasCount: 20 });
    if (value === null || value === undefined) continue; // an empty document, e.g. a trailing ---
    if (Array.isArray(value)) definitions.push(...value);
    else definitions.push(value);
  }
  return definitions;
}
