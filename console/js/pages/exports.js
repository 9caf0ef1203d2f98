// Exports: the list (state, last run, next scheduled run), one export with
// its actions and run history, and the create/edit form.
import { call } from '../api.js';
import { h, field, table, replace, uniqueId } from '../dom.js';
import { time, runState, exportMode, formatDate } from '../format.js';
import { nextRuns, timeZones } from '../cron.js';
import { pageHeader, link, actionButton, confirmButton, deletionResult, errorNode, definitionList, stateBadge } from './common.js';
import { runHistory } from './runs.js';

async function lastRun(exportId, ctx) {
  const { runs = [] } = await call('RunService', 'ListRuns', { export: exportId, pageSize: 1 }, ctx);
  return runs[0] || null;
}

function nextRunText(e) {
  const s = e.schedule || {};
  if (!e.active) return 'inactive (no connection)';
  if (!s.enabled) return 'not scheduled';
  return Number(s.nextRunAtMicros || 0) ? time(s.nextRunAtMicros) : '—';
}

// Whether the caller may change or run this export.
function mayChange(ctx, e) {
  return ctx.canWrite && !e.connectionHidden;
}

export async function list(ctx) {
  const { exports = [] } = await call('ExportService', 'ListExports', {}, ctx);
  const last = await Promise.all(exports.map((e) => lastRun(e.id, ctx).catch(() => null)));
  const rows = exports.map((e, i) => ({ e, run: last[i] }));
  const out = h('div', { 'aria-live': 'polite' });
  const runAll = ctx.canWrite ? actionButton('Run all', async () => {
    const { runs = [] } = await call('RunService', 'RunAll', {});
    replace(out, h('div', { class: 'notice ok', role: 'status' },
      runs.length ? `Started ${runs.length} run(s) of the exports with an enabled schedule: ` : 'No export has an enabled schedule.',
      runs.map((r, i) => [i ? ', ' : '', link(`/runs/${encodeURIComponent(r.id)}`, r.exportName || r.id)])));
  }, { out, testid: 'run-all' }) : null;
  return h('section', {},
    pageHeader('Exports', ctx.canWrite ? link('/exports/new', 'New export') : null, runAll),
    out,
    table([
      { title: 'Name', cell: ({ e }) => link(`/exports/${encodeURIComponent(e.id)}`, e.name) },
      { title: 'Connection', cell: ({ e }) => (e.connectionHidden ? '(not shared with you)' : e.connectionName || '— detached —') },
      { title: 'Segments', cell: ({ e }) => (e.segmentNames || e.segments || []).join(', ') },
      { title: 'State', cell: ({ e }) => (e.active ? 'Active' : 'Inactive') },
      { title: 'Last run', cell: ({ run }) => (run ? [stateBadge(run.state, runState(run.state)), ' ', link(`/runs/${encodeURIComponent(run.id)}`, time(run.createdAtMicros))] : 'never') },
      { title: 'Next scheduled run', cell: ({ e }) => nextRunText(e) },
    ], rows, { empty: 'No exports yet.' }));
}

