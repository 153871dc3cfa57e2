/**
 * Distinct, non-zero initializer seeds derived from one trial seed, so two
 * builds with the same seed get identical weights and every layer differs.
 * tfjs treats a seed of 0 as "unseeded", hence never 0.
 */
export class SeedSequence {
  private count = 0;
  constructor(private readonly seed: number) {}

  next(): number {
    this.count += 1;
    return this.seed * 1009 + this.count;
  }
}
