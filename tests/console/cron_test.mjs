// The console's cron preview (console/js/cron.js) against the rules of
// server/engine/cron.h, the cases server/engine/cron_test.cc pins down:
// names, steps, the Vixie day rule, macros, and daylight-saving gaps and
// repeats. Run by CTest (console_cron_test) with node's test runner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

// console/ is not a node package: load the module from its source.
const source = readFileSync(new URL('../../console/js/cron.js', import.meta.url), 'utf8');
const { nextRuns, parseCron } = await import(`data:text/javascript,${encodeURIComponent(source)}`);

const iso = (expression, zone, after, count = 5) =>
  nextRuns(expression, zone, count, new Date(after)).map((d) => d.toISOString().replace('.000Z', 'Z'));

test('weekday names, ranges and steps', () => {
  assert.deepEqual(iso('*/15 9-10 * * MON-FRI', 'UTC', '2026-12-04T10:20:00Z', 4),
    ['2026-12-04T10:30:00Z', '2026-12-04T10:45:00Z', '2026-12-07T09:00:00Z', '2026-12-07T09:15:00Z']);
  assert.deepEqual(iso('5/20 * * * *', 'UTC', '2026-01-01T00:00:00Z', 3),
    ['2026-01-01T00:05:00Z', '2026-01-01T00:25:00Z', '2026-01-01T00:45:00Z']);
  assert.deepEqual(iso('0 0 1 jan,Jul *', 'UTC', '2026-03-01T00:00:00Z', 2), ['2026-07-01T00:00:00Z', '2027-01-01T00:00:00Z']);
  assert.deepEqual(iso('0 12 * * 7', 'UTC', '2026-12-01T00:00:00Z', 1), ['2026-12-06T12:00:00Z']);  // 7 is Sunday
});

test('day of month OR day of week when both are restricted, AND when one starts with *', () => {
  assert.deepEqual(iso('0 0 1 * MON', 'UTC', '2026-12-01T00:00:00Z', 5),
    ['2026-12-07T00:00:00Z', '2026-12-14T00:00:00Z', '2026-12-21T00:00:00Z', '2026-12-28T00:00:00Z', '2027-01-01T00:00:00Z']);
  assert.deepEqual(iso('0 0 */2 * MON', 'UTC', '2026-12-01T00:00:00Z', 3),
    ['2026-12-07T00:00:00Z', '2026-12-21T00:00:00Z', '2027-01-11T00:00:00Z']);
});

test('macros', () => {
  assert.deepEqual(iso('@daily', 'Asia/Kolkata', '2026-12-01T00:00:00Z', 2), ['2026-12-01T18:30:00Z', '2026-12-02T18:30:00Z']);
  assert.deepEqual(iso('@hourly', 'UTC', '2026-12-01T00:30:00Z', 1), ['2026-12-01T01:00:00Z']);
});

test('a time in the spring-forward gap fires when the gap ends', () => {
  // Europe/Berlin skips 02:00-03:00 on 2026-03-29: 02:30 fires at 03:00 CEST (01:00Z).
  assert.deepEqual(iso('30 2 * * *', 'Europe/Berlin', '2026-03-28T00:00:00Z', 3),
    ['2026-03-28T01:30:00Z', '2026-03-29T01:00:00Z', '2026-03-30T00:30:00Z']);
  // 02:00, 02:30 and 03:00 land on the same instant and fire once.
  assert.deepEqual(iso('0,30 2,3 29 3 *', 'Europe/Berlin', '2026-03-29T00:00:00Z', 2),
    ['2026-03-29T01:00:00Z', '2026-03-29T01:30:00Z']);
});

test('a repeated time fires once, at its first occurrence', () => {
  // America/New_York repeats 01:00-02:00 on 2026-11-01.
  assert.deepEqual(iso('30 1 * * *', 'America/New_York', '2026-10-31T12:00:00Z', 2),
    ['2026-11-01T05:30:00Z', '2026-11-02T06:30:00Z']);
  assert.deepEqual(iso('0 * * * *', 'America/New_York', '2026-11-01T04:30:00Z', 3),
    ['2026-11-01T05:00:00Z', '2026-11-01T07:00:00Z', '2026-11-01T08:00:00Z']);
});

test('errors say which field is wrong', () => {
  assert.throws(() => parseCron('0 25 * * *'), /hour "25" is out of range; hour must be 0-23/);
  assert.throws(() => parseCron('0 0 * *'), /needs 5 fields/);
  assert.throws(() => parseCron('0 0 * * FRI-MON'), /wraps/);
  assert.throws(() => parseCron('*/0 * * * *'), /step "0" must be a positive number/);
  assert.throws(() => nextRuns('0 0 * * *', 'Nowhere/Atlantis'), RangeError);
});
