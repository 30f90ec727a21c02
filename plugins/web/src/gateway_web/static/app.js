// housebus web page. Plain JavaScript, no build step, nothing from the internet.
// Everything shown comes from the broker, and a neighbour's radio can put any text into a state:
// it is only ever set as text (textContent, text nodes), never parsed as HTML.
'use strict';

const LOG_KEEP = 500;
const HISTORY_KEEP = 50;
const $ = (id) => document.getElementById(id);
// From the origin, not the page's address: fetch refuses a URL that carries user:password@, which
// a page opened as http://user:password@host/ would pass on to a relative one.
const api = (path) => location.origin + path;

const page = {
  base: '', prefix: '', allowCommands: false, staleAfter: 3600,
  devices: new Map(), availability: {}, info: {}, bridge: null,
  log: [], paused: false, missed: 0,
  sort: { key: 'name', dir: 1 },
  device: null,           // the topic of the device whose view is open
  pendingCommand: null,   // {topic, until}: a bridge/error about it in the next seconds is shown
};

// ---- building DOM from text --------------------------------------------------------------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'href') node.setAttribute('href', value);
    else node.dataset[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

function clear(node) { node.replaceChildren(); return node; }

function facts(dl, pairs) {
  clear(dl);
  for (const [name, value] of pairs) dl.append(el('dt', { text: name }), el('dd', { text: String(value) }));
}

function ago(ms) {
  if (!ms) return 'never';
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 2) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

function clock(ms) { return new Date(ms).toLocaleTimeString(); }

function pretty(value) { return JSON.stringify(value, null, 2); }

// ---- devices --------------------------------------------------------------------------------

function isOffline(row) {
  return (row.availability || []).some((topic) => page.availability[topic] === 'offline');
}

function isStale(row) { return Date.now() - row.last_seen > page.staleAfter * 1000; }

function sortValue(row, key) {
  if (key === 'last_seen') return row.last_seen || 0;
  if (key === 'values') return row.values.map((v) => v.join(' ')).join(' ');
  return (row[key] ?? '').toString().toLowerCase();
}

function deviceRow(row) {
  const values = el('td', { class: 'values' });
  for (const [key, value] of row.values) {
    values.append(el('span', {}, el('span', { class: 'key', text: key }), ' ', el('span', { class: 'val', text: value })));
  }
  const tr = el('tr', { topic: row.topic },
    el('td', { class: 'plugin', text: row.plugin }),
    el('td', { class: 'name' }, el('a', { href: '#/device/' + encodeURIComponent(row.topic), text: row.name })),
    el('td', { class: 'id', text: row.id }),
    el('td', { class: 'ago', t: String(row.last_seen), text: ago(row.last_seen) }),
    el('td', { class: 'battery' + (row.battery_low ? ' low' : ''), text: row.battery ?? '' }),
    el('td', { class: 'signal', text: row.signal ?? '' }),
    values);
  tr.classList.toggle('stale', isStale(row));
  tr.classList.toggle('offline', isOffline(row));
  return tr;
}

let renderQueued = false;
function renderDevices() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    const filter = $('device-filter').value.trim().toLowerCase();
    const { key, dir } = page.sort;
    const rows = [...page.devices.values()]
      .filter((r) => !filter || [r.plugin, r.name, r.id, r.topic].some((t) => t.toLowerCase().includes(filter)))
      .sort((a, b) => {
        const x = sortValue(a, key), y = sortValue(b, key);
        return (x < y ? -1 : x > y ? 1 : 0) * dir || a.topic.localeCompare(b.topic);
      });
    clear($('devices').tBodies[0]).append(...rows.map(deviceRow));
    $('device-count').textContent = `${rows.length} of ${page.devices.size} devices`;
    $('no-devices').hidden = page.devices.size > 0;
    for (const th of document.querySelectorAll('#devices th')) {
      th.setAttribute('aria-sort', th.dataset.key === key ? (dir > 0 ? 'ascending' : 'descending') : 'none');
    }
  });
}

function tick() {
  for (const cell of document.querySelectorAll('td.ago')) cell.textContent = ago(Number(cell.dataset.t));
  for (const tr of $('devices').tBodies[0].rows) {
    const row = page.devices.get(tr.dataset.topic);
    if (row) tr.classList.toggle('stale', isStale(row));
  }
}

// ---- bridge ----------------------------------------------------------------------------------

