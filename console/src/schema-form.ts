// A form generated from a JSON Schema as zod 4 writes it (`z.toJSONSchema`), edited in place on one
// plain object: the connector document. The form and the code view share that object, so switching
// between them loses nothing; whatever the form has no widget for (free JSON, unions of unlike
// types, a value of the wrong type, keys the schema does not know) is shown as YAML in a text box of
// its own instead of being dropped.
import { parse, stringify } from 'yaml';
import { append, h, replace } from './dom';
import type { JsonSchema } from './api';

/** What the stored value of a sensitive field reads as, and what keeps it when written back. */
export const MASK = '********';

export type Path = Array<string | number>;

export interface FormContext {
  /** The document being edited; fields read and write it by path. */
  root: Record<string, unknown>;
  /** The schema `$ref`s point into (`#/$defs/...`). */
  refs: (schema: JsonSchema) => JsonSchema;
  /** Whether the input at `path` is sensitive: shown as a password field. */
  isSensitive: (path: Path) => boolean;
  readOnly: boolean;
  /** Called after every change of the document. */
  onChange: () => void;
}

/** `value.auth.token`, `vault_secrets.0.path`: how the API names fields in its issues. */
export function pathKey(path: Path): string {
  return path.map(String).join('.');
}

export function getAt(root: unknown, path: Path): unknown {
  let current = root;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = Object.hasOwn(current, key) ? (current as Record<string, unknown>)[key as string] : undefined;
  }
  return current;
}

/** Sets the value at `path`, making the objects on the way; `undefined` removes the key (or the array item). */
export function setAt(root: Record<string, unknown>, path: Path, value: unknown): void {
  let current: Record<string | number, unknown> = root;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i];
    let next = current[key];
    if (next === null || typeof next !== 'object') {
      if (value === undefined) return;
      next = typeof path[i + 1] === 'number' ? [] : {};
      current[key] = next;
    }
    current = next as Record<string | number, unknown>;
  }
  const last = path[path.length - 1];
  if (value !== undefined) current[last] = value;
  else if (Array.isArray(current) && typeof last === 'number') current.splice(last, 1);
  else delete current[last];
}

/** Per document: what each variant of a union field held when the user chose another (see variantFields). */
const stashes = new WeakMap<object, Map<string, Record<string, unknown>>>();
function stashOf(root: object): Map<string, Record<string, unknown>> {
  let stash = stashes.get(root);
  if (!stash) stashes.set(root, (stash = new Map()));
  return stash;
}

let nextId = 0;
const fieldId = () => `f${++nextId}`;

type Kind = 'object' | 'variants' | 'string' | 'number' | 'boolean' | 'enum' | 'const' | 'duration' | 'string-list' | 'object-list' | 'string-map' | 'yaml';

function typesOf(schema: JsonSchema): string[] {
  const type = schema.type;
  return Array.isArray(type) ? (type as string[]) : typeof type === 'string' ? [type] : [];
}

function unionOf(schema: JsonSchema): JsonSchema[] | undefined {
  const list = (schema.oneOf ?? schema.anyOf) as JsonSchema[] | undefined;
  return Array.isArray(list) ? list : undefined;
}

function properties(schema: JsonSchema): Record<string, JsonSchema> | undefined {
  return schema.properties && typeof schema.properties === 'object' ? (schema.properties as Record<string, JsonSchema>) : undefined;
}

/** The property whose `const` tells the options of a union of objects apart (REST `auth`: `type`). */
function discriminator(variants: JsonSchema[]): string | undefined {
  const first = properties(variants[0]);
  if (!first) return undefined;
  return Object.keys(first).find((key) => variants.every((v) => properties(v)?.[key]?.const !== undefined));
}

