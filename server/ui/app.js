/* ferry dashboard (docs/DASHBOARD.md).
 *
 * One file, no framework, no build step.  Everything shown comes from the
 * REST API with the operator's token, which lives in this tab's
 * sessionStorage only (gone when the tab closes, never in a URL, a cookie
 * or the page).  Every value from the server goes into the page as text
 * (textContent), never as HTML.  Live updates come from GET
 * /v1/events/stream read through fetch (EventSource cannot send an
 * Authorization header); the page refetches what an event changed at most
 * once a second, so a busy server costs each browser bounded work. */
'use strict';

const TOKEN_KEY = 'ferry.token';
const PROJECT_KEY = 'ferry.project';
const EVENTS_SHOWN = 500;            /* rows kept in a migration's log */
const REFRESH_MS = 1000;             /* at most one refetch a second */

const state = {
  who: null,                         /* GET /v1/whoami */
  route: null,
  stream: null,                      /* AbortController of the stream */
  lastEventId: 0,
  refreshTimer: null,
  refreshDue: 0,
  progress: new Map(),               /* task id -> latest progress */
};

/* ---- helpers ---------------------------------------------------------- */

/* el('td', {class: 'num'}, 'text', child...): text children are text
 * nodes, so nothing from the server is ever parsed as HTML. */
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

const $ = (sel) => document.querySelector(sel);

function bytes(n) {
  if (n === null || n === undefined) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  n = Number(n);
  while (Math.abs(n) >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(n < 10 ? 2 : 1) : String(n)) + ' ' + u[i];
}

function duration(s) {
  if (s === null || s === undefined || !isFinite(s)) return '–';
  s = Math.max(0, Math.round(s));
  if (s < 90) return s + ' s';
  if (s < 5400) return Math.round(s / 60) + ' min';
  return (s / 3600).toFixed(1) + ' h';
}

function ago(iso) {
  if (!iso) return '–';
  const t = Date.parse(iso);
  if (isNaN(t)) return iso;
  const s = (Date.now() - t) / 1000;
  return s < 5 ? 'just now' : duration(s) + ' ago';
}

function time(iso) {
  const t = Date.parse(iso);
  return isNaN(t) ? (iso || '') : new Date(t).toLocaleString();
}

function badge(word, cls) {
  return el('span', {class: 'badge ' + (cls || 's-' + word)}, word);
}

function role() { return state.who ? state.who.role : null; }
function canOperate() { return role() === 'operator' || role() === 'admin'; }

/* A progress bar with its words: "1.2 GiB of 4.0 GiB · 31% · 40 MiB/s ·
 * 1 min left".  data-* lets live progress update it in place. */
function progressBar(done, total, rate, finished, dataset) {
  const pct = total > 0 ? Math.min(100, 100 * done / total) : (finished ? 100 : 0);
  const span = el('span', {style: null});
  span.style.width = pct.toFixed(1) + '%';
  const bar = el('div', {class: 'bar' + (finished ? ' done' : ''),
                         role: 'progressbar', 'aria-valuemin': 0,
                         'aria-valuemax': 100,
                         'aria-valuenow': Math.floor(pct)}, span);
  const label = el('div', {class: 'label'}, progressWords(done, total, rate, finished));
  return el('div', {class: 'progress', dataset: dataset || {}}, bar, label);
}

function progressWords(done, total, rate, finished) {
  if (!total) return finished ? 'done' : 'waiting';
  let w = bytes(done) + ' of ' + bytes(total) + ' · ' +
          Math.floor(100 * done / total) + '%';
  if (!finished && rate > 0) {
    w += ' · ' + bytes(rate) + '/s · ' + duration((total - done) / rate) + ' left';
  }
  return w;
}

function updateBar(node, done, total, rate, finished) {
  const pct = total > 0 ? Math.min(100, 100 * done / total) : 0;
  const bar = node.querySelector('.bar');
  bar.querySelector('span').style.width = pct.toFixed(1) + '%';
  bar.setAttribute('aria-valuenow', String(Math.floor(pct)));
  node.querySelector('.label').textContent = progressWords(done, total, rate, finished);
}

/* ---- the API ---------------------------------------------------------- */

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function headers(extra) {
  const h = Object.assign({Authorization: 'Bearer ' + sessionStorage.getItem(TOKEN_KEY)}, extra || {});
  const p = sessionStorage.getItem(PROJECT_KEY);
  if (p) h['X-Ferry-Project'] = p;
  return h;
}

async function api(method, path, body) {
  const opt = {method, headers: headers(), cache: 'no-store'};
  if (body !== undefined) {
    opt.body = JSON.stringify(body);
    opt.headers['Content-Type'] = 'application/json';
  }
  let resp;
  try {
    resp = await fetch(path, opt);
  } catch (e) {
    throw new ApiError(0, 'cannot reach the ferry server (' + e.message + ')');
  }
  let data = null;
  try { data = await resp.json(); } catch (e) { /* no body */ }
  if (!resp.ok) {
    const msg = data && data.error ? data.error.message : resp.statusText;
    if (resp.status === 401) signOut(msg);
    throw new ApiError(resp.status, method + ' ' + path + ': ' + msg);
  }
  return data;
}

/* ---- sign in ---------------------------------------------------------- */

