/**
 * deploy/grafana/tlsweep-dashboard.json cannot drift from the code: every
 * metric its PromQL names is registered by the coordinator's or a worker's
 * registry (built here, as the services build them), every label it filters
 * or groups by exists on that metric, and every tlsweep metric has a panel.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Coordinator, createCoordinatorMetrics, type CoordinatorMetrics } from '../services/coordinator/src/index.js';
import { FeatureMemo } from '../services/worker/src/engine/feature-memo.js';
import { GpuUtilization } from '../services/worker/src/metrics/gpu-utilization.js';
import { WorkerMetrics } from '../services/worker/src/metrics/worker-metrics.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';

const FILE = fileURLToPath(new URL('../deploy/grafana/tlsweep-dashboard.json', import.meta.url));

interface Panel { id: number; type: string; title: string; targets?: Array<{ expr: string; legendFormat?: string; refId: string }>; gridPos: { x: number; y: number; w: number; h: number } }
interface Known { type: string; labels: Set<string> }

/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = ['job', 'instance'];

function known(registry: Registry, defaultLabels: string[]): Map<string, Known> {
  const out = new Map<string, Known>();
  for (const m of registry.getMetricsAsArray()) {
    const own = (m as unknown as { labelNames?: string[] }).labelNames ?? [];
    const labels = new Set([...own, ...defaultLabels, ...TARGET_LABELS]);
    // The typings say a numeric enum; prom-client's objects carry 'counter' | 'gauge' | 'histogram' | 'summary'.
    const type = String(m.type);
    out.set(m.name, { type, labels });
    if (type === 'histogram') {
      out.set(`${m.name}_bucket`, { type: 'histogram', labels: new Set([...labels, 'le']) });
      out.set(`${m.name}_sum`, { type: 'histogram', labels });
      out.set(`${m.name}_count`, { type: 'histogram', labels });
    }
  }
  return out;
}

/** What is wrong with the queries: unknown metrics, labels the metric lacks. */
function checkQueries(queries: Array<{ panel: string; expr: string; legendFormat?: string }>, names: Map<string, Known>): string[] {
  const problems: string[] = [];
  for (const q of queries) {
    const used = [...q.expr.matchAll(/\b(tlsweep_[a-zA-Z0-9_]+)\b/g)].map((m) => m[1]);
    if (used.length === 0) problems.push(`${q.panel}: no tlsweep metric in ${q.expr}`);
    const available = new Set<string>();
    for (const name of used) {
      const k = names.get(name);
      if (!k) {
        problems.push(`${q.panel}: unknown metric ${name}`);
        continue;
      }
      for (const l of k.labels) available.add(l);
    }
    for (const m of q.expr.matchAll(/\b(tlsweep_[a-zA-Z0-9_]+)\{([^}]*)\}/g)) {
      const labels = names.get(m[1])?.labels;
      if (!labels) continue; // reported as unknown above
      for (const l of m[2].matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)) if (!labels.has(l[1])) problems.push(`${q.panel}: ${m[1]} has no label '${l[1]}'`);
    }
    for (const m of q.expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
      for (const l of m[1].split(',').map((s) => s.trim()).filter(Boolean)) if (!available.has(l)) problems.push(`${q.panel}: groups by '${l}', which ${used.join(', ')} lack`);
    }
    for (const m of (q.legendFormat ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)) if (!available.has(m[1])) problems.push(`${q.panel}: legend uses '${m[1]}', which ${used.join(', ')} lack`);
  }
  return problems;
}

describe('Grafana dashboard', () => {
  let nats: RunningNatsServer;
  let nc: NatsConnection;
  let c: Coordinator;
  let coordinatorMetrics: CoordinatorMetrics;
  let names: Map<string, Known>;
  let custom: string[];
  const dashboard = JSON.parse(readFileSync(FILE, 'utf8')) as { uid: string; title: string; panels: Panel[]; templating: { list: Array<{ name: string; query?: unknown }> } };
  const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, ...t })));

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    c = await Coordinator.start({ nc });
    // As start-coordinator builds it: queue depth and the default process metrics on.
    coordinatorMetrics = createCoordinatorMetrics(c, { queueDepth: () => c.queueLag() });
    const worker = new WorkerMetrics({ workerId: 'w', backend: 'cpu', featureMemo: new FeatureMemo(1024), gpu: new GpuUtilization('/nonexistent/nvidia-smi') });
    names = new Map([...known(coordinatorMetrics.registry, []), ...known(worker.registry, ['worker', 'backend'])]);
    custom = [...names.keys()].filter((n) => !/_(bucket|sum|count)$/.test(n) || names.get(n)!.type !== 'histogram')
      .filter((n) => !n.startsWith('tlsweep_coordinator_') && !/^tlsweep_worker_(process|nodejs)_/.test(n));
  });
  afterAll(async () => {
    coordinatorMetrics?.close();
    c?.close();
    await nc?.close();
    await nats?.stop();
  });

  it('is a dashboard with panels that have unique ids and queries', () => {
    expect(dashboard.uid).toBe('tlsweep-overview');
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(queries.length).toBeGreaterThan(20);
    for (const p of dashboard.panels.filter((x) => x.type !== 'row')) {
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
    }
  });

  it('names only metrics the code registers, with labels they have', () => {
    expect(custom).toContain('tlsweep_trials');
    expect(custom).toContain('tlsweep_worker_gpu_utilization_ratio');
    expect(checkQueries(queries, names)).toEqual([]);
  });

  it('has a panel for every tlsweep metric, and the worker variable reads a worker metric', () => {
    const all = queries.map((q) => q.expr).join('\n');
    const missing = custom.filter((n) => !new RegExp(`\\b${n}(_bucket|_sum|_count)?\\b`).test(all));
    expect(missing).toEqual([]);
    const variable = dashboard.templating.list.find((v) => v.name === 'worker')!;
    const metric = /label_values\((\w+), worker\)/.exec(JSON.stringify(variable.query))![1];
    expect(names.get(metric)?.labels.has('worker')).toBe(true);
  });

  it('catches drift: a renamed metric or a wrong label is reported', () => {
    // The same checks, on queries that are wrong on purpose.
    expect(checkQueries([
      { panel: 'p1', expr: 'sum(tlsweep_trial{state="running"})' },
      { panel: 'p2', expr: 'sum by (phase) (tlsweep_trials{status="running"})', legendFormat: '{{worker}}' },
      { panel: 'p3', expr: 'histogram_quantile(0.9, sum by (le) (rate(tlsweep_worker_epoch_duration_seconds_bucket{worker=~"a"}[5m])))' },
    ], names)).toEqual([
      'p1: unknown metric tlsweep_trial',
      "p2: tlsweep_trials has no label 'status'",
      "p2: groups by 'phase', which tlsweep_trials lack",
      "p2: legend uses 'worker', which tlsweep_trials lack",
    ]);
  });
});
