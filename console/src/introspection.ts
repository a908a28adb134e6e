// What introspection found, for people: a SQL database as a tree of schemas, tables and columns; a
// REST API's OpenAPI document as its paths and operations; anything else as formatted JSON.
import { h } from './dom';

interface SqlIntrospection {
  schemas: Array<{ name: string; tables: Array<{ name: string; type: string; columns: Array<{ name: string; type: string; nullable: boolean; default?: string }> }> }>;
}

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** `parseYaml` reads an OpenAPI document that came as YAML text. */
export function renderIntrospection(result: unknown, parseYaml: (text: string) => unknown): HTMLElement {
  if (isSql(result)) return sqlTree(result);
  const openapi = result as { openapi_url?: string; document?: unknown } | null;
  if (openapi && typeof openapi === 'object' && 'document' in openapi) {
    let document = openapi.document;
    if (typeof document === 'string') {
      try {
        document = parseYaml(document);
      } catch {
        // Not YAML either: shown as text below.
      }
    }
    const paths = (document as { paths?: Record<string, unknown> } | null)?.paths;
    if (paths && typeof paths === 'object') return openapiPaths(openapi.openapi_url, document as Record<string, unknown>, paths);
  }
  return h('pre', { class: 'json' }, JSON.stringify(result, null, 2));
}

function isSql(result: unknown): result is SqlIntrospection {
  return !!result && typeof result === 'object' && Array.isArray((result as SqlIntrospection).schemas);
}

function sqlTree(result: SqlIntrospection): HTMLElement {
  if (result.schemas.length === 0) return h('p', { class: 'muted' }, 'No schemas visible to this connector’s user.');
  return h(
    'ul',
    { class: 'tree', id: 'introspection-tree' },
    result.schemas.map((schema) =>
      h(
        'li',
        { 'data-schema': schema.name },
        h(
          'details',
          { open: result.schemas.length <= 3 },
          h('summary', {}, h('strong', {}, schema.name), h('span', { class: 'muted' }, ` ${schema.tables.length} table${schema.tables.length === 1 ? '' : 's'}`)),
          h(
            'ul',
            {},
            schema.tables.map((table) =>
              h(
                'li',
                { 'data-table': `${schema.name}.${table.name}` },
                h(
                  'details',
                  {},
                  h('summary', {}, table.name, table.type === 'view' ? h('span', { class: 'badge' }, 'view') : null, h('span', { class: 'muted' }, ` ${table.columns.length} columns`)),
                  h(
                    'table',
                    { class: 'columns' },
                    h('thead', {}, h('tr', {}, ['Column', 'Type', 'Null', 'Default'].map((t) => h('th', {}, t)))),
                    h(
                      'tbody',
                      {},
                      table.columns.map((c) => h('tr', {}, h('td', {}, c.name), h('td', {}, c.type), h('td', {}, c.nullable ? 'yes' : 'no'), h('td', {}, c.default ?? ''))),
                    ),
                  ),
                ),
              ),
            ),
          ),
        ),
      ),
    ),
  );
}

/**
 * A value of an external system's document as text. The document is whatever that system serves, so
 * a summary may be a number, a list or an object; as a DOM child, anything but a string, a number or
 * a node would throw.
 */
function text(value: unknown): string {
  if (value === undefined || value === null) return '';
  return typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value);
}

function openapiPaths(url: string | undefined, document: Record<string, unknown>, paths: Record<string, unknown>): HTMLElement {
  const info = (document.info ?? undefined) as { title?: unknown; version?: unknown } | undefined;
  const rows = Object.entries(paths).flatMap(([path, item]) =>
    Object.entries(item !== null && typeof item === 'object' ? item : {})
      .filter(([method]) => HTTP_METHODS.includes(method))
      .map(([method, op]: [string, { summary?: unknown; operationId?: unknown } | null | undefined]) =>
        h('tr', {}, h('td', {}, h('span', { class: `method ${method}` }, method.toUpperCase())), h('td', {}, h('code', {}, path)), h('td', {}, text(op?.summary ?? op?.operationId))),
      ),
  );
  return h(
    'div',
    { class: 'openapi', id: 'openapi-paths' },
    h('p', {}, info?.title ? h('strong', {}, text(info.title)) : null, info?.version ? ` ${text(info.version)}` : null, url ? h('span', { class: 'muted' }, ` from ${text(url)}`) : null),
    h('table', {}, h('thead', {}, h('tr', {}, ['Method', 'Path', 'Summary'].map((t) => h('th', {}, t)))), h('tbody', {}, rows)),
  );
}