function showLogin(message) {
  stopStream();
  $('#nav').hidden = true;
  $('#signout').hidden = true;
  $('#project').hidden = true;
  $('#live').hidden = true;
  $('#who').textContent = '';
  const input = el('input', {type: 'password', id: 'token', name: 'token',
                             autocomplete: 'off', spellcheck: 'false',
                             required: true,
                             placeholder: 'operator token'});
  const form = el('form', {class: 'card login', id: 'login'},
    el('h1', {}, 'Sign in to ferry'),
    message ? el('div', {class: 'error-box'}, message) : null,
    el('label', {for: 'token'}, 'Operator token'), input,
    el('p', {class: 'small muted'},
       'An operator token of your project (ferry token create), or the ' +
       'server\'s operator.token. It stays in this browser tab only and is ' +
       'forgotten when the tab closes.'),
    el('button', {type: 'submit'}, 'Sign in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    sessionStorage.removeItem(PROJECT_KEY);
    input.value = '';
    start();
  });
  $('#main').replaceChildren(form);
  input.focus();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(PROJECT_KEY);
  state.who = null;
  showLogin(message);
}

async function start() {
  if (!sessionStorage.getItem(TOKEN_KEY)) return showLogin();
  try {
    state.who = await api('GET', '/v1/whoami');
  } catch (e) {
    if (e.status !== 401) showLogin(e.message);
    return;
  }
  $('#nav').hidden = false;
  $('#signout').hidden = false;
  $('#who').textContent = (state.who.token || (state.who.server_admin ? 'server admin' : 'token')) +
    ' · ' + state.who.role + ' · project ' + state.who.project;
  if (state.who.server_admin) fillProjects();
  if (!location.hash || location.hash === '#') location.hash = '#/migrations';
  else render();
  startStream();
}

async function fillProjects() {
  const sel = $('#project');
  try {
    const r = await api('GET', '/v1/projects');
    sel.replaceChildren(...r.projects.map((p) =>
      el('option', {value: p.name, selected: p.name === state.who.project}, p.name)));
    sel.hidden = r.projects.length < 2;
  } catch (e) { sel.hidden = true; }
}

/* ---- live: the event stream ------------------------------------------ */

function setLive(on, text) {
  const l = $('#live');
  l.hidden = false;
  l.className = 'live ' + (on ? 'on' : 'off');
  l.textContent = text;
  l.dataset.state = on ? 'live' : 'reconnecting';
}

function stopStream() {
  if (state.stream) state.stream.abort();
  state.stream = null;
}

/* Read the SSE stream until it ends, then come back 2 s later from the
 * last event seen; stops when the page signs out. */
