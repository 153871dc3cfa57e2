import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { CoordinatorConfig } from './config.js';
import { Coordinator } from './coordinator.js';
import { startGrpcServer, type RunningGrpcServer } from './grpc/server.js';
import { startDashboardServer, type RunningDashboard } from './http/dashboard-server.js';
import { createCoordinatorMetrics } from './metrics/coordinator-metrics.js';
import { silentLogger, type Logger } from './log.js';
import { natsAuthOptions } from './nats-auth.js';
import { ObjectCheckpointStore } from '../../worker/src/runner/object-checkpoint-store.js';
import { ensureFeatureBucket } from './store/feature-bucket.js';

export interface RunningCoordinator {
  coordinator: Coordinator;
  grpc: RunningGrpcServer;
  nc: NatsConnection;
  /** gRPC port actually bound. */
  port: number;
  /** The dashboard (and /metrics); null when TLSWEEP_HTTP_ADDRESS is `off`. */
  dashboard: RunningDashboard | null;
  /** Graceful stop: gRPC first (ends watches, lets calls finish), then NATS. */
  stop(): Promise<void>;
}

/** Connects to NATS, rebuilds state from JetStream, serves gRPC. */
export async function startCoordinator(cfg: CoordinatorConfig, log: Logger = silentLogger): Promise<RunningCoordinator> {
  // Reconnect forever: a restarted nats-server must not take the coordinator down.
  const nc = await connect({ servers: cfg.natsUrl, maxReconnectAttempts: -1, reconnectTimeWait: 500, name: 'tlsweep-coordinator', ...natsAuthOptions(cfg.natsAuth),
    // A stack trace captured for every request (each KV write is one) costs more than it tells: errors still name the subject.
    noAsyncTraces: true });
  // The coordinator deletes a trial's epoch checkpoint once the trial is terminal (workers write them).
  const checkpoints = await ObjectCheckpointStore.open(nc, { replicas: cfg.replicas }).catch((err: Error) => {
    log.warn('coordinator.checkpoints_unavailable', { error: err.message });
    return undefined;
  });
  let coordinator: Coordinator;
  let grpc: RunningGrpcServer;
  try {
    coordinator = await Coordinator.start({
      nc, log, replicas: cfg.replicas, queue: { ackWaitMs: cfg.ackWaitMs, maxDeliver: cfg.maxDeliver, replicas: cfg.replicas },
      leaseSecret: cfg.leaseSecret, maxRunningSweeps: cfg.maxRunningSweeps, maxTrialsPerSweep: cfg.maxTrialsPerSweep, allowNoopBackbone: cfg.allowNoopBackbone, checkpoints,
      affinity: cfg.affinity === false ? null : { waitMs: cfg.affinityWaitMs, holdersTtlMs: cfg.cacheHoldersTtlMs },
    });
  } catch (err) {
    await nc.close();
    throw err;
  }
  if (cfg.featureStoreMb) {
    // Without the bucket workers still train (memory and disk tiers); they only lose cross-worker reuse.
    await ensureFeatureBucket(nc, { maxBytes: cfg.featureStoreMb * 1024 * 1024, replicas: cfg.replicas }).then(
      () => log.info('coordinator.feature_bucket', { maxMb: cfg.featureStoreMb }),
      (err: Error) => log.warn('coordinator.feature_bucket_unavailable', { error: err.message }),
    );
  }
  try {
    grpc = await startGrpcServer(coordinator, {
      address: cfg.grpcAddress, log, tls: cfg.tls, tokens: cfg.tokens, maxMessageBytes: cfg.maxMessageBytes, submitRatePerMinute: cfg.submitRatePerMinute,
    });
  } catch (err) {
    coordinator.close();
    await nc.close();
    throw err;
  }
  const metrics = createCoordinatorMetrics(coordinator, { queueDepth: () => coordinator.queueLag() });
  let dashboard: RunningDashboard | null = null;
  if (cfg.httpAddress) {
    try {
      dashboard = await startDashboardServer(coordinator, { address: cfg.httpAddress, // Reader tokens only: the dashboard is plain HTTP, so a token seen there must not be able to change anything.
      readerTokens: cfg.tokens?.reader ?? [], metrics, log });
    } catch (err) {
      await grpc.close();
      coordinator.close();
      await nc.drain().catch(() => nc.close());
      throw err;
    }
  }
  return {
    coordinator,
    grpc,
    nc,
    port: grpc.port,
    dashboard,
    stop: async () => {
      await dashboard?.close();
      metrics.close();
      await grpc.close();
      coordinator.close();
      await nc.drain().catch(() => nc.close());
    },
  };
}
