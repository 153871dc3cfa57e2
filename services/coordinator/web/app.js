import { drawConfusion, drawCurves, drawParallel, drawPareto, drawPerBackbone } from './plots.js';
import { escapeHtml, pct, VirtualTable } from './table.js';

// A reader token, when auth is on, arrives once as ?token= and stays in this tab only.
const params = new URLSearchParams(location.search);
if (params.get('token')) {
  sessionStorage.setItem('tlsweep-token', params.get('token'));
  // Keep the token out of the address bar and the history.
  params.delete('token');
  history.replaceState(null, '', `${location.pathname}${params.size ? `?${params}` : ''}`);
}
const token = sessionStorage.getItem('tlsweep-token') ?? '';

const $ = (id) => document.getElementById(id);
const state = { sweepId: params.get('sweep') ?? '', selected: [], events: null, dirty: false, plotsDirty: false };

async function api(path) {
  const res = await fetch(path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
  return body;
}

function query() {
  const q = new URLSearchParams();
  for (const [k, id] of [['sortBy', 'sort-by'], ['groupBy', 'group-by'], ['backbone', 'filter-backbone'], ['status', 'filter-status']]) {
    if ($(id).value) q.set(k, $(id).value);
  }
  return q;
}

const table = new VirtualTable({
  viewport: $('table-viewport'),
  spacer: $('table-spacer'),
  rows: $('table-rows'),
  head: $('table-head'),
  fetchPage: (offset, limit) => {
    const q = query();
    q.set('offset', String(offset));
    q.set('limit', String(limit));
    return api(`/api/sweeps/${encodeURIComponent(state.sweepId)}/leaderboard?${q}`);
  },
  onSelect: (ids) => {
    state.selected = ids;
    void refreshCurves();
  },
});

async function loadSweeps() {
  const { sweeps } = await api('/api/sweeps');
  const sel = $('sweep-select');
  sel.innerHTML = sweeps.map((s) => `<option value="${escapeHtml(s.sweepId)}">${escapeHtml(s.name)} — ${s.status} (${s.counts.total})</option>`).join('');
  if (!sweeps.length) {
    $('summary').textContent = 'No sweeps yet: submit one with `tlsweep submit <spec.yaml>`.';
    return;
  }
  if (!sweeps.some((s) => s.sweepId === state.sweepId)) state.sweepId = sweeps[0].sweepId;
  sel.value = state.sweepId;
  await openSweep();
}

function renderSummary(s) {
  const c = s.counts;
  $('sweep-status').textContent = `${s.status}${s.reason ? ` (${s.reason})` : ''}`;
  $('sweep-status').dataset.status = s.status;
  const stat = (label, v) => `<div class="stat"><b>${escapeHtml(String(v))}</b>${label}</div>`;
  $('summary').innerHTML = [
    stat('trials', c.total), stat('completed', c.completed), stat('running', c.running), stat('queued', c.queued + c.pending),
    stat('stopped early', c.stopped), stat('failed', c.failed), ...(c.diverged ? [stat('diverged', c.diverged)] : []), stat('best val accuracy', pct(s.bestValAccuracy) || '—'),
  ].join('');
  const bb = $('filter-backbone');
  const current = bb.value;
  bb.innerHTML = '<option value="">all</option>' + s.axes.backbones.map((b) => `<option>${escapeHtml(b)}</option>`).join('');
  bb.value = current;
}

async function refreshTable() {
  const q = query();
  q.set('limit', '1');
  const r = await api(`/api/sweeps/${encodeURIComponent(state.sweepId)}/leaderboard?${q}`);
  $('row-count').textContent = `${r.total} trials`;
  $('row-count').dataset.total = String(r.total);
  const groups = $('groups');
  groups.innerHTML = r.groups.length
    ? `<tr><th>${escapeHtml($('group-by').value)}</th><th>trials</th><th>best</th><th>mean</th><th>std</th></tr>` +
      r.groups.map((g) => `<tr><td>${escapeHtml(g.key)}</td><td>${g.count}</td><td>${fmt(g.best, r.sortBy)}</td><td>${fmt(g.mean, r.sortBy)}</td><td>${fmt(g.std, r.sortBy)}</td></tr>`).join('')
    : '';
  await table.reset(r.total);
}

const fmt = (v, metric) => (v === null ? '' : metric.endsWith('accuracy') ? pct(v) : Number(v).toPrecision(4));

async function refreshCurves() {
  const ids = state.selected.length ? state.selected : [];
  if (!ids.length) {
    const top = await api(`/api/sweeps/${encodeURIComponent(state.sweepId)}/leaderboard?limit=3`);
    ids.push(...top.rows.filter((r) => r.epochs > 0).map((r) => r.trialId));
  }
  const trials = ids.length ? (await api(`/api/trials?ids=${ids.slice(0, 20).map(encodeURIComponent).join(',')}`)).trials : [];
  drawCurves($('curves'), trials, $('curves-legend'));
}

async function refreshPlots(sweep) {
  const id = encodeURIComponent(state.sweepId);
  const [pts, perBackbone] = await Promise.all([
    api(`/api/sweeps/${id}/points?metric=val_accuracy`),
    api(`/api/sweeps/${id}/leaderboard?groupBy=backbone&limit=1`),
  ]);
  drawParallel($('parallel'), pts);
  drawPerBackbone($('per-backbone'), perBackbone.groups);
  drawPareto($('pareto'), pts, (trialId) => {
    state.selected = [trialId];
    void refreshCurves();
  });
  if (sweep.bestTrialId) {
    const best = await api(`/api/trials/${encodeURIComponent(sweep.bestTrialId)}`);
    const cm = confusionOf(best);
    $('cm-trial').textContent = `(${best.trialId.slice(-8)}, test split)`;
    drawConfusion($('confusion'), cm?.matrix, cm?.classNames);
  } else {
    drawConfusion($('confusion'), null);
  }
  await refreshCurves();
}

/** The confusion matrix the worker stored with the trial's test metrics (see records.ts testMetrics). */
function confusionOf(trial) {
  const m = trial.extra?.testMetrics;
  if (!m || !Array.isArray(m.confusion) || !m.confusion.length) return null;
  return { matrix: m.confusion, classNames: (m.perClass ?? []).map((c) => c.name) };
}

const withToken = (path) => (token ? `${path}&token=${encodeURIComponent(token)}` : path);

/** Fills the feature-map panel's layer list (loads the backbone on the coordinator the first time). */
async function loadLayers() {
  const backbone = $('fm-backbone').value;
  const r = await api(`/api/layers?sweep=${encodeURIComponent(state.sweepId)}&backbone=${encodeURIComponent(backbone)}`);
  const mid = r.layers[Math.floor(r.layers.length / 4)]?.name;
  $('fm-layer').innerHTML = r.layers.map((l) => `<option value="${escapeHtml(l.name)}">${escapeHtml(l.name)} (${l.shape.join('×')})</option>`).join('');
  if (mid) $('fm-layer').value = mid;
  showFeatureMaps();
}

function showFeatureMaps() {
  const q = `sweep=${encodeURIComponent(state.sweepId)}&backbone=${encodeURIComponent($('fm-backbone').value)}&layer=${encodeURIComponent($('fm-layer').value)}&image=${Number($('fm-image').value) || 0}`;
  const img = $('fm-img');
  img.src = withToken(`/api/feature-maps.png?${q}`);
}

async function openSweep() {
  history.replaceState(null, '', `?sweep=${encodeURIComponent(state.sweepId)}`);
  state.selected = [];
  const sweep = await api(`/api/sweeps/${encodeURIComponent(state.sweepId)}`);
  renderSummary(sweep);
  await refreshTable();
  await refreshPlots(sweep);
  listen();
  // Graph backbones (graph:<name>) are frozen GraphModels without Keras layers: no feature maps to offer.
  $('fm-backbone').innerHTML = sweep.axes.backbones.filter((b) => !b.startsWith('graph:')).map((b) => `<option>${escapeHtml(b)}</option>`).join('');
  void loadLayers().catch((err) => ($('fm-label').textContent = err.message));
}

// Live updates: events only mark the page dirty; a timer re-queries what is
// on screen at most once a second (plots every 3 s), however fast epochs arrive.
function listen() {
  state.events?.close();
  const url = `/api/sweeps/${encodeURIComponent(state.sweepId)}/events${token ? `?token=${encodeURIComponent(token)}` : ''}`;
  const es = new EventSource(url);
  state.events = es;
  es.onopen = () => {
    $('live').classList.add('on');
    // Whatever changed between the page's first load and this (re)connection was not streamed: refresh once.
    state.dirty = true;
    state.plotsDirty = true;
  };
  es.onerror = () => $('live').classList.remove('on');
  es.onmessage = () => {
    state.dirty = true;
    state.plotsDirty = true;
  };
}

setInterval(async () => {
  if (!state.dirty || !state.sweepId) return;
  state.dirty = false;
  const sweep = await api(`/api/sweeps/${encodeURIComponent(state.sweepId)}`);
  renderSummary(sweep);
  const option = [...$('sweep-select').options].find((o) => o.value === sweep.sweepId);
  if (option) option.textContent = `${sweep.name} — ${sweep.status} (${sweep.counts.total})`;
  await refreshTable();
}, 1000);
setInterval(async () => {
  if (!state.plotsDirty || !state.sweepId) return;
  state.plotsDirty = false;
  const sweep = await api(`/api/sweeps/${encodeURIComponent(state.sweepId)}`);
  await refreshPlots(sweep);
}, 3000);

$('fm-backbone').addEventListener('change', () => void loadLayers());
$('fm-layer').addEventListener('change', showFeatureMaps);
$('fm-image').addEventListener('change', showFeatureMaps);

$('sweep-select').addEventListener('change', (e) => {
  state.sweepId = e.target.value;
  void openSweep();
});
for (const id of ['sort-by', 'group-by', 'filter-backbone', 'filter-status']) $(id).addEventListener('change', () => void refreshTable());

loadSweeps().catch((err) => {
  $('summary').textContent = `Cannot load sweeps: ${err.message}`;
});
