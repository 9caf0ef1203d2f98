// Formatting values of the API's JSON (int64 are strings, times are
// microseconds since the epoch).

export function num(value) {
  const n = Number(value || 0);
  return n.toLocaleString('en-US');
}

export function dateFromMicros(micros) {
  const n = Number(micros || 0);
  return n ? new Date(n / 1000) : null;
}

// "2026-12-02 15:04:05" in the browser's time zone, or "—".
export function time(micros) {
  const d = dateFromMicros(micros);
  return d ? formatDate(d) : '—';
}

export function formatDate(d, timeZone) {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone, year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
  }).formatToParts(d);
  const p = Object.fromEntries(parts.map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || seconds < 0 || !Number.isFinite(seconds)) return '—';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}

// RUN_STATE_SUCCEEDED_WITH_REJECTIONS -> "Succeeded with rejections".
export function enumName(value, prefix) {
  const s = String(value || '').replace(prefix, '').toLowerCase().replace(/_/g, ' ');
  return s ? s[0].toUpperCase() + s.slice(1) : '—';
}

export const runState = (s) => enumName(s, 'RUN_STATE_');
export const role = (r) => enumName(r, 'ROLE_');
export const fieldType = (t) => enumName(t, 'FIELD_TYPE_');
export const exportMode = (m) => enumName(m, 'EXPORT_MODE_');

export const FINAL_STATES = new Set([
  'RUN_STATE_SUCCEEDED', 'RUN_STATE_SUCCEEDED_WITH_REJECTIONS', 'RUN_STATE_FAILED',
  'RUN_STATE_CANCELED', 'RUN_STATE_SKIPPED',
]);
