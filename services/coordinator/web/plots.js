// Plots drawn with plain SVG and canvas: no charting library to ship or audit.
const NS = 'http://www.w3.org/2000/svg';
const PALETTE = ['#2f6fde', '#e4572e', '#17a398', '#f3a712', '#8e44ad', '#29335c', '#c0392b', '#669bbc', '#6a994e', '#bc4749'];

function el(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function clear(svg) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
}

function empty(svg, msg) {
  clear(svg);
  svg.appendChild(el('text', { x: 280, y: 140, 'text-anchor': 'middle', fill: '#888' }, msg));
}

/** Blue (low) → green → yellow (high), for metric colouring. */
export function ramp(t) {
  const x = Math.max(0, Math.min(1, t));
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const f = x * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(f));
  const u = f - i;
  const c = stops[i].map((a, k) => Math.round(a + (stops[i + 1][k] - a) * u));
  return `rgb(${c.join(',')})`;
}

function extent(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) if (v !== null && Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (lo === Infinity) return [0, 1];
  if (lo === hi) return [lo - 0.5, hi + 0.5];
  return [lo, hi];
}

/** extent() widened by 6% each side, so marks at the extremes stay inside the axes. */
function padded(values) {
  const [lo, hi] = extent(values);
  const m = (hi - lo) * 0.06;
  return [lo - m, hi + m];
}

/**
 * Learning curves of the selected trials: loss (left) and accuracy (right),
 * validation solid and training dashed; a dotted line marks where fine-tuning began.
 */
export function drawCurves(canvas, trials, legendEl) {
  const ctx = canvas.getContext('2d');
  const W = canvas.width;
  const H = canvas.height;
  ctx.clearRect(0, 0, W, H);
  ctx.font = '11px system-ui, sans-serif';
  if (!trials.length || !trials.some((t) => t.history.length)) {
    ctx.fillStyle = '#888';
    ctx.fillText('no epochs reported yet', W / 2 - 60, H / 2);
    legendEl.textContent = '';
    return;
  }
  const panels = [
    { title: 'loss', keys: ['valLoss', 'loss'], x0: 40, x1: W / 2 - 10 },
    { title: 'accuracy', keys: ['valAccuracy', 'accuracy'], x0: W / 2 + 30, x1: W - 10 },
  ];
  const maxEpoch = Math.max(1, ...trials.map((t) => t.history.length));
  for (const p of panels) {
    const vals = trials.flatMap((t) => t.history.flatMap((e) => p.keys.map((k) => e[k])));
    const [lo, hi] = extent(vals);
    const y = (v) => H - 25 - ((v - lo) / (hi - lo)) * (H - 45);
    const x = (e) => p.x0 + ((e - 1) / Math.max(1, maxEpoch - 1)) * (p.x1 - p.x0);
    ctx.strokeStyle = '#ccc';
    ctx.setLineDash([]);
    ctx.strokeRect(p.x0, 20, p.x1 - p.x0, H - 45);
    ctx.fillStyle = '#333';
    ctx.fillText(p.title, p.x0, 14);
    ctx.textAlign = 'right';
    ctx.fillText(hi.toPrecision(3), p.x0 - 3, 26);
    ctx.fillText(lo.toPrecision(3), p.x0 - 3, H - 25);
    ctx.textAlign = 'left';
    ctx.fillText('epoch', (p.x0 + p.x1) / 2 - 15, H - 8);
    trials.forEach((t, i) => {
      const colour = PALETTE[i % PALETTE.length];
      const ft = t.history.findIndex((e) => e.phase === 'finetune');
      if (ft > 0) {
        ctx.strokeStyle = colour;
        ctx.setLineDash([2, 3]);
        ctx.beginPath();
        ctx.moveTo(x(ft + 0.5), 20);
        ctx.lineTo(x(ft + 0.5), H - 25);
        ctx.stroke();
      }
      p.keys.forEach((k, j) => {
        ctx.strokeStyle = colour;
        ctx.setLineDash(j === 0 ? [] : [5, 4]);
        ctx.beginPath();
        let started = false;
        t.history.forEach((e, n) => {
          const v = e[k];
          if (v === null || !Number.isFinite(v)) return;
          if (!started) ctx.moveTo(x(n + 1), y(v));
          else ctx.lineTo(x(n + 1), y(v));
          started = true;
        });
        ctx.stroke();
      });
    });
  }
  ctx.setLineDash([]);
  legendEl.innerHTML = trials
    .map((t, i) => `<span style="color:${PALETTE[i % PALETTE.length]}">■</span> ${t.trialId.slice(-8)}`)
    .join(' ') + ' — solid: validation, dashed: training, dotted: fine-tune starts';
}

