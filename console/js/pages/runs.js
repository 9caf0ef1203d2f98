// Runs: one run live (WatchRun), its log (ListRunLog) and rejections; the
// run history of one export or of all, filterable by state.
import { call, watchRun, listAll } from '../api.js';
import { h, table, replace, progressBar, field } from '../dom.js';
import { num, time, runState, duration, FINAL_STATES, enumName } from '../format.js';
import { pageHeader, link, actionButton, errorNode, definitionList, stateBadge } from './common.js';

const REJECTIONS_PAGE = 50;
// How often the log of a live run is asked for new lines.
const LOG_POLL_MS = 1000;
const LOG_LEVELS = [['', 'All levels'], ['RUN_LOG_LEVEL_INFO', 'Info and above'],
  ['RUN_LOG_LEVEL_WARNING', 'Warnings and errors'], ['RUN_LOG_LEVEL_ERROR', 'Errors']];
const STATES = ['RUN_STATE_QUEUED', 'RUN_STATE_RUNNING', 'RUN_STATE_SUCCEEDED', 'RUN_STATE_SUCCEEDED_WITH_REJECTIONS',
  'RUN_STATE_FAILED_RETRYING', 'RUN_STATE_FAILED', 'RUN_STATE_CANCELED', 'RUN_STATE_SKIPPED'];

// The totals of a run's segments, as exportctl's progress line sums them
// (client/output.cc SumRun): `handled` of `work` is the progress.
export function totals(run) {
  const t = { members: 0, planned: 0, done: 0, handled: 0, work: 0, rejected: 0 };
  for (const s of run.segments || []) {
    const n = (k) => Number(s[k] || 0);
    t.members += n('totalMembers');
    t.planned += n('toAdd') + n('toUpdate') + n('toRemove');
    t.done += n('added') + n('updated') + n('removed') + n('rejected');
    t.rejected += n('rejected');
    t.handled += n('unchanged') + n('added') + n('updated') + n('removed') + n('rejected') + n('retryable');
    t.work += Math.max(n('totalMembers'), n('toAdd') + n('toUpdate') + n('unchanged')) + n('toRemove');
  }
  return t;
}

const SUCCEEDED = new Set(['RUN_STATE_SUCCEEDED', 'RUN_STATE_SUCCEEDED_WITH_REJECTIONS']);

