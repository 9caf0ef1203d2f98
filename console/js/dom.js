// Building the DOM. Every value goes in as text (textContent, attributes set
// one by one); nothing here parses HTML, so no value can inject markup.

// h('button', {class: 'primary', onclick: f}, 'Save') -> <button>.
// Attributes: `class`, `dataset`, `on<event>` (listeners), booleans (present
// when true), anything else via setAttribute. Children: strings and numbers
// become text nodes; null, undefined and false are skipped; arrays are
// flattened.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (name === 'value') {
      el.value = value;
    } else if (name === 'checked') {
      el.checked = Boolean(value);
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// Replaces `el`'s children.
export function replace(el, ...children) {
  return append(clear(el), children);
}

let nextId = 0;
export function uniqueId(prefix) {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

// A labelled form field: the label's `for` points at the control.
export function field(labelText, control, help) {
  if (!control.id) control.id = uniqueId('f');
  const helpEl = help ? h('p', { class: 'help', id: `${control.id}-help` }, help) : null;
  if (helpEl) control.setAttribute('aria-describedby', helpEl.id);
  return h('div', { class: 'field' }, h('label', { for: control.id }, labelText), control, helpEl);
}

// A table: columns [{title, cell(row) -> node|string, class}], rows.
export function table(columns, rows, { empty = 'Nothing here yet.', caption } = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap' },
    h('table', {},
      caption ? h('caption', {}, caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.class }, c.title)))),
      h('tbody', {}, rows.map((r) => h('tr', {}, columns.map((c) => h('td', { class: c.class, 'data-label': c.title }, h('span', {}, c.cell(r)))))))));
}

// A progress bar with a text label: {el, set(fraction, text)}.
export function progressBar(label) {
  const bar = h('div', { class: 'bar-fill' });
  const text = h('span', { class: 'bar-text' });
  const el = h('div', {
    class: 'bar', role: 'progressbar', 'aria-label': label,
    'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0',
  }, bar, text);
  return {
    el,
    set(fraction, caption) {
      const percent = Math.max(0, Math.min(100, Math.round(fraction * 1000) / 10));
      bar.style.width = `${percent}%`;  // element.style from JS: allowed by the CSP
      el.setAttribute('aria-valuenow', String(percent));
      text.textContent = caption || `${percent}%`;
    },
  };
}