function kindOf(schema: JsonSchema, ctx: FormContext): Kind {
  if (schema.const !== undefined) return 'const';
  if (Array.isArray(schema.enum)) return 'enum';
  const union = unionOf(schema);
  if (union) {
    const resolved = union.map(ctx.refs);
    if (resolved.every((v) => typesOf(v).includes('object') && properties(v)) && discriminator(resolved)) return 'variants';
    const scalars = resolved.flatMap(typesOf).sort().join(',');
    if (scalars === 'number,string' && resolved.every((v) => typesOf(v).length === 1)) return 'duration';
    return 'yaml';
  }
  const types = typesOf(schema);
  if (types.length !== 1) return 'yaml';
  switch (types[0]) {
    case 'string':
      return 'string';
    case 'number':
    case 'integer':
      return 'number';
    case 'boolean':
      return 'boolean';
    case 'array': {
      const items = schema.items ? ctx.refs(schema.items as JsonSchema) : {};
      const itemTypes = typesOf(items);
      if (itemTypes.length === 1 && itemTypes[0] === 'string' && !unionOf(items)) return 'string-list';
      if (itemTypes.length === 1 && itemTypes[0] === 'object' && properties(items)) return 'object-list';
      return 'yaml';
    }
    case 'object': {
      if (properties(schema)) return 'object';
      const extra = schema.additionalProperties ? ctx.refs(schema.additionalProperties as JsonSchema) : undefined;
      if (extra && typesOf(extra).length === 1 && typesOf(extra)[0] === 'string') return 'string-map';
      return 'yaml';
    }
  }
  return 'yaml';
}

/** Whether `value` is something the widget of `kind` can show without losing it. */
function fits(kind: Kind, value: unknown): boolean {
  if (value === undefined) return true;
  const isObject = value !== null && typeof value === 'object' && !Array.isArray(value);
  switch (kind) {
    case 'object':
    case 'variants':
      return isObject;
    case 'string-map':
      return isObject && Object.values(value as object).every((v) => typeof v === 'string');
    case 'string':
      return typeof value === 'string';
    case 'number':
      return typeof value === 'number';
    case 'boolean':
      return typeof value === 'boolean';
    case 'enum':
    case 'const':
      return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
    case 'duration':
      return typeof value === 'string' || typeof value === 'number';
    case 'string-list':
      return Array.isArray(value) && value.every((v) => typeof v === 'string');
    case 'object-list':
      return Array.isArray(value) && value.every((v) => v !== null && typeof v === 'object' && !Array.isArray(v));
    case 'yaml':
      return true;
  }
}

export interface FieldOptions {
  /** The label; default the last key of the path. */
  label?: string;
  required?: boolean;
  /** Render an object's fields without the surrounding fieldset (the document itself). */
  bare?: boolean;
}

/**
 * The field for the value at `path`, described by `schema`. Structural changes (adding an item,
 * choosing another `auth` variant) render the field again in place.
 */
export function renderField(schema: JsonSchema, path: Path, ctx: FormContext, options: FieldOptions = {}): HTMLElement {
  const wrapper = h('div', { class: 'field', 'data-path': pathKey(path) });
  const draw = () => replace(wrapper, ...fieldContent(ctx.refs(schema), path, ctx, options, draw));
  draw();
  return wrapper;
}

