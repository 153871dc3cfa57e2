/**
 * Progress bars for long CLI steps (a sweep, an upload, a cache build).
 *
 * - `tty`: one line redrawn in place (carriage return + erase line), sized to
 *   the terminal; `log()` prints a line above it and redraws the bar under.
 * - `lines`: plain periodic lines for CI logs, where `\r` redraws turn into a
 *   wall of text: one line when the count changes, at most one a second, and
 *   at least one every `lineIntervalMs` while updates arrive.
 * - `off`: nothing (machine-readable output such as `--json`).
 */
import { plainStyle, type Color, type Style } from './style.js';

export type ProgressMode = 'tty' | 'lines' | 'off';

/** The mode for an output stream: no bar with --json, redraw on a TTY, plain lines otherwise. */
export function progressMode(o: { json?: boolean; isTTY?: boolean }): ProgressMode {
  if (o.json) return 'off';
  return o.isTTY ? 'tty' : 'lines';
}

/** Where a bar is drawn: process.stderr by default (stdout stays for results). */
export interface ProgressStream {
  write(s: string): unknown;
  columns?: number;
  isTTY?: boolean;
}

export interface ProgressOptions {
  /** Shown before the bar, e.g. `sweep s-1a2b` or `upload weights`. */
  label: string;
  total: number;
  /** @default 'tty' on a TTY stream, else 'lines' */
  mode?: ProgressMode;
  /** How done/total are printed. @default 'count' */
  unit?: 'count' | 'bytes';
  /** @default process.stderr */
  stream?: ProgressStream;
  /** Lines for `log()`. @default console.log */
  out?: (line: string) => void;
  /** `lines` mode: longest silence while updates arrive. @default 10000 */
  lineIntervalMs?: number;
  /** `tty` mode: redraw period, so the elapsed time and ETA move between updates. @default 1000 */
  redrawMs?: number;
  /** Bar width cap in characters. @default 30 */
  barWidth?: number;
  /** @default plainStyle */
  style?: Style;
  /** Clock, for tests. @default Date.now */
  now?: () => number;
}

/** Named counts shown after the bar, e.g. `{ running: 2, failed: 1 }`, with an optional colour each. */
export type ProgressCounts = Array<{ name: string; value: number; color?: Color }>;

/** `42s`, `3m05s`, `2h07m`; '?' when unknown. */
export function formatDuration(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms) || ms < 0) return '?';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** `512 B`, `1.5 KiB`, `23.4 MiB`, `1.02 GiB`. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/**
 * Remaining time at the rate seen since the bar started. Work done before
 * the bar (a watch attached to a half-done sweep) does not count as speed.
 */
export function estimateRemainingMs(o: { done: number; total: number; doneAtStart: number; elapsedMs: number }): number | null {
  if (o.done >= o.total) return 0;
  const progressed = o.done - o.doneAtStart;
  if (progressed <= 0 || o.elapsedMs <= 0) return null;
  return ((o.total - o.done) * o.elapsedMs) / progressed;
}

export class Progress {
  private readonly o: Required<Omit<ProgressOptions, 'stream' | 'out' | 'style' | 'now' | 'mode'>>;
  private readonly mode: ProgressMode;
  private readonly stream: ProgressStream;
  private readonly out: (line: string) => void;
  private readonly style: Style;
  private readonly now: () => number;
  private readonly startedAt: number;
  private total: number;
  private done = 0;
  private doneAtStart: number | null = null;
  private counts: ProgressCounts = [];
  private note = '';
  private drawn = false;
  private lastLineAt = -Infinity;
  private lastLineDone = -1;
  private timer: NodeJS.Timeout | null = null;
  private finished = false;

