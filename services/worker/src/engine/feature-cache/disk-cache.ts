import { mkdir, readdir, readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { decodeEntry, encodeEntry, type RawTensor } from './entry-codec.js';
import { FeatureCacheCorruptError } from './errors.js';
import { featureKeyDigest } from './feature-key.js';
import type { FeatureStore } from './feature-store.js';

export interface DiskFeatureStoreOptions {
  /** Directory holding the entries (created on first write). @default ~/.cache/tlsweep/features */
  dir?: string;
  /** Size cap for all entries; least recently used ones are deleted to stay under it. @default 4 GiB */
  maxBytes?: number;
  /** Hears about corrupt entries and I/O failures, which are otherwise only counted. @default ignore */
  onWarning?: (event: string, fields: Record<string, unknown>) => void;
}

export interface DiskFeatureStoreStats {
  hits: number;
  misses: number;
  writes: number;
  /** Entries that failed verification and were deleted. */
  corrupt: number;
  evictions: number;
}

export const DEFAULT_FEATURE_CACHE_DIR = join(homedir(), '.cache', 'tlsweep', 'features');
export const DEFAULT_FEATURE_CACHE_BYTES = 4 * 1024 ** 3;

const SUFFIX = '.tlfc';
// A writer that died between write and rename leaves its temp file; older than this it is garbage.
const STALE_TMP_MS = 10 * 60_000;

/**
 * Feature-cache entries as files named by the key's SHA-256, one per key,
 * bounded by `maxBytes` with LRU eviction (a file's mtime is its last use).
 * Writes go to a temp file renamed into place, so a reader sees a whole
 * entry or none; every read is verified (entry-codec.ts) and a corrupt file
 * is deleted and reported as a miss. Several processes may share the dir.
 */
export class DiskFeatureStore implements FeatureStore {
  readonly name = 'disk';
  readonly dir: string;
  readonly maxBytes: number;
  private readonly warn: NonNullable<DiskFeatureStoreOptions['onWarning']>;
  private readonly counts: DiskFeatureStoreStats = { hits: 0, misses: 0, writes: 0, corrupt: 0, evictions: 0 };
  // Strictly increasing use stamps, so uses within one millisecond still order for LRU.
  private lastStampMs = 0;

  constructor(opts: DiskFeatureStoreOptions = {}) {
    this.dir = opts.dir ?? DEFAULT_FEATURE_CACHE_DIR;
    this.maxBytes = opts.maxBytes ?? DEFAULT_FEATURE_CACHE_BYTES;
    if (!(Number.isFinite(this.maxBytes) && this.maxBytes >= 0)) throw new RangeError(`maxBytes must be a number >= 0; got ${this.maxBytes}`);
    this.warn = opts.onWarning ?? (() => {});
  }

  /** Path of the file that holds `key`. */
  pathOf(key: string): string {
    return join(this.dir, featureKeyDigest(key) + SUFFIX);
  }

  async get(key: string): Promise<RawTensor[] | undefined> {
    const path = this.pathOf(key);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.warn('feature_cache.disk_read_failed', { path, error: (err as Error).message });
      this.counts.misses++;
      return undefined;
    }
    try {
      const entry = decodeEntry(bytes, key);
      this.counts.hits++;
      await this.touch(path);
      return entry;
    } catch (err) {
      if (!(err instanceof FeatureCacheCorruptError)) throw err;
      this.counts.corrupt++;
      this.counts.misses++;
      this.warn('feature_cache.corrupt_entry', { tier: this.name, path, error: err.message });
      await unlink(path).catch(() => {});
      return undefined;
    }
  }

  async put(key: string, entry: readonly RawTensor[]): Promise<void> {
    if (this.maxBytes === 0) return;
    const bytes = encodeEntry(key, entry);
    if (bytes.length > this.maxBytes) {
      this.warn('feature_cache.entry_too_big', { tier: this.name, bytes: bytes.length, maxBytes: this.maxBytes });
      return;
    }
    await mkdir(this.dir, { recursive: true });
    const path = this.pathOf(key);
    await this.evictFor(bytes.length, path);
    const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    try {
      await writeFile(tmp, bytes);
      await rename(tmp, path);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
    await this.touch(path);
    this.counts.writes++;
  }

  stats(): DiskFeatureStoreStats {
    return { ...this.counts };
  }

  /** Bytes of all entries now on disk. */
  async usedBytes(): Promise<number> {
    return (await this.listEntries()).reduce((s, e) => s + e.size, 0);
  }

  /** Deletes least recently used entries until `incoming` more bytes fit under the cap (`replacing` does not count). */
  private async evictFor(incoming: number, replacing: string): Promise<void> {
    const entries = (await this.listEntries()).filter((e) => e.path !== replacing);
    let total = entries.reduce((s, e) => s + e.size, 0);
    entries.sort((a, b) => a.lastUseMs - b.lastUseMs);
    for (const e of entries) {
      if (total + incoming <= this.maxBytes) break;
      try {
        await unlink(e.path);
        this.counts.evictions++;
      } catch (err) {
        // Another process evicted it first: it is gone either way.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      total -= e.size;
    }
  }

  private async listEntries(): Promise<Array<{ path: string; size: number; lastUseMs: number }>> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: Array<{ path: string; size: number; lastUseMs: number }> = [];
    const now = Date.now();
    for (const name of names) {
      const path = join(this.dir, name);
      const st = await stat(path).catch(() => null);
      if (!st?.isFile()) continue;
      if (name.endsWith('.tmp')) {
        if (now - st.mtimeMs > STALE_TMP_MS) await unlink(path).catch(() => {});
        continue;
      }
      if (name.endsWith(SUFFIX)) out.push({ path, size: st.size, lastUseMs: st.mtimeMs });
    }
    return out;
  }

  /** Marks a use: mtime is the LRU clock (atime is unreliable under noatime/relatime mounts). */
  private async touch(path: string): Promise<void> {
    this.lastStampMs = Math.max(Date.now(), this.lastStampMs + 1);
    const t = new Date(this.lastStampMs);
    await utimes(path, t, t).catch(() => {});
  }
}
