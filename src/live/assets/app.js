// Stevedore's live view. Frames arrive once a second as server-sent events from /api/v1/live/stream; rates
// are computed by the server. Every text that comes from a container (names, images, labels, commands) is
// set with textContent, never parsed as markup; the page's Content-Security-Policy forbids inline script.
'use strict';

const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

// ---- formatting ------------------------------------------------------------------------------------
// CPUs as Docker writes them: up to two decimals, no trailing zeros (0.25, 0.5, 2).
function cpus(v) {
  return String(Number(v.toFixed(2)));
}

function trim1(v) {
  const s = v.toFixed(1);
  return s.endsWith('.0') ? s.slice(0, -2) : s;
}
function bytes(v) {
  if (v === null || v === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? String(Math.round(v)) : trim1(v)) + ' ' + units[i];
}
const rate = (v) => (v === null || v === undefined ? '–' : bytes(v) + '/s');
const pct = (v) => (v === null || v === undefined ? '–' : v.toFixed(1) + ' %');
const num = (v) => (v === null || v === undefined ? '–' : String(v));
function duration(s) {
  if (s === null || s === undefined || s < 0) return '–';
  s = Math.floor(s);
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
  if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
  return Math.floor(s / 86400) + 'd ' + Math.floor((s % 86400) / 3600) + 'h';
}
const add = (a, b) => (a === null && b === null ? null : (a || 0) + (b || 0));
const memPct = (r) => (r.memory !== null && r.memory_limit ? (100 * r.memory) / r.memory_limit : null);

// ---- state -----------------------------------------------------------------------------------------
const view = { frame: null, sort: 'cpu', dir: -1, detail: null, history: [], lastFrameAt: 0, timer: null };

function displayName(r) {
  if (r.level === 'pod') return r.pod;
  if (r.pod && r.container) return r.container;
  return r.name || r.container || r.id;
}

// One column: its key, header, sort value, cell text and whether it is numeric.
const COLUMNS = [
  { key: 'name', label: 'Name', value: (r) => displayName(r).toLowerCase(), text: displayName },
  { key: 'image', label: 'Image', value: (r) => r.image, text: (r) => r.image },
  { key: 'state', label: 'State', value: (r) => r.state || '', cell: stateCell },
  { key: 'cpu', label: 'CPU', num: true, value: (r) => r.cpu,
    text: (r) => pct(r.cpu) + (r.cpu_limit !== null ? ' / ' + cpus(r.cpu_limit) + ' CPU' : ''),
    hot: (r) => r.throttled !== null && r.throttled > 10 },
  { key: 'memory', label: 'Memory', num: true, value: (r) => r.memory,
    text: (r) => bytes(r.memory) + (r.memory_limit ? ' / ' + bytes(r.memory_limit) + ' (' + pct(memPct(r)) + ')' : ''),
    hot: (r) => memPct(r) !== null && memPct(r) > 90 },
  { key: 'net', label: 'Net rx / tx', num: true, value: (r) => add(r.net_rx, r.net_tx),
    text: (r) => (r.net_rx === null && r.net_tx === null ? '–' : rate(r.net_rx) + ' / ' + rate(r.net_tx)) },
  { key: 'block', label: 'Block read / write', num: true, value: (r) => add(r.blk_read, r.blk_write),
    text: (r) => (r.blk_read === null && r.blk_write === null ? '–' : rate(r.blk_read) + ' / ' + rate(r.blk_write)) },
  { key: 'pids', label: 'PIDs', num: true, value: (r) => r.pids, text: (r) => num(r.pids) },
  { key: 'restarts', label: 'Restarts', num: true, value: (r) => r.restarts, text: (r) => num(r.restarts),
    hot: (r) => r.restarts > 0 },
  { key: 'uptime', label: 'Uptime', num: true, value: uptime, text: (r) => duration(uptime(r)) },
  { key: 'oom', label: 'OOM kills', num: true, value: (r) => r.oom_kills, text: (r) => num(r.oom_kills),
    hot: (r) => r.oom_kills > 0 },
];

function uptime(r) {
  if (!r.started || !view.frame || (r.state && r.state !== 'running')) return null;
  return view.frame.time - r.started;
}

function stateCell(td, r) {
  td.textContent = '';
  if (r.state) td.appendChild(el('span', 'st ' + r.state.replace(/[^a-z]/g, ''), r.state));
  if (r.health && r.health !== 'none') td.appendChild(el('span', 'hl ' + r.health.replace(/[^a-z]/g, ''), r.health));
}

