// Connections: the list, a new one from its destination's manifest, one
// connection (test, share, rotate a secret, delete with the in-use rules).
// Only admins change connections; contributors see those shared with them
// (the API filters); viewers may not list them at all.
import { call } from '../api.js';
import { h, field, table, replace } from '../dom.js';
import { time } from '../format.js';
import { pageHeader, link, actionButton, errorNode, okNode, definitionList, statementParagraphs } from './common.js';

export async function list(ctx) {
  const { connections = [] } = await call('ConnectionService', 'ListConnections', {}, ctx);
  return h('section', {},
    pageHeader('Connections', ctx.isAdmin ? link('/connections/new', 'New connection') : null),
    ctx.isAdmin ? null : h('p', { class: 'help' }, 'You see the connections an admin shared with contributors. Only admins create or change connections.'),
    table([
      { title: 'Name', cell: (c) => link(`/connections/${encodeURIComponent(c.id)}`, c.displayName) },
      { title: 'Destination', cell: (c) => c.destinationType },
      { title: 'Shared with contributors', cell: (c) => (c.sharedWithContributors ? 'Yes' : 'No') },
      { title: 'Consent', cell: consentText },
      { title: 'Created', cell: (c) => time(c.createdAtMicros) },
    ], connections, { empty: ctx.isAdmin ? 'No connections yet: create one to export segments.' : 'No connection is shared with contributors.' }));
}

// Who agreed to which version of the destination's statement, and when.
function consentText(c) {
  if (!c.consentAcceptedBy) return '—';
  const version = c.consentStatementVersion ? `statement version ${c.consentStatementVersion}` : 'statement version not recorded';
  return `${c.consentAcceptedBy}, ${time(c.consentAcceptedAtMicros)}, ${version}`;
}

// One input for a manifest setting; returns {row, read()} where read() gives
// the value to send, or null to leave the setting out.
function settingInput(spec) {
  const label = `${spec.displayName || spec.name}${spec.required ? ' (required)' : ''}`;
  const help = [spec.description, spec.defaultValue ? `Default: ${spec.defaultValue}.` : '',
    spec.secret ? 'Secret: write-only, never shown again.' : ''].filter(Boolean).join(' ');
  let control;
  let read;
  const name = `setting-${spec.name}`;
  if (spec.type === 'TYPE_BOOL') {
    control = h('input', { type: 'checkbox', name, checked: spec.defaultValue === 'true' });
    read = () => {
      const v = control.checked ? 'true' : 'false';
      return v === (spec.defaultValue || 'false') ? null : v;
    };
  } else if (spec.type === 'TYPE_ENUM' || (spec.allowedValues || []).length) {
    control = h('select', { name, required: spec.required },
      spec.required && !spec.defaultValue ? h('option', { value: '' }, 'Choose…') : null,
      !spec.required && !spec.defaultValue ? h('option', { value: '' }, '(not set)') : null,
      (spec.allowedValues || []).map((v) => h('option', { value: v, selected: v === spec.defaultValue }, v)));
    read = () => (control.value && control.value !== spec.defaultValue ? control.value : null);
  } else {
    const type = spec.secret ? 'password' : (spec.type === 'TYPE_INT' || spec.type === 'TYPE_DOUBLE') ? 'number' : 'text';
    control = h('input', {
      type, name, required: spec.required, placeholder: spec.defaultValue || '',
      step: spec.type === 'TYPE_INT' ? '1' : spec.type === 'TYPE_DOUBLE' ? 'any' : null,
      autocomplete: spec.secret ? 'new-password' : 'off', spellcheck: 'false',
    });
    read = () => (control.value.trim() === '' ? null : control.value.trim());
  }
  const row = spec.type === 'TYPE_BOOL'
    ? h('div', { class: 'check' }, control, h('label', { for: control.id = `setting-${spec.name}` }, label),
      h('p', { class: 'help' }, help))
    : field(label, control, help);
  return { spec, row, read };
}

