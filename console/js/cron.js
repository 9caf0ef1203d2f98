// The next run times of a cron schedule, computed in the browser with the
// rules of server/engine/cron.h (five fields, names, steps, macros, the Vixie
// day rule, local civil time of an IANA zone: a time in a spring-forward gap
// fires when the gap ends, a repeated time once, at its first occurrence).
// The server stays the judge: it validates the expression when the export is
// saved, and the export's schedule carries its own next run time.

const MACROS = {
  '@yearly': '0 0 1 1 *', '@annually': '0 0 1 1 *', '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0', '@daily': '0 0 * * *', '@midnight': '0 0 * * *', '@hourly': '0 * * * *',
};
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const FIELDS = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day-of-month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: MONTHS, base: 1 },
  { name: 'day-of-week', min: 0, max: 7, names: DAYS, base: 0 },
];

function parseValue(text, spec) {
  const lower = text.toLowerCase();
  if (spec.names) {
    const i = spec.names.indexOf(lower);
    if (i >= 0) return i + spec.base;
  }
  if (!/^\d+$/.test(text)) throw new Error(`${spec.name} "${text}" is not a number${spec.names ? ' or name' : ''}`);
  const n = Number(text);
  if (n < spec.min || n > spec.max) {
    throw new Error(`${spec.name} "${text}" is out of range; ${spec.name} must be ${spec.min}-${spec.max}`);
  }
  return n;
}

function parseField(text, spec) {
  const values = new Set();
  for (const item of text.split(',')) {
    const [range, stepText, extra] = item.split('/');
    if (extra !== undefined || item === '') throw new Error(`${spec.name} "${text}" is malformed`);
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) === 0) throw new Error(`${spec.name} step "${stepText}" must be a positive number`);
      step = Number(stepText);
    }
    let lo;
    let hi;
    if (range === '*') {
      lo = spec.min;
      hi = spec.max;
    } else if (range.includes('-')) {
      const [a, b] = range.split('-');
      lo = parseValue(a, spec);
      hi = parseValue(b, spec);
      if (lo > hi) throw new Error(`${spec.name} range "${range}" wraps; write it as two ranges`);
    } else {
      lo = parseValue(range, spec);
      hi = stepText !== undefined ? spec.max : lo;
    }
    for (let v = lo; v <= hi; v += step) values.add(spec.name === 'day-of-week' && v === 7 ? 0 : v);
  }
  return { values, star: text.startsWith('*') };
}

// Parses an expression; throws an Error whose message says what is wrong.
export function parseCron(expression) {
  const text = (MACROS[expression.trim().toLowerCase()] || expression).trim();
  const parts = text.split(/\s+/);
  if (parts.length !== 5) throw new Error(`cron expression "${expression}" needs 5 fields (minute hour day-of-month month day-of-week), has ${parts.length}`);
  const [minute, hour, dom, month, dow] = parts.map((p, i) => parseField(p, FIELDS[i]));
  return { minute, hour, dom, month, dow };
}

// Throws a RangeError for a zone the browser does not know.
function formatter(timeZone) {
  return new Intl.DateTimeFormat('en-US', {
    timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric',
    hour: 'numeric', minute: 'numeric',
  });
}

function civilOf(fmt, ms) {
  const p = Object.fromEntries(fmt.formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
  return Date.UTC(Number(p.year), Number(p.month) - 1, Number(p.day), Number(p.hour) % 24, Number(p.minute));
}

// The instant of a civil minute (as a UTC-based ms number) in the zone.
function instantOf(fmt, civil) {
  const candidates = [];
  for (const probe of [civil - 14 * 3600e3, civil + 14 * 3600e3]) {
    const offset = civilOf(fmt, probe) - probe;
    const t = civil - offset;
    if (civilOf(fmt, t) === civil) candidates.push(t);
  }
  if (candidates.length) return Math.min(...candidates);
  // A gap: the first instant whose civil time is past `civil`.
  let lo = civil - 14 * 3600e3;
  let hi = civil + 14 * 3600e3;
  while (hi - lo > 60e3) {
    const mid = lo + Math.floor((hi - lo) / 120e3) * 60e3;
    if (civilOf(fmt, mid) >= civil) hi = mid;
    else lo = mid;
  }
  return hi;
}

function dayMatches(cron, date) {
  const domOk = cron.dom.values.has(date.getUTCDate());
  const dowOk = cron.dow.values.has(date.getUTCDay());
  if (!cron.dom.star && !cron.dow.star) return domOk || dowOk;
  return domOk && dowOk;
}

// The next `count` firings after `after` (a Date), as Dates.
export function nextRuns(expression, timeZone, count = 5, after = new Date()) {
  const cron = parseCron(expression);
  const fmt = formatter(timeZone || 'UTC');
  const out = [];
  const startCivil = civilOf(fmt, after.getTime());
  const day = new Date(startCivil);
  day.setUTCHours(0, 0, 0, 0);
  const minutes = [...cron.minute.values].sort((a, b) => a - b);
  const hours = [...cron.hour.values].sort((a, b) => a - b);
  for (let d = 0; d < 366 * 5 && out.length < count; d += 1, day.setUTCDate(day.getUTCDate() + 1)) {
    if (!cron.month.values.has(day.getUTCMonth() + 1) || !dayMatches(cron, day)) continue;
    for (const hh of hours) {
      for (const mm of minutes) {
        const civil = day.getTime() + (hh * 60 + mm) * 60e3;
        if (civil < startCivil - 26 * 3600e3) continue;
        const t = instantOf(fmt, civil);
        if (t <= after.getTime()) continue;
        if (out.length && out[out.length - 1].getTime() >= t) continue;  // one firing per instant
        out.push(new Date(t));
        if (out.length >= count) return out;
      }
    }
  }
  return out;
}

// Zone names for a <datalist>, when the browser can list them.
export function timeZones() {
  try {
    return Intl.supportedValuesOf('timeZone');
  } catch (_) {
    return ['UTC'];
  }
}
