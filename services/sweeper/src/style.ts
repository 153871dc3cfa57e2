/**
 * Terminal colours. Plain ANSI SGR codes (no dependency): a Style either
 * paints or returns the text unchanged, so formatting code never branches on
 * whether colour is on.
 */
export type Color = 'red' | 'green' | 'yellow' | 'cyan' | 'magenta' | 'bold' | 'dim';

const SGR: Record<Color, [number, number]> = {
  red: [31, 39],
  green: [32, 39],
  yellow: [33, 39],
  cyan: [36, 39],
  magenta: [35, 39],
  bold: [1, 22],
  dim: [2, 22],
};

export interface Style {
  readonly enabled: boolean;
  paint(color: Color | undefined, text: string): string;
}

export function createStyle(enabled: boolean): Style {
  return {
    enabled,
    paint: (color, text) => (enabled && color && text ? `\x1b[${SGR[color][0]}m${text}\x1b[${SGR[color][1]}m` : text),
  };
}

/** No colour: piped output, tests, `--no-color`, `NO_COLOR`. */
export const plainStyle: Style = createStyle(false);

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

/** The text without colour codes (what a width computation must measure). */
export function stripAnsi(s: string): string {
  return s.replace(ANSI, '');
}

/** The colour of a trial or sweep status: green done, red failed, yellow stopped/cancelled, cyan running. */
export function statusColor(status: string): Color | undefined {
  if (status === 'completed') return 'green';
  if (status === 'failed') return 'red';
  if (status === 'stopped' || status === 'cancelled') return 'yellow';
  if (status === 'running') return 'cyan';
  if (status === 'queued' || status === 'pending') return 'dim';
  return undefined;
}