export async function detail(ctx, [id]) {
  const e = await call('ExportService', 'GetExport', { export: id }, ctx);
  const out = h('div', { 'aria-live': 'polite', id: 'export-result' });
  const s = e.schedule || {};
  const parts = [
    pageHeader(e.name),
    definitionList([
      ['Connection', e.connectionHidden ? '(a connection not shared with you)' : e.connectionId ? link(`/connections/${encodeURIComponent(e.connectionId)}`, e.connectionName) : '— detached —'],
      ['State', e.active ? 'Active' : 'Inactive: attach a connection to run it'],
      ['Segments', (e.segmentNames || []).map((n, i) => [i ? ', ' : '', link(`/segments/${encodeURIComponent(e.segments[i])}`, n)])],
      ['Mode', exportMode(e.mode)],
      ['Schedule', s.followSystemRefresh ? 'follows the system refresh' : s.cron ? `${s.cron} (${s.timezone || 'UTC'})${s.enabled ? '' : ', disabled'}` : 'none'],
      ['Next scheduled run', nextRunText(e)],
      ['Webhook', e.notifyUrl ? `${e.notifyUrl} on ${(e.notifyOn || []).join(', ')}${e.notifySecretSet ? ' (signed)' : ''}` : 'none'],
      ['Created', `${time(e.createdAtMicros)} by ${e.createdBy || '—'}`],
    ]),
    h('h2', {}, 'Mappings'),
    table([{ title: 'Destination field', cell: (m) => m.destinationField }, { title: 'Profile field', cell: (m) => m.profileField }], e.mappings || []),
  ];
  if (s.cron && !s.followSystemRefresh && s.enabled) parts.push(h('h2', {}, 'Next runs'), nextRunsList(s.cron, s.timezone));
  if (mayChange(ctx, e)) {
    const run = (label, request, testid, kind = '') => actionButton(label, async () => {
      const r = await call('RunService', 'RunExport', { export: e.id, ...request });
      ctx.navigate(`/runs/${encodeURIComponent(r.id)}`);
      if (r.joinedQueuedRun) ctx.notify('A queued run of this export had not started yet: your request joined it.');
    }, { out, testid, kind });
    const newName = h('input', { type: 'text', name: 'newName', value: `${e.name} copy`, maxlength: '256' });
    const duplicate = h('form', { class: 'inline', id: 'duplicate-form' }, field('Name of the copy', newName),
      h('button', { type: 'submit' }, 'Duplicate'));
    duplicate.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        const copy = await call('ExportService', 'DuplicateExport', { export: e.id, newName: newName.value.trim() });
        ctx.navigate(`/exports/${encodeURIComponent(copy.id)}`);
      } catch (err) {
        replace(out, errorNode(err));
      }
    });
    parts.push(h('h2', {}, 'Actions'),
      h('div', { class: 'actions' },
        e.active ? run('Run now', {}, 'run-now', 'primary') : null,
        e.active ? run('Dry run', { dryRun: true }, 'dry-run') : null,
        e.active ? run('Full resync', { full: true }, 'full-resync') : null,
        link(`/exports/${encodeURIComponent(e.id)}/edit`, 'Edit'),
        e.active ? actionButton('Detach connection', async () => {
          await call('ExportService', 'DetachExport', { export: e.id });
          ctx.navigate(location.pathname, { replaceState: true });
          ctx.notify('Detached: the export is inactive and keeps its configuration.', 'ok');
        }, { out }) : null,
        confirmButton('Delete export', 'Really delete this export?', async (deleteAudiences) => {
          const r = await call('ExportService', 'DeleteExport', { export: e.id, deleteAudiences });
          ctx.navigate('/exports');
          ctx.notify(deletionResult(`Export ${e.name} deleted.`, r, deleteAudiences), 'ok');
        }, out, { option: 'Also delete the lists this export created in the destination', testid: 'delete-export' })),
      duplicate, out);
  }
  parts.push(h('h2', {}, 'Run history'), await runHistory(ctx, e.id));
  return h('section', {}, parts);
}

function nextRunsList(cron, timeZone) {
  try {
    const runs = nextRuns(cron, timeZone || 'UTC', 5);
    return h('ol', { class: 'next-runs' }, runs.map((d) =>
      h('li', {}, `${formatDate(d, timeZone || 'UTC')} ${timeZone || 'UTC'}`, h('span', { class: 'help' }, ` (${formatDate(d)} your time)`))));
  } catch (e) {
    return h('p', { class: 'notice error' }, e.message);
  }
}

