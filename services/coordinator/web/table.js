// A virtualised leaderboard: only the rows in view exist in the DOM, and rows
// are fetched from the server a page at a time, so 100,000 trials scroll
// smoothly and the browser never holds them all.
const PAGE = 200;
const COLUMNS = [
  ['#', (r) => r.rank, 'num'],
  ['status', (r) => r.status, ''],
  ['backbone', (r) => r.backbone, ''],
  ['unfreeze', (r) => String(r.unfreeze), 'num'],
  ['lr', (r) => fmtNum(r.learningRate), 'num'],
  ['dropout', (r) => fmtNum(r.dropout), 'num'],
  ['val acc', (r) => pct(r.valAccuracy), 'num'],
  ['test acc', (r) => pct(r.testAccuracy), 'num'],
  ['epochs', (r) => (r.stoppedAtEpoch ? `stopped@${r.stoppedAtEpoch}` : String(r.epochs)), 'num'],
  ['seconds', (r) => (r.seconds ? r.seconds.toFixed(1) : ''), 'num'],
  ['trial', (r) => r.trialId.slice(-8), ''],
];

export const pct = (v) => (v === null || v === undefined ? '' : (100 * v).toFixed(1) + '%');
export const fmtNum = (v) => (v === null || v === undefined ? '' : Number(v).toPrecision(3).replace(/\.?0+(e|$)/, '$1'));

export class VirtualTable {
  constructor({ viewport, spacer, rows, head, fetchPage, onSelect }) {
    Object.assign(this, { viewport, spacer, rowsEl: rows, fetchPage, onSelect });
    this.rowHeight = 28;
    this.total = 0;
    this.pages = new Map();
    this.selected = new Set();
    this.generation = 0;
    head.innerHTML = COLUMNS.map(([h, , cls]) => `<span class="${cls}">${h}</span>`).join('');
    viewport.addEventListener('scroll', () => this.render());
    rows.addEventListener('click', (ev) => {
      const row = ev.target.closest('.row');
      if (!row) return;
      const id = row.dataset.trialId;
      if (this.selected.has(id)) this.selected.delete(id);
      else this.selected.add(id);
      this.render();
      this.onSelect([...this.selected]);
    });
  }

  /** Drops cached pages (new query or live update) and redraws what is in view. */
  async reset(total) {
    this.generation++;
    this.pages.clear();
    this.total = total;
    this.spacer.style.height = `${total * this.rowHeight}px`;
    await this.render();
  }

  async page(i) {
    let p = this.pages.get(i);
    if (!p) {
      const gen = this.generation;
      p = this.fetchPage(i * PAGE, PAGE).then((res) => {
        if (gen === this.generation && res.total !== this.total) {
          this.total = res.total;
          this.spacer.style.height = `${res.total * this.rowHeight}px`;
        }
        return res.rows;
      });
      this.pages.set(i, p);
      p.catch(() => this.pages.delete(i));
    }
    return p;
  }

  async render() {
    const gen = this.generation;
    const first = Math.max(0, Math.floor(this.viewport.scrollTop / this.rowHeight) - 5);
    const count = Math.ceil(this.viewport.clientHeight / this.rowHeight) + 10;
    const last = Math.min(this.total, first + count);
    const need = [];
    for (let p = Math.floor(first / PAGE); p <= Math.floor(Math.max(first, last - 1) / PAGE); p++) need.push(p);
    const pages = await Promise.all(need.map((p) => this.page(p)));
    if (gen !== this.generation) return;
    const html = [];
    for (let i = first; i < last; i++) {
      const page = pages[Math.floor(i / PAGE) - need[0]];
      const r = page?.[i % PAGE];
      if (!r) continue;
      const row = { ...r, rank: i + 1 };
      const cls = this.selected.has(r.trialId) ? 'row selected' : 'row';
      const cells = COLUMNS.map(([, f, c]) => `<span class="${c} ${c === '' && f === COLUMNS[1][1] ? 'status-' + r.status : ''}">${escapeHtml(f(row))}</span>`);
      html.push(`<div class="${cls}" data-trial-id="${escapeHtml(r.trialId)}" data-testid="row">${cells.join('')}</div>`);
    }
    this.rowsEl.style.top = `${first * this.rowHeight}px`;
    this.rowsEl.innerHTML = html.join('');
  }
}

export function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}
