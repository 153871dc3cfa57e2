import type { Sweep, Trial, TrialEvent } from '../../../../proto/generated/tlsweep/v1/tlsweep.js';
import type { TlsweepClient } from '../client.js';
import { toRow, type LeaderboardRow } from '../format.js';
import { Progress, type ProgressCounts, type ProgressMode, type ProgressStream } from '../progress.js';
import { plainStyle, type Style } from '../style.js';

const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : '-');
const nn = (x: number) => (Number.isFinite(x) ? x : null);

export interface WatchOptions {
  /** One JSON object per event on `out` (JSON lines), no bar. @default false */
  json?: boolean;
  /** How the progress bar is drawn. @default 'lines' ('off' with json) */
  progress?: ProgressMode;
  /** Where the bar goes. @default process.stderr */
  stream?: ProgressStream;
  /** @default plainStyle */
  style?: Style;
  /** Event lines. @default console.log */
  out?: (line: string) => void;
}

/** The sweep part of a `watch --json` line. */
export interface SweepProgressJson {
  sweepId: string;
  name: string;
  status: string;
  reason: string;
  total: number;
  completed: number;
  running: number;
  queued: number;
  failed: number;
  stopped: number;
  cancelled: number;
  bestValAccuracy: number | null;
  bestTrialId: string;
}

/** One line of `tlsweep watch --json` (stable; scripts depend on it). */
export interface WatchEventJson {
  type: string;
  sweepId: string;
  /** The trial the event is about (the leaderboard row shape, rank 0). */
  trial: LeaderboardRow | null;
  epoch: { phase: string; epoch: number; loss: number | null; accuracy: number | null; valLoss: number | null; valAccuracy: number | null; seconds: number } | null;
  sweep: SweepProgressJson | null;
}

export function sweepProgressJson(s: Sweep): SweepProgressJson {
  const c = s.counts!;
  return {
    sweepId: s.sweepId, name: s.name, status: s.status, reason: s.reason, total: c.total, completed: c.completed, running: c.running,
    queued: c.queued, failed: c.failed, stopped: c.stopped, cancelled: c.cancelled, bestValAccuracy: nn(s.bestValAccuracy), bestTrialId: s.bestTrialId,
  };
}

export function watchEventJson(e: TrialEvent): WatchEventJson {
  const m = e.epoch;
  return {
    type: e.type,
    sweepId: e.sweepId,
    trial: e.trial ? toRow(e.trial, 0) : null,
    epoch: m ? { phase: m.phase, epoch: m.epoch, loss: nn(m.loss), accuracy: nn(m.accuracy), valLoss: nn(m.valLoss), valAccuracy: nn(m.valAccuracy), seconds: m.seconds } : null,
    sweep: e.sweep ? sweepProgressJson(e.sweep) : null,
  };
}

/** Trials that no longer run: what the bar counts as done. */
export const finishedCount = (s: Sweep) => s.counts!.completed + s.counts!.failed + s.counts!.stopped + s.counts!.cancelled + (s.counts!.diverged ?? 0);

function barCounts(s: Sweep): ProgressCounts {
  const c = s.counts!;
  const counts: ProgressCounts = [
    { name: 'completed', value: c.completed, color: 'green' },
    { name: 'running', value: c.running, color: 'cyan' },
    { name: 'failed', value: c.failed, color: c.failed > 0 ? 'red' : undefined },
  ];
  if (c.stopped > 0) counts.push({ name: 'stopped early', value: c.stopped, color: 'yellow' });
  return counts;
}

/**
 * Follows a sweep until it finishes: a line per trial event above a live
 * progress bar (completed/running/failed, ETA), or JSON lines with `json`.
 * Returns the final sweep.
 */
export async function watchSweep(client: TlsweepClient, sweepId: string, opts: WatchOptions | ((line: string) => void) = {}): Promise<Sweep> {
  const o: WatchOptions = typeof opts === 'function' ? { out: opts } : opts;
  const out = o.out ?? ((l: string) => console.log(l));
  const style = o.style ?? plainStyle;
  const initial = await client.get(sweepId);
  const bar = new Progress({
    label: `sweep ${sweepId}`, total: initial.counts!.total, mode: o.json ? 'off' : o.progress ?? 'lines', stream: o.stream, out, style,
  });
  bar.update(finishedCount(initial), { counts: barCounts(initial) });
  const label = (t: Trial) => `${t.trialId} ${t.backbone} unfreeze=${t.unfreezeLabel || t.unfreeze} lr=${t.learningRate} dropout=${t.dropout}`;
  try {
    for await (const e of client.watch(sweepId, false) as AsyncIterable<TrialEvent>) {
      if (o.json) {
        out(JSON.stringify(watchEventJson(e)));
        continue;
      }
      const t = e.trial;
      switch (e.type) {
        case 'trial_started':
          bar.log(`${style.paint('cyan', '▶')} ${label(t!)} on ${t!.worker} (${t!.backend}), attempt ${t!.attempt}`);
          break;
        case 'epoch':
          bar.log(`  ${t!.trialId} epoch ${e.epoch!.epoch} [${e.epoch!.phase}] loss ${e.epoch!.loss.toFixed(3)} acc ${pct(e.epoch!.accuracy)} val_loss ${e.epoch!.valLoss.toFixed(3)} val_acc ${pct(e.epoch!.valAccuracy)} (${e.epoch!.seconds.toFixed(1)}s)`);
          break;
        case 'trial_finished':
        case 'trial_stopped':
          bar.log(`${style.paint(e.type === 'trial_stopped' ? 'yellow' : 'green', '✔')} ${label(t!)}: ${t!.status}${t!.stopReason ? ` (${t!.stopReason})` : ''} val ${pct(t!.valAccuracy)} test ${pct(t!.testAccuracy)} in ${t!.seconds.toFixed(1)}s`);
          break;
        case 'trial_failed':
          bar.log(`${style.paint('red', '✖')} ${label(t!)}: ${t!.status === 'queued' ? 'will retry' : t!.status === 'diverged' ? 'diverged' : 'failed'}: ${t!.error}`);
          break;
        case 'sweep_cancelled':
          bar.log(`sweep ${sweepId} cancelled: ${e.sweep!.reason}`);
          break;
        case 'sweep_finished':
          bar.log(`sweep ${sweepId} ${style.paint(e.sweep!.status === 'failed' ? 'red' : 'green', e.sweep!.status)}${e.sweep!.reason ? ` (${e.sweep!.reason})` : ''}`);
          break;
      }
      if (e.sweep) bar.update(finishedCount(e.sweep), { total: e.sweep.counts!.total, counts: barCounts(e.sweep) });
    }
  } finally {
    bar.finish();
  }
  const final = await client.get(sweepId);
  if (final.finishedAtMs === 0) throw new Error(`the watch of ${sweepId} ended before the sweep did (status ${final.status}); run \`tlsweep watch ${sweepId}\` again`);
  return final;
}
