// The page of one connector (or of a new one): edit it in a form or as YAML, save it with
// optimistic concurrency, test and introspect it, read its history and roll it back, delete it.
import { parse } from 'yaml';
import { api, ApiError, type ConnectorView, type FieldIssue, type HistoryEntry, type JsonSchema, type Session, type TypeInfo, type TypesAnswer } from './api';
import { CodeView, type TextProblem } from './code-view';
import { h, replace, when } from './dom';
import { renderIntrospection } from './introspection';
import { otherKeysField, renderField, type FormContext, type Path } from './schema-form';
import { matchesSensitive, sensitivePatterns } from './sensitive';
import { fromYaml, rangeOfPath, toYaml, YamlProblem } from './yaml-text';

export interface PageContext {
  session: Session;
  types: TypesAnswer;
  host: HTMLElement;
  guarded: (action: () => Promise<void>, show: (message: string) => void) => Promise<void>;
  navigate: (hash: string) => void;
  /** Signs in again with `token` (the page's session box follows); the page stays as it is. */
  signIn: (token: string) => Promise<Session>;
}

/** The keys of a connector document, in the order people read them. */
/**
 * The keys of a connector document, in the order people read them: those of the definition schema
 * the API serves, so a key added to connectors later (say `limits`) is shown, edited and saved too.
 */
function documentKeys(types: TypesAnswer): string[] {
  return Object.keys((types.definition_json_schema.properties ?? {}) as Record<string, unknown>);
}

/** The keys the form lays out itself; every other key of the definition schema gets a generated field. */
const LAID_OUT = ['name', 'type', 'description', 'value'];

/** The document a view describes: what a definition file holds, without version and audit fields or empty defaults. */
export function documentOf(view: ConnectorView, keys: readonly string[]): Record<string, unknown> {
  const source = view as unknown as Record<string, unknown>;
  const document: Record<string, unknown> = {};
  for (const key of keys) {
    const value = source[key];
    if (value === undefined || value === null) continue;
    if (key !== 'value' && ((Array.isArray(value) && value.length === 0) || value === '')) continue;
    document[key] = value;
  }
  return document;
}

type Tab = 'edit' | 'test' | 'introspect' | 'history';

export class ConnectorPage {
  dirty = false;
  private mode: 'form' | 'code' = 'form';
  private document: Record<string, unknown>;
  private readonly code: CodeView;
  private readonly formHost = h('div', { class: 'form-host', id: 'form' });
  private readonly codeHost = h('div', { class: 'code-host', id: 'code', hidden: true });
  private readonly banner = h('div', { class: 'banner', id: 'banner', role: 'status', hidden: true });
  /** The code view's text when the user last left it, with the document it meant: returning unchanged keeps comments and layout. */
  private codeSnapshot?: { text: string; json: string };
  private readonly readOnly: boolean;

  private constructor(
    private readonly ctx: PageContext,
    private view: ConnectorView | undefined,
    document: Record<string, unknown>,
  ) {
    this.document = document;
    this.readOnly = ctx.session.access !== 'write';
    this.code = new CodeView({ readOnly: this.readOnly, onChange: () => (this.dirty = true) });
  }

  get hash(): string {
    return this.view ? `#/c/${encodeURIComponent(this.view.name)}` : '#/new';
  }

  static async open(name: string, ctx: PageContext): Promise<ConnectorPage> {
    const view = await api.get(name);
    const page = new ConnectorPage(ctx, view, documentOf(view, documentKeys(ctx.types)));
    page.render('edit');
    return page;
  }

  static create(ctx: PageContext, type?: string): ConnectorPage {
    const known = ctx.types.types.find((t) => t.name === type?.toUpperCase()) ?? ctx.types.types[0];
    const page = new ConnectorPage(ctx, undefined, { name: '', type: known.name, description: '', value: {} });
    page.render('edit');
    return page;
  }

