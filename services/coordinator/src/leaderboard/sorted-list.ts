/**
 * A sorted list of distinct items under a total order, kept as chunks of at
 * most `chunkSize` items (the layout of Python's sortedcontainers): insert and
 * delete cost O(log n + chunkSize) instead of the O(n) of one flat array, and
 * reading rows from a position walks O(n / chunkSize) chunk sizes first.
 * The comparator must be a total order in which no two stored items compare
 * equal (tie-break on a unique key).
 */
export class SortedList<T> {
  private readonly chunks: T[][] = [];
  private count = 0;

  /** @param chunkSize largest chunk before it splits. @default 512 */
  constructor(private readonly cmp: (a: T, b: T) => number, private readonly chunkSize = 512) {}

  get size(): number {
    return this.count;
  }

  /** Builds from items in any order (one sort instead of n inserts). */
  static from<T>(items: T[], cmp: (a: T, b: T) => number, chunkSize = 512): SortedList<T> {
    const list = new SortedList(cmp, chunkSize);
    const sorted = [...items].sort(cmp);
    const half = Math.max(1, chunkSize >> 1);
    for (let i = 0; i < sorted.length; i += half) list.chunks.push(sorted.slice(i, i + half));
    list.count = sorted.length;
    return list;
  }

  insert(item: T): void {
    this.count++;
    if (this.chunks.length === 0) {
      this.chunks.push([item]);
      return;
    }
    const c = this.chunkFor(item);
    const chunk = this.chunks[c];
    chunk.splice(lowerBound(chunk, item, this.cmp), 0, item);
    if (chunk.length > this.chunkSize) this.chunks.splice(c + 1, 0, chunk.splice(chunk.length >> 1));
  }

  /** Removes an item equal (cmp 0) to `item`; false when there is none. */
  delete(item: T): boolean {
    if (this.chunks.length === 0) return false;
    const c = this.chunkFor(item);
    const chunk = this.chunks[c];
    const i = lowerBound(chunk, item, this.cmp);
    if (i >= chunk.length || this.cmp(chunk[i], item) !== 0) return false;
    chunk.splice(i, 1);
    if (chunk.length === 0) this.chunks.splice(c, 1);
    this.count--;
    return true;
  }

  /** Items from position `start` on, in order. */
  *from(start = 0): IterableIterator<T> {
    let c = 0;
    while (c < this.chunks.length && start >= this.chunks[c].length) start -= this.chunks[c++].length;
    for (; c < this.chunks.length; c++, start = 0) {
      const chunk = this.chunks[c];
      for (let i = start; i < chunk.length; i++) yield chunk[i];
    }
  }

  /** Up to `n` items from position `start`. */
  slice(start: number, n: number): T[] {
    const out: T[] = [];
    if (n <= 0) return out;
    for (const x of this.from(start)) {
      out.push(x);
      if (out.length >= n) break;
    }
    return out;
  }

  /** The chunk an item belongs in: the first whose last item is not below it (or the last chunk). */
  private chunkFor(item: T): number {
    let lo = 0;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const chunk = this.chunks[mid];
      if (this.cmp(chunk[chunk.length - 1], item) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** First index whose item is not below `item`. */
function lowerBound<T>(arr: T[], item: T, cmp: (a: T, b: T) => number): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cmp(arr[mid], item) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
