// The dashboard in Debian's chromium (headless), driven by puppeteer-core;
// started by tests/t-dashboard.sh, which describes what it proves.  Tokens
// come from files named in the environment, never from a command line.
// FERRY_DASHBOARD_SHOTS=DIR: a PNG of each page into DIR as well.
'use strict';
const fs = require('fs');
const path = require('path');
const puppeteer = require('puppeteer-core');

const URL0 = process.env.FERRY_URL;
const MIG = Number(process.env.FERRY_MIGRATION);
const SHOTS = process.env.FERRY_DASHBOARD_SHOTS || '';
const token = (v) => fs.readFileSync(process.env[v], 'utf8').trim();
const OPERATOR = token('FERRY_OPERATOR_TOKEN_FILE');
const VIEWER = token('FERRY_VIEWER_TOKEN_FILE');
const ADMIN = token('FERRY_ADMIN_TOKEN_FILE');

function fail(msg) { throw new Error(msg); }
function ok(msg) { console.log('ok - ' + msg); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function shot(page, name) {
  if (!SHOTS) return;
  fs.mkdirSync(SHOTS, {recursive: true});
  await sleep(300);                       // let bar transitions settle
  await page.screenshot({path: path.join(SHOTS, name + '.png'), fullPage: false});
}

// A page that fails the test on any script error or CSP violation.
async function newPage(ctx, problems, width, height) {
  const page = await ctx.newPage();
  await page.setViewport({width: width || 1280, height: height || 800});
  page.on('pageerror', (e) => problems.push('script error: ' + e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) {
      problems.push('console error: ' + m.text());
    }
  });
  page.on('requestfailed', (r) => {
    // the event stream is aborted on sign-out and page close; nothing else
    // may fail
    if (!r.url().includes('/v1/events/stream')) {
      problems.push('request failed: ' + r.url() + ' ' + (r.failure() || {}).errorText);
    }
  });
  return page;
}

async function signIn(page, tok) {
  await page.goto(URL0 + '/', {waitUntil: 'domcontentloaded'});
  if (!page.url().endsWith('/ui/')) fail('/ did not lead to /ui/ but to ' + page.url());
  await page.waitForSelector('#login #token', {timeout: 10000});
  await page.type('#token', tok);
  await Promise.all([
    page.waitForSelector('#migrations tbody tr', {timeout: 10000}),
    page.click('#login button[type=submit]'),
  ]);
  await page.waitForSelector('#live[data-state=live]', {timeout: 10000});
}

// No token anywhere a page keeps: markup, cookies, localStorage.
async function noSecretsKept(page, tok, where) {
  const html = await page.content();
  if (html.includes(tok)) fail(where + ': the token is in the page markup');
  const cookies = await page.cookies();
  if (cookies.length) fail(where + ': the page set cookies: ' + cookies.map((c) => c.name).join(', '));
  const ls = await page.evaluate(() => JSON.stringify(localStorage));
  if (ls.includes(tok)) fail(where + ': the token is in localStorage');
}

async function barValue(page, sel) {
  return page.$eval(sel + ' .bar', (b) => Number(b.getAttribute('aria-valuenow')));
}