function fieldContent(schema: JsonSchema, path: Path, ctx: FormContext, options: FieldOptions, redraw: () => void): Array<Node | null> {
  const value = getAt(ctx.root, path);
  let kind = kindOf(schema, ctx);
  // A choice the schema does not offer would show as "(not set)", or as the one constant, while the
  // document holds something else: shown as written instead, where the API's answer names it.
  const offered = kind === 'enum' ? (schema.enum as unknown[]).includes(value) : kind === 'const' ? value === schema.const : true;
  if (!fits(kind, value) || (value !== undefined && !offered)) kind = 'yaml';
  const label = options.label ?? String(path[path.length - 1] ?? '');
  const id = fieldId();
  const set = (next: unknown) => {
    setAt(ctx.root, path, next);
    ctx.onChange();
  };
  const description = typeof schema.description === 'string' ? h('p', { class: 'help' }, schema.description) : null;
  const errorLine = h('p', { class: 'field-error', role: 'alert' });
  const labelNode = h('label', { for: id }, label, options.required ? h('span', { class: 'required', title: 'required' }, ' *') : null);
  const placeholder = placeholderOf(schema);
  const disabled = ctx.readOnly;

  switch (kind) {
    case 'object':
      return [objectFields(schema, path, ctx, label, options, description, errorLine)];
    case 'variants':
      return [variantFields(schema, path, ctx, label, options, description, errorLine, redraw)];
    case 'string': {
      const sensitive = ctx.isSensitive(path);
      // The schema says so (`multiline: true`: a private key, a certificate), or a guess from the value
      // and the name; a guess never turns a password field into a visible text area.
      const multiline = schema.multiline === true || (!sensitive && ((typeof value === 'string' && value.includes('\n')) || /sql|prompt|instructions|^description$|^ca$|^cert$|^key$/.test(label)));
      const attributes = {
        id,
        name: pathKey(path),
        value: typeof value === 'string' ? value : '',
        placeholder,
        disabled,
        // new-password: a browser fills no saved password into it (`off` does not stop that for a
        // password field), so the token a browser may have saved from signing in cannot land here.
        autocomplete: sensitive ? 'new-password' : 'off',
        spellcheck: 'false',
        oninput: (e: Event) => {
          const text = (e.target as HTMLInputElement | HTMLTextAreaElement).value;
          set(text === '' ? undefined : text);
        },
      };
      // A secret of several lines has no password input: a text area whose characters are drawn as
      // discs (class secret-text), which no browser offers to fill or remember.
      const input = multiline
        ? h('textarea', { ...attributes, rows: sensitive ? 6 : 3, autocomplete: 'off', class: sensitive ? 'secret-text' : undefined, 'data-sensitive': sensitive ? 'true' : undefined })
        : h('input', { ...attributes, type: sensitive ? 'password' : 'text', 'data-sensitive': sensitive ? 'true' : undefined });
      const note = sensitive ? h('p', { class: 'help secret-note' }, value === MASK ? 'Stored and encrypted: leave ******** to keep it, or type a new value.' : 'Sensitive: encrypted when saved, shown as ******** afterwards.') : null;
      return [labelNode, input, description, note, errorLine];
    }
    case 'number':
    case 'duration': {
      const input = h('input', {
        id,
        name: pathKey(path),
        type: 'text',
        inputmode: kind === 'number' ? 'decimal' : undefined,
        value: value === undefined ? '' : String(value),
        placeholder,
        disabled,
        autocomplete: 'off',
        oninput: (e: Event) => {
          const text = (e.target as HTMLInputElement).value.trim();
          // A number where one is written; anything else is kept as typed, so the API names the field.
          set(text === '' ? undefined : /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : text);
        },
      });
      return [labelNode, input, description, errorLine];
    }
    case 'boolean':
    case 'enum': {
      const choices = kind === 'boolean' ? [true, false] : (schema.enum as Array<string | number | boolean>);
      const select = h(
        'select',
        {
          id,
          name: pathKey(path),
          disabled,
          onchange: (e: Event) => {
            const index = (e.target as HTMLSelectElement).selectedIndex - 1;
            set(index < 0 ? undefined : choices[index]);
          },
        },
        h('option', { value: '' }, schema.default !== undefined ? `(not set: default ${String(schema.default)})` : '(not set)'),
        choices.map((choice) => h('option', { value: String(choice), selected: value === choice }, String(choice))),
      );
      return [labelNode, select, description, errorLine];
    }
    case 'const':
      return [labelNode, h('input', { id, type: 'text', value: String(schema.const), disabled: true }), description, errorLine];
    case 'string-list':
      return [labelNode, stringList(path, ctx, (value as string[] | undefined) ?? [], redraw, id), description, errorLine];
    case 'object-list':
      return [objectList(schema, path, ctx, label, (value as unknown[] | undefined) ?? [], redraw, description, errorLine)];
    case 'string-map':
      return [labelNode, stringMap(path, ctx, (value as Record<string, string> | undefined) ?? {}, redraw, id, errorLine), description, errorLine];
    case 'yaml':
      return [labelNode, yamlBox(path, ctx, value, id, errorLine), description, errorLine];
  }
}

