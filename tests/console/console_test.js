#!/usr/bin/env node
// The exportd console in a real browser: Debian's headless Chromium driven by
// puppeteer-core (no browser download). Run by tests/polyglot/run_example_test.py
// with a real exportd (--http) and the Iterable sandbox, from CTest
// (console_browser_test). It signs in, creates an Iterable connection from the
// manifest form, uploads a CSV segment, creates an export, runs it, waits for
// the progress bar to reach 100% and the run's log to show its final line,
// opens the rejections, checks that a viewer sees no button that changes
// anything, and deletes a segment and an export with their Iterable lists
// (one deleted, one kept because a campaign uses it). Every page is
// photographed into --screenshots.
//
//   console_test.js --screenshots DIR [--chromium /usr/bin/chromium]
//
// Environment (from run_example_test.py): EXPORTD_HTTP_URL, EXPORTD_TOKEN,
// EXPORTD_VIEWER_TOKEN, ITERABLE_SANDBOX_URL, ITERABLE_SANDBOX_API_KEY,
// EXPORTD_TEST_DIR. Waits are puppeteer's with deadlines; nothing sleeps.
'use strict';

const fs = require('fs');
const path = require('path');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run this through run_example_test.py --http --sandbox`);
  return v;
}

const CHROMIUM = arg('chromium', '/usr/bin/chromium');
const SHOTS = arg('screenshots', path.join(process.cwd(), 'console-screenshots'));
// Generous: under a parallel ctest on two cores a page may take a while.
const TIMEOUT = 60000;

let puppeteer;
try {
  puppeteer = require('puppeteer-core');
} catch (e) {
  console.error('FAIL: puppeteer-core is missing; run scripts/setup-console-test.sh (npm ci in tests/console)');
  process.exit(1);
}
if (!fs.existsSync(CHROMIUM)) {
  console.error(`FAIL: ${CHROMIUM} is missing; install Debian's Chromium: apt-get install chromium (scripts/setup.sh does)`);
  process.exit(1);
}

const base = need('EXPORTD_HTTP_URL');
const adminToken = need('EXPORTD_TOKEN');
const viewerToken = need('EXPORTD_VIEWER_TOKEN');
const contributorToken = need('EXPORTD_CONTRIBUTOR_TOKEN');
const sandboxUrl = need('ITERABLE_SANDBOX_URL');
const sandboxKey = need('ITERABLE_SANDBOX_API_KEY');
const scratch = need('EXPORTD_TEST_DIR');

// A segment of 500 profiles, every 25th with an invalid email.
const ROWS = 500;
function writeCsv(file) {
  const lines = ['ProfileId,Email,FirstName,LoyaltyPoints'];
  for (let i = 1; i <= ROWS; i += 1) {
    const email = i % 25 === 0 ? `not-an-email-${i}` : `person${i}@example.com`;
    lines.push(`p-${1000 + i},${email},"Name ${i}",${i * 7}`);
  }
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
}
const INVALID = Math.floor(ROWS / 25);

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// Clicks the element `selector` names once it is there. Pages that follow a
// run re-render on its events, so an element handle found first may be
// replaced before page.click reaches it ("Node is detached from document"):
// the click finds the current element itself.
async function clickCurrent(page, selector) {
  await page.waitForSelector(selector);
  await page.evaluate((s) => document.querySelector(s).click(), selector);
}

let step = 0;
async function shot(page, name, { fullPage = true } = {}) {
  step += 1;
  const file = path.join(SHOTS, `${String(step).padStart(2, '0')}-${name}.png`);
  // Two frames, so that what was just rendered is laid out and painted.
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  await page.screenshot({ path: file, fullPage });
  console.log(`screenshot ${file}`);
}

async function heading(page, text) {
  await page.waitForFunction((t) => {
    const h = document.querySelector('main h1');
    return h && h.textContent.trim() === t;
  }, { timeout: TIMEOUT }, text);
}

