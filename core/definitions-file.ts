import { isUtf8 } from 'node:buffer';
import { Composer, LineCounter, Parser, type CST } from 'yaml';
import { shownPath } from './inputs';

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
  const list = parseYamlDocuments(text, lineCounter, source);
  for (const doc of list) {
    const error = doc.errors[0];
    if (error) {
      const { line, col } = lineCounter.linePos(error.pos[0]);
      // The parser reports its own stack overflow as an error of the document, in the engine's words.
      const problem = /call stack/i.test(error.message) ? TOO_DEEP : error.message.split('\n')[0];
      throw new DefinitionsParseError(source, line, col, problem);
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
    // A loop, not push(...value): spreading a list of some 100,000 definitions overflows the stack.
    if (Array.isArray(value)) for (const item of value) definitions.push(item);
    else definitions.push(value);
  }
  return definitions;
}

/**
 * Deepest nesting of YAML collections a document may have: 128 levels, twice what a connector
 * definition may nest (see MAX_NESTING_DEPTH in core/inputs.ts).
 */
export const MAX_YAML_DEPTH = 128;

/**
 * `parseAllDocuments`, with the nesting bounded between its two stages. The `yaml` package parses
 * without recursion but builds documents recursively, and a document nested thousands of levels
 * deep exhausts the stack there: caught, that is an error of the document, but a regular expression
 * compiled for the first time that close to the stack limit aborts the whole process (V8's "RegExp
 * compiler allocation failed - process out of memory").
 */
function parseYamlDocuments(text: string, lineCounter: LineCounter, source: string) {
  const tokens = [...new Parser(lineCounter.addNewLine).parse(text)];
  const deep = tooDeepAt(tokens, MAX_YAML_DEPTH);
  if (deep !== undefined) {
    const { line, col } = lineCounter.linePos(deep);
    throw new DefinitionsParseError(source, line, col, TOO_DEEP);
  }
  try {
    // uniqueKeys: a repeated key is a mistake, not "last one wins". prettyErrors stays off: its
    // context lines would quote the document, and with it any secret on those lines.
    return [...new Composer({ uniqueKeys: true }).compose(tokens)];
  } catch (err) {
    if (err instanceof RangeError) throw new DefinitionsParseError(source, 1, 1, TOO_DEEP);
    throw err;
  }
}

/** Offset of the first collection nested deeper than `max` levels in parsed YAML, if any; walks without recursion. */
function tooDeepAt(tokens: CST.Token[], max: number): number | undefined {
  const pending: Array<{ token: CST.Token | null | undefined; depth: number }> = tokens.map((token) => ({ token, depth: 0 }));
  while (pending.length > 0) {
    const { token, depth } = pending.pop()!;
    if (token?.type === 'document') pending.push({ token: token.value, depth });
    else if (token?.type === 'block-map' || token?.type === 'block-seq' || token?.type === 'flow-collection') {
      if (depth >= max) return token.offset;
      for (const item of token.items) pending.push({ token: item.key, depth: depth + 1 }, { token: item.value, depth: depth + 1 });
    }
  }
  return undefined;
}

const TOO_DEEP = `the document nests collections more than ${MAX_YAML_DEPTH} levels deep (connector definitions nest a few levels, never thousands)`;

/**
 * `bytes` as text, refusing what is not UTF-8 rather than reading it with replacement characters:
 * a definition read that way would be stored with its text silently changed. `source` names the
 * input in the error, which says where the first invalid byte is.
 */
export function decodeDefinitionsText(bytes: Buffer, source = 'input'): string {
  const text = bytes.toString('utf8');
  if (isUtf8(bytes)) return text;
  // The text re-encoded matches the input up to the first invalid byte.
  const again = Buffer.from(text, 'utf8');
  let at = 0;
  while (at < bytes.length && bytes[at] === again[at]) at++;
  const lines = bytes.subarray(0, at).toString('utf8').split('\n');
  throw new DefinitionsParseError(source, lines.length, lines[lines.length - 1].length + 1, 'is not valid UTF-8 text: connector documents are UTF-8');
}

/** Where a JSON document repeats a key within one object, and the dotted path of the repeated key. */
export interface DuplicateJsonKey {
  path: string;
  line: number;
  column: number;
}

/**
 * The first key that a well-formed JSON text repeats within one object, or undefined. `JSON.parse`
 * lets the last one win without a word; a definition's YAML reader refuses repeats, and so must
 * whatever reads the same definition as JSON. Scans without recursion, so any depth is safe.
 */
export function duplicateJsonKey(text: string): DuplicateJsonKey | undefined {
  type Frame = { keys?: Set<string>; expectKey: boolean; label?: string; index: number };
  const stack: Frame[] = [];
  const labelOf = (frame: Frame | undefined) => (frame === undefined ? undefined : frame.keys ? frame.label : String(frame.index));
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const top = stack[stack.length - 1];
    if (c === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      if (top?.keys && top.expectKey) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        if (top.keys.has(key)) {
          const before = text.slice(0, i).split('\n');
          // Each open container sits in the one below it at that one's current key or index.
          const path = [...stack.slice(0, -1).map((frame) => labelOf(frame) ?? ''), key];
          return { path: shownPath(path), line: before.length, column: before[before.length - 1].length + 1 };
        }
        top.keys.add(key);
        top.label = key;
        top.expectKey = false;
      }
      i = end;
    } else if (c === '{') stack.push({ keys: new Set(), expectKey: true, index: 0 });
    else if (c === '[') stack.push({ expectKey: false, index: 0 });
    else if (c === '}' || c === ']') stack.pop();
    else if (c === ',' && top) {
      if (top.keys) top.expectKey = true;
      else top.index++;
    }
  }
  return undefined;
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