function placeholderOf(schema: JsonSchema): string | undefined {
  const example = Array.isArray(schema.examples) ? schema.examples[0] : undefined;
  const shown = example ?? schema.default;
  if (shown === undefined || (typeof shown === 'object' && shown !== null)) return undefined;
  return String(shown);
}

function objectFields(schema: JsonSchema, path: Path, ctx: FormContext, label: string, options: FieldOptions, description: Node | null, errorLine: Node): HTMLElement {
  const props = properties(schema) ?? {};
  const required = new Set((schema.required as string[] | undefined) ?? []);
  const value = (getAt(ctx.root, path) as Record<string, unknown> | undefined) ?? {};
  const fields = Object.entries(props).map(([key, sub]) => renderField(sub, [...path, key], ctx, { required: required.has(key) }));
  const extra = otherKeysField(path, ctx, Object.keys(value).filter((key) => !Object.hasOwn(props, key)));
  const body = [description, errorLine, ...fields, extra];
  if (options.bare) return h('div', { class: 'object bare' }, body);
  return h('fieldset', { class: 'object' }, h('legend', {}, label, options.required ? h('span', { class: 'required' }, ' *') : null), body);
}

/**
 * Keys of an object that its schema does not name: kept, and shown as YAML, so a key the API will
 * refuse is visible (and can be removed) rather than silently dropped.
 */
export function otherKeysField(path: Path, ctx: FormContext, keys: string[]): HTMLElement | null {
  if (keys.length === 0) return null;
  const object = getAt(ctx.root, path) as Record<string, unknown>;
  const id = fieldId();
  const errorLine = h('p', { class: 'field-error', role: 'alert' });
  const text = stringify(Object.fromEntries(keys.map((k) => [k, object[k]])));
  const box = h('textarea', {
    id,
    rows: Math.min(10, text.split('\n').length + 1),
    disabled: ctx.readOnly,
    spellcheck: 'false',
    oninput: (e: Event) => {
      const parsed = parseYamlValue((e.target as HTMLTextAreaElement).value, errorLine);
      if (parsed.ok && (parsed.value === undefined || (parsed.value !== null && typeof parsed.value === 'object' && !Array.isArray(parsed.value)))) {
        for (const k of keys) delete object[k];
        Object.assign(object, parsed.value ?? {});
        keys.splice(0, keys.length, ...Object.keys(parsed.value ?? {}));
        ctx.onChange();
      } else if (parsed.ok) {
        errorLine.textContent = 'must be a mapping of keys to values';
      }
    },
  });
  box.value = text;
  return h('div', { class: 'field other-keys', 'data-path': pathKey(path) + '.*' }, h('label', { for: id }, 'Other fields (YAML)'), box, h('p', { class: 'help' }, 'Keys this form has no field for; they are saved as written.'), errorLine);
}

function variantFields(schema: JsonSchema, path: Path, ctx: FormContext, label: string, options: FieldOptions, description: Node | null, errorLine: HTMLElement, redraw: () => void): HTMLElement {
  const variants = (unionOf(schema) ?? []).map(ctx.refs);
  const key = discriminator(variants)!;
  const value = getAt(ctx.root, path) as Record<string, unknown> | undefined;
  const chosen = value === undefined ? undefined : variants.find((v) => properties(v)![key].const === value[key]);
  const id = fieldId();
  const select = h(
    'select',
    {
      id,
      name: pathKey([...path, key]),
      disabled: ctx.readOnly,
      onchange: (e: Event) => {
        const index = (e.target as HTMLSelectElement).selectedIndex - 1;
        // What the variant held is kept for this page: choosing it again brings it back, a stored
        // ******** included, so trying another variant does not silently drop a stored secret.
        const stash = stashOf(ctx.root);
        if (value !== undefined) stash.set(`${pathKey(path)}#${String(value[key])}`, value);
        if (index < 0) {
          setAt(ctx.root, path, undefined);
        } else {
          const next = variants[index];
          const before = stash.get(`${pathKey(path)}#${String(properties(next)![key].const)}`);
          // Else keep the fields the new variant also has (a user name when switching basic ↔ api_key, say).
          const kept = Object.fromEntries(Object.entries(value ?? {}).filter(([k]) => k !== key && Object.hasOwn(properties(next)!, k)));
          setAt(ctx.root, path, before ?? { [key]: properties(next)![key].const, ...kept });
        }
        ctx.onChange();
        redraw();
      },
    },
    h('option', { value: '' }, '(none)'),
    variants.map((v) => h('option', { value: String(properties(v)![key].const), selected: v === chosen }, String(properties(v)![key].const))),
  );
  const body: Array<Node | null> = [description, h('div', { class: 'field' }, h('label', { for: id }, key), select), errorLine];
  if (chosen) {
    const required = new Set((chosen.required as string[] | undefined) ?? []);
    if (typeof chosen.description === 'string') body.push(h('p', { class: 'help' }, chosen.description));
    for (const [name, sub] of Object.entries(properties(chosen)!)) {
      if (name !== key) body.push(renderField(sub, [...path, name], ctx, { required: required.has(name) }));
    }
    body.push(otherKeysField(path, ctx, Object.keys(value ?? {}).filter((k) => !Object.hasOwn(properties(chosen)!, k))));
  } else if (value !== undefined) {
    // A discriminator the schema does not know: show the whole object as YAML rather than lose it.
    body.push(yamlBox(path, ctx, value, fieldId(), errorLine));
  }
  return h('fieldset', { class: 'object variants' }, h('legend', {}, label, options.required ? h('span', { class: 'required' }, ' *') : null), body);
}