// ---- the table -------------------------------------------------------------------------------------
function header() {
  const tr = $('head');
  for (const c of COLUMNS) {
    const th = el('th', c.num ? 'num' : '', c.label);
    th.dataset.col = c.key;
    th.addEventListener('click', () => {
      if (view.sort === c.key) view.dir = -view.dir;
      else { view.sort = c.key; view.dir = c.num ? -1 : 1; }
      render();
    });
    tr.appendChild(th);
  }
}

function compare(a, b) {
  const col = COLUMNS.find((c) => c.key === view.sort) || COLUMNS[0];
  const x = col.value(a), y = col.value(b);
  const xn = x === null || x === undefined, yn = y === null || y === undefined;
  if (xn || yn) return xn === yn ? tie(a, b) : xn ? 1 : -1; // blanks last, whichever way
  if (x < y) return -view.dir;
  if (x > y) return view.dir;
  return tie(a, b);
}
const tie = (a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

function matches(r, q) {
  return [r.name, r.image, r.pod, r.namespace, r.container, r.id].some((s) => s && s.toLowerCase().includes(q));
}

// The rows in display order: the root first; on Kubernetes, namespaces, each with its pods and their
// containers, containers outside pods first.
function ordered(frame, q) {
  const rows = frame.containers.filter((r) => r.level !== 'sandbox' && r.level !== 'root');
  const out = [];
  if (frame.root) out.push({ key: 'root', row: frame.root, cls: 'root' });
  if (!frame.kubernetes) {
    for (const r of rows.filter((r) => !q || matches(r, q)).sort(compare)) out.push({ key: r.id, row: r, cls: '' });
    return out;
  }
  const loose = [], spaces = new Map();
  for (const r of rows) {
    if (!r.pod) { if (!q || matches(r, q)) loose.push(r); continue; }
    if (!spaces.has(r.namespace)) spaces.set(r.namespace, new Map());
    const pods = spaces.get(r.namespace);
    if (!pods.has(r.pod)) pods.set(r.pod, { pod: null, children: [] });
    const p = pods.get(r.pod);
    if (r.level === 'pod') p.pod = r; else p.children.push(r);
  }
  for (const r of loose.sort(compare)) out.push({ key: r.id, row: r, cls: '' });
  for (const ns of [...spaces.keys()].sort()) {
    const pods = [];
    for (const [name, p] of spaces.get(ns)) {
      const kids = p.children.filter((c) => !q || matches(c, q) || (p.pod && matches(p.pod, q)));
      if (q && !kids.length && !(p.pod && matches(p.pod, q))) continue;
      const head = p.pod || { id: 'pod:' + ns + '/' + name, pod: name, namespace: ns, level: 'pod', name: '',
        image: '', container: '', cpu: null, memory: null, net_rx: null, net_tx: null, blk_read: null, blk_write: null,
        pids: null, restarts: null, started: null, oom_kills: null, state: null, health: null, cpu_limit: null,
        memory_limit: null, throttled: null };
      pods.push({ head, kids: kids.sort(compare) });
    }
    if (!pods.length) continue;
    out.push({ key: 'ns:' + ns, ns, count: pods.length });
    for (const p of pods.sort((a, b) => compare(a.head, b.head))) {
      out.push({ key: p.head.id, row: p.head, cls: 'pod' });
      for (const k of p.kids) out.push({ key: k.id, row: k, cls: 'child' });
    }
  }
  return out;
}

const trs = new Map(); // key -> tr, reused between frames so a frame changes only the texts that moved

function dataRow(item) {
  const tr = el('tr', 'data ' + item.cls);
  tr.dataset.id = item.row.id;
  for (const c of COLUMNS) {
    const td = el('td', (c.num ? 'num ' : '') + c.key);
    td.dataset.col = c.key;
    tr.appendChild(td);
  }
  if (!item.row.id.startsWith('pod:')) {
    tr.addEventListener('click', () => { location.hash = '#/container/' + encodeURIComponent(tr.dataset.id); });
  }
  return tr;
}

function fill(tr, r) {
  COLUMNS.forEach((c, i) => {
    const td = tr.children[i];
    if (c.cell) { c.cell(td, r); return; }
    const t = c.text(r);
    if (td.textContent !== t) td.textContent = t;
    if (c.key === 'name' || c.key === 'image') td.title = t;
    td.classList.toggle('hot', Boolean(c.hot && c.hot(r)));
  });
}

function render() {
  const f = view.frame;
  if (!f) return;
  machine(f);
  if (view.detail) { detailFrame(f); return; }
  const q = $('filter').value.trim().toLowerCase();
  const items = ordered(f, q);
  const body = $('rows');
  const keep = new Set();
  let prev = null;
  for (const item of items) {
    keep.add(item.key);
    let tr = trs.get(item.key);
    if (!tr) {
      if (item.ns !== undefined) {
        tr = el('tr', 'ns');
        tr.appendChild(el('td'));
        tr.firstChild.colSpan = COLUMNS.length;
      } else tr = dataRow(item);
      trs.set(item.key, tr);
    }
    if (item.ns !== undefined) tr.firstChild.textContent = 'namespace ' + item.ns + ' · ' + item.count + (item.count === 1 ? ' pod' : ' pods');
    else fill(tr, item.row);
    const want = prev ? prev.nextSibling : body.firstChild;
    if (want !== tr) body.insertBefore(tr, want);
    prev = tr;
  }
  for (const [k, tr] of trs) if (!keep.has(k)) { tr.remove(); trs.delete(k); }
  for (const th of $('head').children) {
    th.setAttribute('aria-sort', th.dataset.col === view.sort ? (view.dir > 0 ? 'ascending' : 'descending') : 'none');
  }
  const counted = (r) => r.level === 'container' || r.level === 'other';
  const shown = items.filter((i) => i.row && counted(i.row)).length;
  const total = f.containers.filter(counted).length;
  $('count').textContent = shown + ' of ' + total + ' containers' + (f.kubernetes ? ' · grouped by namespace and pod' : '');
}

// ---- the machine -----------------------------------------------------------------------------------
function card(title, big, small, fraction) {
  const c = el('div', 'card');
  c.appendChild(el('h4', '', title));
  c.appendChild(el('div', 'big', big));
  if (fraction !== undefined && fraction !== null) {
    const bar = el('div', 'bar'), fill = el('span', fraction > 0.9 ? 'hot' : '');
    fill.style.width = Math.max(0, Math.min(100, fraction * 100)).toFixed(1) + '%';
    bar.appendChild(fill);
    c.appendChild(bar);
  }
  if (small) for (const line of [].concat(small)) c.appendChild(el('div', 'small', line));
  return c;
}

function machine(f) {
  const m = f.machine, box = $('machine');
  const cards = [];
  const cores = m.cores || null;
  cards.push(card('CPU', pct(m.cpu), cores ? 'of ' + cores + ' cores (100 % = one core)' : '', cores && m.cpu !== null ? m.cpu / 100 / cores : null));
  if (m.mem_total) {
    const used = m.mem_total - (m.mem_available || 0);
    cards.push(card('Memory', bytes(used) + ' / ' + bytes(m.mem_total), 'available ' + bytes(m.mem_available), used / m.mem_total));
  }
  if (m.load) cards.push(card('Load', m.load.map((v) => v.toFixed(2)).join('  '), '1, 5 and 15 minutes'));
  if (m.psi) {
    const p = m.psi;
    cards.push(card('Pressure (some)', 'cpu ' + pct(p.cpu_some), ['memory ' + pct(p.memory_some) + ' · full ' + pct(p.memory_full),
      'io ' + pct(p.io_some) + ' · full ' + pct(p.io_full)]));
  }
  const disks = m.filesystems.filter((x) => x.device.startsWith('/dev/')).slice(0, 4);
  for (const d of disks) {
    const used = d.size - d.avail;
    cards.push(card('Disk ' + d.mountpoint, bytes(used) + ' / ' + bytes(d.size), d.device + ' · ' + d.fstype, used / d.size));
  }
  const io = m.disks.filter((d) => d.read !== null || d.write !== null).filter((d) => !/^(loop|ram|dm-)/.test(d.device)).slice(0, 2);
  for (const d of io) cards.push(card('Disk I/O ' + d.device, rate(d.read) + ' read', rate(d.write) + ' written'));
  box.replaceChildren(...cards);
  const bad = f.collectors.filter(([, s]) => s === 'failed').map(([n]) => n);
  $('problems').hidden = !bad.length;
  $('problems').textContent = bad.length ? 'failing: ' + bad.join(', ') : '';
}

// ---- a container's page ----------------------------------------------------------------------------
const CHARTS = [
  { key: 'cpu', title: 'CPU (% of one core)', unit: pct, series: [
    ['usage', '#2f6fb0', (r) => r.cpu], ['limit', '#c53030', (r) => (r.cpu_limit !== null ? r.cpu_limit * 100 : null)],
    ['throttled periods %', '#e0a030', (r) => r.throttled]] },
  { key: 'memory', title: 'Memory', unit: bytes, series: [
    ['working set', '#2f6fb0', (r) => r.memory], ['cache', '#4caf7a', (r) => r.memory_cache],
    ['limit', '#c53030', (r) => r.memory_limit]] },
  { key: 'network', title: 'Network', unit: rate, floor: 1024, series: [
    ['rx', '#2f6fb0', (r) => r.net_rx], ['tx', '#4caf7a', (r) => r.net_tx]] },
  { key: 'block', title: 'Block I/O', unit: rate, floor: 1024, series: [
    ['read', '#2f6fb0', (r) => r.blk_read], ['write', '#e0a030', (r) => r.blk_write]] },
  { key: 'pressure', title: 'Pressure stalls (% of time, some)', unit: pct, floor: 1, series: [
    ['cpu', '#2f6fb0', (r) => (r.psi ? r.psi.cpu_some : null)], ['memory', '#c53030', (r) => (r.psi ? r.psi.memory_some : null)],
    ['io', '#e0a030', (r) => (r.psi ? r.psi.io_some : null)]] },
];
const KEEP_POINTS = 600; // ten minutes at one frame a second

function findRow(f, id) {
  if (f.root && f.root.id === id) return f.root;
  return f.containers.find((r) => r.id === id) || null;
}

function openDetail(id) {
  view.detail = id;
  view.history = [];
  $('list').hidden = true;
  $('detail').hidden = false;
  const charts = $('charts');
  charts.replaceChildren();
  for (const c of CHARTS) {
    const box = el('div', 'chart');
    box.appendChild(el('h4', '', c.title));
    const canvas = el('canvas');
    canvas.dataset.chart = c.key;
    canvas.dataset.points = '0';
    box.appendChild(canvas);
    const legend = el('div', 'legend');
    for (const [name, color] of c.series) {
      const s = el('span', '', name);
      const i = el('i');
      i.style.background = color;
      s.prepend(i);
      legend.appendChild(s);
    }
    box.appendChild(legend);
    charts.appendChild(box);
  }
  $('d-name').textContent = id;
  $('d-sub').textContent = '';
  $('d-facts').replaceChildren();
  $('d-labels').replaceChildren();
  $('d-procs').tBodies[0].replaceChildren();
  loadDetails();
  clearInterval(view.timer);
  view.timer = setInterval(loadDetails, 2000);
  if (view.frame) detailFrame(view.frame);
}

function closeDetail() {
  view.detail = null;
  view.history = [];
  clearInterval(view.timer);
  $('detail').hidden = true;
  $('list').hidden = false;
  render();
}

function detailFrame(f) {
  const r = findRow(f, view.detail);
  if (!r) { $('d-sub').textContent = 'This container is gone.'; return; }
  $('d-name').textContent = displayName(r);
  const parts = [r.image, r.state, r.pod ? r.namespace + '/' + r.pod : ''].filter(Boolean);
  $('d-sub').textContent = parts.join(' · ') + (uptime(r) !== null ? ' · up ' + duration(uptime(r)) : '');
  const last = view.history[view.history.length - 1];
  if (!last || last.t !== f.time) {
    view.history.push({ t: f.time, r });
    if (view.history.length > KEEP_POINTS) view.history.shift();
  }
  for (const c of CHARTS) draw(document.querySelector('canvas[data-chart="' + c.key + '"]'), c);
}

function draw(canvas, chart) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 380, h = canvas.clientHeight || 150;
  if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const pts = view.history;
  let max = 0, drawn = 0;
  for (const p of pts) for (const [, , f] of chart.series) { const v = f(p.r); if (v !== null && v !== undefined && v > max) max = v; }
  if (max <= 0) max = chart.floor || 1;
  max *= 1.1;
  const left = 70, right = w - 6, top = 6, bottom = h - 16;
  const style = getComputedStyle(document.body);
  g.strokeStyle = style.getPropertyValue('--line') || '#ddd';
  g.fillStyle = style.getPropertyValue('--muted') || '#666';
  g.font = '10px sans-serif';
  g.lineWidth = 1;
  for (let i = 0; i <= 3; i++) {
    const y = bottom - ((bottom - top) * i) / 3;
    g.beginPath(); g.moveTo(left, y); g.lineTo(right, y); g.stroke();
    g.fillText(chart.unit((max * i) / 3), 2, y + 3);
  }
  // The width shows the time since the page opened, at least one minute and at most ten.
  const t1 = pts.length ? pts[pts.length - 1].t : 0;
  const span = Math.min(KEEP_POINTS, Math.max(60, pts.length ? t1 - pts[0].t : 0));
  const t0 = t1 - span;
  g.fillText(duration(span) + ' ago', left, h - 3);
  g.fillText('now', right - 18, h - 3);
  const x = (t) => left + ((right - left) * (t - t0)) / span;
  const y = (v) => bottom - ((bottom - top) * v) / max;
  g.lineWidth = 1.5;
  for (const [, color, f] of chart.series) {
    g.strokeStyle = color;
    g.beginPath();
    let pen = false;
    for (const p of pts) {
      if (p.t < t0) continue;
      const v = f(p.r);
      if (v === null || v === undefined) { pen = false; continue; }
      if (pen) g.lineTo(x(p.t), y(v)); else g.moveTo(x(p.t), y(v));
      pen = true;
      drawn++;
    }
    g.stroke();
  }
  canvas.dataset.points = String(drawn);
}

