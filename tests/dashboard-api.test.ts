import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Coordinator, createCoordinatorMetrics, paretoFront, startDashboardServer, type RunningDashboard } from '../services/coordinator/src/index.js';
import { redactToken } from '../services/coordinator/src/http/dashboard-server.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';
import { runOneTrial } from './helpers/fake-worker.js';
import { waitFor } from './helpers/wait-for.js';

const spec = `
name: dashboard-api
dataset: { kind: synthetic, classes: 3, perClass: 10 }
backbones: [tiny_cnn]
unfreeze: [0, 4]
learningRates: [0.01, 0.03]
dropouts: [0.1, 0.5]
maxParallel: 8
fuse: false
`;

describe('dashboard HTTP API, SSE and /metrics on a real coordinator', () => {
  let nats: RunningNatsServer;
  let nc: NatsConnection;
  let c: Coordinator;
  let dash: RunningDashboard;
  let sweepId: string;
  const get = async (path: string, init?: RequestInit) => {
    const res = await fetch(new URL(path, dash.url), init);
    return { status: res.status, body: res.headers.get('content-type')?.includes('json') ? await res.json() : await res.text() };
  };

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    c = await Coordinator.start({ nc });
    const metrics = createCoordinatorMetrics(c, { queueDepth: () => c.queueLag(), defaultMetrics: false });
    dash = await startDashboardServer(c, { address: '127.0.0.1:0', metrics });
    sweepId = (await c.submitSweep(spec)).sweepId;
    for (let i = 0; i < 3; i++) await runOneTrial(nc, c);
  });
  afterAll(async () => {
    await dash?.close();
    c?.close();
    await nc?.close();
    await nats?.stop();
  });

  it('lists sweeps and serves a sorted, paged, grouped leaderboard', async () => {
    const sweeps = (await get('/api/sweeps')).body as { sweeps: Array<{ sweepId: string; counts: { total: number; completed: number } }> };
    expect(sweeps.sweeps.map((s) => s.sweepId)).toContain(sweepId);
    expect(sweeps.sweeps[0].counts).toMatchObject({ total: 8, completed: 3 });

    const page1 = (await get(`/api/sweeps/${sweepId}/leaderboard?limit=2&groupBy=learning_rate`)).body as {
      rows: Array<{ valAccuracy: number | null; trialId: string }>; total: number; groups: Array<{ key: string; count: number }>;
    };
    expect(page1.total).toBe(8);
    expect(page1.rows).toHaveLength(2);
    expect(page1.rows[0].valAccuracy!).toBeGreaterThanOrEqual(page1.rows[1].valAccuracy!);
    expect(page1.groups.map((g) => g.key).sort()).toEqual(['0.01', '0.03']);
    const page2 = (await get(`/api/sweeps/${sweepId}/leaderboard?limit=2&offset=2`)).body as { rows: Array<{ trialId: string }> };
    expect(page2.rows.map((r) => r.trialId)).not.toContain(page1.rows[0].trialId);

    const trial = (await get(`/api/trials/${page1.rows[0].trialId}`)).body as { history: unknown[]; config: { sweepId: string } };
    expect(trial.history).toHaveLength(3);
    expect(trial.config.sweepId).toBe(sweepId);
  });

  it('answers bad queries with 400 naming the field, unknown ids with 404, writes with 405', async () => {
    const bad = await get(`/api/sweeps/${sweepId}/leaderboard?sortBy=speed`);
    expect(bad.status).toBe(400);
    expect((bad.body as { violations: Array<{ field: string }> }).violations[0].field).toBe('sort_by');
    expect((await get(`/api/sweeps/${sweepId}/leaderboard?limit=5000`)).status).toBe(400);
    expect((await get('/api/sweeps/nope')).status).toBe(404);
    expect((await get('/api/trials/nope')).status).toBe(404);
    expect((await get(`/api/sweeps/${sweepId}`, { method: 'POST' })).status).toBe(405);
    expect((await get(`/api/sweeps/${sweepId}`, { method: 'DELETE' })).status).toBe(405);
    expect(c.getSweep(sweepId).status).toBe('running');
  });

  it('serves feature-map layers and PNGs for the sweep\'s backbone, naming a bad layer', async () => {
    const layers = (await get(`/api/layers?sweep=${sweepId}`)).body as { layers: Array<{ name: string }> };
    expect(layers.layers.map((l) => l.name)).toContain('Conv1');
    const res = await fetch(new URL(`/api/feature-maps.png?sweep=${sweepId}&layer=Conv1&image=2`, dash.url));
    expect(res.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await res.arrayBuffer()).subarray(1, 4).toString()).toBe('PNG');
    const bad = await get(`/api/feature-maps.png?sweep=${sweepId}&layer=nope`);
    expect(bad.status).toBe(400);
    expect((bad.body as { violations: Array<{ field: string }> }).violations[0].field).toBe('layer');
    expect((await get(`/api/layers?sweep=${sweepId}&backbone=vgg99`)).status).toBe(400);
  });

  it('sends plot points with the Pareto front', async () => {
    const pts = (await get(`/api/sweeps/${sweepId}/points`)).body as { trialId: string[]; paretoTrialIds: string[]; value: number[] };
    expect(pts.trialId).toHaveLength(3);
    expect(pts.paretoTrialIds.length).toBeGreaterThan(0);
    expect(pts.value.every((v) => v > 0)).toBe(true);
  });

  it('streams live events over SSE as trials finish', async () => {
    const ac = new AbortController();
    const res = await fetch(new URL(`/api/sweeps/${sweepId}/events`, dash.url), { signal: ac.signal });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    const seen: string[] = [];
    const reading = (async () => {
      const dec = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        for (const line of dec.decode(value).split('\n')) {
          if (line.startsWith('data: ')) for (const e of JSON.parse(line.slice(6)) as Array<{ type: string }>) seen.push(e.type);
        }
      }
    })().catch(() => {});
    const finished = await runOneTrial(nc, c);
    expect(finished).not.toBeNull();
    await waitFor(() => seen.includes('trial_finished'), 5000);
    expect(seen).toContain('epoch');
    ac.abort();
    await reading;
  });

  it('exports Prometheus metrics: trials by state, queue depth, epoch durations', async () => {
    const text = (await get('/metrics')).body as string;
    expect(text).toMatch(/tlsweep_trials\{state="completed"\} 4/);
    expect(text).toMatch(/tlsweep_queue_depth\{kind="pending"\} 4/);
    expect(text).toMatch(/tlsweep_epoch_duration_seconds_count\{phase="finetune"\} \d+/);
  });

  it('requires a reader token when tokens are set, and refuses an open dashboard off loopback', async () => {
    const locked = await startDashboardServer(c, { address: '127.0.0.1:0', readerTokens: ['s3cret'] });
    try {
      expect((await fetch(new URL('/api/sweeps', locked.url))).status).toBe(401);
      expect((await fetch(new URL('/api/sweeps', locked.url), { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
      expect((await fetch(new URL('/api/sweeps', locked.url), { headers: { authorization: 'Bearer s3cret' } })).status).toBe(200);
      expect((await fetch(new URL('/api/sweeps?token=s3cret', locked.url))).status).toBe(200);
      // The page itself carries no data and loads without a token.
      expect((await fetch(new URL('/', locked.url))).status).toBe(200);
    } finally {
      await locked.close();
    }
    await expect(startDashboardServer(c, { address: '0.0.0.0:0' })).rejects.toThrow(/readerTokens/);
  });
});

describe('paretoFront', () => {
  it('keeps trials that no other trial beats on both accuracy and time', () => {
    const pts = [
      { id: 'a', accuracy: 0.9, seconds: 10 },
      { id: 'b', accuracy: 0.8, seconds: 5 },
      { id: 'c', accuracy: 0.7, seconds: 8 }, // beaten by b
      { id: 'd', accuracy: 0.95, seconds: 30 },
      { id: 'e', accuracy: 0.9, seconds: 12 }, // beaten by a
    ];
    expect(paretoFront(pts)).toEqual(['b', 'a', 'd']);
  });
});

describe('redactToken', () => {
  it('keeps tokens out of logged paths', () => {
    expect(redactToken('/api/sweeps?token=abc&x=1')).toBe('/api/sweeps?token=[redacted]&x=1');
    expect(redactToken('/api/feature-maps.png?sweep=s&token=t0k')).toBe('/api/feature-maps.png?sweep=s&token=[redacted]');
    expect(redactToken('/api/sweeps')).toBe('/api/sweeps');
  });
});
