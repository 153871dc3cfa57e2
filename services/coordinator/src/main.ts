/** Coordinator process entry point: `tsx services/coordinator/src/main.ts`. */
import { loadConfig } from './config.js';
import { createLogger } from './log.js';
import { startCoordinator } from './start-coordinator.js';

const log = createLogger('coordinator');
try {
  const cfg = loadConfig();
  const running = await startCoordinator(cfg, log);
  log.info('coordinator.ready', { port: running.port, nats: cfg.natsUrl, dashboard: running.dashboard?.url ?? null });
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('coordinator.stopping', { signal });
    await running.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
} catch (err) {
  log.error('coordinator.failed', { error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
}
