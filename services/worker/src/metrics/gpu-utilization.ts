import { execFile } from 'node:child_process';

export interface GpuSample {
  index: number;
  name: string;
  /** 0..1 */
  utilization: number;
  memoryUsedBytes: number;
  memoryTotalBytes: number;
}

/**
 * Reads GPU utilisation from `nvidia-smi` where it exists. Resolves [] when
 * it does not (CPU machines) and remembers that, so a scrape never waits on it.
 */
export class GpuUtilization {
  private missing = false;
  private last: { at: number; samples: GpuSample[] } | null = null;

  constructor(private readonly command = 'nvidia-smi', private readonly maxAgeMs = 5000) {}

  async sample(): Promise<GpuSample[]> {
    if (this.missing) return [];
    if (this.last && Date.now() - this.last.at < this.maxAgeMs) return this.last.samples;
    const text = await new Promise<string | null>((resolve) => {
      execFile(this.command, ['--query-gpu=index,name,utilization.gpu,memory.used,memory.total', '--format=csv,noheader,nounits'], { timeout: 3000 }, (err, stdout) => {
        if (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') this.missing = true;
          resolve(null);
        } else resolve(stdout);
      });
    });
    const samples = text === null ? [] : parseNvidiaSmi(text);
    this.last = { at: Date.now(), samples };
    return samples;
  }
}

/** Parses `nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits`. */
export function parseNvidiaSmi(text: string): GpuSample[] {
  const out: GpuSample[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(',').map((s) => s.trim());
    if (f.length < 5) continue;
    const [index, util, used, total] = [Number(f[0]), Number(f[2]), Number(f[3]), Number(f[4])];
    if (![index, util, used, total].every(Number.isFinite)) continue;
    out.push({ index, name: f[1], utilization: util / 100, memoryUsedBytes: used * 1024 * 1024, memoryTotalBytes: total * 1024 * 1024 });
  }
  return out;
}
