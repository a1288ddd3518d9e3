// felix web dashboard: plain JS, no build step. Every string from the
// master is put in the page with textContent (el() below), never as HTML.
'use strict';

const session = { csrf: '', role: '', name: '' };
let events = null; // the EventSource of the job shown, if live
const jobsPages = { before: [''], next: '' }; // the jobs list's paging: cursors of the pages seen

// el makes an element with attributes and children; a string child is a
// text node, so no data is ever parsed as HTML.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return e;
}

const $ = (id) => document.getElementById(id);

function showError(msg) { $('error').textContent = msg || ''; }

// api calls the dashboard's data routes: the session cookie goes along;
// a write carries the session's CSRF token.
async function api(method, path, body) {
  const opts = { method, credentials: 'same-origin', headers: { 'Accept': 'application/json' } };
  if (method !== 'GET') {
    opts.headers['Content-Type'] = 'application/json';
    opts.headers['X-CSRF-Token'] = session.csrf;
    opts.body = JSON.stringify(body || {});
  }
  const resp = await fetch('/ui/api/' + path, opts);
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (resp.status === 401 && path !== 'login') {
    session.csrf = '';
    show('login');
  }
  if (!resp.ok) {
    throw new Error((data && data.error) || (resp.status + ' ' + resp.statusText));
  }
  return data;
}

function ago(iso) {
  if (!iso || iso.startsWith('0001-')) return 'never';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return Math.max(s, 0) + 's ago';
  if (s < 3600) return Math.round(s / 60) + 'm ago';
  if (s < 86400) return Math.round(s / 3600) + 'h ago';
  return Math.round(s / 86400) + 'd ago';
}

function when(iso) {
  const t = el('span', { title: iso || '' }, ago(iso));
  return t;
}

function stateCell(st) { return el('td', { class: 'state-' + st }, st || '-'); }

function labels(m) {
  const td = el('td');
  for (const [k, v] of Object.entries(m || {}).sort()) td.append(el('span', { class: 'label' }, k + '=' + v));
  return td;
}

function osOfFacts(raw) {
  if (!raw) return '';
  const f = typeof raw === 'string' ? JSON.parse(raw) : raw;
  return [f.os_name, f.os_version].filter(Boolean).join(' ') || f.os_pretty || '';
}

// --- views ---

const sections = ['login', 'fleet', 'jobs', 'job', 'run'];

function show(name) {
  for (const s of sections) $(s).hidden = s !== name;
  $('nav').hidden = name === 'login';
  for (const a of document.querySelectorAll('nav a')) {
    a.classList.toggle('active', a.getAttribute('href') === '#/' + name);
  }
  if (name !== 'job' && events) { events.close(); events = null; }
}

