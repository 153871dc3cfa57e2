/** Pure CLI formatting: tables that fit, colour rules, RFC 4180 CSV, progress bars, error hints. */
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { explainError, SpecError } from '../services/sweeper/src/cli-errors.js';
import { ClientError } from '../services/sweeper/src/client.js';
import { colorWanted } from '../services/sweeper/src/config.js';
import { csvField, toCsv } from '../services/sweeper/src/csv.js';
import { leaderboardCsv, leaderboardTable, LEADERBOARD_CSV_COLUMNS, type LeaderboardRow } from '../services/sweeper/src/format.js';
import { estimateRemainingMs, formatBytes, formatDuration, Progress, progressMode } from '../services/sweeper/src/progress.js';
import { createStyle, stripAnsi } from '../services/sweeper/src/style.js';
import { ellipsize, renderTable } from '../services/sweeper/src/table.js';

const row = (over: Partial<LeaderboardRow> = {}): LeaderboardRow => ({
  rank: 1, trialId: 's-abcdef-0001', sweepId: 's-abcdef', backbone: 'mobilenet_v2', unfreeze: 20, unfreezeLabel: '20', restoredEpochs: [], learningRate: 0.001, dropout: 0.2,
  dataset: 'synthetic', status: 'completed', valAccuracy: 0.875, testAccuracy: 0.85, valLoss: 0.4, epochs: 4, seconds: 12.3,
  backend: 'wasm', pretrained: true, weightsSource: 'nsfwjs', worker: 'w1', error: '', stopReason: '', stoppedAtEpoch: 0, modelRef: '', resumedEpochs: 0, retrainedEpochs: 0, skippedImages: 0, ...over,
});

/** A minimal RFC 4180 parser, to check what the writer produces round-trips. */
function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let field = '';
  let rec: string[] = [];
  let i = 0;
  let quoted = false;
  while (i < text.length) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { field += '"'; i += 2; continue; }
      if (ch === '"') { quoted = false; i++; continue; }
      field += ch; i++; continue;
    }
    if (ch === '"') { quoted = true; i++; continue; }
    if (ch === ',') { rec.push(field); field = ''; i++; continue; }
    if (ch === '\r' && text[i + 1] === '\n') { rec.push(field); records.push(rec); rec = []; field = ''; i += 2; continue; }
    field += ch; i++;
  }
  if (field !== '' || rec.length > 0) { rec.push(field); records.push(rec); }
  return records;
}

