import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Coordinator } from '../coordinator.js';
import { TRIAL_STATUSES } from '../records.js';

/** Prometheus metrics of one coordinator (own registry, so tests can run several). */
export interface CoordinatorMetrics {
  registry: Registry;
  /** Stops listening to the coordinator. */
  close(): void;
}

/**
 * Trials by state and sweeps by state (read from memory at scrape time),
 * queue depth (JetStream consumer: pending + in flight), epoch durations and
 * reports received, counted from the coordinator's events.
 */
export function createCoordinatorMetrics(
  coordinator: Coordinator,
  opts: { queueDepth?: () => Promise<{ pending: number; inFlight: number } | null>; defaultMetrics?: boolean } = {},
): CoordinatorMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'tlsweep_coordinator_' });
  new Gauge({
    name: 'tlsweep_trials',
    help: 'Trials known to the coordinator, by state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const by = Object.fromEntries(TRIAL_STATUSES.map((s) => [s, 0])) as Record<string, number>;
      for (const s of coordinator.listSweeps()) {
        const c = coordinator.counts(s.sweepId);
        for (const st of TRIAL_STATUSES) by[st] += c[st];
      }
      for (const st of TRIAL_STATUSES) this.set({ state: st }, by[st]);
    },
  });
  new Gauge({
    name: 'tlsweep_sweeps',
    help: 'Sweeps by state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const by: Record<string, number> = { running: 0, completed: 0, cancelled: 0, failed: 0 };
      for (const s of coordinator.listSweeps()) by[s.status] = (by[s.status] ?? 0) + 1;
      for (const [state, n] of Object.entries(by)) this.set({ state }, n);
    },
  });
  const queueDepth = opts.queueDepth;
  if (queueDepth) {
    new Gauge({
      name: 'tlsweep_queue_depth',
      help: 'Trials in the JetStream work queue: waiting (pending) and delivered but not acked (in_flight)',
      labelNames: ['kind'],
      registers: [registry],
      async collect() {
        const d = await queueDepth().catch(() => null);
        if (!d) return;
        this.set({ kind: 'pending' }, d.pending);
        this.set({ kind: 'in_flight' }, d.inFlight);
      },
    });
  }
  if (coordinator.affinityStats()) {
    // Counters kept by the coordinator (it decides routes); read at scrape time.
    new Counter({
      name: 'tlsweep_affinity_units_total',
      help: 'Cache-affinity dispatch: units routed to a worker holding their features (routed), started there (hit), moved to the shared queue because the holder did not start them in time (fallback) or because their inbox delivery failed or its worker died (requeue)',
      labelNames: ['outcome'],
      registers: [registry],
      collect() {
        const a = coordinator.affinityStats();
        if (!a) return;
        this.reset();
        this.inc({ outcome: 'routed' }, a.routed);
        this.inc({ outcome: 'hit' }, a.hits);
        this.inc({ outcome: 'fallback' }, a.fallbacks);
        this.inc({ outcome: 'requeue' }, a.requeues);
      },
    });
  }
  const epochSeconds = new Histogram({
    name: 'tlsweep_epoch_duration_seconds',
    help: 'Wall time of one training epoch as workers report it',
    labelNames: ['phase'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900],
    registers: [registry],
  });
  const events = new Counter({
    name: 'tlsweep_trial_events_total',
    help: 'Trial events handled (queued, started, epoch, finished, failed, stopped)',
    labelNames: ['type'],
    registers: [registry],
  });
  const off = coordinator.subscribeAll((e) => {
    events.inc({ type: e.type });
    if (e.type === 'epoch' && e.epoch && Number.isFinite(e.epoch.seconds)) epochSeconds.observe({ phase: e.epoch.phase }, e.epoch.seconds);
  });
  return { registry, close: off };
}