export async function create(ctx) {
  if (!ctx.isAdmin) return h('section', {}, pageHeader('New connection'), h('p', {}, 'Only admins create connections.'));
  const { destinations = [] } = await call('DestinationService', 'ListDestinations', {}, ctx);
  const typeSelect = h('select', { id: 'destination-type', name: 'destinationType', required: true },
    destinations.map((d) => h('option', { value: d.name }, `${d.displayName || d.name} (${d.name} ${d.version})`)));
  const nameInput = h('input', { type: 'text', id: 'connection-name', name: 'displayName', required: true, maxlength: '256' });
  const settingsBox = h('fieldset', { class: 'settings' });
  const shared = h('input', { type: 'checkbox', id: 'shared', name: 'shared' });
  const addSelf = h('input', { type: 'checkbox', id: 'add-self', name: 'addSelf', checked: true });
  const consent = h('input', { type: 'checkbox', id: 'accept-privacy', name: 'acceptPrivacyTerms', required: true });
  const testFirst = h('input', { type: 'checkbox', id: 'test-before-save', name: 'testBeforeSave', checked: true });
  const statementBox = h('div', { class: 'statement', id: 'privacy-statement', tabindex: '0' });
  const statementVersion = h('p', { class: 'help', id: 'privacy-statement-version' });
  const out = h('div', { 'aria-live': 'polite', id: 'create-connection-result' });
  let inputs = [];
  // The statement shown is the one the admin agrees to: its version goes with
  // the request, and the server refuses it if the destination changed it since.
  let shownVersion = '';

  function showManifest() {
    const d = destinations.find((x) => x.name === typeSelect.value);
    inputs = d ? (d.settings || []).map(settingInput) : [];
    // Settings with a default are tucked away; the required and open ones show.
    const main = inputs.filter((i) => i.spec.required || !i.spec.defaultValue);
    const more = inputs.filter((i) => !main.includes(i));
    replace(settingsBox, h('legend', {}, `${d ? d.displayName || d.name : ''} settings`),
      d && d.description ? h('p', { class: 'help' }, d.description) : null,
      main.map((i) => i.row),
      more.length ? h('details', { class: 'more-settings' },
        h('summary', {}, `More settings (${more.length}, each with a default)`), more.map((i) => i.row)) : null);
    shownVersion = d ? d.privacyStatementVersion || '' : '';
    replace(statementBox, statementParagraphs(d));
    replace(statementVersion, d ? `${d.displayName || d.name}'s statement, version ${shownVersion || '—'}.` : '');
    // A consent given to another destination's statement does not carry over.
    consent.checked = false;
  }
  typeSelect.addEventListener('change', showManifest);
  showManifest();

  const form = h('form', { class: 'card', id: 'connection-form' },
    field('Destination', typeSelect),
    field('Name', nameInput, 'Unique; exports pick the connection by it.'),
    settingsBox,
    h('fieldset', {}, h('legend', {}, 'Who can use it'),
      h('div', { class: 'check' }, shared, h('label', { for: 'shared' }, 'Contributors may use this connection (admins always can)')),
      h('div', { class: 'check' }, addSelf, h('label', { for: 'add-self' }, 'Add me as an export user'))),
    h('fieldset', { class: 'privacy' }, h('legend', {}, 'Data privacy and compliance'),
      statementVersion,
      statementBox,
      h('div', { class: 'check' }, consent, h('label', { for: 'accept-privacy' }, 'I agree to the data privacy and compliance statement above'))),
    h('div', { class: 'check' }, testFirst, h('label', { for: 'test-before-save' }, 'Test before saving'),
      h('p', { class: 'help' }, 'exportd checks the connection against the destination (for example that it accepts the API key) and saves nothing if the check fails. Clear it for a destination that is not reachable yet.')),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary', id: 'create-connection' }, 'Save connection'),
      link('/connections', 'Cancel')),
    out);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const settings = {};
    const secrets = {};
    for (const i of inputs) {
      const v = i.read();
      if (v === null) continue;
      (i.spec.secret ? secrets : settings)[i.spec.name] = v;
    }
    const submit = form.querySelector('button[type=submit]');
    submit.disabled = true;
    try {
      const c = await call('ConnectionService', 'CreateConnection', {
        displayName: nameInput.value.trim(), destinationType: typeSelect.value, settings, secrets,
        sharedWithContributors: shared.checked, acceptPrivacyTerms: consent.checked,
        privacyStatementVersion: shownVersion, testBeforeSave: testFirst.checked,
        addSelfAsExportUser: addSelf.checked,
      });
      ctx.navigate(`/connections/${encodeURIComponent(c.id)}`);
    } catch (e) {
      replace(out, errorNode(e));
    } finally {
      submit.disabled = false;
    }
  });
  return h('section', {}, pageHeader('New connection'), form);
}