function renderBridge() {
  const b = page.bridge;
  facts($('bridge-facts'), b ? [['Version', b.version], ['Base topic', b.base_topic], ['Started', b.started]]
    : [['Bridge', 'no bridge/info heard yet']]);
  const plugins = clear($('bridge-plugins').tBodies[0]);
  for (const p of (b ? b.plugins : [])) {
    for (const [component, state] of p.components.length ? p.components : [['', '']]) {
      const topic = `${page.base}/${component.split('.').join('/')}/availability`;
      plugins.append(el('tr', {},
        el('td', { text: p.name }), el('td', { text: p.version }), el('td', { text: component }),
        el('td', { class: state === 'failed' ? 'problem' : '', text: state }),
        el('td', { class: page.availability[topic] === 'offline' ? 'problem' : '', text: page.availability[topic] || '' })));
    }
  }
  const problems = clear($('bridge-problems'));
  const list = [];
  for (const p of (b ? b.plugins : [])) for (const [section, error] of p.errors) list.push(`[${section}] ${error}`);
  for (const [name, error] of (b ? b.failed : [])) list.push(`plugin ${name} failed to load: ${error}`);
  for (const [section, reason] of (b ? b.skipped : [])) list.push(`[${section}] skipped: ${reason}`);
  if (list.length) problems.append(el('h3', { text: 'Problems' }), el('ul', {}, ...list.map((t) => el('li', { class: 'problem', text: t }))));
  const queues = clear($('bridge-queues').tBodies[0]);
  for (const q of (b ? b.queues : [])) queues.append(el('tr', {}, ...q.map((t) => el('td', { text: t }))));
  facts($('bridge-mqtt'), b ? b.mqtt : []);
  const info = clear($('bridge-info'));
  for (const [topic, rows] of Object.entries(page.info).sort()) {
    const dl = el('dl', { class: 'facts' });
    facts(dl, rows);
    info.append(el('h4', { class: 'topic', text: topic }), dl);
  }
}

// ---- log --------------------------------------------------------------------------------------

function topicMatcher(text) {
  const filter = text.trim();
  if (!filter) return () => true;
  if (!filter.includes('+') && !filter.includes('#')) return (topic) => topic.includes(filter);
  const want = filter.split('/');
  return (topic) => {
    const got = topic.split('/');
    for (let i = 0; i < want.length; i++) {
      if (want[i] === '#') return true;
      if (i >= got.length || (want[i] !== '+' && want[i] !== got[i])) return false;
    }
    return want.length === got.length;
  };
}

function logItem(entry) {
  return el('li', { class: entry.error ? 'error' : '' },
    el('time', { text: clock(entry.t) }),
    el('span', { class: 't', text: entry.topic }),
    entry.retain ? el('span', { class: 'r', text: '(retained)' }) : null,
    el('span', { class: 'p', text: entry.payload }));
}

function renderLog() {
  const match = topicMatcher($('log-filter').value);
  const shown = page.log.filter((e) => match(e.topic)).slice(-LOG_KEEP).reverse();
  clear($('log')).append(...shown.map(logItem));
  updateLogCount(shown.length);
}

function updateLogCount(shown) {
  $('log-count').textContent = page.paused ? `paused, ${page.missed} new` : `${shown} messages`;
}

function addToLog(entry) {
  page.log.push(entry);
  if (page.log.length > LOG_KEEP) page.log.shift();
  if (page.paused) { page.missed++; updateLogCount(0); return; }
  if ($('log-view').hidden || !topicMatcher($('log-filter').value)(entry.topic)) return;
  const list = $('log');
  list.prepend(logItem(entry));
  while (list.children.length > LOG_KEEP) list.lastChild.remove();
  updateLogCount(list.children.length);
}

// ---- one device's view ---------------------------------------------------------------------

async function openDevice(topic) {
  page.device = topic;
  $('device-title').textContent = topic;
  for (const id of ['device-state', 'device-discovery', 'device-discovery-topic', 'command-result']) $(id).textContent = '';
  clear($('device-history'));
  clear($('device-facts'));
  $('device-command').hidden = true;
  let detail;
  try {
    const answer = await fetch(api('/api/device?topic=') + encodeURIComponent(topic), { headers: { Accept: 'application/json' } });
    if (!answer.ok) { $('device-title').textContent = `${topic}: no such device`; return; }
    detail = await answer.json();
  } catch (err) {
    $('device-title').textContent = `${topic}: ${err}`;
    return;
  }
  if (page.device !== topic) return;
  showDeviceRow(detail.row);
  $('device-state').textContent = pretty(detail.state);
  $('device-discovery-topic').textContent = detail.discovery_topic || 'not announced to Home Assistant';
  $('device-discovery').textContent = detail.discovery ? pretty(detail.discovery) : '';
  $('device-discovery').hidden = !detail.discovery;
  const history = $('device-history');
  for (const entry of detail.history.slice().reverse()) history.append(logItem(entry));
  setupCommands(detail.commands);
}

function showDeviceRow(row) {
  $('device-title').textContent = row.name;
  facts($('device-facts'), [['Topic', row.topic], ['Plugin', row.plugin], ['ID', row.id], ['Model', row.model],
    ['Last seen', row.last_seen ? `${ago(row.last_seen)} (${new Date(row.last_seen).toLocaleString()})` : 'never'],
    ['Battery', row.battery ?? ''], ['Signal', row.signal ?? ''],
    ['Available', isOffline(row) ? 'offline' : 'online']]);
}