  private get typeInfo(): TypeInfo | undefined {
    const type = String(this.document.type ?? '').toUpperCase();
    return this.ctx.types.types.find((t) => t.name === type);
  }

  // ---- layout ----

  private render(tab: Tab): void {
    const view = this.view;
    const tabs: Array<[Tab, string]> = view
      ? [
          ['edit', 'Edit'],
          ['test', 'Test'],
          ['introspect', 'Introspect'],
          ['history', 'History'],
        ]
      : [['edit', 'New connector']];
    const panel = h('div', { class: 'panel', id: `panel-${tab}` });
    const ui = this.ctx.session.temporal_ui;
    replace(
      this.ctx.host,
      h(
        'section',
        { class: 'connector-view' },
        h('p', { class: 'crumbs' }, h('a', { href: '#/' }, '← Connectors')),
        h(
          'div',
          { class: 'title' },
          h('h1', { id: 'connector-name' }, view ? view.name : 'New connector'),
          view ? h('span', { class: 'badge' }, view.type) : null,
          view ? h('span', { class: 'muted', id: 'connector-version' }, `version ${view.version}`) : null,
        ),
        view
          ? h(
              'p',
              { class: 'meta' },
              `Last changed ${when(view.created_at)}${view.created_by ? ` by ${view.created_by}` : ''}`,
              ui
                ? [
                    ' · ',
                    h(
                      'a',
                      {
                        id: 'temporal-link',
                        href: `${ui.url}/namespaces/${encodeURIComponent(ui.namespace)}/workflows?query=${encodeURIComponent(`ConnectorName="${view.name}"`)}`,
                        target: '_blank',
                        rel: 'noopener noreferrer',
                      },
                      'Connections in the Temporal Web UI ↗',
                    ),
                  ]
                : null,
            )
          : null,
        h(
          'nav',
          { class: 'tabs', role: 'tablist' },
          tabs.map(([id, label]) =>
            h('button', { type: 'button', role: 'tab', id: `tab-${id}`, 'aria-selected': String(id === tab), onclick: () => this.switchTab(id) }, label),
          ),
        ),
        panel,
      ),
    );
    if (tab === 'edit') this.renderEdit(panel);
    else if (tab === 'test') this.renderRun(panel, 'test');
    else if (tab === 'introspect') this.renderRun(panel, 'introspect');
    else void this.renderHistory(panel);
  }

  private switchTab(tab: Tab): void {
    if (tab !== 'edit' && this.dirty && !window.confirm('Leave the editor? Your unsaved changes will be lost.')) return;
    if (tab !== 'edit' && this.dirty) this.reset();
    this.render(tab);
  }

  /** Drops unsaved edits: back to the connector as last loaded, in the form and in the code view. */
  private reset(): void {
    this.document = this.view ? documentOf(this.view, documentKeys(this.ctx.types)) : this.document;
    this.codeSnapshot = undefined;
    // Even when hidden behind the form, the editor is in the page: what was typed there must go too.
    this.code.reset(toYaml(this.document));
    this.dirty = false;
  }

  // ---- edit ----