async function startStream() {
  stopStream();
  const ctl = new AbortController();
  state.stream = ctl;
  while (state.stream === ctl) {
    try {
      const h = headers({Accept: 'text/event-stream'});
      if (state.lastEventId) h['Last-Event-ID'] = String(state.lastEventId);
      /* first connection: only what happens from now on (the view has
       * just read the state); after that, resume from the last event */
      const url = '/v1/events/stream' + (state.lastEventId ? '' : '?after=now');
      const resp = await fetch(url, {headers: h, signal: ctl.signal, cache: 'no-store'});
      if (resp.status === 401) { signOut('the token is no longer valid'); return; }
      if (!resp.ok) throw new Error('HTTP ' + resp.status);
      setLive(true, 'live');
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buf += dec.decode(value, {stream: true});
        let cut;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          sseFrame(frame);
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    if (state.stream !== ctl) return;
    setLive(false, 'reconnecting');
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function sseFrame(frame) {
  let type = 'message', id = null, data = '';
  for (const line of frame.split('\n')) {
    if (line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const k = i < 0 ? line : line.slice(0, i);
    const v = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (k === 'event') type = v;
    else if (k === 'id') id = v;
    else if (k === 'data') data += v;
  }
  if (!data) return;
  let d;
  try { d = JSON.parse(data); } catch (e) { return; }
  if (id !== null) state.lastEventId = Number(id);
  if (type === 'event') onEvent(d);
  else if (type === 'progress') onProgress(d);
}

function onEvent(ev) {
  const r = state.route;
  if (!r) return;
  if (r.page === 'migration' && ev.migration_id === r.id) {
    appendEvent(ev, true);
    scheduleRefresh();
  } else if (r.page === 'migrations' || r.page === 'hosts' ||
             (r.page === 'host' && ev.host_id === r.id)) {
    scheduleRefresh();
  }
}

function onProgress(p) {
  state.progress.set(p.id, p);
  for (const node of document.querySelectorAll('[data-task="' + p.id + '"]')) {
    updateBar(node, p.done_bytes, p.total_bytes, p.rate, false);
  }
  /* a migration's bytes are its tasks' sum: the list refetches */
  if (state.route && (state.route.page === 'migrations' ||
      (state.route.page === 'migration' && state.route.id === p.migration_id))) {
    scheduleRefresh();
  }
}

/* Refetch the current view at most once per REFRESH_MS. */
function scheduleRefresh() {
  if (state.refreshTimer) return;
  const wait = Math.max(0, state.refreshDue - Date.now());
  state.refreshTimer = setTimeout(async () => {
    state.refreshTimer = null;
    state.refreshDue = Date.now() + REFRESH_MS;
    const r = state.route;
    if (r && r.refresh) {
      try { await r.refresh(); } catch (e) { /* shown on the next render */ }
    }
  }, wait);
}

/* ---- routing ---------------------------------------------------------- */

function parseRoute() {
  const m = location.hash.match(/^#\/(\w+)(?:\/([^/]+))?$/);
  if (!m) return {page: 'migrations'};
  const id = m[2] ? Number(m[2]) : null;
  const one = {migrations: 'migration', hosts: 'host', blueprints: 'blueprint'};
  if (m[2] && one[m[1]]) return {page: one[m[1]], id: Number.isInteger(id) ? id : m[2]};
  return {page: m[1]};
}

async function render() {
  if (!state.who) return;
  const r = parseRoute();
  const moved = !state.route || state.route.page !== r.page || state.route.id !== r.id;
  state.route = r;
  if (moved) window.scrollTo(0, 0);
  const section = {migration: 'migrations', host: 'hosts', blueprint: 'blueprints'}[r.page] || r.page;
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('current', a.dataset.page === section);
  }
  const views = {migrations: viewMigrations, migration: viewMigration,
                 hosts: viewHosts, host: viewHost, blueprints: viewBlueprints,
                 blueprint: viewBlueprint};
  const view = views[r.page] || viewMigrations;
  try {
    await view(r);
  } catch (e) {
    if (state.route === r) {
      $('#main').replaceChildren(el('div', {class: 'error-box'}, e.message));
    }
  }
}

/* Replace main's content only if the route is still the one drawn. */
function draw(r, ...nodes) {
  if (state.route !== r) return;
  $('#main').replaceChildren(...nodes);
}

/* ---- migrations -------------------------------------------------------- */

async function viewMigrations(r) {
  const table = el('table', {id: 'migrations'});
  const body = el('tbody');
  table.append(el('thead', {}, el('tr', {},
    el('th', {}, '#'), el('th', {}, 'Host'),
    el('th', {class: 'hide-narrow'}, 'Blueprint'), el('th', {}, 'Phase'),
    el('th', {}, 'State'), el('th', {}, 'Progress'),
    el('th', {class: 'hide-narrow'}, 'Updated'))), body);
  r.refresh = async () => {
    const d = await api('GET', '/v1/migrations');
    const rows = d.migrations.slice().reverse().map((m) => el('tr', {dataset: {migration: m.id}},
      el('td', {class: 'num'}, el('a', {href: '#/migrations/' + m.id}, m.id)),
      el('td', {}, el('a', {href: '#/migrations/' + m.id}, m.hostname),
         m.warm ? el('span', {class: 'small muted'}, ' warm') : null),
      el('td', {class: 'hide-narrow'}, m.blueprint),
      el('td', {}, m.phase),
      el('td', {}, badge(m.state), m.error ? el('div', {class: 'small muted'}, m.error) : null),
      el('td', {}, progressBar(m.done_bytes, m.total_bytes, migrationRate(m.id),
                              m.state === 'done' || (m.total_bytes > 0 && m.done_bytes >= m.total_bytes),
                              {migrationProgress: m.id})),
      el('td', {class: 'hide-narrow small'}, ago(m.updated))));
    body.replaceChildren(...rows);
    if (!rows.length) {
      body.append(el('tr', {}, el('td', {colspan: 7, class: 'muted'},
        'No migrations yet: apply a blueprint and start one (ferry migrate HOST --blueprint NAME, or from a blueprint\'s page).')));
    }
  };
  await r.refresh();
  draw(r, el('h1', {}, 'Migrations'), el('div', {class: 'scroll card'}, table));
}

/* The sum of the rates of a migration's running tasks, from the stream. */
function migrationRate(id) {
  let rate = 0;
  for (const p of state.progress.values()) {
    if (p.migration_id === id && p.rate > 0) rate += p.rate;
  }
  return rate;
}

const PHASES_COLD = ['discovered', 'preflight', 'prepared', 'cloning', 'cloned',
                     'preparing', 'converting', 'converted', 'creating', 'done'];
const PHASES_WARM = ['discovered', 'preflight', 'prepared', 'cloning', 'ready',
                     'syncing', 'cutover', 'cloned', 'preparing', 'converting',
                     'converted', 'creating', 'done'];

function timeline(m) {
  let phases = m.warm ? PHASES_WARM : PHASES_COLD;
  if (m.plan && m.plan.prepare === null) phases = phases.filter((p) => p !== 'preparing');
  const entered = {};
  for (const e of m.events || []) {
    if (e.kind === 'phase' && e.phase) entered[e.phase] = e.time;
  }
  const failedAt = m.state === 'failed' || m.state === 'canceled' ? (m.failed_phase || m.phase) : null;
  const cur = phases.indexOf(failedAt || m.phase);
  return el('ol', {class: 'timeline', id: 'timeline'}, phases.map((p, i) => {
    let cls = i < cur || m.state === 'done' ? 'past' : i === cur ? 'now' : '';
    if (i === cur && failedAt) cls = 'failed';
    return el('li', {class: cls, dataset: {phase: p}}, p,
              entered[p] ? el('span', {class: 't'}, new Date(Date.parse(entered[p])).toLocaleTimeString()) : null);
  }));
}

function taskDisk(t) {
  return (t.spec && t.spec.disk) || '';
}

function appendEvent(ev, fresh) {
  const body = $('#events tbody');
  if (!body || body.querySelector('[data-event="' + ev.id + '"]')) return;
  body.append(el('tr', {class: fresh ? 'new' : null, dataset: {event: ev.id}},
    el('td', {class: 'small'}, time(ev.time)), el('td', {}, ev.kind),
    el('td', {class: 'hide-narrow'}, ev.phase || ''), el('td', {}, ev.message)));
  while (body.children.length > EVENTS_SHOWN) body.firstChild.remove();
  if (fresh) {
    const n = $('#event-count');
    if (n) n.textContent = String(body.children.length);
  }
}

async function viewMigration(r) {
  const summary = el('div', {id: 'summary'});
  const events = el('table', {id: 'events', class: 'events'},
    el('thead', {}, el('tr', {}, el('th', {}, 'Time'), el('th', {}, 'Kind'),
                         el('th', {class: 'hide-narrow'}, 'Phase'), el('th', {}, 'Message'))),
    el('tbody'));
  const notice = el('div', {id: 'notice'});
  r.refresh = async () => {
    const m = await api('GET', '/v1/migrations/' + r.id);
    summary.replaceChildren(...migrationSummary(m, notice));
    for (const e of m.events) appendEvent(e, false);
  };
  const m = await api('GET', '/v1/migrations/' + r.id);
  summary.replaceChildren(...migrationSummary(m, notice));
  draw(r, notice, summary,
       el('h2', {}, 'Events (', el('span', {id: 'event-count'}, m.events.length), ')'),
       el('div', {class: 'scroll card'}, events));
  for (const e of m.events) appendEvent(e, false);
}

function migrationSummary(m, notice) {
  const running = m.state === 'active';
  const out = [];
  out.push(el('h1', {}, 'Migration ' + m.id + ': ', el('a', {href: '#/hosts/' + m.host_id}, m.hostname), ' ',
              badge(m.state), m.plan && m.plan.test ? ' ' : null,
              m.plan && m.plan.test ? badge('test launch', 'sev-info') : null));
  const kv = el('dl', {class: 'kv'},
    el('dt', {}, 'Phase'), el('dd', {id: 'phase'}, m.phase),
    el('dt', {}, 'Blueprint'), el('dd', {}, el('a', {href: '#/blueprints/' + encodeURIComponent(m.blueprint)}, m.blueprint)),
    el('dt', {}, 'Attempt'), el('dd', {}, m.attempt),
    el('dt', {}, 'Started'), el('dd', {}, time(m.created)),
    el('dt', {}, 'Updated'), el('dd', {}, time(m.updated) + ' (' + ago(m.updated) + ')'));
  if (m.error) kv.append(el('dt', {}, 'Error'), el('dd', {class: 'error-text'}, m.error + (m.failed_phase ? ' (in ' + m.failed_phase + ')' : '')));
  if (m.warm) {
    kv.append(el('dt', {}, 'Warm syncs'), el('dd', {id: 'warm'},
      (m.syncs || 0) + ' done' + (m.last_sync ? ', last ' + ago(m.last_sync) : '') +
      (m.last_delta_bytes !== null && m.last_delta_bytes !== undefined ? ', last delta ' + bytes(m.last_delta_bytes) + ' in ' + duration(m.last_sync_seconds) : '') +
      (m.next_sync && m.state === 'active' && !m.cutover ? ', next ' + time(m.next_sync) : '') + (m.cutover ? ', cutover requested' : '')));
    if (m.state === 'active' && !m.cutover && m.last_sync_seconds !== null && m.last_sync_seconds !== undefined) {
      kv.append(el('dt', {}, 'Cutover estimate'), el('dd', {id: 'cutover-estimate'},
        'the final sync should take about ' + duration(m.last_sync_seconds) +
        ' of downtime (as the last delta did), then conversion and creation'));
    }
  }
  out.push(el('div', {class: 'card'}, timeline(m)), el('div', {class: 'card'}, kv));
  out.push(actions(m, notice));
  const finished = m.state === 'done' || (m.total_bytes > 0 && m.done_bytes >= m.total_bytes);
  out.push(el('h2', {}, 'Progress'), el('div', {class: 'card', id: 'overall'},
    progressBar(m.done_bytes, m.total_bytes, migrationRate(m.id), finished, {migrationProgress: m.id})));
  const tasks = el('tbody', {}, m.tasks.map((t) => {
    const live = running && t.state === 'running' ? state.progress.get(t.id) : null;
    const done = live ? live.done_bytes : t.done_bytes;
    const total = live ? live.total_bytes : t.total_bytes;
    const rate = live ? live.rate : t.rate;
    return el('tr', {dataset: {taskRow: t.id}},
      el('td', {class: 'num'}, t.id), el('td', {}, t.kind), el('td', {}, taskDisk(t)),
      el('td', {}, badge(t.state, {succeeded: 's-done', failed: 's-failed', running: 's-active', canceled: 's-canceled'}[t.state] || 'sev-info'),
         t.error ? el('div', {class: 'small muted'}, t.error) : null),
      el('td', {}, total ? progressBar(done, total, t.state === 'running' ? rate : 0, t.state === 'succeeded',
                                       t.state === 'running' ? {task: t.id} : {}) : el('span', {class: 'muted small'}, '–')),
      el('td', {class: 'hide-narrow num'}, t.attempts));
  }));
  out.push(el('h2', {}, 'Tasks'), el('div', {class: 'scroll card'}, el('table', {id: 'tasks'},
    el('thead', {}, el('tr', {}, el('th', {}, '#'), el('th', {}, 'Task'), el('th', {}, 'Disk'),
                         el('th', {}, 'State'), el('th', {}, 'Progress'), el('th', {class: 'hide-narrow'}, 'Attempts'))),
    tasks)));
  const findings = (m.plan && m.plan.preflight) || [];
  if (findings.length) out.push(el('h2', {}, 'Preflight'), findingsTable(findings));
  if (m.resources && m.resources.length) {
    out.push(el('h2', {}, 'Cloud resources'), el('div', {class: 'scroll card'}, el('table', {},
      el('thead', {}, el('tr', {}, el('th', {}, 'Kind'), el('th', {}, 'Name'), el('th', {}, 'Id'), el('th', {}, 'State'))),
      el('tbody', {}, m.resources.map((x) => el('tr', {},
        el('td', {}, x.kind), el('td', {}, x.name), el('td', {class: 'mono'}, x.id || ''), el('td', {}, x.state)))))));
  }
  return out;
}

/* The buttons this token's role allows for the migration's state; the
 * server checks the role again on every request. */
function actions(m, notice) {
  const bar = el('div', {class: 'actions', id: 'actions'});
  if (!canOperate()) {
    bar.append(el('span', {class: 'small muted'}, 'Read-only: the ' + role() + ' role cannot change migrations.'));
    return bar;
  }
  const act = (label, cls, title, text, fn) => bar.append(el('button', {
    type: 'button', class: cls, dataset: {action: label.toLowerCase().replace(/ /g, '-')},
    onclick: async (ev) => {
      if (!await confirmAction(title, text, label)) return;
      ev.target.disabled = true;
      try {
        const msg = await fn();
        notice.replaceChildren(el('div', {class: 'note'}, msg));
      } catch (e) {
        notice.replaceChildren(el('div', {class: 'error-box'}, e.message));
      }
      ev.target.disabled = false;
      scheduleRefresh();
    }}, label));
  const warmPhases = ['cloning', 'syncing', 'ready'];
  if (m.state === 'active' && m.warm && !m.cutover && warmPhases.includes(m.phase)) {
    act('Cut over', '', 'Cut over ' + m.hostname + '?',
        'The next sync is the final one: the source\'s filesystems are frozen for it, then the copy is converted and ' +
        'the instance is created. Stop the applications on ' + m.hostname + ' first.',
        async () => { await api('POST', '/v1/migrations/' + m.id + '/cutover'); return 'Cutover requested: the next sync is the final one.'; });
  }
  if (m.state === 'active') {
    act('Cancel', 'danger', 'Cancel migration ' + m.id + '?',
        'Its running tasks stop (agents at their next progress report). What the store holds is kept: retry resumes from it.',
        async () => { await api('POST', '/v1/migrations/' + m.id + '/cancel'); return 'Migration ' + m.id + ' canceled.'; });
  }
  if (m.state === 'failed' || m.state === 'canceled') {
    act('Retry', '', 'Retry migration ' + m.id + '?',
        'It resumes at the phase that ' + (m.state === 'failed' ? 'failed' : 'was canceled') + ' (' + (m.failed_phase || m.phase) +
        '), from what the store already holds.',
        async () => { const r = await api('POST', '/v1/migrations/' + m.id + '/retry'); return 'Retrying from ' + r.phase + '.'; });
  }
  if (m.state !== 'active') {
    act('Test launch', 'secondary', 'Test launch ' + m.hostname + '?',
        'A new migration of ' + m.hostname + ' with blueprint ' + m.blueprint + ' creates an instance named ' +
        m.hostname + '-test, tagged ferry-test=true, to look at and then clean up. The source is not changed.',
        async () => {
          const r = await api('POST', '/v1/migrations', {host: m.hostname, blueprint: m.blueprint, test: true});
          location.hash = '#/migrations/' + r.id;
          return 'Test launch started: migration ' + r.id + '.';
        });
  }
  if ((m.state === 'failed' || m.state === 'canceled' || (m.state === 'done' && m.plan && m.plan.test)) &&
      (m.resources || []).some((x) => x.state === 'live' && x.scope === 'migration')) {
    act('Clean up', 'danger', 'Delete what migration ' + m.id + ' made in the cloud?',
        'Its instance, image, snapshots, disks and NIC are deleted, newest first. The blueprint\'s networks are kept.',
        async () => { const r = await api('POST', '/v1/migrations/' + m.id + '/cleanup'); return 'Cleanup task ' + r.task + ' queued.'; });
  }
  if (!bar.children.length) bar.append(el('span', {class: 'small muted'}, 'No action applies in this state.'));
  return bar;
}

function confirmAction(title, text, label) {
  const d = $('#confirm');
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-ok').textContent = label;
  d.returnValue = '';
  d.showModal();
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), {once: true});
  });
}

