// Pieces the pages share.
import { h, replace, uniqueId } from '../dom.js';

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

// A button that asks once more before it acts: the question, "Yes, <text>"
// and "No" take its place. With `option` (a label) the question carries a
// checkbox, unchecked, and action(checked) is told its state.
export function confirmButton(text, question, action, out, { option, testid } = {}) {
  const box = h('span', { class: 'confirm' });
  const first = h('button', { type: 'button', class: 'danger', 'data-testid': testid }, text);
  first.addEventListener('click', () => {
    const check = option ? h('input', { type: 'checkbox', id: uniqueId('confirm-option'), 'data-testid': testid && `${testid}-option` }) : null;
    const yes = actionButton(`Yes, ${text.toLowerCase()}`, () => action(check ? check.checked : false),
      { kind: 'danger', out, testid: testid && `${testid}-yes` });
    const no = h('button', { type: 'button', onclick: () => replace(box, first) }, 'No');
    replace(box, h('span', {}, question, ' '),
      check ? h('span', { class: 'check' }, check, h('label', { for: check.id }, option)) : null,
      yes, ' ', no);
    yes.focus();
  });
  return replace(box, first);
}

// What a delete with delete_audiences did at the destination, after `title`
// ("Export vip deleted."): the lists deleted and the lists kept, each as the
// server names it ("VIP (10000000001)", a kept one with why). Without
// `asked`, just the title.
export function deletionResult(title, response, asked) {
  if (!asked) return title;
  const deleted = (response && response.deletedAudiences) || [];
  const kept = (response && response.keptAudiences) || [];
  const items = (id, names) => h('ul', { id }, names.map((n) => h('li', {}, n)));
  return h('div', { id: 'deletion-result' },
    h('p', {}, title),
    deleted.length
      ? [h('p', {}, `Deleted in the destination (${deleted.length}):`), items('deleted-audiences', deleted)]
      : h('p', {}, 'No list was deleted in the destination.'),
    kept.length
      ? [h('p', {}, `Kept in the destination (${kept.length}):`), items('kept-audiences', kept)]
      : null);
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