  private renderEdit(panel: HTMLElement): void {
    const canWrite = !this.readOnly;
    const modeButton = (mode: 'form' | 'code', label: string) =>
      h('button', { type: 'button', id: `mode-${mode}`, 'aria-pressed': String(this.mode === mode), onclick: () => this.switchMode(mode) }, label);
    replace(
      panel,
      h(
        'div',
        { class: 'toolbar' },
        h('div', { class: 'switch' }, modeButton('form', 'Form'), modeButton('code', 'Code (YAML)')),
        h('span', { class: 'spacer' }),
        this.readOnly ? h('span', { class: 'muted', id: 'read-only-note' }, 'Read-only token: this connector cannot be changed here.') : null,
        this.view?.limits
          ? h(
              'button',
              {
                type: 'button',
                id: 'reset-limits',
                disabled: !canWrite,
                title: canWrite ? 'End the pause a 429 Too Many Requests set: calls go ahead at once' : 'a read-only token cannot reset limits',
                onclick: () => void this.resetLimits(),
              },
              'Reset limits',
            )
          : null,
        this.view ? h('button', { type: 'button', id: 'delete', class: 'danger', disabled: !canWrite, onclick: () => this.confirmDelete() }, 'Delete') : null,
        h('button', { type: 'button', id: 'save', class: 'primary', disabled: !canWrite, title: canWrite ? undefined : 'a read-only token cannot save', onclick: () => void this.save() }, this.view ? 'Save' : 'Create'),
      ),
      this.banner,
      this.formHost,
      this.codeHost,
    );
    this.hideBanner();
    if (!this.codeHost.contains(this.code.element)) this.codeHost.appendChild(this.code.element);
    this.showMode();
  }

  private showMode(): void {
    this.formHost.hidden = this.mode !== 'form';
    this.codeHost.hidden = this.mode !== 'code';
    if (this.mode === 'form') this.renderForm();
    else this.code.text = this.codeText();
    for (const mode of ['form', 'code']) document.getElementById(`mode-${mode}`)?.setAttribute('aria-pressed', String(this.mode === mode));
  }

  private codeText(): string {
    const json = JSON.stringify(this.document);
    return this.codeSnapshot?.json === json ? this.codeSnapshot.text : toYaml(this.document);
  }

  private switchMode(mode: 'form' | 'code'): void {
    if (mode === this.mode) return;
    this.hideBanner();
    if (mode === 'form') {
      const text = this.code.text;
      let parsed: Record<string, unknown>;
      try {
        parsed = fromYaml(text);
      } catch (err) {
        if (!(err instanceof YamlProblem)) throw err;
        this.code.showProblems([{ message: err.message, line: err.line, column: err.column }]);
        this.showBanner('error', `The YAML has an error at line ${err.line}, column ${err.column}: ${err.message}. Fix it to switch to the form.`);
        return;
      }
      this.document = parsed;
      this.codeSnapshot = { text, json: JSON.stringify(parsed) };
    }
    this.mode = mode;
    this.showMode();
  }

  private renderForm(): void {
    const definition = this.ctx.types.definition_json_schema;
    const defProps = (definition.properties ?? {}) as Record<string, JsonSchema>;
    const type = this.typeInfo;
    // From the type's JSON Schema, as the server derives them: wildcards and header names included.
    const sensitive = type ? sensitivePatterns(type.json_schema) : [];
    const base = {
      root: this.document,
      isSensitive: (path: Path) => path[0] === 'value' && matchesSensitive(path.slice(1), sensitive),
      readOnly: this.readOnly,
      onChange: () => {
        this.dirty = true;
      },
    };
    const defCtx: FormContext = { ...base, refs: refsOf(definition) };
    const isNew = !this.view;
    const typeNames = this.ctx.types.types.map((t) => t.name);
    const currentType = String(this.document.type ?? '');
    const typeSelect = h(
      'select',
      {
        id: 'field-type',
        name: 'type',
        disabled: !isNew || this.readOnly,
        onchange: (e: Event) => {
          // A new connector of another type starts from that type's empty inputs.
          this.document.type = (e.target as HTMLSelectElement).value;
          this.document.value = {};
          this.dirty = true;
          this.renderForm();
        },
      },
      (typeNames.includes(currentType) ? typeNames : [currentType, ...typeNames]).map((t) => h('option', { value: t, selected: t === currentType }, t)),
    );
    const fields: Node[] = [];
    fields.push(
      isNew
        ? renderField(defProps.name, ['name'], defCtx, { required: true })
        : h('div', { class: 'field', 'data-path': 'name' }, h('label', {}, 'name'), h('input', { type: 'text', value: String(this.document.name ?? ''), disabled: true }), h('p', { class: 'field-error', role: 'alert' })),
    );
    fields.push(
      h(
        'div',
        { class: 'field', 'data-path': 'type' },
        h('label', { for: 'field-type' }, 'type', h('span', { class: 'required' }, ' *')),
        typeSelect,
        h('p', { class: 'help' }, type?.description ?? (isNew ? '' : 'The type is changed in the code view.')),
        h('p', { class: 'field-error', role: 'alert' }),
      ),
    );
    fields.push(renderField(defProps.description, ['description'], defCtx));
    if (type) {
      const valueCtx: FormContext = { ...base, refs: refsOf(type.json_schema) };
      fields.push(renderField(type.json_schema, ['value'], valueCtx, { label: `Inputs of ${type.name}` }));
    } else {
      fields.push(h('p', { class: 'error' }, `This API knows no connector type ${currentType}: its inputs are shown as YAML.`));
      fields.push(renderField({}, ['value'], defCtx, { label: 'value' }));
    }
    for (const key of documentKeys(this.ctx.types)) {
      if (!LAID_OUT.includes(key)) fields.push(renderField(defProps[key], [key], defCtx));
    }
    const unknown = Object.keys(this.document).filter((k) => !Object.hasOwn(defProps, k));
    if (unknown.length > 0) {
      // Keys a connector does not have are kept for the API to name in its answer, and shown.
      fields.push(otherKeysField([], defCtx, unknown)!);
    }
    replace(this.formHost, h('form', { class: 'connector-form', onsubmit: (e: Event) => e.preventDefault() }, fields));
  }