async function go(page, pathname, title) {
  await page.goto(base + pathname, { waitUntil: 'domcontentloaded' });
  await heading(page, title);
}

async function clickNav(page, text, title) {
  const [link] = await page.$$(`xpath/.//nav//a[normalize-space(.)="${text}"]`);
  check(link, `no "${text}" link in the navigation`);
  await link.click();
  await heading(page, title);
}

async function signIn(page, token) {
  await page.goto(base + '/', { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('#signin #token', { timeout: TIMEOUT });
  await page.type('#token', token);
  await page.click('#signin button[type=submit]');
  await page.waitForSelector('[data-testid=principal]', { timeout: TIMEOUT });
}

// Fails on any script error, failed request or CSP violation on the page.
function watchForErrors(page, errors) {
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) errors.push(`console: ${m.text()}`);
  });
}

// A page signed in with `token` in a fresh browser context (its own
// sessionStorage), on the exports list.
async function signedIn(browser, token, errors) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  await page.setViewport({ width: 1280, height: 800 });
  watchForErrors(page, errors);
  await signIn(page, token);
  await heading(page, 'Exports');
  return { context, page };
}

async function buttonTexts(page) {
  return page.$$eval('button', (bs) => bs.filter((b) => b.offsetParent !== null).map((b) => b.textContent.trim()));
}

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  for (const f of fs.readdirSync(SHOTS)) if (f.endsWith('.png')) fs.unlinkSync(path.join(SHOTS, f));  // a previous run's
  const csv = path.join(scratch, 'vip.csv');
  writeCsv(csv);
  const downloads = path.join(scratch, 'downloads');
  fs.mkdirSync(downloads, { recursive: true });

  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Chromium refuses to run as root with its sandbox; the test's pages are local.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--no-first-run', '--disable-gpu'],
  });
  const errors = [];
  let page;
  try {
    page = await browser.newPage();
    page.setDefaultTimeout(TIMEOUT);
    await page.setViewport({ width: 1280, height: 800 });
    watchForErrors(page, errors);

    // The console's responses carry the CSP that forbids inline scripts.
    const index = await page.goto(base + '/', { waitUntil: 'domcontentloaded' });
    const csp = index.headers()['content-security-policy'] || '';
    check(/script-src 'self'/.test(csp) && !/unsafe-inline/.test(csp), `the console's CSP is "${csp}"`);

    // Sign in as the admin.
    await page.waitForSelector('#signin #token');
    await shot(page, 'sign-in');
    await page.type('#token', adminToken);
    await page.click('#signin button[type=submit]');
    await heading(page, 'Exports');
    check(await page.evaluate(() => sessionStorage.getItem('exportd.token')) === adminToken, 'the token is not in sessionStorage');
    check(await page.evaluate(() => localStorage.length === 0 && document.cookie === ''), 'the token went to localStorage or a cookie');
    check(!page.url().includes(adminToken), 'the token is in the URL');
    check((await page.$eval('[data-testid=role]', (e) => e.textContent)) === 'Admin', 'the admin is not shown as admin');

    // Keyboard: a new page puts the focus on its heading; Tab goes on to its controls.
    check(await page.evaluate(() => document.activeElement === document.querySelector('main h1')), 'the page heading has no focus');
    await page.keyboard.press('Tab');
    check(await page.evaluate(() => ['A', 'BUTTON', 'INPUT', 'SELECT'].includes(document.activeElement.tagName)), 'Tab reaches no control');

    // Destinations: the manifests.
    await clickNav(page, 'Destinations', 'Destinations');
    await page.waitForSelector('article.destination[data-name=iterable]');
    await shot(page, 'destinations');

    // A connection from the Iterable manifest, pointing at the sandbox.
    await clickNav(page, 'Connections', 'Connections');
    await shot(page, 'connections-empty');
    await page.click('xpath/.//main//a[normalize-space(.)="New connection"]');
    await heading(page, 'New connection');
    await page.select('#destination-type', 'iterable');
    await page.type('#connection-name', 'Iterable sandbox');
    check(await page.$eval('input[name=setting-api_key]', (e) => e.type) === 'password', 'the API key field is not write-only (password)');
    check(await page.$eval('select[name=setting-region]', (e) => [...e.options].map((o) => o.value).join(',')) === 'us,eu',
      'the region setting does not offer its allowed values');
    await page.type('input[name=setting-api_key]', sandboxKey);
    await page.type('input[name=setting-base_url]', sandboxUrl);
    // Small, slow batches, so that the run takes a few seconds and its progress shows.
    await page.type('input[name=setting-requests_per_second]', '2');
    await page.click('details.more-settings summary');
    await page.type('input[name=setting-batch_size]', '50');
    await page.click('#shared');
    // The statement is Iterable's own (from its manifest), in paragraphs, with its version.
    const statement = await page.$eval('#privacy-statement', (e) => e.textContent);
    check(statement.includes('to Iterable, Inc.') && statement.includes('EU data centre')
      && statement.includes('You confirm that you are authorised'), `the privacy statement is not Iterable's, in full: ${statement}`);
    check(await page.$$eval('#privacy-statement p', (p) => p.length) >= 2, 'the privacy statement is not shown in paragraphs');
    const statementVersion = await page.$eval('#privacy-statement-version', (e) => e.textContent);
    check(/version \d{4}-\d{2}-\d{2}/.test(statementVersion), `the statement's version is not shown: ${statementVersion}`);
    check(await page.$eval('#test-before-save', (e) => e.checked), '"Test before saving" is not on by default');
    await shot(page, 'connection-new');
    // Without the consent the browser refuses to submit (the checkbox is required).
    await page.click('#create-connection');
    check(await page.$('#connection-form') !== null, 'the form went through without the consent');
    await page.click('#accept-privacy');
    // A wrong API key: exportd tests the connection first, says why, and saves nothing.
    await page.type('input[name=setting-api_key]', '-wrong');
    await page.click('#create-connection');
    await page.waitForSelector('#create-connection-result .notice.error');
    const refused = await page.$eval('#create-connection-result', (e) => e.textContent);
    check(refused.includes('was not saved') && refused.includes('rejected the API key'), `a wrong API key said: ${refused}`);
    await shot(page, 'connection-new-refused');
    await page.$eval('input[name=setting-api_key]', (e) => { e.value = ''; });
    await page.type('input[name=setting-api_key]', sandboxKey);
    await page.click('#create-connection');
    await heading(page, 'Iterable sandbox');
    await page.click('[data-testid=test-connection]');
    await page.waitForSelector('#connection-result .notice.ok');
    await shot(page, 'connection');

    // A segment, then its members from a CSV file with a progress bar.
    await clickNav(page, 'Segments', 'Segments');
    await page.type('#segment-name', 'VIP Customers');
    await page.click('#create-segment');
    await heading(page, 'VIP Customers');
    const file = await page.$('#csv-file');
    await file.uploadFile(csv);
    await page.waitForSelector('#id-field option[value=ProfileId]');
    await page.select('#id-field', 'ProfileId');
    await page.select('select[name="type-LoyaltyPoints"]', 'int');
    await page.click('#upload');
    await page.waitForSelector('#upload-result .notice.ok');
    const uploaded = await page.$eval('#upload-result', (e) => e.textContent);
    check(uploaded.includes(`Uploaded ${ROWS} members`), `upload said: ${uploaded}`);
    check(await page.$eval('#upload-form [role=progressbar]', (e) => e.getAttribute('aria-valuenow')) === '100', 'the upload bar is not at 100%');
    await shot(page, 'segment-uploaded');
    await page.click('#reload-segment');
    await page.waitForSelector('#members table tbody tr');
    const memberRows = await page.$$eval('#members table tbody tr', (r) => r.length);
    check(memberRows === 50, `the first page of members has ${memberRows} rows, not 50`);
    await shot(page, 'segment');
    await clickNav(page, 'Segments', 'Segments');
    await shot(page, 'segments');

    // An export: connection, segment, email from the schema, an extra field, a schedule.
    await clickNav(page, 'Exports', 'Exports');
    await page.click('xpath/.//main//a[normalize-space(.)="New export"]');
    await heading(page, 'New export');
    await page.type('#export-name', 'vip');
    const connectionId = await page.$eval('#export-connection', (s) => [...s.options].find((o) => o.textContent.startsWith('Iterable sandbox')).value);
    await page.select('#export-connection', connectionId);
    await page.click('xpath/.//fieldset[@id="segment-choice"]//label[starts-with(normalize-space(.), "VIP Customers")]');
    await page.waitForSelector('select[data-destination-field=email] option[value=Email]');
    await page.select('select[data-destination-field=email]', 'Email');
    await page.click('#add-mapping');
    await page.type('.mapping-row:last-child input.destination-field', 'firstName');
    await page.select('.mapping-row:last-child select.profile-field', 'FirstName');
    if (!(await page.$eval('#schedule-enabled', (e) => e.checked))) await page.click('#schedule-enabled');
    await page.type('#schedule-cron', '0 6 * * MON-FRI');
    await page.$eval('#schedule-timezone', (e) => { e.value = ''; });
    await page.type('#schedule-timezone', 'Europe/Berlin');
    await page.waitForFunction(() => document.querySelectorAll('#next-runs li').length === 5);
    await page.keyboard.press('Escape');  // the time zone list's popup
    await page.$eval('#schedule-timezone', (e) => e.blur());
    await shot(page, 'export-new');
    await page.click('#save-export');
    await heading(page, 'vip');
    // The browser's preview agrees with the server's schedule on the next run.
    const [serverNext, previewNext] = await page.evaluate(() => {
      const dts = [...document.querySelectorAll('dl.facts dt')];
      const dd = dts.find((d) => d.textContent === 'Next scheduled run').nextElementSibling.textContent;
      const li = document.querySelector('.next-runs li .help').textContent;
      return [dd, li.replace(/^ \((.*) your time\)$/, '$1')];
    });
    check(serverNext === previewNext, `the server's next run is ${serverNext}, the preview's ${previewNext}`);
    await shot(page, 'export');

    // Run it and watch the bar reach 100% (WatchRun's events, no reload).
    await page.click('[data-testid=run-now]');
    await page.waitForFunction(() => /^Run /.test((document.querySelector('main h1') || {}).textContent || ''));
    const runUrl = page.url();
    // The bar moves while the run goes on (WatchRun's events, no reload).
    await page.waitForFunction(() => {
      const bar = document.querySelector('.progress [role=progressbar]');
      const v = bar ? Number(bar.getAttribute('aria-valuenow')) : 0;
      return v > 0 && v < 100;
    }, { timeout: 2 * TIMEOUT });
    await shot(page, 'run-in-progress', { fullPage: false });
    await page.waitForFunction(() => {
      const bar = document.querySelector('.progress [role=progressbar]');
      return bar && bar.getAttribute('aria-valuenow') === '100' && /SUCCEEDED/.test(bar.dataset.state || '');
    }, { timeout: 2 * TIMEOUT });
    check(page.url() === runUrl, 'the run page reloaded');
    const state = await page.$eval('.progress [role=progressbar]', (e) => e.dataset.state);
    check(state === 'RUN_STATE_SUCCEEDED_WITH_REJECTIONS', `the run ended ${state}, not with rejections`);
    // The run's log, read while it went on, ends with its final state.
    await page.waitForFunction(() => {
      const lines = [...document.querySelectorAll('#run-log-lines li')];
      return lines.length > 0 && /run SUCCEEDED_WITH_REJECTIONS: 20 records were rejected/.test(lines[lines.length - 1].textContent);
    });
    const logLines = await page.$$eval('#run-log-lines li', (ls) => ls.map((l) => l.textContent));
    check(/Info engine run started \(attempt 1 of \d+\): on demand/.test(logLines[0]), `the log starts with "${logLines[0]}"`);
    check(logLines.some((l) => /segment VIP Customers done: \d+ added/.test(l)), `the log has no segment end: ${logLines.join(' | ')}`);
    check(logLines.every((l) => !l.includes(sandboxKey)), 'the log shows the API key');
    await page.select('#log-level', 'RUN_LOG_LEVEL_WARNING');
    await page.waitForFunction(() => {
      const lines = [...document.querySelectorAll('#run-log-lines li')];
      return lines.length > 0 && lines.every((l) => /^\S+ \S+ (Warning|Error) /.test(l.textContent))
        && /run SUCCEEDED_WITH_REJECTIONS/.test(lines[lines.length - 1].textContent);
    });
    await page.select('#log-level', '');
    await page.waitForFunction((n) => document.querySelectorAll('#run-log-lines li').length === n, {}, logLines.length);
    // The rejections: one page, a reason filter, a CSV download.
    await page.waitForSelector('#rejection-list table tbody tr');
    const total = await page.$eval('#rejection-total', (e) => e.textContent);
    check(total.startsWith(`${INVALID} `), `the rejections say "${total}", not ${INVALID}`);
    await shot(page, 'run');
    const reasons = await page.$$eval('#reason-filter option', (o) => o.map((x) => x.value).filter(Boolean));
    check(reasons.length >= 1, 'no reason to filter by');
    await page.select('#reason-filter', reasons[0]);
    await page.waitForFunction((r) => document.querySelector('#rejection-total').textContent.includes(`reason ${r}`), {}, reasons[0]);
    const cdp = await page.createCDPSession();
    await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: downloads });
    await page.click('#download-rejections');
    await page.waitForFunction(() => !document.querySelector('#download-rejections').disabled);
    // Chromium can show the file under its final name before its bytes are
    // written (seen once in CI: an empty file); the console ends the CSV with
    // a line break, so a file without one is not whole yet.
    const deadline = Date.now() + TIMEOUT;
    let csvFile = null;
    let text = '';
    while (Date.now() < deadline) {
      csvFile = fs.readdirSync(downloads).find((f) => f.endsWith('.csv'));
      if (csvFile) text = fs.readFileSync(path.join(downloads, csvFile), 'utf8');
      if (text.endsWith('\n')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    check(csvFile, 'the rejections CSV was not downloaded');
    const lines = text.trim().split(/\r?\n/);
    check(lines[0].startsWith('run_id,segment_id,profile_id'), `the CSV header is ${lines[0]}`);
    check(lines.length === INVALID + 1, `the CSV has ${lines.length - 1} rejections, not ${INVALID}`);
    await shot(page, 'run-rejections-filtered');

    // A full resync, canceled while it runs.
    await clickCurrent(page, '#run-facts a');  // the run's export
    await heading(page, 'vip');
    await clickCurrent(page, '[data-testid=full-resync]');
    await clickCurrent(page, '[data-testid=cancel-run]');
    await page.waitForFunction(() => {
      const state = document.querySelector('.progress [role=progressbar]').dataset.state || '';
      return state !== 'RUN_STATE_RUNNING' && state !== 'RUN_STATE_QUEUED';
    });
    const canceled = await page.$eval('.progress [role=progressbar]', (e) => e.dataset.state);
    check(canceled === 'RUN_STATE_CANCELED', `the canceled run ended ${canceled}`);
    check(await page.$('[data-testid=cancel-run]') === null, 'a canceled run still offers Cancel');

    // Histories and the audit log.
    await clickNav(page, 'Runs', 'Runs');
    await page.waitForSelector('.run-history table tbody tr');
    await shot(page, 'runs');
    await clickNav(page, 'Exports', 'Exports');
    await page.waitForSelector('main table tbody tr');
    await shot(page, 'exports');
    await clickNav(page, 'Audit log', 'Audit log');
    await page.waitForSelector('#audit-entries table tbody tr');
    await page.type('#audit-resource', 'export/');
    await page.waitForFunction(() => [...document.querySelectorAll('#audit-entries tbody tr')].every((r) => r.textContent.includes('export/')));
    await shot(page, 'audit');

    // Phone width.
    await page.setViewport({ width: 390, height: 844, isMobile: true });
    await page.goto(runUrl, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('#rejection-list table tbody tr');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 1, `at phone width the run page is ${overflow}px wider than the screen`);
    await shot(page, 'run-phone', { fullPage: false });
    for (const [pathname, title] of [['/segments', 'Segments'], ['/runs', 'Runs'], ['/connections', 'Connections'],
      ['/destinations', 'Destinations'], ['/audit', 'Audit log'], ['/exports/new', 'New export'], ['/exports', 'Exports']]) {
      await go(page, pathname, title);
      await page.waitForSelector('main table, main form');
      const wider = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      check(wider <= 1, `at phone width ${pathname} is ${wider}px wider than the screen`);
    }
    await page.waitForSelector('main table tbody tr');
    await shot(page, 'exports-phone', { fullPage: false });

    // A contributor sees only the connections shared with contributors, changes none of
    // them, and may create and run exports on them.
    const unshared = await fetch(`${base}/v1/exportd.v1.ConnectionService/CreateConnection`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${adminToken}` },
      body: JSON.stringify({ displayName: 'Admins only', destinationType: 'iterable', acceptPrivacyTerms: true,
        settings: { base_url: sandboxUrl }, secrets: { api_key: sandboxKey } }),
    });
    check(unshared.ok, `creating an unshared connection over the API: HTTP ${unshared.status}`);
    const { context: contributorContext, page: contributor } = await signedIn(browser, contributorToken, errors);
    const contributorNav = await contributor.$$eval('#nav a', (as) => as.map((a) => a.textContent));
    check(contributorNav.includes('Connections') && !contributorNav.includes('Audit log'), `a contributor's navigation shows ${contributorNav}`);
    await go(contributor, '/connections', 'Connections');
    const names = await contributor.$$eval('main table tbody tr td:first-child', (tds) => tds.map((t) => t.textContent));
    check(names.join() === 'Iterable sandbox', `a contributor sees the connections ${names}`);
    check(await contributor.$('xpath/.//main//a[normalize-space(.)="New connection"]') === null, 'a contributor is offered New connection');
    await contributor.click('main table tbody a');
    await heading(contributor, 'Iterable sandbox');
    check((await buttonTexts(contributor)).join() === 'Sign out', 'a contributor sees buttons on a connection');
    await go(contributor, '/exports/new', 'New export');
    const offered = await contributor.$$eval('#export-connection option', (o) => o.map((x) => x.textContent));
    check(!offered.some((t) => t.startsWith('Admins only')), `a contributor is offered the connections ${offered}`);
    await contributorContext.close();

    // A viewer, in a fresh browser context (its own sessionStorage).
    const { context: viewerContext, page: viewer } = await signedIn(browser, viewerToken, errors);
    const navLinks = await viewer.$$eval('#nav a', (as) => as.map((a) => a.textContent));
    check(!navLinks.includes('Connections') && !navLinks.includes('Audit log'), `a viewer's navigation shows ${navLinks}`);
    const readOnly = new Set(['Sign out', 'Next page', 'Previous page', 'Download CSV']);
    const exportPath = await viewer.$eval('main table tbody a', (a) => a.getAttribute('href'));
    for (const [pathname, title] of [['/exports', 'Exports'], [exportPath, 'vip'], ['/segments', 'Segments'],
      [new URL(runUrl).pathname, `Run ${runUrl.split('/').pop()}`], ['/runs', 'Runs'], ['/destinations', 'Destinations']]) {
      await go(viewer, pathname, title);
      if (title.startsWith('Run ')) {
        await viewer.waitForSelector('#rejection-list table');
        await viewer.waitForFunction(() => [...document.querySelectorAll('#run-log-lines li')].some((l) => /run SUCCEEDED_WITH_REJECTIONS/.test(l.textContent)));
      }
      const buttons = (await buttonTexts(viewer)).filter((t) => !readOnly.has(t));
      check(buttons.length === 0, `a viewer sees the buttons ${JSON.stringify(buttons)} on ${pathname}`);
      const links = await viewer.$$eval('main a', (as) => as.map((a) => a.textContent.trim()));
      for (const forbidden of ['New export', 'Edit', 'New connection']) {
        check(!links.includes(forbidden), `a viewer sees the link "${forbidden}" on ${pathname}`);
      }
      check(await viewer.$('main form:not(.toolbar)') === null || pathname === '/runs' || title.startsWith('Run '),
        `a viewer sees a form on ${pathname}`);
    }
    await go(viewer, exportPath, 'vip');
    await shot(viewer, 'viewer-export');
    await viewerContext.close();

    // Deleting with the destination's lists: the confirmation's checkbox sends
    // delete_audiences, and the notice names the lists deleted and kept.
    await page.setViewport({ width: 1280, height: 800 });
    const admin = { Authorization: `Bearer ${adminToken}` };
    async function api(method, body) {
      const r = await fetch(`${base}/v1/exportd.v1.${method}`, {
        method: 'POST', headers: { 'Content-Type': 'application/json', ...admin }, body: JSON.stringify(body),
      });
      const text = await r.text();
      check(r.ok, `${method}: HTTP ${r.status} ${text}`);
      return JSON.parse(text);
    }
    async function sandboxList(name) {
      const lists = await (await fetch(`${sandboxUrl}/_sandbox/lists`)).json();
      return lists.find((l) => l.name === name) || null;
    }
    async function runToEnd(exportId) {
      const { id } = await api('RunService/RunExport', { export: exportId });
      const until = Date.now() + TIMEOUT;
      for (;;) {
        const run = await api('RunService/GetRun', { runId: id });
        if (!['RUN_STATE_QUEUED', 'RUN_STATE_RUNNING', 'RUN_STATE_FAILED_RETRYING'].includes(run.state)) return run;
        check(Date.now() < until, `run ${id} did not end: ${run.state}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    // Segment "Lapsed": export "lapsed" sent it (its run created the list "Lapsed"), then moved on.
    const lapsedSegment = await api('SegmentService/CreateSegment', { name: 'Lapsed' });
    const upload = await fetch(`${base}/v1/exportd.v1.SegmentService/UploadMembers?segment=${encodeURIComponent(lapsedSegment.id)}`
      + '&filename=lapsed.csv&id-field=ProfileId', {
      method: 'POST', headers: { 'Content-Type': 'text/csv', ...admin },
      body: 'ProfileId,Email\nl-1,lapsed1@example.com\nl-2,lapsed2@example.com\n',
    });
    check(upload.ok, `uploading Lapsed: HTTP ${upload.status} ${await upload.text()}`);
    const lapsedExport = await api('ExportService/CreateExport', {
      name: 'lapsed', connection: connectionId, segments: [lapsedSegment.id],
      mappings: [{ destinationField: 'email', profileField: 'Email' }],
    });
    const lapsedRun = await runToEnd(lapsedExport.id);
    check(lapsedRun.state === 'RUN_STATE_SUCCEEDED', `the run of lapsed ended ${lapsedRun.state}: ${lapsedRun.message}`);
    const lapsedList = await sandboxList('Lapsed');
    check(lapsedList, 'the run of lapsed created no list "Lapsed"');
    await api('ExportService/UpdateExport', { export: lapsedExport.id, segments: ['VIP Customers'] });

    await go(page, `/segments/${encodeURIComponent(lapsedSegment.id)}`, 'Lapsed');
    await page.click('[data-testid=delete-segment]');
    await page.waitForSelector('[data-testid=delete-segment-option]');
    const segmentOption = await page.$eval('[data-testid=delete-segment-option]', (c) => [c.checked, c.labels[0].textContent]);
    check(!segmentOption[0] && segmentOption[1] === 'Also delete the lists exports created for this segment in the destination',
      `the segment's delete offers ${JSON.stringify(segmentOption)}`);
    await page.click('[data-testid=delete-segment-option]');
    await shot(page, 'segment-delete-confirm');
    await page.click('[data-testid=delete-segment-yes]');
    await heading(page, 'Segments');
    await page.waitForSelector('#status #deletion-result');
    const deletedLists = await page.$$eval('#deleted-audiences li', (li) => li.map((x) => x.textContent));
    check(JSON.stringify(deletedLists) === JSON.stringify([`Lapsed (${lapsedList.id})`]),
      `deleting the segment says it deleted ${JSON.stringify(deletedLists)}`);
    check(await page.$('#kept-audiences') === null, 'deleting the segment says it kept lists');
    check(await sandboxList('Lapsed') === null, 'the list "Lapsed" is still in the sandbox');
    await shot(page, 'segment-deleted');

    // Export "vip" created "VIP Customers", which a campaign uses now: Iterable keeps it.
    const vipList = await sandboxList('VIP Customers');
    check(vipList, 'no list "VIP Customers" in the sandbox');
    const inUse = await fetch(`${sandboxUrl}/_sandbox/lists/${vipList.id}/in-use`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"inUse":true}',
    });
    check(inUse.ok, `marking the list in use: HTTP ${inUse.status}`);
    await go(page, exportPath, 'vip');
    await page.click('[data-testid=delete-export]');
    await page.waitForSelector('[data-testid=delete-export-option]');
    const exportOption = await page.$eval('[data-testid=delete-export-option]', (c) => [c.checked, c.labels[0].textContent]);
    check(!exportOption[0] && exportOption[1] === 'Also delete the lists this export created in the destination',
      `the export's delete offers ${JSON.stringify(exportOption)}`);
    await page.click('[data-testid=delete-export-option]');
    await page.click('[data-testid=delete-export-yes]');
    await heading(page, 'Exports');
    await page.waitForSelector('#status #deletion-result');
    const result = await page.$eval('#deletion-result', (e) => e.textContent);
    check(result.includes('Export vip deleted.') && result.includes('No list was deleted in the destination.'),
      `deleting the export said: ${result}`);
    const keptLists = await page.$$eval('#kept-audiences li', (li) => li.map((x) => x.textContent));
    check(keptLists.length === 1 && keptLists[0].startsWith(`VIP Customers (${vipList.id}): `) && keptLists[0].includes('in use'),
      `deleting the export says it kept ${JSON.stringify(keptLists)}`);
    check(await sandboxList('VIP Customers') !== null, 'the list in use was deleted');
    await shot(page, 'export-deleted');

    check(errors.length === 0, `the pages reported errors:\n${errors.join('\n')}`);
  } catch (e) {
    // What the page showed when it failed, for the log and as a picture.
    if (page) {
      const text = await page.$eval('main', (m) => m.innerText).catch(() => '');
      console.error(`the page ${page.url()} showed:\n${text.slice(0, 3000)}`);
      await page.screenshot({ path: path.join(SHOTS, 'failure.png'), fullPage: true }).catch(() => {});
    }
    if (errors.length) console.error(`the pages reported errors:\n${errors.join('\n')}`);
    throw e;
  } finally {
    await browser.close();
  }
}

main().then(() => {
  console.log('console_test: PASS');
}, (e) => {
  console.error(`FAIL: ${e.stack || e}`);
  process.exit(1);
});
