import type { Sweep, TrialEvent } from '../../../../proto/generated/tlsweep/v1/tlsweep.js';
import type { TlsweepClient } from '../client.js';
import { progressBar } from '../format.js';

const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : '-');

/** Prints a sweep's live progress until it finishes; returns the final sweep. */
export async function watchSweep(client: TlsweepClient, sweepId: string, out: (line: string) => void = console.log): Promise<Sweep> {
  const started = Date.now();
  const bar = (s: Sweep) => {
    const c = s.counts!;
    const done = c.completed + c.failed + c.stopped + c.cancelled + (c.diverged ?? 0);
    return `${progressBar(done, c.total)} running ${c.running}, failed ${c.failed}, ${((Date.now() - started) / 1000).toFixed(0)}s`;
  };
  for await (const e of client.watch(sweepId, false) as AsyncIterable<TrialEvent>) {
    const t = e.trial;
    const label = t ? `${t.trialId} ${t.backbone} unfreeze=${t.unfreezeLabel || t.unfreeze} lr=${t.learningRate} dropout=${t.dropout}` : '';
    switch (e.type) {
      case 'trial_started':
        out(`▶ ${label} on ${t!.worker} (${t!.backend}), attempt ${t!.attempt}`);
        break;
      case 'epoch':
        out(`  ${t!.trialId} epoch ${e.epoch!.epoch} [${e.epoch!.phase}] loss ${e.epoch!.loss.toFixed(3)} acc ${pct(e.epoch!.accuracy)} val_loss ${e.epoch!.valLoss.toFixed(3)} val_acc ${pct(e.epoch!.valAccuracy)} (${e.epoch!.seconds.toFixed(1)}s)`);
        break;
      case 'trial_finished':
      case 'trial_stopped':
        out(`✔ ${label}: ${t!.status} val ${pct(t!.valAccuracy)} test ${pct(t!.testAccuracy)} in ${t!.seconds.toFixed(1)}s   ${bar(e.sweep!)}`);
        break;
      case 'trial_failed':
        out(`✖ ${label}: ${t!.status === 'queued' ? 'will retry' : t!.status === 'diverged' ? 'diverged' : 'failed'}: ${t!.error}   ${bar(e.sweep!)}`);
        break;
      case 'sweep_cancelled':
        out(`sweep ${sweepId} cancelled: ${e.sweep!.reason}`);
        break;
      case 'sweep_finished':
        out(`sweep ${sweepId} ${e.sweep!.status}${e.sweep!.reason ? ` (${e.sweep!.reason})` : ''}   ${bar(e.sweep!)}`);
        break;
    }
  }
  const final = await client.get(sweepId);
  if (final.finishedAtMs === 0) throw new Error(`the watch of ${sweepId} ended before the sweep did (status ${final.status}); run \`tlsweep watch ${sweepId}\` again`);
  return final;
}
