import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EpochReport } from '../engine/train-trial.js';
import type { FeatureMemo } from '../engine/feature-memo.js';
import { GpuUtilization } from './gpu-utilization.js';

export type TrialOutcomeLabel = 'completed' | 'stopped' | 'failed' | 'retried' | 'refused' | 'skipped';

/** Prometheus metrics of one worker process. */
export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly trials: Counter<'outcome'>;
  private readonly epochSeconds: Histogram<'phase'>;
  private readonly imagesPerSecond: Gauge<'phase'>;
  private readonly busy: Gauge;

  constructor(opts: { workerId: string; backend: string; featureMemo?: FeatureMemo; gpu?: GpuUtilization; defaultMetrics?: boolean }) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ worker: opts.workerId, backend: opts.backend });
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'tlsweep_worker_' });
    this.trials = new Counter({ name: 'tlsweep_worker_trials_total', help: 'Trials this worker handled, by outcome', labelNames: ['outcome'], registers });
    this.epochSeconds = new Histogram({
      name: 'tlsweep_worker_epoch_duration_seconds', help: 'Wall time of one epoch', labelNames: ['phase'], registers,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900],
    });
    this.imagesPerSecond = new Gauge({ name: 'tlsweep_worker_images_per_second', help: 'Training images per second in the last epoch', labelNames: ['phase'], registers });
    this.busy = new Gauge({ name: 'tlsweep_worker_busy', help: '1 while a trial runs', registers });
    const memo = opts.featureMemo;
    if (memo) {
      // Read from the memo at scrape time: it already counts.
      new Gauge({ name: 'tlsweep_worker_feature_cache_hits', help: 'Frozen-prefix feature lookups served from the cache', registers, collect() { this.set(memo.stats().hits); } });
      new Gauge({ name: 'tlsweep_worker_feature_cache_misses', help: 'Frozen-prefix feature lookups that had to compute', registers, collect() { this.set(memo.stats().misses); } });
      new Gauge({ name: 'tlsweep_worker_feature_cache_bytes', help: 'Bytes of cached frozen-prefix features', registers, collect() { this.set(memo.stats().bytes); } });
    }
    const gpu = opts.gpu ?? new GpuUtilization();
    new Gauge({
      name: 'tlsweep_worker_gpu_utilization_ratio', help: 'GPU utilisation (nvidia-smi), 0..1; absent without NVIDIA GPUs', labelNames: ['gpu', 'name'], registers,
      async collect() {
        for (const s of await gpu.sample()) this.set({ gpu: String(s.index), name: s.name }, s.utilization);
      },
    });
    new Gauge({
      name: 'tlsweep_worker_gpu_memory_used_bytes', help: 'GPU memory in use (nvidia-smi)', labelNames: ['gpu', 'name'], registers,
      async collect() {
        for (const s of await gpu.sample()) this.set({ gpu: String(s.index), name: s.name }, s.memoryUsedBytes);
      },
    });
  }

  trialStarted(): void {
    this.busy.set(1);
  }

  trialEnded(outcome: TrialOutcomeLabel): void {
    this.busy.set(0);
    this.trials.inc({ outcome });
  }

  /** One epoch done; `trainImages` is the size of the split the epoch trained on. */
  epoch(r: EpochReport, trainImages: number): void {
    if (!(r.seconds > 0)) return;
    this.epochSeconds.observe({ phase: r.phase }, r.seconds);
    if (trainImages > 0) this.imagesPerSecond.set({ phase: r.phase }, trainImages / r.seconds);
  }
}

/** Serves `registry` at GET /metrics on `address` (host:port; port 0 = any free port). */
export async function serveMetrics(registry: Registry, address: string): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i);
  const port = Number(address.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`TLSWEEP_METRICS_ADDRESS: must be host:port; got ${JSON.stringify(address)}`);
  const server = createServer((req, res) => {
    if (req.url !== '/metrics' || req.method !== 'GET') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: Error) => res.writeHead(500).end(err.message),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  return { server, url: `http://${host}:${bound}/metrics`, close: () => new Promise<void>((r) => server.close(() => r())) };
}