function setupCommands(commands) {
  const section = $('device-command');
  section.hidden = !page.allowCommands || !commands.length;
  if (section.hidden) return;
  const select = clear($('command-topic'));
  for (const c of commands) select.append(el('option', { text: c.topic }));
  const showExamples = () => {
    const command = commands[select.selectedIndex] || commands[0];
    const box = clear($('command-examples'));
    for (const payload of command.payloads) {
      const button = el('button', { text: payload });
      button.type = 'button';
      button.addEventListener('click', () => { $('command-payload').value = payload; });
      box.append(button);
    }
    $('command-payload').value = command.payloads[0] || '';
  };
  select.onchange = showExamples;
  showExamples();
}

async function sendCommand(event) {
  event.preventDefault();
  const result = $('command-result');
  const topic = $('command-topic').value;
  result.className = '';
  result.textContent = 'sending…';
  try {
    const answer = await fetch(api('/api/command'), {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ topic, payload: $('command-payload').value }),
    });
    const body = await answer.json().catch(() => ({}));
    if (answer.ok) {
      result.className = 'ok';
      result.textContent = `published at ${new Date().toLocaleTimeString()}`;
      page.pendingCommand = { topic, until: Date.now() + 10000 };
    } else {
      result.className = 'error';
      result.textContent = body.error || `refused: ${answer.status}`;
    }
  } catch (err) {
    result.className = 'error';
    result.textContent = String(err);
  }
}

function watchCommandError(entry) {
  const pending = page.pendingCommand;
  if (!entry.error || !pending || Date.now() > pending.until) return;
  let report;
  try { report = JSON.parse(entry.payload); } catch { return; }
  if (report && report.topic === pending.topic) {
    $('command-result').className = 'error';
    $('command-result').textContent = `the gateway reported: ${report.error}`;
  }
}

// ---- the event stream --------------------------------------------------------------------

function onDevice(row) {
  page.devices.set(row.topic, row);
  renderDevices();
  if (page.device === row.topic) showDeviceRow(row);
}

function onMessage(entry) {
  addToLog(entry);
  watchCommandError(entry);
  if (page.device && entry.device === page.device) {
    const history = $('device-history');
    history.prepend(logItem(entry));
    while (history.children.length > HISTORY_KEEP) history.lastChild.remove();
    if (entry.topic === page.device) {
      try { $('device-state').textContent = pretty(JSON.parse(entry.payload)); } catch { /* not JSON: keep the last */ }
    }
  }
}

function connect() {
  const status = $('connection');
  const stream = new EventSource(api('/api/events'));
  const on = (name, fn) => stream.addEventListener(name, (e) => fn(JSON.parse(e.data)));
  on('snapshot', (s) => {
    Object.assign(page, { base: s.base, prefix: s.prefix, allowCommands: s.allow_commands, staleAfter: s.stale_after,
      availability: s.availability, info: s.info, bridge: s.bridge, log: s.log, missed: 0 });
    page.devices = new Map(s.devices.map((row) => [row.topic, row]));
    renderDevices(); renderBridge(); renderLog();
    if (page.device) openDevice(page.device);  // its view was built before the page knew allow_commands
    status.textContent = 'live'; status.className = 'status live';
  });
  on('message', onMessage);
  on('device', onDevice);
  on('remove', (r) => { page.devices.delete(r.topic); renderDevices(); });
  on('bridge', (b) => { page.bridge = b; renderBridge(); });
  on('availability', (a) => { page.availability[a.topic] = a.value; renderBridge(); renderDevices(); });
  on('info', (i) => { page.info[i.topic] = i.rows; if (!$('bridge-view').hidden) renderBridge(); });
  stream.onerror = () => { status.textContent = 'reconnecting…'; status.className = 'status down'; };
}

// ---- navigation ---------------------------------------------------------------------------

function route() {
  const hash = location.hash || '#/devices';
  const deviceTopic = hash.startsWith('#/device/') ? decodeURIComponent(hash.slice('#/device/'.length)) : null;
  const view = deviceTopic ? 'device' : ['#/bridge', '#/log'].includes(hash) ? hash.slice(2) : 'devices';
  for (const name of ['devices', 'device', 'bridge', 'log']) $(`${name}-view`).hidden = name !== view;
  for (const name of ['devices', 'bridge', 'log']) {
    $(`nav-${name}`).classList.toggle('current', name === view || (name === 'devices' && view === 'device'));
  }
  page.device = deviceTopic;
  if (deviceTopic) openDevice(deviceTopic);
  if (view === 'log') renderLog();
  if (view === 'bridge') renderBridge();
}

function init() {
  for (const th of document.querySelectorAll('#devices th')) {
    th.querySelector('button').addEventListener('click', () => {
      const key = th.dataset.key;
      page.sort = { key, dir: page.sort.key === key ? -page.sort.dir : key === 'last_seen' ? -1 : 1 };
      renderDevices();
    });
  }
  $('device-filter').addEventListener('input', renderDevices);
  $('log-filter').addEventListener('input', renderLog);
  $('log-pause').addEventListener('click', () => {
    page.paused = !page.paused;
    $('log-pause').textContent = page.paused ? 'Resume' : 'Pause';
    page.missed = 0;
    renderLog();
  });
  $('command-form').addEventListener('submit', sendCommand);
  window.addEventListener('hashchange', route);
  setInterval(tick, 1000);
  route();
  connect();
}

init();