  constructor(opts: ProgressOptions) {
    this.stream = opts.stream ?? process.stderr;
    this.mode = opts.mode ?? (this.stream.isTTY ? 'tty' : 'lines');
    this.out = opts.out ?? ((l) => console.log(l));
    this.style = opts.style ?? plainStyle;
    this.now = opts.now ?? Date.now;
    this.o = { label: opts.label, total: opts.total, unit: opts.unit ?? 'count', lineIntervalMs: opts.lineIntervalMs ?? 10_000, redrawMs: opts.redrawMs ?? 1000, barWidth: opts.barWidth ?? 30 };
    this.total = opts.total;
    this.startedAt = this.now();
    if (this.mode === 'tty' && this.o.redrawMs > 0) {
      this.timer = setInterval(() => this.draw(), this.o.redrawMs);
      this.timer.unref();
    }
  }

  /** Sets the amount done (and optionally the total, counts and a short note), then redraws. */
  update(done: number, extra: { total?: number; counts?: ProgressCounts; note?: string } = {}): void {
    if (this.finished) return;
    if (this.doneAtStart === null) this.doneAtStart = done;
    this.done = done;
    if (extra.total !== undefined) this.total = extra.total;
    if (extra.counts) this.counts = extra.counts;
    if (extra.note !== undefined) this.note = extra.note;
    this.emit(false);
  }

  /** Adds `n` to the amount done (bytes sent, images cached). */
  increment(n = 1): void {
    this.update(this.done + n);
  }

  /** Prints a line; on a TTY it goes above the bar, which is redrawn under it. */
  log(line: string): void {
    if (this.mode === 'tty' && this.drawn) this.stream.write('\r\x1b[2K');
    this.out(line);
    if (this.mode === 'tty' && this.drawn && !this.finished) this.draw();
  }

  /** Draws the final state on its own line and stops redrawing. */
  finish(note?: string): void {
    if (this.finished) return;
    if (note !== undefined) this.note = note;
    this.emit(true);
    if (this.mode === 'tty' && this.drawn) this.stream.write('\n');
    this.finished = true;
    if (this.timer) clearInterval(this.timer);
  }

  /** The bar as text, fitted to `width` characters. */
  render(width = this.stream.columns ?? 100): string {
    const amount = this.o.unit === 'bytes' ? `${formatBytes(this.done)}/${formatBytes(this.total)}` : `${this.done}/${this.total}`;
    const pct = this.total > 0 ? `${Math.floor((100 * Math.min(this.done, this.total)) / this.total)}%` : '';
    const counts = this.counts.map((c) => `${c.name} ${c.value}`).join(', ');
    const elapsed = this.now() - this.startedAt;
    const eta = estimateRemainingMs({ done: this.done, total: this.total, doneAtStart: this.doneAtStart ?? this.done, elapsedMs: elapsed });
    const time = this.done >= this.total && this.total > 0 ? `in ${formatDuration(elapsed)}` : `${formatDuration(elapsed)} elapsed, ETA ${formatDuration(eta)}`;
    const tail = [amount, pct, counts, time, this.note].filter(Boolean).join('  ');
    const barRoom = width - 1 - this.o.label.length - tail.length - 5;
    const barWidth = Math.min(this.o.barWidth, barRoom);
    const bar = barWidth >= 8 ? ` ${this.barText(barWidth)}` : '';
    const plain = `${this.o.label}${bar}  ${tail}`;
    return plain.length > width - 1 ? plain.slice(0, Math.max(0, width - 2)) + '…' : plain;
  }

  private barText(width: number): string {
    const filled = this.total > 0 ? Math.round((Math.min(this.done, this.total) / this.total) * width) : 0;
    return `[${this.style.paint('green', '#'.repeat(filled))}${'.'.repeat(width - filled)}]`;
  }

  private emit(final: boolean): void {
    if (this.mode === 'off') return;
    if (this.mode === 'tty') {
      this.draw();
      return;
    }
    const t = this.now();
    const changed = this.done !== this.lastLineDone;
    if (final || (changed && t - this.lastLineAt >= 1000) || t - this.lastLineAt >= this.o.lineIntervalMs) {
      this.stream.write(this.render(Infinity) + '\n');
      this.lastLineAt = t;
      this.lastLineDone = this.done;
    }
  }

  private draw(): void {
    if (this.finished || this.mode !== 'tty') return;
    this.stream.write(`\r\x1b[2K${this.render()}`);
    this.drawn = true;
  }
}