/** Sets (or, with undefined, removes) the value at `path` and draws the field again: an item added or removed. */
function restructure(ctx: FormContext, path: Path, value: unknown, redraw: () => void): void {
  setAt(ctx.root, path, value);
  ctx.onChange();
  redraw();
}

function addButton(ctx: FormContext, label: string, onclick: () => void): HTMLButtonElement {
  return h('button', { type: 'button', class: 'small', disabled: ctx.readOnly, onclick }, label);
}

function removeButton(label: string, disabled: boolean, onclick: () => void): HTMLButtonElement {
  return h('button', { type: 'button', class: 'small', title: `Remove ${label}`, 'aria-label': `Remove ${label}`, disabled, onclick }, '×');
}

function stringList(path: Path, ctx: FormContext, items: string[], redraw: () => void, id: string): HTMLElement {
  const rows = items.map((item, index) =>
    h(
      'div',
      { class: 'row', 'data-path': pathKey([...path, index]) },
      h('input', {
        id: index === 0 ? id : undefined,
        type: 'text',
        value: item,
        disabled: ctx.readOnly,
        'aria-label': `${pathKey(path)} item ${index + 1}`,
        oninput: (e: Event) => {
          setAt(ctx.root, [...path, index], (e.target as HTMLInputElement).value);
          ctx.onChange();
        },
      }),
      removeButton(`item ${index + 1}`, ctx.readOnly, () => restructure(ctx, [...path, index], undefined, redraw)),
    ),
  );
  const add = addButton(ctx, '+ Add', () => restructure(ctx, [...path, items.length], '', redraw));
  return h('div', { class: 'list' }, rows, add);
}

function objectList(schema: JsonSchema, path: Path, ctx: FormContext, label: string, items: unknown[], redraw: () => void, description: Node | null, errorLine: Node): HTMLElement {
  const itemSchema = ctx.refs(schema.items as JsonSchema);
  const entries = items.map((_, index) =>
    h(
      'div',
      { class: 'list-item' },
      renderField(itemSchema, [...path, index], ctx, { label: `${label} ${index + 1}` }),
      removeButton(`${label} ${index + 1}`, ctx.readOnly, () => restructure(ctx, [...path, index], undefined, redraw)),
    ),
  );
  const add = addButton(ctx, `+ Add ${label}`, () => restructure(ctx, [...path, items.length], {}, redraw));
  return h('fieldset', { class: 'object list' }, h('legend', {}, label), description, errorLine, entries, add);
}

