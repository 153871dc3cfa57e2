import type { TrialRecord } from './records.js';

/**
 * A sweep's pending trials, lowest index first (a binary min-heap), so
 * dispatch takes the next trial in O(log n) instead of sorting the sweep.
 * Entries that stopped being pending (cancelled meanwhile) are dropped when
 * they reach the top.
 */
export class PendingQueue {
  private readonly heap: TrialRecord[] = [];
  private readonly ids = new Set<string>();

  get size(): number {
    return this.heap.length;
  }

  /** Adds a pending trial; a trial already in the queue is not added twice. */
  push(t: TrialRecord): void {
    if (this.ids.has(t.config.trialId)) return;
    this.ids.add(t.config.trialId);
    const h = this.heap;
    h.push(t);
    for (let i = h.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (h[p].config.index <= h[i].config.index) break;
      [h[p], h[i]] = [h[i], h[p]];
      i = p;
    }
  }

  /** Removes and returns the pending trial with the lowest index, or undefined. */
  pop(): TrialRecord | undefined {
    for (;;) {
      const top = this.take();
      if (!top || top.status === 'pending') return top;
    }
  }

  private take(): TrialRecord | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l].config.index < h[m].config.index) m = l;
        if (r < h.length && h[r].config.index < h[m].config.index) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    this.ids.delete(top.config.trialId);
    return top;
  }
}
