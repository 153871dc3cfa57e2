/** Images per second of one benchmark figure, or why it could not be measured. */
export type Throughput =
  | {
      imagesPerSec: number;
      /** Median wall time of one timed step: robust to other load on a shared machine. */
      medianMs: number;
      steps: number;
    }
  | { error: string };

/**
 * Runs `step` (one batch of `batch` images) `warmup` times untimed, then
 * `steps` times timed (after `beforeTimed`, if given). A step that throws ends the figure with its message
 * (e.g. wasm running out of its 4 GiB), so the other figures still run.
 */
export async function timeSteps(
  opts: { warmup: number; steps: number; batch: number; beforeTimed?: () => Promise<void> },
  step: () => Promise<void>,
): Promise<Throughput> {
  let warmupError: unknown = null;
  try {
    for (let i = 0; i < opts.warmup; i++) await step();
  } catch (err) {
    warmupError = err;
  }
  // Reached whether or not warm-up failed: processes timed together (host.ts) pass every barrier.
  await opts.beforeTimed?.();
  try {
    if (warmupError) throw warmupError;
    const ms: number[] = [];
    for (let i = 0; i < opts.steps; i++) {
      const t0 = performance.now();
      await step();
      ms.push(performance.now() - t0);
    }
    ms.sort((a, b) => a - b);
    const mid = ms.length >> 1;
    const median = ms.length % 2 ? ms[mid] : (ms[mid - 1] + ms[mid]) / 2;
    return { imagesPerSec: round(opts.batch / (median / 1000), 2), medianMs: round(median, 1), steps: opts.steps };
  } catch (err) {
    return { error: err instanceof Error ? `${err.name}: ${err.message.split('\n')[0]}` : String(err) };
  }
}

export function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** `numerator / denominator` images/s, or null when either figure is missing. */
export function ratio(numerator: Throughput | undefined, denominator: Throughput | undefined): number | null {
  if (!numerator || !denominator || 'error' in numerator || 'error' in denominator) return null;
  return round(numerator.imagesPerSec / denominator.imagesPerSec, 2);
}