export async function detail(ctx, [id]) {
  const c = await call('ConnectionService', 'GetConnection', { connection: id }, ctx);
  const [{ exports = [] }, manifest] = await Promise.all([
    call('ExportService', 'ListExports', {}, ctx),
    call('DestinationService', 'GetDestination', { name: c.destinationType }, ctx).catch(() => null),
  ]);
  const using = exports.filter((e) => e.connectionId === c.id);
  const out = h('div', { 'aria-live': 'polite', id: 'connection-result' });
  const settings = Object.entries(c.settings || {}).sort();
  const parts = [
    pageHeader(c.displayName),
    definitionList([
      ['Destination', c.destinationType],
      ['Shared with contributors', c.sharedWithContributors ? 'Yes' : 'No'],
      ['Secrets set', (c.secretNames || []).length ? (c.secretNames || []).join(', ') + ' (write-only)' : 'none'],
      ['Privacy and compliance', c.consentAcceptedBy ? `accepted by ${consentText(c)}` : '—'],
      ['Export users', (c.exportUsers || []).join(', ') || '—'],
      ['Created', `${time(c.createdAtMicros)} by ${c.createdBy || '—'}`],
      ['Updated', time(c.updatedAtMicros)],
    ]),
    h('h2', {}, 'Settings'),
    table([{ title: 'Setting', cell: ([k]) => k }, { title: 'Value', cell: ([, v]) => v }], settings, { empty: 'Only defaults.' }),
    h('h2', {}, 'Exports using it'),
    table([{ title: 'Export', cell: (e) => link(`/exports/${encodeURIComponent(e.id)}`, e.name) },
      { title: 'Active', cell: (e) => (e.active ? 'Yes' : 'No') }], using, { empty: 'No export uses this connection.' }),
  ];
  if (ctx.isAdmin) {
    parts.push(h('h2', {}, 'Actions'), h('div', { class: 'actions' },
      actionButton('Test connection', async () => {
        const r = await call('ConnectionService', 'TestConnection', { connection: c.id });
        replace(out, r.ok ? okNode(`Connection works: ${r.message || 'OK'}`) : errorNode({ code: 'failed', message: r.message }));
      }, { out, testid: 'test-connection' }),
      actionButton(c.sharedWithContributors ? 'Stop sharing with contributors' : 'Share with contributors', async () => {
        await call('ConnectionService', 'UpdateConnection', { connection: c.id, sharedWithContributors: !c.sharedWithContributors });
        ctx.navigate(location.pathname, { replaceState: true });
      }, { out })), out);
    const secretSpecs = manifest ? (manifest.settings || []).filter((s) => s.secret) : [];
    if (secretSpecs.length) parts.push(rotateForm(c, secretSpecs, out));
    parts.push(deleteForm(ctx, c, using, out));
  }
  return h('section', {}, parts);
}

function rotateForm(c, secretSpecs, out) {
  const which = h('select', { name: 'secret' }, secretSpecs.map((s) => h('option', { value: s.name }, s.displayName || s.name)));
  const value = h('input', { type: 'password', name: 'secretValue', autocomplete: 'new-password', required: true });
  const form = h('form', { class: 'card', id: 'rotate-form' }, h('h3', {}, 'Rotate a secret'),
    field('Secret', which), field('New value', value, 'Write-only: the old value is replaced and never shown.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Rotate secret')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await call('ConnectionService', 'UpdateConnection', { connection: c.id, secrets: { [which.value]: value.value } });
      value.value = '';
      replace(out, okNode(`Secret ${which.value} replaced.`));
    } catch (e) {
      replace(out, errorNode(e));
    }
  });
  return form;
}

function deleteForm(ctx, c, using, out) {
  const mode = (v, text, checked) => {
    const input = h('input', { type: 'radio', name: 'delete-mode', value: v, id: `delete-${v}`, checked });
    return h('div', { class: 'check' }, input, h('label', { for: input.id }, text));
  };
  const form = h('form', { class: 'card danger', id: 'delete-form' }, h('h3', {}, 'Delete the connection'),
    h('p', {}, using.length
      ? `${using.length} export(s) use this connection. Deleting it stops their transfers.`
      : 'No export uses this connection.'),
    h('fieldset', {}, h('legend', {}, 'Exports that use it'),
      mode('refuse', 'Delete only if no export uses it', true),
      mode('detach', 'Detach those exports (they become inactive and keep their configuration)'),
      mode('delete', 'Delete those exports too')),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'danger' }, 'Delete connection')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const v = form.querySelector('input[name=delete-mode]:checked').value;
    try {
      const r = await call('ConnectionService', 'DeleteConnection', {
        connection: c.id, detachExports: v === 'detach', deleteExports: v === 'delete',
      });
      const detached = (r.detachedExports || []).join(', ');
      const deleted = (r.deletedExports || []).join(', ');
      ctx.navigate('/connections');
      ctx.notify(`Connection ${c.displayName} deleted.${detached ? ` Detached: ${detached}.` : ''}${deleted ? ` Deleted: ${deleted}.` : ''}`, 'ok');
    } catch (e) {
      replace(out, errorNode(e));
    }
  });
  return form;
}