function findingsTable(findings) {
  return el('div', {class: 'scroll card'}, el('table', {class: 'findings'},
    el('thead', {}, el('tr', {}, el('th', {}, 'Severity'), el('th', {}, 'Check'), el('th', {}, 'Finding and fix'))),
    el('tbody', {}, findings.map((f) => el('tr', {},
      el('td', {}, badge(f.severity, 'sev-' + f.severity)),
      el('td', {class: 'mono'}, f.code || f.path || ''),
      el('td', {}, f.message))))));
}

/* ---- hosts ------------------------------------------------------------- */

function diskWords(disks) {
  if (!Array.isArray(disks)) return '–';
  return disks.map((d) => d.name + ' ' + bytes(d.size)).join(', ');
}

function nicWords(nics) {
  if (!Array.isArray(nics) || !nics.length) return '–';
  return nics.map((n) => n.name + (n.ipv4 && n.ipv4.length ? ' ' + n.ipv4.map((a) => a.address + '/' + a.prefix).join(' ') : '')).join(', ');
}

/* The latest migration of each host: its preflight findings are the
 * host's. */
async function latestMigrations() {
  const d = await api('GET', '/v1/migrations');
  const by = new Map();
  for (const m of d.migrations) by.set(m.host_id, m);
  return by;
}