export async function detail(ctx, [id]) {
  let run = await call('RunService', 'GetRun', { runId: id }, ctx);
  let exp = null;
  try {
    exp = await call('ExportService', 'GetExport', { export: run.exportId }, ctx);
  } catch (_) {
    // The export may be gone; the run stays readable.
  }
  const mayCancel = ctx.canWrite && exp && !exp.connectionHidden;
  const bar = progressBar('Run progress');
  const facts = h('div', { id: 'run-facts' });
  const segmentsBox = h('div', { id: 'run-segments' });
  const logBox = h('div', { id: 'run-log' });
  const out = h('div', { 'aria-live': 'polite' });
  const cancelBox = h('div', { class: 'actions' });
  const rejectionsBox = h('div', { id: 'rejections' });
  let shown = 0;  // the bar never goes back

  function render(r) {
    run = r;
    const t = totals(r);
    const final = FINAL_STATES.has(r.state);
    let fraction = t.work > 0 ? Math.min(1, t.handled / t.work) : 0;
    if (SUCCEEDED.has(r.state) || (r.dryRun && final)) fraction = 1;
    shown = Math.max(shown, fraction);
    const text = r.dryRun
      ? `${Math.floor(shown * 100)}% · would send ${num(t.planned)} of ${num(t.members)} members`
      : t.planned > 0 ? `${Math.floor(shown * 100)}% · ${num(t.done)} of ${num(t.planned)} sent` : `${Math.floor(shown * 100)}% · ${num(t.members)} members`;
    bar.set(shown, text);
    bar.el.dataset.state = r.state;
    const running = !final && Number(r.rate) > 0;
    replace(facts, definitionList([
      ['State', stateBadge(r.state, runState(r.state))],
      ['Export', r.exportId ? link(`/exports/${encodeURIComponent(r.exportId)}`, r.exportName || r.exportId) : '—'],
      ['Kind', [r.dryRun ? 'dry run' : 'run', r.full ? 'full resync' : null, enumName(r.trigger, 'RUN_TRIGGER_').toLowerCase()].filter(Boolean).join(', ')],
      ['Requested by', r.requestedBy || 'exportd (schedule)'],
      ['Created', time(r.createdAtMicros)],
      ['Started', time(r.startedAtMicros)],
      ['Finished', time(r.finishedAtMicros)],
      ['Rate', running ? `${num(Math.round(Number(r.rate)))} records/s` : '—'],
      ['Time left', !final && Number(r.etaSeconds) >= 0 ? duration(Number(r.etaSeconds)) : '—'],
      Number(r.attempt) > 1 ? ['Attempt', String(r.attempt)] : null,
      Number(r.nextAttemptAtMicros) ? ['Next attempt', time(r.nextAttemptAtMicros)] : null,
      r.replica ? ['Replica', r.replica] : null,
    ]));
    const dry = r.dryRun;
    replace(segmentsBox, table([
      { title: 'Segment', cell: (s) => s.segmentName || s.segmentId },
      { title: 'Audience', cell: (s) => s.audienceId || '—' },
      { title: 'Members', cell: (s) => num(s.totalMembers), class: 'num' },
      { title: dry ? 'Would add' : 'To add', cell: (s) => num(s.toAdd), class: 'num' },
      { title: dry ? 'Would update' : 'To update', cell: (s) => num(s.toUpdate), class: 'num' },
      { title: dry ? 'Would remove' : 'To remove', cell: (s) => num(s.toRemove), class: 'num' },
      { title: 'Unchanged', cell: (s) => num(s.unchanged), class: 'num' },
      { title: 'Added', cell: (s) => num(s.added), class: 'num' },
      { title: 'Updated', cell: (s) => num(s.updated), class: 'num' },
      { title: 'Removed', cell: (s) => num(s.removed), class: 'num' },
      { title: 'Rejected', cell: (s) => num(s.rejected), class: 'num' },
      { title: 'Duplicates', cell: (s) => num(s.duplicates), class: 'num' },
      { title: 'Done', cell: (s) => (s.done ? 'Yes' : 'No') },
    ], r.segments || [], { empty: 'No segment has started yet.' }));
    replace(cancelBox, mayCancel && !final ? actionButton('Cancel run', async () => {
      render(await call('RunService', 'CancelRun', { runId: r.id }));
    }, { kind: 'danger', out, testid: 'cancel-run' }) : null);
  }

  render(run);
  const section = h('section', {},
    pageHeader(`Run ${run.id}`),
    h('div', { class: 'progress' }, bar.el),
    facts, cancelBox, out,
    h('h2', {}, 'Segments'), segmentsBox,
    h('h2', {}, 'Log'), logBox,
    h('h2', {}, 'Rejected records'), rejectionsBox);

  // The log follows the run until it is final; a final run has every line
  // stored, so the read after the run was seen final is the last.
  const log = runLog(ctx, run.id, logBox);
  (async () => {
    while (!ctx.signal.aborted) {
      const final = FINAL_STATES.has(run.state);
      await log.refresh();
      if (final) return;
      await new Promise((resolve) => setTimeout(resolve, LOG_POLL_MS));
    }
  })();

  const showRejections = () => rejections(ctx, run, rejectionsBox);
  if (FINAL_STATES.has(run.state)) {
    await showRejections();
  } else {
    replace(rejectionsBox, h('p', { class: 'help' }, 'Shown when the run has ended.'));
    watch(ctx, run.id, render, out)
      .then(() => (ctx.signal.aborted ? null : showRejections()))
      .catch((e) => {
        if (!ctx.signal.aborted) replace(rejectionsBox, errorNode(e));
      });
  }
  return section;
}

// Follows WatchRun until the run is final; a dropped stream is reopened
// (the page may stay open for the whole run) until the page changes.
async function watch(ctx, runId, render, out) {
  let last = null;
  for (let attempt = 0; !ctx.signal.aborted; attempt += 1) {
    try {
      await watchRun(runId, (r) => { last = r; render(r); }, { signal: ctx.signal });
      if (last && FINAL_STATES.has(last.state)) return;
      const r = await call('RunService', 'GetRun', { runId }, ctx);
      render(r);
      if (FINAL_STATES.has(r.state)) return;
    } catch (e) {
      if (ctx.signal.aborted) return;
      if (e.code === 'not_found' || e.code === 'permission_denied' || e.code === 'unauthenticated') {
        replace(out, errorNode(e));
        return;
      }
      replace(out, errorNode({ code: e.code, message: `${e.message} (reconnecting)` }));
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 250 * 2 ** attempt)));
  }
}