function stringMap(path: Path, ctx: FormContext, map: Record<string, string>, redraw: () => void, id: string, errorLine: HTMLElement): HTMLElement {
  const rows = Object.keys(map).map((key, index) => {
    // A rename updates the row in place: drawing the map again would take away the focus of whoever
    // just tabbed from the name to its value, and drop what they type next.
    let current = key;
    const value = h('input', {
      type: 'text',
      value: map[key],
      placeholder: 'value',
      autocomplete: 'off',
      disabled: ctx.readOnly,
      oninput: (e: Event) => {
        setAt(ctx.root, [...path, current], (e.target as HTMLInputElement).value);
        ctx.onChange();
      },
    });
    const row = h('div', { class: 'row' });
    /** What depends on the name: the path, the label, and whether the value is a password field. */
    const named = () => {
      const sensitive = ctx.isSensitive([...path, current]);
      row.dataset.path = pathKey([...path, current]);
      value.type = sensitive ? 'password' : 'text';
      value.autocomplete = sensitive ? 'new-password' : 'off';
      if (sensitive) value.dataset.sensitive = 'true';
      else delete value.dataset.sensitive;
      value.setAttribute('aria-label', `${pathKey(path)} ${current}`);
    };
    const name = h('input', {
      id: index === 0 ? id : undefined,
      type: 'text',
      class: 'map-key',
      value: key,
      placeholder: 'name',
      disabled: ctx.readOnly,
      'aria-label': `${pathKey(path)} name ${index + 1}`,
      onchange: (e: Event) => {
        const input = e.target as HTMLInputElement;
        const renamed = input.value;
        if (renamed === current) return;
        const object = getAt(ctx.root, path) as Record<string, string>;
        if (Object.hasOwn(object, renamed)) {
          // Renaming onto another entry would silently drop one of the two values.
          errorLine.textContent = `${renamed} is already a name here: choose another, or remove that one first`;
          input.value = current;
          return;
        }
        errorLine.textContent = '';
        // Rebuild the object so the renamed key keeps its place.
        setAt(ctx.root, path, Object.fromEntries(Object.entries(object).map(([k, v]) => (k === current ? [renamed, v] : [k, v]))));
        current = renamed;
        named();
        ctx.onChange();
      },
    });
    append(row, [
      name,
      value,
      removeButton(key, ctx.readOnly, () => {
        setAt(ctx.root, [...path, current], undefined);
        ctx.onChange();
        redraw();
      }),
    ]);
    named();
    return row;
  });
  const add = addButton(ctx, '+ Add', () => {
    // The object as it is now: a rename since the last drawing replaced it.
    const live = (getAt(ctx.root, path) as Record<string, string> | undefined) ?? {};
    let name = 'name';
    for (let n = 2; Object.hasOwn(live, name); n++) name = `name${n}`;
    restructure(ctx, [...path, name], '', redraw);
  });
  return h('div', { class: 'list' }, rows, add);
}

function yamlBox(path: Path, ctx: FormContext, value: unknown, id: string, errorLine: HTMLElement): HTMLElement {
  const text = value === undefined ? '' : stringify(value).replace(/\n$/, '');
  const box = h('textarea', {
    id,
    name: pathKey(path),
    class: 'yaml',
    rows: Math.min(12, Math.max(2, text.split('\n').length + 1)),
    disabled: ctx.readOnly,
    spellcheck: 'false',
    placeholder: 'YAML or JSON',
    oninput: (e: Event) => {
      const parsed = parseYamlValue((e.target as HTMLTextAreaElement).value, errorLine);
      if (parsed.ok) {
        setAt(ctx.root, path, parsed.value);
        ctx.onChange();
      }
    },
  });
  box.value = text;
  return box;
}

/** A YAML (or JSON) value typed into a box; blank is "not set". Reports a syntax error on `errorLine`. */
function parseYamlValue(text: string, errorLine: HTMLElement): { ok: true; value: unknown } | { ok: false } {
  errorLine.textContent = '';
  if (text.trim() === '') return { ok: true, value: undefined };
  try {
    return { ok: true, value: parse(text, { uniqueKeys: true, maxAliasCount: 20 }) };
  } catch (err) {
    errorLine.textContent = `not valid YAML: ${(err as Error).message.split('\n')[0]}`;
    return { ok: false };
  }
}
