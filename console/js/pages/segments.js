// Segments: the list, one segment's schema and a page of its members, a CSV
// upload from the browser with a progress bar, create and delete.
import { call, uploadCsv } from '../api.js';
import { h, field, table, replace, progressBar } from '../dom.js';
import { num, time, fieldType, bytes } from '../format.js';
import { pageHeader, link, errorNode, okNode, definitionList, confirmButton, deletionResult } from './common.js';

const PAGE_SIZE = 50;

export async function list(ctx) {
  const { segments = [] } = await call('SegmentService', 'ListSegments', {}, ctx);
  const parts = [pageHeader('Segments'),
    table([
      { title: 'Name', cell: (s) => link(`/segments/${encodeURIComponent(s.id)}`, s.name) },
      { title: 'Members', cell: (s) => num(s.memberCount), class: 'num' },
      { title: 'Snapshot', cell: (s) => (s.uploadInProgress ? `v${s.snapshotVersion} (upload in progress)` : `v${s.snapshotVersion}`), class: 'num' },
      { title: 'Fields', cell: (s) => (s.schema || []).map((f) => f.name).join(', ') || '—' },
      { title: 'Updated', cell: (s) => time(s.updatedAtMicros) },
    ], segments, { empty: 'No segments yet.' })];
  if (ctx.canWrite) parts.push(createForm(ctx));
  return h('section', {}, parts);
}

function createForm(ctx) {
  const name = h('input', { type: 'text', id: 'segment-name', name: 'name', required: true, maxlength: '256' });
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'card', id: 'segment-form' }, h('h2', {}, 'New segment'),
    field('Name', name, 'Exports create the destination audience (an Iterable list) with exactly this name. Upload its members next.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', id: 'create-segment' }, 'Create segment')), out);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const s = await call('SegmentService', 'CreateSegment', { name: name.value.trim() });
      ctx.navigate(`/segments/${encodeURIComponent(s.id)}`);
    } catch (e) {
      replace(out, errorNode(e));
    }
  });
  return form;
}

// A Value of the API's JSON as text.
export function valueText(v) {
  if (!v) return '';
  if ('stringValue' in v) return v.stringValue;
  if ('intValue' in v) return v.intValue;
  if ('doubleValue' in v) return String(v.doubleValue);
  if ('boolValue' in v) return String(v.boolValue);
  if ('timestampMicros' in v) return new Date(Number(v.timestampMicros) / 1000).toISOString();
  return '';
}

export async function detail(ctx, [id]) {
  const s = await call('SegmentService', 'GetSegment', { segment: id }, ctx);
  const members = h('div', { id: 'members' });
  const section = h('section', {},
    pageHeader(s.name),
    definitionList([
      ['Members', num(s.memberCount)],
      ['Snapshot version', s.uploadInProgress ? `${s.snapshotVersion} (an upload is in progress)` : String(s.snapshotVersion)],
      ['Created', time(s.createdAtMicros)],
      ['Updated', time(s.updatedAtMicros)],
    ]),
    h('h2', {}, 'Schema'),
    table([{ title: 'Field', cell: (f) => f.name }, { title: 'Type', cell: (f) => fieldType(f.type) }], s.schema || [],
      { empty: 'No fields yet: the first upload sets them.' }),
    ctx.canWrite ? uploadForm(ctx, s) : null,
    h('h2', {}, 'Members'),
    members,
    ctx.canWrite ? deleteButton(ctx, s) : null);
  await showMembers(ctx, s, members, '', []);
  return section;
}

async function showMembers(ctx, s, box, pageToken, previous) {
  const page = await call('SegmentService', 'ListMembers', { segment: s.id, pageSize: PAGE_SIZE, pageToken }, ctx);
  const schema = page.schema || [];
  const rows = page.rows || [];
  const first = previous.length * PAGE_SIZE + 1;
  replace(box,
    table([{ title: 'Profile id', cell: (r) => r.profileId },
      ...schema.map((f, i) => ({ title: f.name, cell: (r) => valueText((r.values || [])[i]) }))],
    rows, { empty: 'No members in the current snapshot.' }),
    rows.length ? h('p', { class: 'help' }, `Members ${num(first)}–${num(first + rows.length - 1)} of ${num(s.memberCount)}.`) : null,
    h('div', { class: 'pager' },
      previous.length ? h('button', { type: 'button', onclick: () => showMembers(ctx, s, box, previous[previous.length - 1], previous.slice(0, -1)) }, 'Previous page') : null,
      page.nextPageToken ? h('button', { type: 'button', onclick: () => showMembers(ctx, s, box, page.nextPageToken, [...previous, pageToken]) }, 'Next page') : null));
}