async function main() {
  const spki = process.env.FERRY_SPKI;
  const args = ['--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
                '--ignore-certificate-errors-spki-list=' + spki];
  if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');
  const browser = await puppeteer.launch({
    executablePath: process.env.FERRY_CHROMIUM || '/usr/bin/chromium',
    headless: true, args, protocolTimeout: 60000,
  });
  const problems = [];
  try {
    const ctx = await browser.createBrowserContext();
    const page = await newPage(ctx, problems);

    // the files carry their security headers
    const resp = await page.goto(URL0 + '/ui/', {waitUntil: 'domcontentloaded'});
    const csp = resp.headers()['content-security-policy'] || '';
    if (!/script-src 'self'/.test(csp) || /unsafe-inline/.test(csp)) fail('the page\'s CSP is "' + csp + '"');
    if (resp.headers()['x-content-type-options'] !== 'nosniff') fail('no nosniff on the page');
    await shot(page, 'signin');

    // a wrong token is refused with the server's words
    await page.waitForSelector('#login #token');
    await page.type('#token', 'not-a-token');
    await page.click('#login button[type=submit]');
    await page.waitForSelector('#login .error-box', {timeout: 10000});
    ok('the dashboard is served by ferry-server at /ui/ with its CSP; a wrong token is refused on the sign-in form');

    await signIn(page, OPERATOR);
    await noSecretsKept(page, OPERATOR, 'migrations page');
    const who = await page.$eval('#who', (e) => e.textContent);
    if (!/bob · operator · project default/.test(who)) fail('the header says "' + who + '"');
    const rows0 = await page.$$eval('#migrations tbody tr', (trs) => trs.map((t) => t.textContent));
    if (rows0.length !== 1 || !/db01/.test(rows0[0]) || !/done/.test(rows0[0])) fail('the migrations page lists: ' + JSON.stringify(rows0));
    ok('an operator signs in: the migrations page lists db01 done, and no token is kept in the page, a cookie or localStorage');

    // the operator starts web01's warm migration from its blueprint's page
    await page.goto(URL0 + '/ui/#/blueprints/wave1', {waitUntil: 'domcontentloaded'});
    await page.waitForSelector('#mapping tbody tr');
    const migrate = await page.evaluateHandle(() => [...document.querySelectorAll('#mapping tbody tr')]
      .find((tr) => /web01/.test(tr.cells[0].textContent)).querySelector('[data-action=migrate]'));
    if (!migrate.asElement()) fail('no Migrate button for web01 on blueprint wave1');
    await migrate.asElement().click();
    await page.waitForSelector('#confirm[open]');
    await page.click('#confirm-ok');
    await page.waitForFunction((id) => location.hash === '#/migrations/' + id, {timeout: 10000}, MIG)
      .catch(() => fail('Migrate did not lead to migration ' + MIG + ': ' + page.url()));
    await page.goto(URL0 + '/ui/#/migrations', {waitUntil: 'domcontentloaded'});
    await page.waitForFunction(() => document.querySelectorAll('#migrations tbody tr').length === 2);
    const rows = await page.$$eval('#migrations tbody tr', (trs) => trs.map((t) => t.textContent));
    if (!rows.some((r) => /web01/.test(r) && /active/.test(r))) fail('after Migrate the list shows ' + JSON.stringify(rows));
    if (SHOTS) {                              // the picture with the bar moving
      await page.waitForFunction(() => /of 64\.0 MiB/.test(document.querySelector('#migrations tbody').textContent),
                                 {timeout: 15000}).catch(() => {});
    }
    await shot(page, 'migrations');
    ok('Migrate on blueprint wave1\'s page, confirmed, starts migration ' + MIG + ' of web01 and the list shows it active');

    // the warm migration live: no navigation from here on
    let navigations = 0;
    page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations++; });
    await page.goto(URL0 + '/ui/#/migrations/' + MIG, {waitUntil: 'domcontentloaded'});
    navigations = 0;
    await page.evaluate(() => { window.__ferryMark = 'same page'; });
    await page.waitForSelector('#tasks [data-task] .bar', {timeout: 30000});
    const v0 = await barValue(page, '#tasks [data-task]');
    await page.waitForFunction((v) => {
      const b = document.querySelector('#tasks [data-task] .bar');
      return b && Number(b.getAttribute('aria-valuenow')) >= v + 10;
    }, {timeout: 30000, polling: 200}, v0).catch(() => fail('the clone\'s bar stayed near ' + v0 + '%'));
    const v1 = await barValue(page, '#tasks [data-task]');
    const label = await page.$eval('#tasks [data-task] .label', (e) => e.textContent);
    if (!/MiB of 64\.0 MiB · \d+% · [\d.]+ MiB\/s · .* left/.test(label)) fail('the bar\'s words are "' + label + '"');
    await shot(page, 'migration-cloning');
    ok('the clone\'s progress bar moves from ' + v0 + '% to ' + v1 + '% without a reload, with its bytes, rate and time left ("' + label + '")');

    const before = await page.$$eval('#events tbody tr', (t) => t.length);
    await page.waitForSelector('#timeline li.now[data-phase=ready], #timeline li.now[data-phase=syncing]', {timeout: 60000})
      .catch(() => fail('the timeline never reached ready'));
    await page.waitForSelector('#events tbody tr.new', {timeout: 10000});
    const fresh = await page.$$eval('#events tbody tr.new', (t) => t.map((r) => r.textContent));
    const after = await page.$$eval('#events tbody tr', (t) => t.length);
    if (!fresh.some((f) => /sync 1 done/.test(f))) fail('the new events are ' + JSON.stringify(fresh));
    const mark = await page.evaluate(() => window.__ferryMark);
    if (mark !== 'same page' || navigations !== 0) fail('the page reloaded (' + navigations + ' navigations)');
    await page.waitForSelector('#actions [data-action=cut-over]', {timeout: 10000});
    await page.waitForSelector('#cutover-estimate', {timeout: 10000});
    await shot(page, 'migration-ready');
    ok('events arrive without a reload (' + before + ' rows, then ' + after + ', among them "sync 1 done"), the timeline reaches ready and the cutover estimate shows');

    // hosts: the inventory at a glance
    await page.goto(URL0 + '/ui/#/hosts', {waitUntil: 'domcontentloaded'});
    await page.waitForSelector('#hosts tbody tr[data-host]');
    const hosts = await page.$$eval('#hosts tbody tr', (trs) => trs.map((t) => t.textContent));
    if (!hosts.some((h) => /web01/.test(h) && /Debian GNU\/Linux 12/.test(h) && /sda 64\.0 MiB/.test(h))) {
      fail('the hosts page shows: ' + JSON.stringify(hosts));
    }
    await shot(page, 'hosts');
    await page.click('#hosts a[href^="#/hosts/"]');
    await page.waitForFunction(() => /Host /.test((document.querySelector('h1') || {}).textContent || ''));
    await shot(page, 'host');
    ok('the hosts page shows each host\'s OS and disks from its inventory');

    // a blueprint: its findings beside the line they point at
    await page.goto(URL0 + '/ui/#/blueprints', {waitUntil: 'domcontentloaded'});
    await page.waitForSelector('#blueprints tbody a');
    const links = await page.$$eval('#blueprints tbody a', (as) => as.map((a) => [a.textContent, a.getAttribute('href')]));
    const wave2 = links.find((l) => l[0] === 'wave2');
    if (!wave2) fail('the blueprints page lists ' + JSON.stringify(links));
    await page.goto(URL0 + '/ui/' + wave2[1], {waitUntil: 'domcontentloaded'});
    await page.waitForSelector('#source');
    const mapping = await page.$$eval('#mapping tbody tr', (trs) => trs.map((t) => t.textContent));
    if (mapping.length !== 1 || !/db01/.test(mapping[0]) || !/format: raw/.test(mapping[0])) fail('the mapping shows ' + JSON.stringify(mapping));
    await shot(page, 'blueprint');
    await page.$eval('#draft', (t) => { t.value += '  - name: ghost01\n    format: qcow2\n'; });
    await page.click('#validate');
    await page.waitForSelector('#draft-findings tbody tr', {timeout: 10000});
    const finding = await page.$$eval('#draft-findings tbody tr', (trs) => trs.map((t) => [...t.cells].map((c) => c.textContent)));
    const ghost = finding.find((f) => /ghost01/.test(f[3]));
    if (!ghost || ghost[0] !== 'error') fail('no error names ghost01: ' + JSON.stringify(finding));
    const line = Number(ghost[1]);
    const flagged = await page.$$eval('#draft-source .ln.flag-error', (ls) => ls.map((l) => [l.dataset.line, l.textContent]));
    if (line !== 8 || flagged.length !== 1 || flagged[0][0] !== '8' || !/ghost01/.test(flagged[0][1])) {
      fail('finding ' + JSON.stringify(ghost) + ' but flagged lines ' + JSON.stringify(flagged));
    }
    if (await page.$('#apply')) fail('an operator (not admin) is offered Apply');
    await page.$eval('#draft-result', (e) => e.scrollIntoView());
    await shot(page, 'blueprint-check');
    ok('a blueprint\'s page shows which hosts it maps; a change naming ghost01 validated in the page gets the server\'s error at line ' + line + ', flagged on that line');

    // a viewer: no cutover button, and the API refuses it anyway
    const vctx = await browser.createBrowserContext();
    const vpage = await newPage(vctx, problems);
    await signIn(vpage, VIEWER);
    await vpage.goto(URL0 + '/ui/#/migrations/' + MIG, {waitUntil: 'domcontentloaded'});
    await vpage.waitForSelector('#actions');
    if (await vpage.$('#actions button')) fail('a viewer sees buttons: ' + await vpage.$eval('#actions', (e) => e.textContent));
    const vtext = await vpage.$eval('#actions', (e) => e.textContent);
    if (!/Read-only/.test(vtext)) fail('the viewer\'s actions say "' + vtext + '"');
    const refused = await vpage.evaluate(async (id) => {
      const r = await fetch('/v1/migrations/' + id + '/cutover', {method: 'POST',
        headers: {Authorization: 'Bearer ' + sessionStorage.getItem('ferry.token')}});
      return [r.status, (await r.json()).error.message];
    }, MIG);
    if (refused[0] !== 403 || !/needs the operator role/.test(refused[1])) fail('the viewer\'s cutover got ' + JSON.stringify(refused));
    await noSecretsKept(vpage, VIEWER, 'viewer\'s migration page');
    await vctx.close();
    ok('a viewer sees no cutover button, and the API refuses the viewer\'s cutover: ' + refused[0] + ' "' + refused[1] + '"');

    // the operator: declining the confirmation does nothing, confirming cuts over
    await page.goto(URL0 + '/ui/#/migrations/' + MIG, {waitUntil: 'domcontentloaded'});
    await page.waitForSelector('#actions [data-action=cut-over]', {timeout: 10000});
    await page.click('#actions [data-action=cut-over]');
    await page.waitForSelector('#confirm[open]');
    const ask = await page.$eval('#confirm', (d) => d.textContent);
    if (!/final/.test(ask)) fail('the confirmation says "' + ask + '"');
    await shot(page, 'confirm-cutover');
    await page.click('#confirm button[value=cancel]');
    await page.waitForSelector('#confirm:not([open])');
    await sleep(1500);
    const still = await page.evaluate(async (id) => {
      const r = await fetch('/v1/migrations/' + id, {headers: {Authorization: 'Bearer ' + sessionStorage.getItem('ferry.token')}});
      return (await r.json()).cutover;
    }, MIG);
    if (still) fail('declining the confirmation still cut over');
    await page.click('#actions [data-action=cut-over]');
    await page.waitForSelector('#confirm[open]');
    await page.click('#confirm-ok');
    await page.waitForFunction(() => /Cutover requested/.test((document.querySelector('#notice') || {}).textContent || ''), {timeout: 10000});
    ok('an operator\'s cutover asks first: declined, nothing happens; confirmed, the server takes it');
    await page.waitForSelector('#timeline li.past[data-phase=done], #timeline li.now[data-phase=done]', {timeout: 120000})
      .catch(() => fail('the page never showed the migration done'));
    await shot(page, 'migration-done');
    ok('the page follows the migration to done without a reload');

    // the server admin picks the project; another project shows none of these
    const actx = await browser.createBrowserContext();
    const apage = await newPage(actx, problems);
    await signIn(apage, ADMIN);
    await apage.waitForSelector('#project:not([hidden]) option[value=other]', {timeout: 10000})
      .catch(() => fail('the server admin has no project selector with project other'));
    await apage.select('#project', 'other');
    await apage.waitForFunction(() => /project other/.test(document.querySelector('#who').textContent), {timeout: 10000});
    await apage.waitForFunction(() => /No migrations yet/.test((document.querySelector('#migrations tbody') || {}).textContent || ''),
                                {timeout: 10000}).catch(() => fail('project other lists migrations'));
    await actx.close();
    ok('the server admin switches to project other, which shows none of project default\'s migrations');

    // on a phone (sessionStorage is per tab: the new tab signs in)
    const phone = await newPage(ctx, problems, 390, 844);
    await signIn(phone, OPERATOR);
    await phone.waitForSelector('#migrations tbody tr .bar');
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 0) fail('at 390 px the migrations page is ' + overflow + ' px too wide');
    await shot(phone, 'phone-migrations');
    await phone.goto(URL0 + '/ui/#/migrations/' + MIG, {waitUntil: 'domcontentloaded'});
    await phone.waitForSelector('#timeline');
    await shot(phone, 'phone-migration');
    ok('at a phone\'s 390 px the migrations page fits the screen');

    if (problems.length) fail(problems.join('\n'));
    ok('no script error, console error or failed request on any page');
  } finally {
    await browser.close();
  }
}

main().catch((e) => { console.error('FAIL: ' + e.message); process.exit(1); });
