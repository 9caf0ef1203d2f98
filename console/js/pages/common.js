// Pieces the pages share.
import { h } from '../dom.js';

export function pageHeader(title, ...actions) {
  return h('div', { class: 'page-header' }, h('h1', {}, title),
    actions.length ? h('div', { class: 'actions' }, actions) : null);
}

export function link(href, text) {
  return h('a', { href }, text);
}

// A button that runs `action` once at a time: disabled while it runs, its
// error shown in `out` (or thrown away when none).
export function actionButton(text, action, { kind = '', id, out, testid } = {}) {
  const button = h('button', { type: 'button', class: kind, id, 'data-testid': testid }, text);
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await action(button);
    } catch (e) {
      if (out) out.replaceChildren(errorNode(e));
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

export function errorNode(e) {
  return h('div', { class: 'notice error', role: 'alert' },
    h('strong', {}, e.code ? `${e.code}: ` : 'Error: '), e.message || String(e));
}

export function okNode(text) {
  return h('div', { class: 'notice ok', role: 'status' }, text);
}

export function definitionList(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

export function stateBadge(state, text) {
  const name = String(state || '').replace('RUN_STATE_', '').toLowerCase();
  return h('span', { class: `badge state-${name}`, 'data-state': name }, text);
}

// A destination's data privacy and compliance statement (from its manifest)
// as <p> elements, one per paragraph: the manifest separates them by a blank
// line.
export function statementParagraphs(destination) {
  return String((destination && destination.privacyStatement) || '')
    .split(/\n\s*\n/).map((p) => p.trim()).filter(Boolean).map((p) => h('p', {}, p));
}