async function route() {
  showError('');
  if (!session.csrf) {
    try {
      const s = await api('GET', 'session');
      Object.assign(session, s);
    } catch (e) {
      show('login');
      return;
    }
  }
  $('who').textContent = session.name + ' (' + session.role + ')';
  const h = location.hash.replace(/^#\/?/, '');
  const [view, arg] = h.split('/');
  try {
    if (view === 'jobs' && arg) await showJob(decodeURIComponent(arg));
    else if (view === 'jobs') await showJobs();
    else if (view === 'run') showRun();
    else await showFleet($('filter').value.trim());
  } catch (e) {
    showError(e.message);
  }
}

async function showFleet(filter) {
  show('fleet');
  const [ml, hl] = await Promise.all([api('GET', 'minions'), api('GET', 'hosts')]);
  let only = null;
  $('filter-note').textContent = '';
  if (filter) {
    const dr = await api('GET', 'targets?t=' + encodeURIComponent(filter));
    only = new Set(dr.hosts.map((h) => h.host));
    $('filter-note').textContent = dr.hosts.length + ' match ' + filter;
  }
  const keep = (id) => only === null || only.has(id);
  const minions = ml.minions.filter((m) => keep(m.id));
  const mb = $('minions').tBodies[0];
  mb.replaceChildren(...minions.map((m) => el('tr', { 'data-id': m.id },
    el('td', { class: 'mono' }, m.id), stateCell(m.state), stateCell(m.health), el('td', {}, m.version || ''),
    el('td', {}, m.os || ''), labels(m.labels), el('td', {}, when(m.last_seen)))));
  $('minions-count').textContent = '(' + minions.length + ')';
  const hosts = hl.hosts.filter((h) => keep(h.id));
  const hb = $('hosts').tBodies[0];
  hb.replaceChildren(...hosts.map((h) => el('tr', { 'data-id': h.id },
    el('td', { class: 'mono' }, h.id), el('td', { class: 'mono' }, h.host + ':' + h.port), el('td', {}, h.user || ''),
    el('td', {}, osOfFacts(h.facts)), labels(h.labels), el('td', {}, h.minion || ''),
    el('td', { title: h.facts_error || '' }, h.facts_gathered_at ? when(h.facts_gathered_at) : (h.facts_error ? 'failed' : 'never')))));
  $('hosts-count').textContent = '(' + hosts.length + ')';
}

function summaryText(sum) {
  return Object.entries(sum || {}).sort().map(([k, v]) => v + ' ' + k).join(', ');
}

async function showJobs() {
  show('jobs');
  const before = jobsPages.before[jobsPages.before.length - 1];
  const q = 'jobs?limit=20' + (before ? '&before=' + encodeURIComponent(before) : '');
  const jl = await api('GET', q);
  jobsPages.next = jl.next || '';
  $('jobs-table').tBodies[0].replaceChildren(...jl.jobs.map((j) => el('tr', { 'data-id': j.job_id },
    el('td', { class: 'mono' }, el('a', { href: '#/jobs/' + encodeURIComponent(j.job_id) }, j.job_id)),
    el('td', { class: 'mono' }, j.cmd_line || j.cmd_type || ''), el('td', { class: 'mono' }, (j.targets || []).join(',')),
    stateCell(j.state), el('td', {}, j.total + (j.summary && Object.keys(j.summary).length ? ': ' + summaryText(j.summary) : '')),
    el('td', {}, j.requested_by || ''), el('td', {}, when(j.created_at)))));
  $('jobs-newer').disabled = jobsPages.before.length <= 1;
  $('jobs-older').disabled = !jobsPages.next;
}

function meta(pairs) {
  const dl = $('job-meta');
  dl.replaceChildren();
  for (const [k, v] of pairs) dl.append(el('dt', {}, k), el('dd', {}, v));
}

async function showJob(id) {
  show('job');
  $('job-id').textContent = id;
  const f = await api('GET', 'jobs/' + encodeURIComponent(id));
  renderJob(f);
  if (f.job.state === 'queued' || f.job.state === 'running') follow(id);
  else $('live').hidden = true;
}

function renderJob(f) {
  const j = f.job;
  meta([['Command', j.cmd_line || j.cmd_type || ''], ['Targets', (j.targets || []).join(',')], ['State', j.state],
    ['Hosts', j.total + (Object.keys(j.summary || {}).length ? ': ' + summaryText(j.summary) : '')],
    ['By', j.requested_by || ''], ['Created', j.created_at], ['Finished', j.finished_at || '-']]);
  const groups = f.groups.map((g) => {
    let head = g.hostset + ' (' + g.count + (g.count === 1 ? ' host' : ' hosts') + '): ' + g.state;
    if (g.exit !== '-') head += /^-?\d+$/.test(g.exit) ? ', exit ' + g.exit : ', signal ' + g.exit;
    const box = el('div', { class: 'group', 'data-hosts': g.hostset }, el('div', { class: 'group-head' }, head));
    if (g.stdout) box.append(el('pre', { class: 'stdout' }, g.stdout));
    if (g.stderr) box.append(el('pre', { class: 'stderr', title: 'stderr' }, g.stderr));
    if (g.error) box.append(el('div', { class: 'error' }, 'error: ' + g.error));
    if (g.truncated) box.append(el('div', { class: 'hint' }, 'output cut: all of it with felix job output ' + j.job_id + ' ' + g.first_host));
    if (!g.stdout && !g.stderr && !g.error) box.append(el('div', { class: 'hint' }, '(no output)'));
    return box;
  });
  if (f.more_hosts) groups.push(el('p', { class: 'hint' }, f.more_hosts + ' more hosts with other results: felix job ' + j.job_id + ' --no-fold'));
  $('groups').replaceChildren(...groups);
}

// follow shows a running job's output as its events arrive, then the
// folded results once it ends.
const liveCap = 256 * 1024; // characters of live output kept per host
function follow(id) {
  if (events) events.close();
  $('live').hidden = false;
  $('live-state').textContent = 'running';
  const box = $('live-hosts');
  box.replaceChildren();
  const hosts = new Map();
  const hostBox = (h) => {
    let e = hosts.get(h);
    if (!e) {
      const state = el('span', { class: 'hint' }, 'running');
      const pre = el('pre', { class: 'live-output', 'data-host': h });
      const div = el('div', { class: 'group' }, el('div', { class: 'group-head' }, h + ' ', state), pre);
      box.append(div);
      e = { state, pre, n: 0 };
      hosts.set(h, e);
    }
    return e;
  };
  events = new EventSource('/ui/api/jobs/' + encodeURIComponent(id) + '/events');
  events.addEventListener('output', (ev) => {
    const e = JSON.parse(ev.data);
    const hb = hostBox(e.host);
    if (hb.n >= liveCap) return;
    const chunk = e.data.slice(0, liveCap - hb.n);
    hb.n += chunk.length;
    hb.pre.append(e.stream === 'stderr' ? el('span', { class: 'stderr-chunk' }, chunk) : chunk);
    if (hb.n >= liveCap) hb.pre.append(el('span', { class: 'hint' }, '\n… more output: see the results'));
  });
  events.addEventListener('host', (ev) => {
    const e = JSON.parse(ev.data);
    const hb = hostBox(e.host);
    hb.state.textContent = e.state;
    hb.state.className = 'state-' + e.state;
  });
  events.addEventListener('job', (ev) => {
    const e = JSON.parse(ev.data);
    $('live-state').textContent = e.state;
  });
  events.addEventListener('end', async () => {
    events.close();
    events = null;
    $('live-state').textContent = 'ended';
    try {
      renderJob(await api('GET', 'jobs/' + encodeURIComponent(id)));
    } catch (e) {
      showError(e.message);
    }
  });
  events.onerror = () => { if (events && events.readyState === EventSource.CLOSED) showError('live output: connection lost'); };
}

function showRun() {
  show('run');
}

async function preview() {
  const t = $('run-target').value.trim();
  $('run-submit').disabled = true;
  if (!t) return;
  const dr = await api('GET', 'targets?t=' + encodeURIComponent(t));
  $('preview').hidden = false;
  const would = dr.hosts.filter((h) => h.state === 'would run').length;
  $('preview-note').textContent = dr.hosts.length + ' hosts match ' + t + '; ' + would + ' would run';
  $('preview-table').tBodies[0].replaceChildren(...dr.hosts.map((h) => el('tr', { 'data-id': h.host },
    el('td', { class: 'mono' }, h.host), el('td', { class: 'mono' }, h.address || ''),
    el('td', { class: h.state === 'would run' ? 'state-ok' : 'state-failed', title: h.error || '' }, h.state + (h.error ? ': ' + h.error : '')),
    el('td', {}, (h.transport || '') + (h.fallback ? ' (then ' + h.fallback + ')' : '')))));
  $('run-form').dataset.previewed = t;
  $('run-submit').disabled = would === 0;
}

async function run(ev) {
  ev.preventDefault();
  const t = $('run-target').value.trim();
  if ($('run-form').dataset.previewed !== t) { await preview(); return; }
  const body = { target: t, cmd_line: $('run-cmd').value };
  const to = $('run-timeout').value.trim();
  if (to) body.timeout = to;
  $('run-submit').disabled = true;
  const acc = await api('POST', 'exec', body);
  location.hash = '#/jobs/' + encodeURIComponent(acc.job_id);
}

async function login(ev) {
  ev.preventDefault();
  showError('');
  try {
    const s = await api('POST', 'login', { token: $('token').value });
    $('token').value = '';
    Object.assign(session, s);
    if (!location.hash || location.hash === '#/login') location.hash = '#/fleet';
    else await route();
  } catch (e) {
    showError('login: ' + e.message);
  }
}

async function logout() {
  try { await api('POST', 'logout'); } catch (e) { /* the session is gone either way */ }
  session.csrf = '';
  show('login');
}

const guard = (fn) => async (ev) => { try { showError(''); await fn(ev); } catch (e) { showError(e.message); } };

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  $('filter-form').addEventListener('submit', guard(async (ev) => { ev.preventDefault(); await showFleet($('filter').value.trim()); }));
  $('filter-clear').addEventListener('click', guard(async () => { $('filter').value = ''; await showFleet(''); }));
  $('jobs-older').addEventListener('click', guard(async () => { if (jobsPages.next) { jobsPages.before.push(jobsPages.next); await showJobs(); } }));
  $('jobs-newer').addEventListener('click', guard(async () => { if (jobsPages.before.length > 1) { jobsPages.before.pop(); await showJobs(); } }));
  $('run-preview').addEventListener('click', guard(preview));
  $('run-target').addEventListener('input', () => { $('run-submit').disabled = true; delete $('run-form').dataset.previewed; });
  $('run-form').addEventListener('submit', guard(run));
  window.addEventListener('hashchange', route);
  route();
});