async function viewHosts(r) {
  const body = el('tbody');
  r.refresh = async () => {
    const [d, latest] = await Promise.all([api('GET', '/v1/hosts'), latestMigrations()]);
    body.replaceChildren(...d.hosts.map((h) => {
      const m = latest.get(h.id);
      return el('tr', {dataset: {host: h.id}},
        el('td', {}, el('a', {href: '#/hosts/' + h.id}, h.hostname)),
        el('td', {}, h.os || '–'),
        el('td', {class: 'hide-narrow'}, h.boot_mode || '–'),
        el('td', {}, diskWords(h.disks)),
        el('td', {class: 'hide-narrow'}, nicWords(h.nics)),
        el('td', {class: 'small'}, ago(h.last_seen)),
        el('td', {}, m ? el('a', {href: '#/migrations/' + m.id}, badge(m.state), ' ', m.phase) : el('span', {class: 'muted small'}, 'not migrated')));
    }));
    if (!d.hosts.length) {
      body.append(el('tr', {}, el('td', {colspan: 7, class: 'muted'},
        'No hosts yet: install ferry-agent on a server (docs/ANSIBLE.md); it appears here once it reports.')));
    }
  };
  await r.refresh();
  draw(r, el('h1', {}, 'Hosts'), el('div', {class: 'scroll card'}, el('table', {id: 'hosts'},
    el('thead', {}, el('tr', {}, el('th', {}, 'Host'), el('th', {}, 'OS'), el('th', {class: 'hide-narrow'}, 'Boot'),
                         el('th', {}, 'Disks'), el('th', {class: 'hide-narrow'}, 'NICs'), el('th', {}, 'Last seen'),
                         el('th', {}, 'Migration'))), body)));
}

