// The connector console: sign-in, the list of connectors, and the page of one connector. Routes live
// in the URL's fragment (`#/`, `#/new`, `#/c/<name>`), which never carries a token or a value.
import { api, ApiError, type ConnectorView, type Session, type TypesAnswer } from './api';
import { ConnectorPage } from './connector-page';
import { h, replace, when } from './dom';

const app = document.getElementById('app')!;
const sessionBox = document.getElementById('session')!;

let session: Session | undefined;
let types: TypesAnswer | undefined;
let page: ConnectorPage | undefined;

/** Runs an action of the page; a session that ended sends the user back to sign-in, anything else is shown. */
export async function guarded(action: () => Promise<void>, show: (message: string) => void): Promise<void> {
  try {
    await action();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return signedOut('Your session has ended (or its token was revoked): sign in again.');
    show(err instanceof Error ? err.message : String(err));
  }
}

function signedOut(message?: string): void {
  session = undefined;
  types = undefined;
  page = undefined;
  replace(sessionBox);
  showSignIn(message);
}

function showSignIn(message?: string): void {
  const token = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const error = h('p', { class: 'error', role: 'alert' }, message ?? '');
  const form = h(
    'form',
    {
      id: 'sign-in',
      class: 'card sign-in',
      onsubmit: (e: Event) => {
        e.preventDefault();
        error.textContent = '';
        const value = token.value.trim();
        // The token goes to the API once, in a header; the page keeps only the HttpOnly cookie it gets back.
        token.value = '';
        api.signIn(value).then(
          (s) => {
            session = s;
            void route();
          },
          (err: Error) => {
            error.textContent = err instanceof ApiError && err.status === 401 ? 'That token is not valid for this API.' : err.message;
          },
        );
      },
    },
    h('h1', {}, 'Sign in'),
    h('label', { for: 'token' }, 'API token'),
    token,
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
    error,
    h(
      'p',
      { class: 'help' },
      'A token of TC_API_TOKENS (read-write) or TC_API_READ_TOKENS (read-only). It is exchanged for a session cookie that scripts cannot read and that ends with the browser; the token itself is kept nowhere in this page.',
    ),
  );
  replace(app, form);
  token.focus();
}

function showSessionBox(s: Session): void {
  replace(
    sessionBox,
    h('span', { class: `badge ${s.access === 'write' ? 'rw' : 'ro'}`, id: 'access' }, s.access === 'write' ? 'read-write' : 'read-only'),
    h(
      'button',
      {
        type: 'button',
        class: 'link',
        id: 'sign-out',
        onclick: () => void api.signOut().finally(() => signedOut('Signed out.')),
      },
      'Sign out',
    ),
  );
}

async function route(): Promise<void> {
  if (!session) return showSignIn();
  showSessionBox(session);
  if (page?.dirty && !window.confirm('Leave this connector? Your unsaved changes will be lost.')) {
    history.replaceState(null, '', page.hash);
    return;
  }
  page = undefined;
  const hash = location.hash || '#/';
  await guarded(
    async () => {
      types ??= await api.types();
      if (hash.startsWith('#/c/')) {
        page = await ConnectorPage.open(decodeURIComponent(hash.slice(4)), { session: session!, types: types!, host: app, guarded, navigate, signIn: signInAgain });
      } else if (hash.startsWith('#/new')) {
        const type = new URLSearchParams(hash.split('?')[1] ?? '').get('type') ?? undefined;
        page = ConnectorPage.create({ session: session!, types: types!, host: app, guarded, navigate, signIn: signInAgain }, type);
      } else {
        await showList();
      }
    },
    (message) => replace(app, h('p', { class: 'error', role: 'alert' }, message)),
  );
}

/** Signing in again from a page that keeps its edits (its session ended while they were made). */
async function signInAgain(token: string): Promise<Session> {
  session = await api.signIn(token);
  showSessionBox(session);
  return session;
}

function navigate(hash: string): void {
  if (location.hash === hash) void route();
  else location.hash = hash;
}

const filters = { name: '', type: '' };

async function showList(): Promise<void> {
  const connectors = await api.list();
  const tbody = h('tbody');
  const count = h('span', { class: 'muted' });
  const draw = () => {
    const name = filters.name.trim().toLowerCase();
    const shown = connectors.filter((c) => (!name || c.name.includes(name)) && (!filters.type || c.type === filters.type));
    replace(tbody, shown.length === 0 ? h('tr', {}, h('td', { colspan: 6, class: 'muted' }, connectors.length === 0 ? 'No connectors yet.' : 'No connector matches the filter.')) : shown.map(row));
    count.textContent = `${shown.length} of ${connectors.length}`;
  };
  const typeNames = [...new Set([...types!.types.map((t) => t.name), ...connectors.map((c) => c.type)])].sort();
  const nameFilter = h('input', {
    type: 'search',
    id: 'filter-name',
    placeholder: 'Filter by name',
    'aria-label': 'Filter by name',
    value: filters.name,
    oninput: (e: Event) => {
      filters.name = (e.target as HTMLInputElement).value;
      draw();
    },
  });
  const typeFilter = h(
    'select',
    {
      id: 'filter-type',
      'aria-label': 'Filter by type',
      onchange: (e: Event) => {
        filters.type = (e.target as HTMLSelectElement).value;
        draw();
      },
    },
    h('option', { value: '' }, 'All types'),
    typeNames.map((t) => h('option', { value: t, selected: t === filters.type }, t)),
  );
  const canWrite = session!.access === 'write';
  replace(
    app,
    h(
      'section',
      { class: 'list-view' },
      h(
        'div',
        { class: 'toolbar' },
        h('h1', {}, 'Connectors'),
        nameFilter,
        typeFilter,
        count,
        h('span', { class: 'spacer' }),
        canWrite ? h('a', { class: 'button primary', href: '#/new', id: 'new-connector' }, 'New connector') : h('span', { class: 'muted' }, 'Read-only: connectors can be viewed and tested, not changed.'),
      ),
      h(
        'table',
        { class: 'connectors', id: 'connectors' },
        h('thead', {}, h('tr', {}, ['Name', 'Type', 'Description', 'Version', 'Last change', 'Changed by'].map((t) => h('th', {}, t)))),
        tbody,
      ),
    ),
  );
  draw();
}

function row(c: ConnectorView): HTMLElement {
  return h(
    'tr',
    { 'data-name': c.name },
    h('td', {}, h('a', { href: `#/c/${encodeURIComponent(c.name)}` }, c.name)),
    h('td', {}, h('span', { class: 'badge' }, c.type)),
    h('td', { class: 'description' }, c.description),
    h('td', { class: 'num' }, String(c.version)),
    h('td', {}, h('time', { datetime: c.created_at }, when(c.created_at))),
    h('td', {}, c.created_by),
  );
}

window.addEventListener('hashchange', () => void route());
window.addEventListener('beforeunload', (e) => {
  if (page?.dirty) e.preventDefault();
});

api.session().then(
  (s) => {
    session = s;
    void route();
  },
  (err: unknown) => {
    if (err instanceof ApiError && err.status === 401) showSignIn();
    else replace(app, h('p', { class: 'error', role: 'alert' }, err instanceof Error ? err.message : String(err)));
  },
);