/** One polyline per trial across backbone, unfreeze, learning rate (log), dropout and the metric. */
export function drawParallel(svg, pts) {
  clear(svg);
  const n = pts.trialId.length;
  if (!n) return empty(svg, 'no finished trials yet');
  const axes = [
    { name: 'backbone', values: pts.backbone, cat: true },
    { name: 'unfreeze', values: pts.unfreeze, cat: true },
    { name: 'learning rate', values: pts.learningRate.map((v) => Math.log10(v)), fmt: (v) => `1e${v.toFixed(1)}` },
    { name: 'dropout', values: pts.dropout },
    { name: pts.metric, values: pts.value },
  ];
  const left = 50;
  const right = 510;
  const top = 25;
  const bottom = 250;
  const ax = axes.map((a, i) => {
    const x = left + (i * (right - left)) / (axes.length - 1);
    if (a.cat) {
      const cats = [...new Set(a.values)].sort();
      const pos = (v) => (cats.length === 1 ? (top + bottom) / 2 : top + (cats.indexOf(v) * (bottom - top)) / (cats.length - 1));
      return { ...a, x, pos, ticks: cats.map((c) => [c, pos(c)]) };
    }
    const [lo, hi] = extent(a.values);
    const pos = (v) => bottom - ((v - lo) / (hi - lo)) * (bottom - top);
    const fmt = a.fmt ?? ((v) => Number(v).toPrecision(3));
    return { ...a, x, pos, ticks: [[fmt(hi), top], [fmt(lo), bottom]] };
  });
  const [mlo, mhi] = extent(pts.value);
  const g = el('g', { 'stroke-opacity': n > 2000 ? 0.15 : 0.6, fill: 'none' });
  for (let i = 0; i < n; i++) {
    const v = pts.value[i];
    const d = ax.map((a, k) => `${k ? 'L' : 'M'}${a.x.toFixed(1)},${a.pos(a.values[i]).toFixed(1)}`).join('');
    g.appendChild(el('path', { d, stroke: ramp((v - mlo) / (mhi - mlo)) }));
  }
  svg.appendChild(g);
  for (const a of ax) {
    svg.appendChild(el('line', { x1: a.x, x2: a.x, y1: top, y2: bottom, stroke: '#444' }));
    svg.appendChild(el('text', { x: a.x, y: 14, 'text-anchor': 'middle' }, a.name));
    for (const [label, y] of a.ticks) svg.appendChild(el('text', { x: a.x + 4, y: y + 4 }, String(label).slice(0, 14)));
  }
  if (pts.sampled) svg.appendChild(el('text', { x: 555, y: 275, 'text-anchor': 'end', fill: '#888' }, `${n} of ${pts.total} trials shown`));
}

/** Bars of each backbone's best metric value (from the leaderboard's group-by backbone). */
export function drawPerBackbone(svg, groups) {
  clear(svg);
  const rows = groups.filter((g) => g.best !== null);
  if (!rows.length) return empty(svg, 'no finished trials yet');
  const barH = Math.min(36, 230 / rows.length);
  const max = Math.max(...rows.map((g) => g.best), 1e-9);
  rows.forEach((g, i) => {
    const y = 20 + i * (barH + 6);
    const w = (g.best / max) * 300;
    svg.appendChild(el('text', { x: 130, y: y + barH / 2 + 4, 'text-anchor': 'end' }, g.key));
    svg.appendChild(el('rect', { x: 140, y, width: Math.max(1, w), height: barH, fill: PALETTE[i % PALETTE.length], 'data-testid': 'bar' }));
    svg.appendChild(el('text', { x: 146 + w, y: y + barH / 2 + 4 }, `${(100 * g.best).toFixed(1)}% (n=${g.count})`));
  });
}