  // ---- limits ----

  /** Ends a 429's back-off (`connectors limits reset`); saving the connector would too, but only with a change to save. */
  private async resetLimits(): Promise<void> {
    const view = this.view!;
    this.hideBanner();
    try {
      const { backoff_cleared } = await api.resetLimits(view.name);
      this.showBanner('ok', backoff_cleared ? `Limits reset: the back-off of ${view.name} was cleared; its calls go ahead at once.` : `Limits reset: ${view.name} had no back-off in force.`);
    } catch (err) {
      this.showBanner('error', `Not reset: ${String((err as Error)?.message ?? err)}`);
    }
  }

  // ---- save ----

  private async save(): Promise<void> {
    this.hideBanner();
    this.clearIssues();
    const body = this.mode === 'code' ? { yaml: this.code.text } : { json: this.document };
    const save = document.getElementById('save') as HTMLButtonElement | null;
    if (save) save.disabled = true;
    try {
      const saved = this.view ? await api.update(this.view.name, this.view.version, body) : await api.create(body);
      const created = !this.view;
      this.view = saved;
      this.reset();
      if (created) {
        history.replaceState(null, '', this.hash);
      }
      this.render('edit');
      this.showBanner('ok', `Saved: ${saved.name} is at version ${saved.version}.`);
    } catch (err) {
      if (save) save.disabled = false;
      if (err instanceof ApiError && err.status === 401) return this.signInToSave();
      this.showSaveError(err);
    }
  }

