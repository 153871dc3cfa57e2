/** Worker process entry point: `tsx services/worker/src/main.ts`. */
import { connect } from '@nats-io/transport-node';
import { createLogger, natsAuthOptions } from '../../coordinator/src/index.js';
import { loadConfig } from './config.js';
import { selectBackend } from './engine/backend.js';
import { FeatureMemo } from './engine/feature-memo.js';
import { DiskFeatureStore } from './engine/feature-cache/disk-cache.js';
import type { FeatureStore } from './engine/feature-cache/feature-store.js';
import { ObjectFeatureStore } from './runner/object-feature-store.js';
import { ObjectCheckpointStore } from './runner/object-checkpoint-store.js';
import { serveMetrics, WorkerMetrics } from './metrics/worker-metrics.js';
import { Reporter } from './runner/reporter.js';
import { TrialConsumer } from './runner/trial-consumer.js';

const boot = createLogger('worker');
try {
  const cfg = loadConfig();
  const log = createLogger('worker', { worker: cfg.workerId }, undefined, cfg.logLevel);
  const backend = await selectBackend(cfg.backend || undefined);
  log.info('worker.backend', { backend: backend.name, tried: backend.tried });
  const nc = await connect({ servers: cfg.natsUrl, maxReconnectAttempts: -1, reconnectTimeWait: 500, name: `tlsweep-worker-${cfg.workerId}`, ...natsAuthOptions(cfg.natsAuth) });
  const featureMemo = new FeatureMemo(cfg.featureMemoMb * 1024 * 1024);
  const featureStores: FeatureStore[] = [];
  const onWarning = (event: string, fields: Record<string, unknown>) => log.warn(event, fields);
  if (cfg.featureCacheMb > 0) featureStores.push(new DiskFeatureStore({ dir: cfg.featureCacheDir, maxBytes: cfg.featureCacheMb * 1024 * 1024, onWarning }));
  if (cfg.featureStoreMb > 0) {
    // Without the shared tier the worker still runs (memory and disk); it only loses cross-worker reuse.
    try {
      featureStores.push(await ObjectFeatureStore.open(nc, { maxBytes: cfg.featureStoreMb * 1024 * 1024, onWarning }));
    } catch (err) {
      log.warn('worker.feature_store_unavailable', { error: (err as Error).message });
    }
  }
  let checkpoints: ObjectCheckpointStore | undefined;
  if (cfg.checkpoints) {
    // Without it a redelivered trial starts over: worse, not wrong.
    try {
      checkpoints = await ObjectCheckpointStore.open(nc, { onWarning });
    } catch (err) {
      log.warn('worker.checkpoints_unavailable', { error: (err as Error).message });
    }
  }
  const metrics = new WorkerMetrics({ workerId: cfg.workerId, backend: backend.name, featureMemo });
  const metricsServer = cfg.metricsAddress ? await serveMetrics(metrics.registry, cfg.metricsAddress) : null;
  const reporter = new Reporter({ address: cfg.coordinator, retryMs: cfg.reportRetryMs, token: cfg.token, tls: cfg.tls });
  const consumer = new TrialConsumer({
    nc, reporter, workerId: cfg.workerId, backend: backend.name, log,
    heartbeatMs: cfg.heartbeatMs, nakDelayMs: cfg.nakDelayMs, maxTrials: cfg.maxTrials,
    featureMemo, featureStores, metrics, checkpoints, frozenPrefix: cfg.frozenPrefix,
    affinity: cfg.affinity ? { holdersTtlMs: cfg.cacheHoldersTtlMs, minBuildMs: cfg.affinityMinBuildMs } : null,
  });
  log.info('worker.ready', { nats: cfg.natsUrl, coordinator: cfg.coordinator, metrics: metricsServer?.url ?? null, featureStores: featureStores.map((s) => s.name) });
  let draining = false;
  const shutdown = (signal: string) => {
    if (draining) return;
    draining = true;
    log.info('worker.draining', { signal, graceMs: cfg.drainGraceMs });
    void consumer.drain();
    setTimeout(() => {
      void consumer.abandon(`drain grace period (${cfg.drainGraceMs} ms) over`).finally(async () => {
        await consumer.stopAdvertising();
        log.info('worker.exit', { reason: 'drain grace period over' });
        await nc.flush().catch(() => {});
        process.exit(0);
      });
    }, cfg.drainGraceMs).unref();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  await consumer.run();
  reporter.close();
  await metricsServer?.close();
  await nc.drain().catch(() => nc.close());
  log.info('worker.exit', {});
  process.exit(0);
} catch (err) {
  boot.error('worker.failed', { error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
}