describe('tables', () => {
  it('ellipsizes to the width', () => {
    expect(ellipsize('abcdef', 10)).toBe('abcdef');
    expect(ellipsize('abcdef', 4)).toBe('abc…');
    expect(ellipsize('abcdef', 0)).toBe('');
  });

  it('fits the terminal: shrinks text columns, then drops optional ones; numbers stay whole', () => {
    const rows = [row({ trialId: 'a-very-long-trial-identifier-0001', backbone: 'efficientnet_b0_with_a_long_name' }), row({ rank: 2, valAccuracy: 0.5 })];
    const wide = leaderboardTable(rows);
    const natural = Math.max(...wide.split('\n').map((l) => l.length));
    expect(wide).toContain('a-very-long-trial-identifier-0001');
    for (const width of [110, 80, 60]) {
      const t = leaderboardTable(rows, { maxWidth: width });
      const lines = t.split('\n');
      expect(width).toBeLessThan(natural);
      for (const l of lines) expect(l.length).toBeLessThanOrEqual(width);
      expect(t).toContain('…');
      expect(t).toContain('87.5%');
      expect(t).toContain('50.0%');
    }
    // At 60 columns the optional columns (backend, seconds, epochs) had to go.
    expect(leaderboardTable(rows, { maxWidth: 60 })).not.toContain('backend');
    expect(leaderboardTable(rows, { maxWidth: 110 }).split('\n')[0]).toContain('backend');
  });

  it('colours only when the style paints, and colour does not change the layout', () => {
    const plain = leaderboardTable([row(), row({ rank: 2, status: 'failed', valAccuracy: null })]);
    const coloured = leaderboardTable([row(), row({ rank: 2, status: 'failed', valAccuracy: null })], { style: createStyle(true) });
    expect(plain).not.toContain('\x1b[');
    expect(coloured).toContain('\x1b[31mfailed');
    expect(coloured).toContain('\x1b[32m');
    expect(stripAnsi(coloured)).toBe(plain);
  });

  it('right-aligns numbers', () => {
    const t = renderTable([{ header: 'name' }, { header: 'n', align: 'right' }], [['a', '5'], ['b', '123']]);
    expect(t.split('\n')).toEqual(['name    n', '----  ---', 'a       5', 'b     123']);
  });

  it('decides colour from TTY, --no-color, NO_COLOR and TERM=dumb', () => {
    expect(colorWanted({ isTTY: true }, {})).toBe(true);
    expect(colorWanted({ isTTY: false }, {})).toBe(false);
    expect(colorWanted({ isTTY: undefined }, {})).toBe(false);
    expect(colorWanted({ isTTY: true, noColorFlag: true }, {})).toBe(false);
    expect(colorWanted({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(colorWanted({ isTTY: true }, { NO_COLOR: '' })).toBe(true);
    expect(colorWanted({ isTTY: true }, { TERM: 'dumb' })).toBe(false);
  });
});

describe('CSV (RFC 4180)', () => {
  it('quotes commas, quotes and line breaks, doubles quotes, ends records in CRLF', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField(null)).toBe('');
    expect(csvField(0.001)).toBe('0.001');
    expect(toCsv(['a', 'b'], [[1, 'x,y']])).toBe('a,b\r\n1,"x,y"\r\n');
  });

  it('writes the leaderboard so a CSV parser gets every field back', () => {
    const rows = [row({ error: 'OOM: tensor "x", shape [1,2]\nat line 3' }), row({ rank: 2, valAccuracy: null, testAccuracy: null })];
    const parsed = parseCsv(leaderboardCsv(rows));
    expect(parsed[0]).toEqual([...LEADERBOARD_CSV_COLUMNS]);
    expect(parsed).toHaveLength(3);
    const col = (k: string) => LEADERBOARD_CSV_COLUMNS.indexOf(k as keyof LeaderboardRow);
    expect(parsed[1][col('error')]).toBe('OOM: tensor "x", shape [1,2]\nat line 3');
    expect(Number(parsed[1][col('valAccuracy')])).toBe(0.875);
    expect(parsed[2][col('valAccuracy')]).toBe('');
    expect(parsed[1][col('pretrained')]).toBe('true');
  });
});

describe('progress bars', () => {
  const sink = (columns?: number, isTTY = false) => {
    const chunks: string[] = [];
    return { chunks, stream: { write: (s: string) => chunks.push(s), columns, isTTY } };
  };

  it('picks the mode: off with --json, redraw on a TTY, lines otherwise', () => {
    expect(progressMode({ json: true, isTTY: true })).toBe('off');
    expect(progressMode({ isTTY: true })).toBe('tty');
    expect(progressMode({ isTTY: false })).toBe('lines');
  });

  it('formats durations, bytes and the ETA from the rate since the bar started', () => {
    expect(formatDuration(42_000)).toBe('42s');
    expect(formatDuration(185_000)).toBe('3m05s');
    expect(formatDuration(7_620_000)).toBe('2h07m');
    expect(formatDuration(null)).toBe('?');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(23.4 * 1024 * 1024)).toBe('23.4 MiB');
    expect(estimateRemainingMs({ done: 5, total: 10, doneAtStart: 0, elapsedMs: 10_000 })).toBe(10_000);
    // 4 were done before the watch began: only 1 was seen in 10 s.
    expect(estimateRemainingMs({ done: 5, total: 10, doneAtStart: 4, elapsedMs: 10_000 })).toBe(50_000);
    expect(estimateRemainingMs({ done: 4, total: 10, doneAtStart: 4, elapsedMs: 10_000 })).toBeNull();
    expect(estimateRemainingMs({ done: 10, total: 10, doneAtStart: 4, elapsedMs: 10_000 })).toBe(0);
  });

  it('redraws in place on a TTY, fits the width, and prints log lines above the bar', () => {
    let now = 0;
    const { chunks, stream } = sink(90, true);
    const lines: string[] = [];
    const p = new Progress({ label: 'sweep s-1', total: 8, stream, out: (l) => { chunks.push(`<${l}>`); lines.push(l); }, now: () => now, redrawMs: 0 });
    p.update(0, { counts: [{ name: 'running', value: 2 }] });
    now = 10_000;
    p.update(2, { counts: [{ name: 'running', value: 2 }, { name: 'failed', value: 1 }] });
    const bar = p.render();
    expect(bar.length).toBeLessThanOrEqual(89);
    expect(bar).toMatch(/^sweep s-1 \[#+\.+\]  2\/8  25%  running 2, failed 1  10s elapsed, ETA 30s$/);
    p.log('trial 3 done');
    p.finish();
    expect(chunks.every((c) => c.startsWith('\r\x1b[2K') || c.startsWith('<') || c === '\n')).toBe(true);
    // The log line is preceded by an erase and followed by a redraw.
    const at = chunks.indexOf('<trial 3 done>');
    expect(chunks[at - 1]).toBe('\r\x1b[2K');
    expect(chunks[at + 1]).toMatch(/^\r\x1b\[2Ksweep s-1/);
    expect(chunks.at(-1)).toBe('\n');
    expect(lines).toEqual(['trial 3 done']);
  });

  it('prints plain periodic lines for CI logs: on change at most once a second, and always the final state', () => {
    let now = 0;
    const { chunks, stream } = sink(undefined, false);
    const p = new Progress({ label: 'upload weights', total: 4 * 1024 * 1024, unit: 'bytes', stream, now: () => now, mode: 'lines' });
    p.update(0);
    for (let i = 1; i <= 8; i++) {
      now += 250;
      p.increment(512 * 1024);
    }
    p.finish();
    expect(chunks.every((c) => c.endsWith('\n') && !c.includes('\r'))).toBe(true);
    expect(chunks).toHaveLength(4); // t=0, t=1s, t=2s (the last update), and the final line
    expect(chunks.at(-1)).toMatch(/^upload weights \[#{30}\]  4\.00 MiB\/4\.00 MiB  100%  in 2s\n$/);
  });

  it('draws nothing when off', () => {
    const { chunks, stream } = sink(80, true);
    const lines: string[] = [];
    const p = new Progress({ label: 'x', total: 2, stream, mode: 'off', out: (l) => lines.push(l) });
    p.update(1);
    p.log('still printed');
    p.finish();
    expect(chunks).toEqual([]);
    expect(lines).toEqual(['still printed']);
  });
});

describe('errors with the next command', () => {
  it('says to start a cluster when the coordinator is unreachable', () => {
    const m = explainError(new ClientError(grpc.status.UNAVAILABLE, 'cannot reach the coordinator at 127.0.0.1:1 within 5s'), { command: 'status', coordinator: '127.0.0.1:1' });
    expect(m).toContain('127.0.0.1:1');
    expect(m).toContain('`tlsweep up`');
    expect(m).toContain('--coordinator host:port');
  });
  it('points at `tlsweep status` for an unknown sweep and at the leaderboard for an unknown trial', () => {
    expect(explainError(new ClientError(grpc.status.NOT_FOUND, "NOT_FOUND: sweep 'x' not found"), { command: 'watch', sweepId: 'x' })).toMatch(/list sweeps with `tlsweep status`/);
    expect(explainError(new ClientError(grpc.status.NOT_FOUND, "NOT_FOUND: trial 't' not found"), { command: 'trial', trialId: 't' })).toMatch(/tlsweep leaderboard --sweep/);
  });
  it('puts each server-side violation on its own line', () => {
    const m = explainError(new ClientError(grpc.status.INVALID_ARGUMENT, 'INVALID_ARGUMENT: invalid leaderboard query: sort_by: must be one of: a, b; got "x"; limit: must be an integer in 0..1000; got 5000'), { command: 'leaderboard' });
    expect(m.split('\n')).toEqual(['invalid leaderboard query: ', '  - sort_by: must be one of: a, b; got "x"', '  - limit: must be an integer in 0..1000; got 5000', 'see `tlsweep help` for the allowed values']);
  });
  it('lists every spec violation with its field', () => {
    const e = new SpecError('bad.yaml', [{ field: 'backbones[0]', message: 'must be one of: a, b' }, { field: 'dropouts', message: 'required' }]);
    expect(e.message.split('\n').slice(1, 3)).toEqual(['  - backbones[0]: must be one of: a, b', '  - dropouts: required']);
  });
  it('passes other errors through', () => {
    expect(explainError(new Error('boom'), { command: 'x' })).toBe('boom');
  });
});