async function viewHost(r) {
  const box = el('div');
  r.refresh = async () => {
    const [h, latest] = await Promise.all([api('GET', '/v1/hosts/' + r.id), latestMigrations()]);
    const inv = h.inventory || {};
    const m = latest.get(h.id);
    const kv = el('dl', {class: 'kv'},
      el('dt', {}, 'OS'), el('dd', {}, h.os || '–'),
      el('dt', {}, 'Kernel'), el('dd', {}, (inv.kernel && inv.kernel.release) || '–'),
      el('dt', {}, 'Boot'), el('dd', {}, (h.boot_mode || '–') + (inv.boot && inv.boot.secure_boot ? ', Secure Boot on' : '')),
      el('dt', {}, 'Platform'), el('dd', {}, (inv.platform && inv.platform.hypervisor) || '–'),
      el('dt', {}, 'CPUs'), el('dd', {}, h.cpus || '–'),
      el('dt', {}, 'Memory'), el('dd', {}, h.memory ? bytes(h.memory) : '–'),
      el('dt', {}, 'Machine id'), el('dd', {class: 'mono'}, h.machine_id),
      el('dt', {}, 'First seen'), el('dd', {}, time(h.first_seen)),
      el('dt', {}, 'Last seen'), el('dd', {}, time(h.last_seen) + ' (' + ago(h.last_seen) + ')'));
    const disks = el('tbody', {}, (inv.disks || []).flatMap((d) => [
      el('tr', {}, el('td', {class: 'mono'}, d.name), el('td', {class: 'num'}, bytes(d.size)),
         el('td', {}, d.partition_table || '–'), el('td', {}, d.model || ''), el('td', {}, '')),
      ...(d.partitions || []).map((p) => el('tr', {class: 'small'},
        el('td', {class: 'mono'}, '  ' + p.name), el('td', {class: 'num'}, bytes(p.size)),
        el('td', {}, p.filesystem || ''), el('td', {class: 'mono'}, p.uuid || ''), el('td', {}, p.mountpoint || '')))]));
    const nics = el('tbody', {}, (h.nics || []).map((n) => el('tr', {},
      el('td', {class: 'mono'}, n.name), el('td', {class: 'mono'}, n.mac || ''), el('td', {}, n.driver || ''),
      el('td', {class: 'mono'}, (n.ipv4 || []).map((a) => a.address + '/' + a.prefix).join(' ')))));
    const parts = [el('h1', {}, 'Host ', h.hostname), el('div', {class: 'card'}, kv),
      el('h2', {}, 'Disks'), el('div', {class: 'scroll card'}, el('table', {},
        el('thead', {}, el('tr', {}, el('th', {}, 'Device'), el('th', {}, 'Size'), el('th', {}, 'Table / fs'),
                             el('th', {}, 'Model / UUID'), el('th', {}, 'Mounted'))), disks)),
      el('h2', {}, 'Network'), el('div', {class: 'scroll card'}, el('table', {},
        el('thead', {}, el('tr', {}, el('th', {}, 'NIC'), el('th', {}, 'MAC'), el('th', {}, 'Driver'), el('th', {}, 'IPv4'))), nics))];
    if (m) {
      const full = await api('GET', '/v1/migrations/' + m.id);
      const f = (full.plan && full.plan.preflight) || [];
      parts.push(el('h2', {}, 'Preflight (migration ', el('a', {href: '#/migrations/' + m.id}, m.id), ')'),
                 f.length ? findingsTable(f) : el('p', {class: 'muted card'}, full.plan && full.plan.preflight ? 'No findings: every check passed.' : 'Preflight has not run yet.'));
    } else {
      parts.push(el('h2', {}, 'Preflight'), el('p', {class: 'muted card'}, 'Preflight runs when a migration starts; none has for this host.'));
    }
    box.replaceChildren(...parts);
  };
  await r.refresh();
  draw(r, box);
}

