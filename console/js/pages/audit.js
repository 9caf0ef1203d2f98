// The audit log (admins): every mutation, newest first. ListAuditEntries has
// no filter, so the filters here apply in the browser to the pages loaded so
// far; "Load more" fetches older pages.
import { call } from '../api.js';
import { h, table, replace, field } from '../dom.js';
import { time, role } from '../format.js';
import { pageHeader } from './common.js';

const PAGE = 200;

export async function list(ctx) {
  if (!ctx.isAdmin) return h('section', {}, pageHeader('Audit log'), h('p', {}, 'Only admins read the audit log.'));
  const principal = h('input', { type: 'search', id: 'audit-principal', name: 'principal' });
  const resource = h('input', { type: 'search', id: 'audit-resource', name: 'resource', placeholder: 'e.g. export/ or connection/7' });
  const from = h('input', { type: 'datetime-local', id: 'audit-from', name: 'from' });
  const to = h('input', { type: 'datetime-local', id: 'audit-to', name: 'to' });
  const box = h('div', { id: 'audit-entries' });
  const more = h('button', { type: 'button', id: 'audit-more' }, 'Load older entries');
  let entries = [];
  let nextToken = '';

  function show() {
    const p = principal.value.trim().toLowerCase();
    const r = resource.value.trim().toLowerCase();
    const after = from.value ? new Date(from.value).getTime() * 1000 : -Infinity;
    const before = to.value ? new Date(to.value).getTime() * 1000 : Infinity;
    const rows = entries.filter((e) => (!p || String(e.principal).toLowerCase().includes(p))
      && (!r || String(e.resource).toLowerCase().includes(r))
      && Number(e.timeMicros) >= after && Number(e.timeMicros) <= before);
    replace(box,
      h('p', { class: 'help' }, `${rows.length} of the ${entries.length} newest entries loaded${nextToken ? '; older ones are not loaded yet' : ' (all)'}.`),
      table([
        { title: 'Time', cell: (e) => time(e.timeMicros) },
        { title: 'Principal', cell: (e) => `${e.principal} (${role(e.role).toLowerCase()})` },
        { title: 'Method', cell: (e) => String(e.method).replace('/exportd.v1.', '') },
        { title: 'Resource', cell: (e) => e.resource || '—' },
        { title: 'Outcome', cell: (e) => e.outcome },
        { title: 'Message', cell: (e) => e.message || '' },
      ], rows, { empty: 'No entry matches.' }));
    more.hidden = !nextToken;
  }
  async function load() {
    const page = await call('AuditService', 'ListAuditEntries', { pageSize: PAGE, pageToken: nextToken }, ctx);
    entries = entries.concat(page.entries || []);
    nextToken = page.nextPageToken || '';
    show();
  }
  [principal, resource, from, to].forEach((i) => i.addEventListener('input', show));
  more.addEventListener('click', load);
  await load();
  return h('section', {}, pageHeader('Audit log'),
    h('p', { class: 'help' }, 'The filters apply to the entries loaded in this page (the API pages the log newest first and has no filter of its own).'),
    h('form', { class: 'toolbar', id: 'audit-filters', onsubmit: (e) => e.preventDefault() },
      field('Principal', principal), field('Resource', resource), field('From', from), field('To', to)),
    box, more);
}
