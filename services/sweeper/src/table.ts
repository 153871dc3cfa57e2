import { plainStyle, type Color, type Style } from './style.js';

/** One column of a terminal table. */
export interface Column {
  header: string;
  /** @default 'left' */
  align?: 'left' | 'right';
  /**
   * Whether the column may be cut (with an ellipsis) to fit the width.
   * @default true for left-aligned columns, false for right-aligned (numbers are never cut)
   */
  shrink?: boolean;
  /** Narrowest a shrinking column gets. @default 6 */
  minWidth?: number;
  /** Whether the column may be left out when cutting is not enough (dropped from the right). @default false */
  optional?: boolean;
}

/** A cell: its text, optionally with a colour. */
export type Cell = string | { text: string; color?: Color };

export interface TableOptions {
  /** Total width to fit (the terminal's columns); undefined = as wide as the content. @default undefined */
  maxWidth?: number;
  /** @default plainStyle */
  style?: Style;
}

const GAP = 2;

/** Cuts `s` to `width` characters, ending in '…' when it was longer. */
export function ellipsize(s: string, width: number): string {
  if (s.length <= width) return s;
  if (width <= 0) return '';
  return s.slice(0, width - 1) + '…';
}

/**
 * A table with a header and a rule, numbers right-aligned, fitted to
 * `maxWidth`: the widest cuttable columns shrink first, then optional columns
 * drop from the right. Colour is applied after padding, so widths stay right.
 */
export function renderTable(columns: Column[], rows: Cell[][], o: TableOptions = {}): string {
  const style = o.style ?? plainStyle;
  const text = (c: Cell | undefined) => (c === undefined ? '' : typeof c === 'string' ? c : c.text);
  let visible = columns.map((_, i) => i);
  const natural = columns.map((c, i) => Math.max(c.header.length, ...rows.map((r) => text(r[i]).length)));
  const widths = [...natural];
  const total = () => visible.reduce((s, i) => s + widths[i], 0) + GAP * (visible.length - 1);
  const shrinkable = (i: number) => columns[i].shrink ?? columns[i].align !== 'right';
  const shrinkTo = (maxWidth: number, min: (i: number) => number) => {
    while (total() > maxWidth) {
      const candidates = visible.filter((i) => shrinkable(i) && widths[i] > min(i));
      if (candidates.length === 0) return;
      const widest = candidates.reduce((a, b) => (widths[b] > widths[a] ? b : a));
      widths[widest]--;
    }
  };
  if (o.maxWidth !== undefined) {
    for (;;) {
      shrinkTo(o.maxWidth, (i) => columns[i].minWidth ?? 6);
      if (total() <= o.maxWidth) break;
      const drop = [...visible].reverse().find((i) => columns[i].optional);
      if (drop === undefined) {
        // Last resort before overflowing: cut text columns to a stub ('ab…').
        shrinkTo(o.maxWidth, () => 3);
        break;
      }
      visible = visible.filter((i) => i !== drop);
      // A dropped column frees room: let the others grow back before shrinking again.
      for (const i of visible) widths[i] = natural[i];
    }
  }
  const pad = (s: string, i: number) => {
    const cut = ellipsize(s, widths[i]);
    return columns[i].align === 'right' ? cut.padStart(widths[i]) : cut.padEnd(widths[i]);
  };
  const line = (cells: Array<{ s: string; color?: Color }>, idx: number[]) => {
    const parts = idx.map((i, k) => {
      const padded = pad(cells[k].s, i);
      // Trailing spaces of the last column are not printed (no coloured padding either).
      const body = k === idx.length - 1 ? padded.trimEnd() : padded;
      return style.paint(cells[k].color, body);
    });
    return parts.join(' '.repeat(GAP)).trimEnd();
  };
  const head = line(visible.map((i) => ({ s: columns[i].header, color: 'bold' as Color })), visible);
  const rule = style.paint('dim', visible.map((i) => '-'.repeat(widths[i])).join(' '.repeat(GAP)));
  const body = rows.map((r) =>
    line(visible.map((i) => {
      const c = r[i];
      return typeof c === 'object' && c !== null ? { s: c.text, color: c.color } : { s: text(c) };
    }), visible),
  );
  return [head, rule, ...body].join('\n');
}