/* ---- blueprints -------------------------------------------------------- */

async function viewBlueprints(r) {
  const d = await api('GET', '/v1/blueprints');
  const body = el('tbody', {}, d.blueprints.map((b) => el('tr', {},
    el('td', {}, el('a', {href: '#/blueprints/' + b.id}, b.name)), el('td', {}, b.provider),
    el('td', {class: 'small'}, time(b.updated)))));
  if (!d.blueprints.length) {
    body.append(el('tr', {}, el('td', {colspan: 3, class: 'muted'}, 'No blueprints yet: ferry blueprint apply FILE (docs/BLUEPRINTS.md).')));
  }
  r.refresh = null;
  draw(r, el('h1', {}, 'Blueprints'), el('div', {class: 'scroll card'}, el('table', {id: 'blueprints'},
    el('thead', {}, el('tr', {}, el('th', {}, 'Name'), el('th', {}, 'Provider'), el('th', {}, 'Updated'))), body)));
}

/* A blueprint's text with line numbers, each line a finding points at
 * flagged with the worst severity. */
function sourceView(text, findings, id) {
  const flags = {};
  for (const f of findings) if (f.line) flags[f.line] = flags[f.line] === 'error' ? 'error' : f.severity;
  return el('pre', {class: 'source', id}, (text || '').replace(/\n$/, '').split('\n').map((line, i) =>
    el('span', {class: 'ln' + (flags[i + 1] ? ' flag-' + flags[i + 1] : ''), dataset: {line: i + 1}}, line || ' ')));
}

function blueprintFindings(findings, id, source) {
  if (!findings.length) return el('p', {class: 'card muted', id}, 'No findings: the blueprint is valid against the hosts discovered now.');
  return el('div', {class: 'scroll card'}, el('table', {class: 'findings', id},
    el('thead', {}, el('tr', {}, el('th', {}, 'Severity'), el('th', {}, 'Line'), el('th', {}, 'Where'), el('th', {}, 'Finding'))),
    el('tbody', {}, findings.map((f) => el('tr', {},
      el('td', {}, badge(f.severity, 'sev-' + f.severity)),
      el('td', {class: 'num'}, f.line ? el('a', {href: location.hash, onclick: (ev) => {
        ev.preventDefault();
        const l = document.querySelector('#' + source + ' [data-line="' + f.line + '"]');
        if (l) l.scrollIntoView({block: 'center'});
      }}, f.line) : '–'),
      el('td', {class: 'mono'}, f.path || ''), el('td', {}, f.message))))));
}

/* Check a change before it is applied: the draft goes to POST
 * /v1/blueprints/validate (operator), and an admin may apply it. */
