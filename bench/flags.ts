/** Command-line flags of the benchmarks that take `--name value`. */

/** `--name N`: a positive integer, `dflt` when absent; anything else stops the bench naming the flag. */
export function positiveIntFlag(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : dflt;
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name}: must be a positive integer; got ${process.argv[i + 1]}`);
  return v;
}

/** `--name value`, `dflt` when absent. */
export function stringFlag(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : dflt;
}