  /**
   * The session ended while the user was editing (it expired, its token was revoked, or they signed
   * out in another tab): going back to the sign-in page would throw the edit away, so the token is
   * asked for here, and the save is tried again.
   */
  private signInToSave(): void {
    const token = h('input', { id: 'sign-in-again-token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
    const error = h('p', { class: 'error', role: 'alert' });
    let signedIn = false;
    const dialog = h(
      'dialog',
      { id: 'sign-in-again', class: 'card' },
      h(
        'form',
        {
          class: 'sign-in-again',
          onsubmit: (e: Event) => {
            e.preventDefault();
            error.textContent = '';
            const value = token.value.trim();
            token.value = '';
            this.ctx.signIn(value).then(
              () => {
                signedIn = true;
                dialog.close();
                void this.save();
              },
              (err: Error) => {
                error.textContent = err instanceof ApiError && err.status === 401 ? 'That token is not valid for this API.' : err.message;
              },
            );
          },
        },
        h('h2', {}, 'Your session has ended'),
        h('p', {}, 'Nothing was saved, and your changes are still here. Sign in again with an API token to save them.'),
        h('label', { for: 'sign-in-again-token' }, 'API token'),
        token,
        error,
        h(
          'div',
          { class: 'toolbar' },
          h('span', { class: 'spacer' }),
          h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel'),
          h('button', { type: 'submit', class: 'primary' }, 'Sign in and save'),
        ),
      ),
    );
    dialog.addEventListener('close', () => {
      dialog.remove();
      if (!signedIn) this.showBanner('error', 'Not saved: your session has ended. Your changes are still here: Save again to sign in and save them.');
    });
    document.body.appendChild(dialog);
    dialog.showModal();
  }

  private showSaveError(err: unknown): void {
    if (!(err instanceof ApiError)) return this.showBanner('error', `Not saved: ${String((err as Error)?.message ?? err)}`);
    if (err.status === 409 && this.view) {
      const current = err.currentVersion;
      this.showBanner(
        'error',
        current
          ? `Not saved: ${this.view.name} was changed by someone else; it is at version ${current}, and you edited version ${this.view.version}. Nothing was overwritten. Reload to see the current version, then make your change again.`
          : `Not saved: ${err.message}`,
        current ? h('button', { type: 'button', id: 'reload', onclick: () => void this.reload() }, 'Reload') : undefined,
      );
      return;
    }
    if (err.issues.length > 0) return this.showIssues(err.issues);
    if (err.line !== undefined && this.mode === 'code') {
      this.code.showProblems([{ message: err.message, line: err.line, column: err.column }]);
      return this.showBanner('error', `Not saved: line ${err.line}, column ${err.column ?? 1}: ${err.message.replace(/^[^:]*:\d+:\d+: /, '')}`);
    }
    this.showBanner('error', `Not saved: ${err.message}`);
  }

  /** Each problem next to its field in the form, or at its line in the code view, and all of them in the banner. */
  private showIssues(issues: FieldIssue[]): void {
    const list = h('ul', { class: 'issues' }, issues.map((i) => h('li', {}, h('code', {}, i.path || '(document)'), ': ', i.message)));
    if (this.mode === 'code') {
      const text = this.code.text;
      const problems: TextProblem[] = issues.map((issue) => {
        const range = rangeOfPath(text, issue.path);
        return { message: `${issue.path || 'document'}: ${issue.message}`, ...(range ?? { line: 1 }) };
      });
      this.code.showProblems(problems);
      const lines = problems.map((p) => (p.from !== undefined ? this.code.lineAt(p.from) : 1));
      const listed = h('ul', { class: 'issues' }, issues.map((i, n) => h('li', {}, `line ${lines[n]}: `, h('code', {}, i.path || '(document)'), ': ', i.message)));
      return this.showBanner('error', `Not saved: ${issues.length === 1 ? 'one problem' : `${issues.length} problems`}.`, listed);
    }
    let first: HTMLElement | undefined;
    for (const issue of issues) {
      const field = this.fieldFor(issue.path);
      const slot = field?.querySelector(':scope > .field-error, :scope > fieldset > .field-error, :scope > .object > .field-error');
      if (field && slot) {
        slot.textContent = slot.textContent ? `${slot.textContent}; ${issue.message}` : issue.message;
        field.classList.add('has-error');
        first ??= field;
      }
    }
    first?.scrollIntoView({ block: 'center' });
    this.showBanner('error', `Not saved: ${issues.length === 1 ? 'one problem' : `${issues.length} problems`}.`, list);
  }

  /** The field of `path`, or of the nearest enclosing path the form shows. */
  private fieldFor(path: string): HTMLElement | undefined {
    const parts = path === '' ? [] : path.split('.');
    for (let n = parts.length; n >= 0; n--) {
      const key = parts.slice(0, n).join('.');
      const found = [...this.formHost.querySelectorAll<HTMLElement>('[data-path]')].find((e) => e.dataset.path === key && e.classList.contains('field'));
      if (found) return found;
    }
    return undefined;
  }

  private clearIssues(): void {
    this.code.clearProblems();
    for (const slot of this.formHost.querySelectorAll('.field-error')) slot.textContent = '';
    for (const field of this.formHost.querySelectorAll('.has-error')) field.classList.remove('has-error');
  }

  private async reload(): Promise<void> {
    await this.ctx.guarded(
      async () => {
        const view = await api.get(this.view!.name);
        this.view = view;
        this.reset();
        this.render('edit');
        this.showBanner('ok', `Reloaded: version ${view.version}.`);
      },
      (message) => this.showBanner('error', message),
    );
  }

  // ---- delete ----

  private confirmDelete(): void {
    const view = this.view!;
    const dialog = h(
      'dialog',
      { id: 'confirm-delete', class: 'card' },
      h('h2', {}, `Delete ${view.name}?`),
      h('p', {}, 'Workflows that call it fail with Connector.NotFound from their next call. Its history stays for audit.'),
      h(
        'div',
        { class: 'toolbar' },
        h('span', { class: 'spacer' }),
        h('button', { type: 'button', id: 'cancel-delete', onclick: () => dialog.close() }, 'Cancel'),
        h(
          'button',
          {
            type: 'button',
            id: 'confirm-delete-button',
            class: 'danger',
            onclick: () => {
              dialog.close();
              void this.ctx.guarded(
                async () => {
                  await api.remove(view.name, view.version);
                  this.dirty = false;
                  this.ctx.navigate('#/');
                },
                (message) => this.showBanner('error', `Not deleted: ${message}`),
              );
            },
          },
          'Delete',
        ),
      ),
    );
    dialog.addEventListener('close', () => dialog.remove());
    document.body.appendChild(dialog);
    dialog.showModal();
  }

  // ---- test and introspect ----

  private renderRun(panel: HTMLElement, action: 'test' | 'introspect'): void {
    const result = h('div', { class: 'result', id: `${action}-result`, 'aria-live': 'polite' });
    const button = h(
      'button',
      {
        type: 'button',
        class: 'primary',
        id: `run-${action}`,
        onclick: () => {
          button.disabled = true;
          replace(result, h('p', { class: 'muted' }, action === 'test' ? 'Testing…' : 'Introspecting…'));
          void this.ctx
            .guarded(
              async () => {
                if (action === 'test') {
                  const outcome = await api.test(this.view!.name);
                  replace(
                    result,
                    h(
                      'p',
                      { class: outcome.ok ? 'outcome ok' : 'outcome failed', 'data-ok': String(outcome.ok) },
                      h('strong', {}, outcome.ok ? 'ok' : 'failed'),
                      `: ${outcome.message}`,
                      outcome.latency_ms !== undefined ? h('span', { class: 'muted' }, ` (${outcome.latency_ms} ms)`) : null,
                    ),
                  );
                } else {
                  replace(result, renderIntrospection(await api.introspect(this.view!.name), parse));
                }
              },
              (message) => replace(result, h('p', { class: 'outcome failed', 'data-ok': 'false' }, h('strong', {}, 'failed'), `: ${message}`)),
            )
            .finally(() => (button.disabled = false));
        },
      },
      action === 'test' ? 'Run test' : 'Introspect',
    );
    const explain =
      action === 'test'
        ? 'Runs the connector type’s cheap liveness check with the connector as stored, its Vault secrets applied: a request to its health path, a models list, or SELECT 1.'
        : 'Reads what the system offers: a database’s schemas, tables and columns, or a REST API’s OpenAPI document.';
    replace(panel, h('div', { class: 'toolbar' }, button, h('span', { class: 'muted' }, explain)), result);
  }

  // ---- history ----

  private async renderHistory(panel: HTMLElement): Promise<void> {
    const view = this.view!;
    replace(panel, h('p', { class: 'muted' }, 'Loading history…'));
    await this.ctx.guarded(
      async () => {
        const versions = await api.history(view.name);
        const latest = versions[0]?.version ?? view.version;
        const shown = h('div', { class: 'version-shown', id: 'version-shown' });
        replace(
          panel,
          h(
            'table',
            { class: 'history', id: 'history' },
            h('thead', {}, h('tr', {}, ['Version', 'When', 'Who', 'Changed', ''].map((t) => h('th', {}, t)))),
            h(
              'tbody',
              {},
              versions.map((v) => this.historyRow(v, latest, shown)),
            ),
          ),
          shown,
        );
      },
      (message) => replace(panel, h('p', { class: 'error', role: 'alert' }, message)),
    );
  }

  private historyRow(v: HistoryEntry, latest: number, shown: HTMLElement): HTMLElement {
    const canWrite = !this.readOnly;
    return h(
      'tr',
      { 'data-version': String(v.version) },
      h('td', { class: 'num' }, String(v.version), v.version === latest ? h('span', { class: 'badge' }, 'current') : null),
      h('td', {}, h('time', { datetime: v.created_at }, when(v.created_at))),
      h('td', {}, v.created_by),
      h('td', { class: 'changed' }, v.deleted ? h('em', {}, 'deleted') : v.changed.length > 0 ? v.changed.join(', ') : h('span', { class: 'muted' }, v.version === 1 ? 'created' : 'nothing')),
      h(
        'td',
        { class: 'actions' },
        h(
          'button',
          {
            type: 'button',
            class: 'small',
            onclick: () =>
              void this.ctx.guarded(
                async () => {
                  const old = await api.get(v.name, v.version);
                  replace(shown, h('h3', {}, `Version ${v.version}`), h('pre', { class: 'yaml' }, toYaml(documentOf(old, documentKeys(this.ctx.types)))));
                },
                (message) => replace(shown, h('p', { class: 'error' }, message)),
              ),
          },
          'View',
        ),
        v.version !== latest && !v.deleted
          ? h(
              'button',
              {
                type: 'button',
                class: 'small',
                'data-rollback': String(v.version),
                disabled: !canWrite,
                onclick: () =>
                  void this.ctx.guarded(
                    async () => {
                      const restored = await api.rollback(v.name, v.version, latest);
                      this.view = restored;
                      this.reset();
                      this.render('history');
                    },
                    (message) => replace(shown, h('p', { class: 'error', role: 'alert' }, `Not rolled back: ${message}`)),
                  ),
              },
              `Roll back to ${v.version}`,
            )
          : null,
      ),
    );
  }

  // ---- banner ----

  private showBanner(kind: 'ok' | 'error', message: string, ...extra: Array<Node | undefined>): void {
    this.banner.className = `banner ${kind}`;
    this.banner.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    replace(this.banner, h('p', {}, message), ...extra);
    this.banner.hidden = false;
  }

  private hideBanner(): void {
    this.banner.hidden = true;
    replace(this.banner);
  }
}

/** Resolves `#/$defs/<name>` references of one schema document; other keys of the referring schema (its description) win. */
function refsOf(root: JsonSchema): (schema: JsonSchema) => JsonSchema {
  const defs = (root.$defs ?? {}) as Record<string, JsonSchema>;
  return (schema) => {
    const ref = schema?.$ref;
    if (typeof ref !== 'string' || !ref.startsWith('#/$defs/')) return schema ?? {};
    const { $ref: _ignored, ...rest } = schema;
    return { ...(defs[ref.slice('#/$defs/'.length)] ?? {}), ...rest };
  };
}