// A run's log lines in `box`, with a level filter: {refresh()} reads the
// lines stored since the last read. Every value goes in as text.
function runLog(ctx, runId, box) {
  const levelSelect = h('select', { id: 'log-level', name: 'level' },
    LOG_LEVELS.map(([value, label]) => h('option', { value }, label)));
  const list = h('ol', { class: 'log', id: 'run-log-lines' });
  const empty = h('p', { class: 'help', id: 'run-log-empty' }, 'No log lines yet.');
  const status = h('div', {});
  let afterSeq = '0';
  let busy = null;

  function line(l) {
    const level = enumName(l.level, 'RUN_LOG_LEVEL_');
    return h('li', { class: `log-line log-${level.toLowerCase()}`, dataset: { seq: l.seq } },
      h('time', { datetime: new Date(Number(l.atMicros) / 1000).toISOString() }, time(l.atMicros)), ' ',
      h('span', { class: 'log-level' }, level), ' ',
      h('span', { class: 'log-source' }, l.source), ' ',
      h('span', { class: 'log-message' }, l.message));
  }

  async function read() {
    try {
      for (let pages = 0; pages < 100 && !ctx.signal.aborted; pages += 1) {
        const page = await call('RunService', 'ListRunLog',
          { runId, afterSeq, pageSize: 1000, minLevel: levelSelect.value || undefined }, ctx);
        for (const l of page.lines || []) {
          list.append(line(l));
          afterSeq = l.seq;
        }
        if (list.firstChild) empty.remove();
        if (!page.nextAfterSeq || page.nextAfterSeq === '0') break;
      }
      replace(status);
    } catch (e) {
      if (!ctx.signal.aborted) replace(status, errorNode(e));
    }
  }

  // One read at a time, in order: a refresh while one runs waits for it.
  function queue(step) {
    busy = (busy || Promise.resolve()).then(step);
    return busy;
  }
  const refresh = () => queue(read);

  // Another level: the lines again from the first, after any read under way.
  levelSelect.addEventListener('change', () => queue(() => {
    afterSeq = '0';
    replace(list);
    list.before(empty);
    return read();
  }));
  replace(box,
    h('div', { class: 'toolbar' }, field('Level', levelSelect, 'What the engine did and what the destination said, oldest first.')),
    status, empty, list);
  return { refresh };
}