// The header row of a CSV file (its first line; quoted names are unquoted).
async function csvHeader(file) {
  const text = await file.slice(0, 65536).text();
  const line = text.split(/\r?\n/)[0] || '';
  const names = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i += 1) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') { cur += '"'; i += 1; } else if (ch === '"') quoted = false; else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') { names.push(cur); cur = ''; } else cur += ch;
  }
  names.push(cur);
  return names.filter((n) => n !== '');
}

const TYPES = ['string', 'int', 'double', 'bool', 'timestamp'];

function uploadForm(ctx, s) {
  const fileInput = h('input', { type: 'file', id: 'csv-file', name: 'csv', accept: '.csv,text/csv', required: true });
  const idField = h('select', { id: 'id-field', name: 'idField' });
  const columns = h('div', { class: 'columns' });
  const bar = progressBar('Upload progress');
  const progress = h('div', { class: 'upload-progress', hidden: true }, bar.el);
  const out = h('div', { 'aria-live': 'polite', id: 'upload-result' });
  let typeSelects = [];
  const known = Object.fromEntries((s.schema || []).map((f) => [f.name, fieldType(f.type).toLowerCase()]));

  fileInput.addEventListener('change', async () => {
    const file = fileInput.files[0];
    replace(out);
    if (!file) return;
    const names = await csvHeader(file);
    replace(idField, names.map((n, i) => h('option', { value: n, selected: i === 0 }, n)));
    typeSelects = names.map((n) => {
      const select = h('select', { name: `type-${n}`, 'aria-label': `Type of ${n}` },
        TYPES.map((t) => h('option', { value: t, selected: t === (known[n] || 'string') }, t)));
      return { name: n, select };
    });
    replace(columns, h('p', { class: 'help' }, `${file.name}: ${bytes(file.size)}, columns:`),
      h('div', { class: 'column-types' }, typeSelects.map(({ name, select }) => h('label', { class: 'column-type' }, h('span', {}, name), select))));
  });

  const form = h('form', { class: 'card', id: 'upload-form' }, h('h2', {}, 'Upload members from a CSV file'),
    h('p', { class: 'help' }, 'The header row names the profile fields and becomes the schema of the new snapshot. '
      + 'The new members replace the current ones only when the whole file arrived and every row was valid.'),
    field('CSV file', fileInput),
    field('Profile id column', idField, 'Default: the first column.'),
    columns,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', id: 'upload' }, 'Upload')),
    progress, out);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const file = fileInput.files[0];
    if (!file) return;
    const submit = form.querySelector('button[type=submit]');
    submit.disabled = true;
    progress.hidden = false;
    bar.set(0, `0 B of ${bytes(file.size)}`);
    replace(out);
    try {
      const fields = typeSelects.filter(({ select }) => select.value !== 'string').map(({ name, select }) => `${name}:${select.value}`);
      const r = await uploadCsv(s.id, file, {
        idField: idField.value,
        fields,
        onProgress: (sent, total) => bar.set(total ? sent / total : 0, sent < total
          ? `${bytes(sent)} of ${bytes(total)} sent`
          : `${bytes(total)} sent; exportd is checking the rows…`),
      });
      bar.set(1, `${bytes(file.size)} of ${bytes(file.size)} sent`);
      replace(out, okNode(`Uploaded ${num(r.rowsReceived)} members: snapshot v${r.segment ? r.segment.snapshotVersion : '?'}.`),
        h('p', {}, h('a', { href: location.pathname, id: 'reload-segment' }, 'Show the new members')));
    } catch (e) {
      replace(out, errorNode(e));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function deleteButton(ctx, s) {
  const out = h('div', { 'aria-live': 'polite' });
  return h('div', { class: 'card danger' }, h('h2', {}, 'Delete the segment'),
    h('p', { class: 'help' }, 'A segment that an export uses is not deleted: remove it from the export first.'),
    h('div', { class: 'actions' }, confirmButton('Delete segment', 'Really delete this segment and its members?', async (deleteAudiences) => {
      const r = await call('SegmentService', 'DeleteSegment', { segment: s.id, deleteAudiences });
      ctx.navigate('/segments');
      ctx.notify(deletionResult(`Segment ${s.name} deleted.`, r, deleteAudiences), 'ok');
    }, out, { option: 'Also delete the lists exports created for this segment in the destination', testid: 'delete-segment' })), out);
}
