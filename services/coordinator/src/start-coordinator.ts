import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { CoordinatorConfig } from './config.js';
import { Coordinator } from './coordinator.js';
import { startGrpcServer, type RunningGrpcServer } from './grpc/server.js';
import { startDashboardServer, type RunningDashboard } from './http/dashboard-server.js';
import { createCoordinatorMetrics } from './metrics/coordinator-metrics.js';
import { silentLogger, type Logger } from './log.js';
import { ObjectCheckpointStore } from '../../worker/src/runner/object-checkpoint-store.js';

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
  const nc = await connect({ servers: cfg.natsUrl, maxReconnectAttempts: -1, reconnectTimeWait: 500, name: 'tlsweep-coordinator' });
  // The coordinator deletes a trial's epoch checkpoint once the trial is terminal (workers write them).
  const checkpoints = await ObjectCheckpointStore.open(nc, { replicas: cfg.replicas }).catch((err: Error) => {
    log.warn('coordinator.checkpoints_unavailable', { error: err.message });
    return undefined;
  });
  const coordinator = await Coordinator.start({ nc, log, replicas: cfg.replicas, queue: { ackWaitMs: cfg.ackWaitMs, maxDeliver: cfg.maxDeliver, replicas: cfg.replicas }, checkpoints });
  const grpc = await startGrpcServer(coordinator, { address: cfg.grpcAddress, log });
  const metrics = createCoordinatorMetrics(coordinator, { queueDepth: () => coordinator.queueLag() });
  let dashboard: RunningDashboard | null = null;
  if (cfg.httpAddress) {
    try {
      dashboard = await startDashboardServer(coordinator, { address: cfg.httpAddress, readerTokens: cfg.readerTokens, metrics, log });
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