function kv(table, pairs) {
  table.replaceChildren(...pairs.filter(([, v]) => v !== null && v !== undefined && v !== '').map(([k, v]) => {
    const tr = el('tr');
    tr.appendChild(el('td', '', k));
    tr.appendChild(el('td', '', String(v)));
    return tr;
  }));
}

async function loadDetails() {
  const id = view.detail;
  if (!id) return;
  let d;
  try {
    const resp = await fetch('/api/v1/container?id=' + encodeURIComponent(id), { cache: 'no-store' });
    if (!resp.ok) return;
    d = await resp.json();
  } catch (e) { return; }
  if (view.detail !== id) return;
  const l = d.limits;
  kv($('d-facts'), [
    ['cgroup', d.id], ['name', d.name], ['image', d.image], ['namespace', d.namespace], ['pod', d.pod],
    ['container', d.container], ['runtime', d.runtime], ['runtime id', d.runtime_id],
    ['CPU limit', l.cpu_quota_us && l.cpu_period_us ? trim1(l.cpu_quota_us / l.cpu_period_us) + ' CPU (' + l.cpu_quota_us + ' µs per ' + l.cpu_period_us + ' µs)' : 'none'],
    ['CPU shares', l.cpu_shares], ['memory limit', l.memory_bytes ? bytes(l.memory_bytes) : 'none'],
    ['memory reservation', l.memory_reservation_bytes ? bytes(l.memory_reservation_bytes) : null],
    ['swap limit', l.memory_swap_bytes ? bytes(l.memory_swap_bytes) : null], ['PIDs limit', l.pids || 'none'],
  ]);
  const labels = Object.entries(d.labels).concat(Object.entries(d.pod_labels).map(([k, v]) => ['pod: ' + k, v]));
  kv($('d-labels'), labels.length ? labels : [['', 'no labels']]);
  const note = $('d-procs-note');
  note.hidden = !d.processes_note;
  note.textContent = d.processes_note || '';
  $('d-procs').hidden = !d.processes;
  $('d-procs').tBodies[0].replaceChildren(...(d.processes || []).map((p) => {
    const tr = el('tr');
    for (const v of [p.pid, p.user, pct(p.cpu), bytes(p.rss), num(p.threads), p.state, p.command]) tr.appendChild(el('td', '', v));
    return tr;
  }));
}

// ---- routing and the stream ------------------------------------------------------------------------
function route() {
  const m = location.hash.match(/^#\/container\/(.+)$/);
  if (m) openDetail(decodeURIComponent(m[1]));
  else if (view.detail) closeDetail();
}

function status(state, text) {
  const s = $('status');
  s.dataset.state = state;
  s.textContent = text;
}

function connect() {
  const es = new EventSource('/api/v1/live/stream');
  es.onopen = () => status('live', 'live');
  es.onmessage = (ev) => {
    let f;
    try { f = JSON.parse(ev.data); } catch (e) { return; }
    view.frame = f;
    view.lastFrameAt = Date.now();
    status('live', 'live');
    render();
  };
  es.onerror = () => status('connecting', 'reconnecting…');
}

document.addEventListener('DOMContentLoaded', () => {
  header();
  $('filter').addEventListener('input', render);
  window.addEventListener('hashchange', route);
  route();
  connect();
  setInterval(() => {
    if (view.lastFrameAt && Date.now() - view.lastFrameAt > 5000) status('stale', 'no data for ' + Math.round((Date.now() - view.lastFrameAt) / 1000) + ' s');
  }, 1000);
});