async function rejections(ctx, run, box) {
  const t = totals(run);
  const reasonSelect = h('select', { id: 'reason-filter', name: 'reason' }, h('option', { value: '' }, 'All reasons'));
  const list = h('div', { id: 'rejection-list' });
  const download = h('button', { type: 'button', id: 'download-rejections' }, 'Download CSV');
  let pages = [''];  // page tokens; pages[i] starts page i
  let index = 0;
  const reasons = new Set();

  async function show() {
    const page = await call('RunService', 'ListRejections', { runId: run.id, pageSize: REJECTIONS_PAGE, pageToken: pages[index] }, ctx);
    const items = page.rejections || [];
    for (const r of items) {
      if (!reasons.has(r.reasonCode)) {
        reasons.add(r.reasonCode);
        reasonSelect.append(h('option', { value: r.reasonCode }, r.reasonCode));
      }
    }
    if (page.nextPageToken && pages.length === index + 1) pages.push(page.nextPageToken);
    const filter = reasonSelect.value;
    const shownItems = filter ? items.filter((r) => r.reasonCode === filter) : items;
    const segName = (id) => ((run.segments || []).find((s) => s.segmentId === id) || {}).segmentName || id;
    replace(list,
      h('p', { class: 'help', id: 'rejection-total' }, `${num(page.total)} rejected or informational records in all; page ${index + 1}.`
        + (filter ? ` Showing the ${shownItems.length} of this page with reason ${filter}.` : '')),
      table([
        { title: 'Profile id', cell: (r) => r.profileId },
        { title: 'Segment', cell: (r) => r.segmentName || segName(r.segmentId) },
        { title: 'Field', cell: (r) => r.field || '—' },
        { title: 'Reason', cell: (r) => r.reasonCode },
        { title: 'Message', cell: (r) => r.message },
        { title: 'Removal', cell: (r) => (r.removal ? 'Yes' : 'No') },
      ], shownItems, { empty: filter ? 'None with this reason on this page.' : 'No rejected records.' }),
      h('div', { class: 'pager' },
        index > 0 ? h('button', { type: 'button', onclick: () => { index -= 1; show(); } }, 'Previous page') : null,
        pages.length > index + 1 ? h('button', { type: 'button', id: 'rejections-next', onclick: () => { index += 1; show(); } }, 'Next page') : null));
  }
  reasonSelect.addEventListener('change', show);
  download.addEventListener('click', async () => {
    download.disabled = true;
    try {
      const all = await listAll('RunService', 'ListRejections', { runId: run.id }, 'rejections', 1000000);
      const filter = reasonSelect.value;
      const rows = (filter ? all.filter((r) => r.reasonCode === filter) : all);
      const csv = [['run_id', 'segment_id', 'profile_id', 'field', 'reason_code', 'message', 'removal'],
        ...rows.map((r) => [r.runId, r.segmentId, r.profileId, r.field, r.reasonCode, r.message, r.removal ? 'true' : 'false'])]
        .map((cols) => cols.map(csvCell).join(',')).join('\r\n') + '\r\n';
      const url = URL.createObjectURL(new Blob([csv], { type: 'text/csv' }));
      const a = h('a', { href: url, download: `rejections-${run.id}${filter ? `-${filter}` : ''}.csv` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) {
      list.prepend(errorNode(e));
    } finally {
      download.disabled = false;
    }
  });
  replace(box,
    t.rejected ? null : h('p', { class: 'help' }, 'No record of this run was rejected.'),
    h('div', { class: 'toolbar' }, field('Reason', reasonSelect, 'Filters the page shown and the download.'), download),
    list);
  await show();
}

// A CSV cell: quoted when it holds a comma, quote or line break; a leading
// = + - @ is prefixed with ' so that a spreadsheet does not run it.
function csvCell(value) {
  let s = String(value ?? '');
  if (/^[=+\-@]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

// The run history of one export (exportId) or of every export: a state
// filter, newest first. ListRuns is per export; "all" merges each export's
// newest runs.
export async function runHistory(ctx, exportId) {
  const stateSelect = h('select', { name: 'state', class: 'state-filter' }, h('option', { value: '' }, 'All states'),
    STATES.map((s) => h('option', { value: s }, runState(s))));
  const box = h('div', { class: 'run-history' });
  let runs = [];
  let more = false;
  async function load() {
    if (exportId) {
      const page = await call('RunService', 'ListRuns', { export: exportId, pageSize: 100 }, ctx);
      runs = page.runs || [];
      more = Boolean(page.nextPageToken);
    } else {
      const { exports = [] } = await call('ExportService', 'ListExports', {}, ctx);
      const pages = await Promise.all(exports.map((e) => call('RunService', 'ListRuns', { export: e.id, pageSize: 50 }, ctx).catch(() => ({ runs: [] }))));
      runs = pages.flatMap((p) => p.runs || []).sort((a, b) => Number(b.createdAtMicros) - Number(a.createdAtMicros));
      more = pages.some((p) => p.nextPageToken);
    }
  }
  function show() {
    const filter = stateSelect.value;
    const rows = filter ? runs.filter((r) => r.state === filter) : runs;
    replace(box, table([
      { title: 'Run', cell: (r) => link(`/runs/${encodeURIComponent(r.id)}`, r.id) },
      exportId ? null : { title: 'Export', cell: (r) => r.exportName || r.exportId },
      { title: 'State', cell: (r) => stateBadge(r.state, runState(r.state)) },
      { title: 'Kind', cell: (r) => [r.dryRun ? 'dry run' : 'run', r.full ? 'full' : null].filter(Boolean).join(', ') },
      { title: 'Sent', cell: (r) => num(totals(r).done), class: 'num' },
      { title: 'Rejected', cell: (r) => num(totals(r).rejected), class: 'num' },
      { title: 'Created', cell: (r) => time(r.createdAtMicros) },
      { title: 'Took', cell: (r) => (Number(r.finishedAtMicros) && Number(r.startedAtMicros) ? duration((r.finishedAtMicros - r.startedAtMicros) / 1e6) : '—') },
      { title: 'Message', cell: (r) => r.message || '' },
    ].filter(Boolean), rows, { empty: filter ? 'No run in this state.' : 'No runs yet.' }),
    more ? h('p', { class: 'help' }, exportId ? 'The newest 100 runs.' : 'The newest 50 runs of each export.') : null);
  }
  stateSelect.addEventListener('change', show);
  await load();
  show();
  return h('div', {}, h('div', { class: 'toolbar' }, field('State', stateSelect)), box);
}

export async function history(ctx) {
  return h('section', {}, pageHeader('Runs'),
    h('p', { class: 'help' }, 'The runs of every export, newest first.'), await runHistory(ctx, ''));
}