function blueprintEditor(b, notice) {
  const draft = el('textarea', {id: 'draft', class: 'mono', rows: Math.min(30, (b.source || '').split('\n').length + 3),
                                spellcheck: 'false', 'aria-label': 'blueprint draft'});
  draft.value = b.source || '';
  const result = el('div', {id: 'draft-result'});
  const send = async (path) => {
    const resp = await fetch(path, {method: 'POST', cache: 'no-store',
      headers: headers({'Content-Type': 'application/yaml'}), body: draft.value});
    let d = null;
    try { d = await resp.json(); } catch (e) { /* no body */ }
    if (resp.status === 401) signOut(d && d.error ? d.error.message : 'signed out');
    return [resp.status, d];
  };
  const validate = el('button', {type: 'button', id: 'validate', onclick: async () => {
    const [status, d] = await send('/v1/blueprints/validate');
    if (status !== 200) {
      result.replaceChildren(el('div', {class: 'error-box'}, (d && d.error && d.error.message) || 'HTTP ' + status));
      return;
    }
    result.replaceChildren(
      el('p', {}, d.valid ? badge('valid', 'sev-ok') : badge(d.errors + ' error' + (d.errors > 1 ? 's' : ''), 'sev-error')),
      blueprintFindings(d.findings, 'draft-findings', 'draft-source'), sourceView(draft.value, d.findings, 'draft-source'));
  }}, 'Validate');
  const apply = role() === 'admin' ? el('button', {type: 'button', class: 'secondary', id: 'apply', onclick: async () => {
    if (!await confirmAction('Apply this blueprint?', 'It replaces blueprint ' + b.name + ' for migrations started from now on; running ones keep their plan.', 'Apply')) return;
    const [status, d] = await send('/v1/blueprints');
    if (status === 201) {
      notice.replaceChildren(el('div', {class: 'note'}, 'Blueprint ' + d.name + ' applied.'));
      render();
    } else {
      result.replaceChildren(el('div', {class: 'error-box'}, (d && d.error && d.error.message) || 'HTTP ' + status),
        d && d.findings ? blueprintFindings(d.findings, 'draft-findings', 'draft-source') : null,
        d && d.findings ? sourceView(draft.value, d.findings, 'draft-source') : null);
    }
  }}, 'Apply') : null;
  return el('div', {class: 'card'}, draft, el('div', {class: 'actions'}, validate, apply), result);
}

async function viewBlueprint(r) {
  const [b, hosts] = await Promise.all([api('GET', '/v1/blueprints/' + encodeURIComponent(r.id)), api('GET', '/v1/hosts')]);
  const bp = b.blueprint || {};
  const findings = b.findings || [];
  const notice = el('div', {id: 'notice'});
  const known = new Map(hosts.hosts.map((h) => [h.hostname, h]));
  const mapRows = (bp.hosts || []).map((h) => {
    const found = known.get(h.name);
    const where = Object.entries(h).filter(([k, v]) => k !== 'name' && v !== null && typeof v !== 'object')
      .map(([k, v]) => k + ': ' + v).join(', ');
    const buttons = canOperate() && found ? el('span', {class: 'actions'},
      el('button', {type: 'button', class: 'secondary', dataset: {action: 'migrate'}, onclick: () => startMigration(h.name, b.name, false, notice)}, 'Migrate'),
      el('button', {type: 'button', class: 'secondary', dataset: {action: 'test-launch'}, onclick: () => startMigration(h.name, b.name, true, notice)}, 'Test launch')) : null;
    return el('tr', {},
      el('td', {}, found ? el('a', {href: '#/hosts/' + found.id}, h.name) : h.name,
         found ? null : el('div', {class: 'small muted'}, 'not discovered yet')),
      el('td', {}, where || 'blueprint defaults'), el('td', {}, buttons));
  });
  const errors = findings.filter((f) => f.severity === 'error').length;
  r.refresh = null;
  draw(r, notice, el('h1', {}, 'Blueprint ', b.name, ' ', badge(b.provider, 'sev-info'), ' ',
                     errors ? badge(errors + ' error' + (errors > 1 ? 's' : ''), 'sev-error') : badge('valid', 'sev-ok')),
       el('p', {class: 'muted small'}, 'Store: ', bp.store || '–', ' · updated ', time(b.updated)),
       el('h2', {}, 'Findings'), blueprintFindings(findings, 'findings', 'source'),
       el('h2', {}, 'Hosts it maps'), el('div', {class: 'scroll card'}, el('table', {id: 'mapping'},
         el('thead', {}, el('tr', {}, el('th', {}, 'Host'), el('th', {}, 'Where it goes'), el('th', {}, ''))),
         el('tbody', {}, mapRows))),
       el('h2', {}, 'The file'), sourceView(b.source, findings, 'source'),
       canOperate() ? el('h2', {}, 'Check a change') : null,
       canOperate() ? blueprintEditor(b, notice) : null);
}

async function startMigration(host, blueprint, test, notice) {
  const what = test ? 'Test launch ' + host + '?' : 'Migrate ' + host + '?';
  const text = test
    ? 'A test instance ' + host + '-test is created from a copy of ' + host + ' (blueprint ' + blueprint + '), to look at and clean up; the source is not changed.'
    : 'ferry clones ' + host + '\'s disks and creates it in the target of blueprint ' + blueprint + '. The source is only read.';
  if (!await confirmAction(what, text, test ? 'Test launch' : 'Migrate')) return;
  try {
    const r = await api('POST', '/v1/migrations', {host, blueprint, test});
    location.hash = '#/migrations/' + r.id;
  } catch (e) {
    notice.replaceChildren(el('div', {class: 'error-box'}, e.message));
  }
}

/* ---- start ------------------------------------------------------------- */

window.addEventListener('hashchange', render);
document.addEventListener('DOMContentLoaded', () => {
  $('#signout').addEventListener('click', () => signOut());
  $('#project').addEventListener('change', (ev) => {
    sessionStorage.setItem(PROJECT_KEY, ev.target.value);
    state.lastEventId = 0;
    start();
  });
  start();
});
