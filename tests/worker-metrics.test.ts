import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GpuUtilization, parseNvidiaSmi } from '../services/worker/src/metrics/gpu-utilization.js';
import { serveMetrics, WorkerMetrics } from '../services/worker/src/metrics/worker-metrics.js';

const dir = mkdtempSync(join(tmpdir(), 'tlsweep-gpu-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('worker metrics', () => {
  it('parses nvidia-smi CSV and skips malformed lines', () => {
    expect(parseNvidiaSmi('0, NVIDIA H100 80GB HBM3, 87, 40000, 81559\nnot a gpu\n1, NVIDIA H100, [N/A], 1, 2\n')).toEqual([
      { index: 0, name: 'NVIDIA H100 80GB HBM3', utilization: 0.87, memoryUsedBytes: 40000 * 1048576, memoryTotalBytes: 81559 * 1048576 },
    ]);
  });

  it('reports GPU utilisation from an nvidia-smi executable, and nothing where there is none', async () => {
    const fake = join(dir, 'nvidia-smi');
    // A real executable on PATH-like terms: the exporter runs it as it would run NVIDIA's.
    writeFileSync(fake, '#!/bin/sh\necho "0, Test GPU, 42, 1024, 2048"\n');
    chmodSync(fake, 0o755);
    const m = new WorkerMetrics({ workerId: 'w', backend: 'tensorflow', gpu: new GpuUtilization(fake), defaultMetrics: false });
    const text = await m.registry.metrics();
    expect(text).toMatch(/tlsweep_worker_gpu_utilization_ratio\{[^}]*gpu="0"[^}]*\} 0\.42/);
    expect(text).toMatch(/tlsweep_worker_gpu_memory_used_bytes\{[^}]*\} 1073741824/);
    const none = new WorkerMetrics({ workerId: 'w', backend: 'cpu', gpu: new GpuUtilization(join(dir, 'missing')), defaultMetrics: false });
    expect(await none.registry.metrics()).not.toMatch(/tlsweep_worker_gpu_utilization_ratio\{/);
  });

  it('counts outcomes, epoch times and images/s, and serves them over HTTP', async () => {
    const m = new WorkerMetrics({ workerId: 'w9', backend: 'wasm', gpu: new GpuUtilization(join(dir, 'missing')), defaultMetrics: false });
    m.trialStarted();
    m.epoch({ phase: 'head', epoch: 1, loss: 1, accuracy: 0.5, valLoss: 1, valAccuracy: 0.5, seconds: 0.5 }, 200);
    m.trialEnded('completed');
    m.trialEnded('failed');
    const served = await serveMetrics(m.registry, '127.0.0.1:0');
    try {
      const text = await (await fetch(served.url)).text();
      expect(text).toMatch(/tlsweep_worker_images_per_second\{[^}]*phase="head"[^}]*\} 400/);
      expect(text).toMatch(/tlsweep_worker_trials_total\{outcome="failed",worker="w9",backend="wasm"\} 1/);
      expect(text).toMatch(/tlsweep_worker_busy\{[^}]*\} 0/);
      expect((await fetch(served.url.replace('/metrics', '/other'))).status).toBe(404);
    } finally {
      await served.close();
    }
  });
});