/** Scatter of validation accuracy against training seconds, Pareto-front trials joined and ringed. */
export function drawPareto(svg, pts, onPick) {
  clear(svg);
  const idx = pts.trialId.map((_, i) => i).filter((i) => pts.valAccuracy[i] !== null && pts.seconds[i] > 0);
  if (!idx.length) return empty(svg, 'no finished trials yet');
  const [xlo, xhi] = padded(idx.map((i) => pts.seconds[i]));
  const [ylo, yhi] = padded(idx.map((i) => pts.valAccuracy[i]));
  const x = (v) => 50 + ((v - xlo) / (xhi - xlo)) * 480;
  const y = (v) => 250 - ((v - ylo) / (yhi - ylo)) * 220;
  svg.appendChild(el('line', { x1: 50, x2: 530, y1: 250, y2: 250, stroke: '#444' }));
  svg.appendChild(el('line', { x1: 50, x2: 50, y1: 30, y2: 250, stroke: '#444' }));
  svg.appendChild(el('text', { x: 290, y: 275, 'text-anchor': 'middle' }, 'training seconds'));
  svg.appendChild(el('text', { x: 52, y: 24 }, `val accuracy ${(100 * Math.max(0, ylo)).toFixed(1)}–${(100 * Math.min(1, yhi)).toFixed(1)}%, seconds ${Math.max(0, xlo).toFixed(1)}–${xhi.toFixed(1)}`));
  const backbones = [...new Set(pts.backbone)].sort();
  for (const i of idx) {
    const c = el('circle', { cx: x(pts.seconds[i]), cy: y(pts.valAccuracy[i]), r: 3.5, fill: PALETTE[backbones.indexOf(pts.backbone[i]) % PALETTE.length], 'fill-opacity': 0.7 });
    c.appendChild(el('title', {}, `${pts.trialId[i]} ${pts.backbone[i]} ${(100 * pts.valAccuracy[i]).toFixed(1)}% in ${pts.seconds[i].toFixed(1)} s`));
    c.addEventListener('click', () => onPick?.(pts.trialId[i]));
    svg.appendChild(c);
  }
  const pos = new Map(pts.trialId.map((id, i) => [id, i]));
  const front = pts.paretoTrialIds.map((id) => pos.get(id)).filter((i) => i !== undefined);
  if (front.length) {
    const d = front.map((i, k) => `${k ? 'L' : 'M'}${x(pts.seconds[i]).toFixed(1)},${y(pts.valAccuracy[i]).toFixed(1)}`).join('');
    svg.appendChild(el('path', { d, fill: 'none', stroke: '#e4572e', 'stroke-width': 1.5, 'data-testid': 'pareto-front' }));
  }
  backbones.forEach((b, k) => svg.appendChild(el('text', { x: 530, y: 40 + 14 * k, 'text-anchor': 'end', fill: PALETTE[k % PALETTE.length] }, b)));
}

/** The confusion matrix, rows = true class, columns = predicted; cell shade = row-normalised count. */
export function drawConfusion(svg, matrix, classNames) {
  clear(svg);
  if (!matrix || !matrix.length) return empty(svg, 'the best trial stored no confusion matrix');
  const k = matrix.length;
  const size = Math.min(220 / k, 40);
  const x0 = 160;
  const y0 = 30;
  svg.appendChild(el('text', { x: x0 + (k * size) / 2, y: 14, 'text-anchor': 'middle' }, 'predicted'));
  matrix.forEach((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    svg.appendChild(el('text', { x: x0 - 6, y: y0 + i * size + size / 2 + 4, 'text-anchor': 'end' }, (classNames?.[i] ?? String(i)).slice(0, 20)));
    row.forEach((v, j) => {
      svg.appendChild(el('rect', { x: x0 + j * size, y: y0 + i * size, width: size - 1, height: size - 1, fill: ramp(v / total), 'data-testid': 'cm-cell' }));
      if (size >= 18) svg.appendChild(el('text', { x: x0 + j * size + size / 2, y: y0 + i * size + size / 2 + 4, 'text-anchor': 'middle', fill: v / total > 0.6 ? '#000' : '#fff' }, String(v)));
    });
  });
}
