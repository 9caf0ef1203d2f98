// Destinations: the plugin manifests exportd loaded, and the plugin files it
// refused with the reason.
import { call } from '../api.js';
import { h, table } from '../dom.js';
import { num } from '../format.js';
import { pageHeader, definitionList, statementParagraphs } from './common.js';

const settingType = (t) => String(t || '').replace('TYPE_', '').toLowerCase();

export async function list(ctx) {
  const r = await call('DestinationService', 'ListDestinations', {}, ctx);
  const destinations = r.destinations || [];
  const refused = r.refused || [];
  return h('section', {},
    pageHeader('Destinations'),
    h('p', { class: 'help' }, `Plugin ABI version ${r.hostAbiVersion}.`),
    destinations.map((d) => h('article', { class: 'card destination', 'data-name': d.name },
      h('h2', {}, `${d.displayName || d.name} `, h('span', { class: 'muted' }, `${d.name} ${d.version}`)),
      h('p', {}, d.description),
      definitionList([
        ['Library', d.libraryPath],
        ['Removes members who leave', d.supportsRemoval ? 'Yes' : 'No'],
        ['Extra fields', d.allowsExtraFields ? `Allowed${(d.reservedFields || []).length ? `; reserved: ${d.reservedFields.join(', ')}` : ''}` : 'No'],
        d.speed ? ['Sync speed', `up to ${num(d.speed.maxRecordsPerBatch)} records and ${num(d.speed.maxBytesPerBatch)} bytes per batch, ${num(d.speed.maxParallelBatches)} batches at once`
          + (Number(d.speed.recordsPerSecond) ? `, ${num(d.speed.recordsPerSecond)} records/s` : '')
          + (Number(d.speed.requestsPerSecond) ? `, ${num(d.speed.requestsPerSecond)} requests/s` : '')] : null,
      ]),
      h('h3', {}, 'Settings'),
      table([
        { title: 'Name', cell: (s) => s.name },
        { title: 'Label', cell: (s) => s.displayName },
        { title: 'Type', cell: (s) => settingType(s.type) },
        { title: 'Required', cell: (s) => (s.required ? 'Yes' : 'No') },
        { title: 'Secret', cell: (s) => (s.secret ? 'Yes (write-only)' : 'No') },
        { title: 'Default', cell: (s) => s.defaultValue || '—' },
        { title: 'Allowed values', cell: (s) => (s.allowedValues || []).join(', ') || '—' },
        { title: 'Description', cell: (s) => s.description },
      ], d.settings || []),
      h('h3', {}, 'Mapping fields'),
      table([
        { title: 'Name', cell: (m) => m.name },
        { title: 'Required', cell: (m) => (m.required ? 'Yes' : 'No') },
        { title: 'Identifier', cell: (m) => (m.identifier ? 'Yes' : 'No') },
        { title: 'Description', cell: (m) => m.description },
      ], d.mappingFields || []),
      h('h3', {}, `Data privacy and compliance statement (version ${d.privacyStatementVersion || '—'})`),
      h('div', { class: 'statement privacy-statement' }, statementParagraphs(d)))),
    h('h2', {}, 'Refused plugin files'),
    table([{ title: 'Library', cell: (p) => p.libraryPath }, { title: 'Reason', cell: (p) => p.reason }], refused,
      { empty: 'None: every plugin file in the plugin directory was loaded.', caption: null }));
}
