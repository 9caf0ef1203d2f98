// The exportd console: a single-page app on the HTTP/JSON API. Routes are
// paths (exportd serves index.html for every path outside /v1/), pages are
// modules under pages/, each a function that returns its DOM.
import { call, setToken, token, onUnauthenticated } from './api.js';
import { h, replace } from './dom.js';
import { role as roleName } from './format.js';
import { errorNode } from './pages/common.js';
import * as connections from './pages/connections.js';
import * as segments from './pages/segments.js';
import * as exportsPage from './pages/exports.js';
import * as runs from './pages/runs.js';
import * as audit from './pages/audit.js';
import * as destinations from './pages/destinations.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const status = document.getElementById('status');

// [pattern, page function, nav section]. A page is (ctx, params) => Node | Promise<Node>.
const ROUTES = [
  [/^\/connections\/?$/, connections.list, 'connections'],
  [/^\/connections\/new$/, connections.create, 'connections'],
  [/^\/connections\/([^/]+)$/, connections.detail, 'connections'],
  [/^\/segments\/?$/, segments.list, 'segments'],
  [/^\/segments\/([^/]+)$/, segments.detail, 'segments'],
  [/^\/exports\/?$/, exportsPage.list, 'exports'],
  [/^\/exports\/new$/, exportsPage.edit, 'exports'],
  [/^\/exports\/([^/]+)\/edit$/, exportsPage.edit, 'exports'],
  [/^\/exports\/([^/]+)$/, exportsPage.detail, 'exports'],
  [/^\/runs\/?$/, runs.history, 'runs'],
  [/^\/runs\/([^/]+)$/, runs.detail, 'runs'],
  [/^\/audit\/?$/, audit.list, 'audit'],
  [/^\/destinations\/?$/, destinations.list, 'destinations'],
];

const SECTIONS = [
  ['exports', 'Exports', '/exports', () => true],
  ['runs', 'Runs', '/runs', () => true],
  ['segments', 'Segments', '/segments', () => true],
  ['connections', 'Connections', '/connections', (me) => me.role !== 'ROLE_VIEWER'],
  ['destinations', 'Destinations', '/destinations', () => true],
  ['audit', 'Audit log', '/audit', (me) => me.role === 'ROLE_ADMIN'],
];

let me = null;
// Aborted when the page changes, so that a page's streams and timers stop.
let pageController = null;

function context(signal) {
  return {
    me,
    isAdmin: me.role === 'ROLE_ADMIN',
    // Admins and contributors change things; viewers only read.
    canWrite: me.role === 'ROLE_ADMIN' || me.role === 'ROLE_CONTRIBUTOR',
    signal,
    navigate,
    notify,
  };
}

export function navigate(path, { replaceState = false } = {}) {
  if (replaceState) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  route();
}

// A message in the live region (screen readers hear it): text, or nodes.
function notify(content, kind = 'info') {
  replace(status, h('div', { class: `notice ${kind}` }, content));
}

function renderNav(section) {
  replace(nav, h('ul', {}, SECTIONS.filter(([, , , visible]) => visible(me)).map(([id, title, href]) =>
    h('li', {}, h('a', { href, 'aria-current': id === section ? 'page' : null }, title)))));
  replace(who,
    h('span', { class: 'principal', 'data-testid': 'principal' }, me.principal),
    ' ',
    h('span', { class: `role role-${roleName(me.role).toLowerCase()}`, 'data-testid': 'role' }, roleName(me.role)),
    ' ',
    h('button', { type: 'button', class: 'link', id: 'sign-out', onclick: signOut }, 'Sign out'));
}

async function route() {
  if (pageController) pageController.abort();
  pageController = new AbortController();
  const { signal } = pageController;
  replace(status);
  if (!token() || !me) {
    const message = signInMessage;
    signInMessage = '';
    if (!(await signIn(message))) return;
  }
  let path = location.pathname;
  if (path === '/' || path === '/index.html') {
    navigate('/exports', { replaceState: true });
    return;
  }
  for (const [pattern, page, section] of ROUTES) {
    const match = pattern.exec(path);
    if (!match) continue;
    renderNav(section);
    replace(main, h('p', { class: 'loading' }, 'Loading…'));
    try {
      const node = await page(context(signal), match.slice(1).map(decodeURIComponent));
      if (!signal.aborted) replace(main, node);
    } catch (e) {
      if (signal.aborted) return;
      replace(main, h('h1', {}, 'Something went wrong'), errorNode(e));
    }
    const heading = main.querySelector('h1');
    if (heading) {
      heading.setAttribute('tabindex', '-1');
      heading.focus({ preventScroll: true });
      document.title = `${heading.textContent} · exportd`;
    }
    return;
  }
  renderNav('');
  replace(main, h('h1', {}, 'Not found'), h('p', {}, 'No page has this address. '),
    h('p', {}, h('a', { href: '/exports' }, 'Go to the exports')));
}

// Shows the sign-in form until a token is accepted; resolves true once signed in.
async function signIn(message) {
  if (token()) {
    try {
      me = await call('AuditService', 'WhoAmI', {});
      return true;
    } catch (e) {
      setToken('');
      message = e.message;
    }
  }
  replace(nav);
  replace(who);
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off', required: true, spellcheck: 'false' });
  const error = h('div', { 'aria-live': 'polite' }, message ? h('p', { class: 'notice error' }, message) : null);
  const form = h('form', { class: 'card signin', id: 'signin' },
    h('h1', {}, 'Sign in to exportd'),
    h('p', {}, 'Paste an exportd API token (a line of the tokens file, or DATA_DIR/admin.token). ',
      'It is kept in this tab only (sessionStorage) and sent as a bearer token; it never goes into a URL or cookie.'),
    h('div', { class: 'field' }, h('label', { for: 'token' }, 'Token'), input),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')),
    error);
  replace(main, form);
  document.title = 'Sign in · exportd';
  input.focus();
  return new Promise((resolve) => {
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      setToken(input.value.trim());
      try {
        me = await call('AuditService', 'WhoAmI', {});
        resolve(true);
        route();
      } catch (e) {
        setToken('');
        replace(error, h('p', { class: 'notice error', role: 'alert' }, e.message));
      }
    });
  }).then(() => false);
}

function signOut() {
  setToken('');
  me = null;
  route();
}

// A token that stops working (revoked, exportd restarted with other tokens):
// back to the sign-in form, saying why.
let signInMessage = '';
onUnauthenticated((e) => {
  if (!me) return;  // the sign-in form shows its own errors
  setToken('');
  me = null;
  signInMessage = e.message;
  route();
});

// Links inside the app change the page without a reload; anything with a
// modifier key, a target or another origin is left to the browser.
document.addEventListener('click', (event) => {
  const a = event.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download') || event.defaultPrevented) return;
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/v1/')) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', route);
// A page's calls are aborted when the page changes; that is no error.
window.addEventListener('unhandledrejection', (event) => {
  if (event.reason && event.reason.name === 'AbortError') event.preventDefault();
});
route();