export async function edit(ctx, [id]) {
  const editing = Boolean(id);
  const [existing, { segments = [] }, { connections = [] }, { destinations = [] }] = await Promise.all([
    editing ? call('ExportService', 'GetExport', { export: id }, ctx) : null,
    call('SegmentService', 'ListSegments', {}, ctx),
    ctx.canWrite ? call('ConnectionService', 'ListConnections', {}, ctx) : { connections: [] },
    call('DestinationService', 'ListDestinations', {}, ctx),
  ]);
  const title = editing ? `Edit ${existing.name}` : 'New export';
  if (!ctx.canWrite || (existing && existing.connectionHidden)) {
    return h('section', {}, pageHeader(title), h('p', {}, 'You may not change this export.'));
  }
  const e = existing || { mappings: [], segments: [], schedule: { timezone: 'UTC', enabled: true }, mode: 'EXPORT_MODE_MIRROR' };
  const name = h('input', { type: 'text', id: 'export-name', name: 'name', required: true, maxlength: '256', value: e.name || '' });
  const connection = h('select', { id: 'export-connection', name: 'connection', required: true },
    h('option', { value: '' }, connections.length ? 'Choose a connection…' : 'No connection you may use'),
    connections.map((c) => h('option', { value: c.id, selected: c.id === e.connectionId }, `${c.displayName} (${c.destinationType})`)));
  const segmentBoxes = segments.map((s) => {
    const box = h('input', { type: 'checkbox', name: 'segments', value: s.id, id: uniqueId('seg'), checked: (e.segments || []).includes(s.id) });
    return { s, box, row: h('div', { class: 'check' }, box, h('label', { for: box.id }, `${s.name} (${(s.schema || []).length} fields)`)) };
  });
  const mappingBox = h('div', { id: 'mappings' });
  const mode = h('select', { id: 'export-mode', name: 'mode' },
    h('option', { value: 'EXPORT_MODE_MIRROR', selected: e.mode !== 'EXPORT_MODE_ADD_ONLY' }, 'Mirror: members who leave the segment are removed'),
    h('option', { value: 'EXPORT_MODE_ADD_ONLY', selected: e.mode === 'EXPORT_MODE_ADD_ONLY' }, 'Add only: never remove'));
  const sched = e.schedule || {};
  const enabled = h('input', { type: 'checkbox', id: 'schedule-enabled', checked: Boolean(sched.enabled) });
  const follow = h('input', { type: 'checkbox', id: 'schedule-follow', checked: Boolean(sched.followSystemRefresh) });
  const cron = h('input', { type: 'text', id: 'schedule-cron', name: 'cron', value: sched.cron || '', placeholder: '0 6 * * *', spellcheck: 'false' });
  const zones = h('datalist', { id: 'zones' }, timeZones().map((z) => h('option', { value: z })));
  const timezone = h('input', { type: 'text', id: 'schedule-timezone', name: 'timezone', list: 'zones', value: sched.timezone || 'UTC' });
  const preview = h('div', { id: 'next-runs', 'aria-live': 'polite' });
  const out = h('div', { 'aria-live': 'polite' });

  // Mapping rows: the destination's mapping fields first, then extra ones.
  let mappingRows = [];
  function profileFields() {
    const names = new Set();
    for (const { s, box } of segmentBoxes) if (box.checked) for (const f of s.schema || []) names.add(f.name);
    return [...names].sort();
  }
  function destination() {
    const c = connections.find((x) => x.id === connection.value);
    return c ? destinations.find((d) => d.name === c.destinationType) : null;
  }
  function fieldSelect(current, label) {
    const names = profileFields();
    if (current && !names.includes(current)) names.unshift(current);
    return h('select', { 'aria-label': label, class: 'profile-field' },
      h('option', { value: '' }, '(not mapped)'), names.map((n) => h('option', { value: n, selected: n === current }, n)));
  }
  function renderMappings() {
    const current = new Map(mappingRows.length ? mappingRows.map((r) => [r.dest(), r.select.value]) : (e.mappings || []).map((m) => [m.destinationField, m.profileField]));
    const d = destination();
    const specs = d ? d.mappingFields || [] : [];
    mappingRows = [];
    const fixed = specs.map((spec) => {
      const select = fieldSelect(current.get(spec.name) || guess(spec.name), `Profile field for ${spec.name}`);
      select.dataset.destinationField = spec.name;
      current.delete(spec.name);
      const row = { dest: () => spec.name, select };
      mappingRows.push(row);
      return field(`${spec.name}${spec.required ? ' (required)' : ''}${spec.identifier ? ' · identifier' : ''}`, select, spec.description);
    });
    const extras = h('div', { class: 'extra-mappings' });
    const addExtra = (destField, profileField) => {
      const dest = h('input', { type: 'text', value: destField, 'aria-label': 'Destination field', class: 'destination-field', placeholder: 'destination field' });
      const select = fieldSelect(profileField, 'Profile field');
      const row = { dest: () => dest.value.trim(), select };
      mappingRows.push(row);
      const remove = h('button', { type: 'button', class: 'link' }, 'Remove');
      const el = h('div', { class: 'mapping-row' }, dest, h('span', { 'aria-hidden': 'true' }, '←'), select, remove);
      remove.addEventListener('click', () => { mappingRows = mappingRows.filter((r) => r !== row); el.remove(); });
      extras.append(el);
    };
    for (const [k, v] of current) if (k) addExtra(k, v);
    const allowsExtra = !d || d.allowsExtraFields;
    replace(mappingBox,
      d ? null : h('p', { class: 'help' }, 'Choose a connection to see the fields its destination needs.'),
      fixed,
      allowsExtra ? [h('h3', {}, 'Extra fields'), h('p', { class: 'help' }, `Data fields sent along${d && (d.reservedFields || []).length ? `; reserved: ${d.reservedFields.join(', ')}` : ''}.`), extras,
        h('button', { type: 'button', id: 'add-mapping', onclick: () => addExtra('', '') }, 'Add a field')] : null);
  }
  function guess(destField) {
    return profileFields().find((n) => n.toLowerCase() === destField.toLowerCase()) || '';
  }
  function renderPreview() {
    if (follow.checked) return replace(preview, h('p', { class: 'help' }, 'Runs when the system refresh schedule (--system-refresh) says.'));
    if (!cron.value.trim()) return replace(preview, h('p', { class: 'help' }, 'No cron expression: the export runs on demand only.'));
    return replace(preview, h('h3', {}, 'Next five runs'), nextRunsList(cron.value.trim(), timezone.value.trim() || 'UTC'));
  }
  connection.addEventListener('change', renderMappings);
  segmentBoxes.forEach(({ box }) => box.addEventListener('change', renderMappings));
  [cron, timezone].forEach((i) => i.addEventListener('input', renderPreview));
  follow.addEventListener('change', renderPreview);
  renderMappings();
  renderPreview();

  const form = h('form', { class: 'card', id: 'export-form' },
    field('Name', name),
    field('Connection', connection, editing && !e.connectionId ? 'Detached: choose a connection to make the export active again.' : null),
    h('fieldset', { id: 'segment-choice' }, h('legend', {}, 'Segments'),
      segmentBoxes.length ? segmentBoxes.map((b) => b.row) : h('p', {}, 'No segments yet: create one first.')),
    h('fieldset', {}, h('legend', {}, 'Data matching'), mappingBox),
    field('Mode', mode),
    h('fieldset', {}, h('legend', {}, 'Schedule'),
      h('div', { class: 'check' }, enabled, h('label', { for: enabled.id }, 'Run on a schedule')),
      h('div', { class: 'check' }, follow, h('label', { for: follow.id }, 'Follow the system refresh schedule instead of a cron expression')),
      field('Cron expression', cron, 'minute hour day-of-month month day-of-week, e.g. "0 6 * * MON-FRI", or @daily.'),
      field('Time zone', timezone, 'An IANA name such as Europe/Berlin.'), zones, preview),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary', id: 'save-export' }, editing ? 'Save changes' : 'Create export'),
      link(editing ? `/exports/${encodeURIComponent(e.id)}` : '/exports', 'Cancel')),
    out);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const mappings = mappingRows.map((r) => ({ destinationField: r.dest(), profileField: r.select.value }))
      .filter((m) => m.destinationField && m.profileField);
    const request = {
      name: name.value.trim(),
      connection: connection.value,
      segments: segmentBoxes.filter((b) => b.box.checked).map((b) => b.s.id),
      mappings,
      mode: mode.value,
      schedule: { cron: follow.checked ? '' : cron.value.trim(), timezone: timezone.value.trim(), enabled: enabled.checked, followSystemRefresh: follow.checked },
    };
    if (!request.segments.length) {
      replace(out, errorNode({ code: 'invalid_argument', message: 'choose at least one segment' }));
      return;
    }
    const submit = form.querySelector('button[type=submit]');
    submit.disabled = true;
    try {
      let saved;
      if (editing) {
        const update = { export: e.id, ...request };
        if (update.connection === e.connectionId || !update.connection) delete update.connection;
        if (update.name === e.name) delete update.name;
        saved = await call('ExportService', 'UpdateExport', update);
      } else {
        saved = await call('ExportService', 'CreateExport', request);
      }
      ctx.navigate(`/exports/${encodeURIComponent(saved.id)}`);
      ctx.notify(editing ? 'Saved. Saving never runs the export.' : 'Export created. It runs on its schedule or when you run it.', 'ok');
    } catch (err) {
      replace(out, errorNode(err));
    } finally {
      submit.disabled = false;
    }
  });
  return h('section', {}, pageHeader(title), form);
}

