import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Job } from '@kubernetes/client-node';
import { startCoordinator, type RunningCoordinator } from '../services/coordinator/src/index.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';
import { spawnService, WORKER_MAIN, type ManagedProcess } from '../services/sweeper/src/local-cluster.js';
import { TlsweepClient } from '../services/sweeper/src/client.js';
import { runSweepOnKubernetes } from '../services/sweeper/src/k8s/k8s-run.js';
import { overlayDir } from '../services/sweeper/src/k8s/kustomize.js';
import { K8sError } from '../services/sweeper/src/k8s/errors.js';
import { SWEEP_LABEL } from '../services/sweeper/src/k8s/worker-job.js';
import { FakeKubeApi, podsFor } from './helpers/fake-kube-api.js';
import { waitFor } from './helpers/wait-for.js';

/**
 * `tlsweep k8s run` with the real @kubernetes/client-node against a fake API
 * server, a real coordinator and nats-server, and — where the sweep must
 * finish — real worker processes that the fake "cluster" starts when the Job
 * is created and stops (SIGTERM, drain) when it is deleted.
 */
const spec = (name: string, extra = '') => `
name: ${name}
dataset: { kind: synthetic, classes: 3, perClass: 20, seed: 4 }
backbones: [tiny_cnn]
unfreeze: [0]
learningRates: [0.01, 0.02, 0.03]
dropouts: [0.1]
headEpochs: 2
batchSize: 16
headUnits: 8
maxParallel: 2
${extra}`;

describe('tlsweep k8s run', () => {
  let nats: RunningNatsServer;
  let coord: RunningCoordinator;
  let client: TlsweepClient;
  let api: FakeKubeApi;
  let logDir: string;

  beforeAll(async () => {
    nats = await startNatsServer();
    coord = await startCoordinator({ natsUrl: nats.url, grpcAddress: '127.0.0.1:0', ackWaitMs: 30_000, maxDeliver: 3, replicas: 1 });
    client = new TlsweepClient(`127.0.0.1:${coord.port}`);
    await client.ready();
    logDir = mkdtempSync(join(tmpdir(), 'tlsweep-k8s-run-'));
  });
  afterAll(async () => {
    client?.close();
    await coord?.stop();
    await nats?.stop();
    rmSync(logDir, { recursive: true, force: true });
  });
  const freshApi = async () => {
    await api?.stop();
    api = await new FakeKubeApi().start();
    return api;
  };
  const run = (specText: string, extra: Partial<Parameters<typeof runSweepOnKubernetes>[0]> = {}) => {
    const lines: string[] = [];
    const p = runSweepOnKubernetes({
      spec: specText, client, kubeConfig: api.kubeConfig(), namespace: 'tlsweep', overlayDir: overlayDir('dev'),
      podPollMs: 100, out: (l) => lines.push(l), ...extra,
    });
    return { p, lines };
  };
  const sweepIdFrom = (lines: string[]) => /^submitted (\S+)/.exec(lines[0])![1];
  afterAll(() => api?.stop());

  it('sizes the Indexed Job, follows the sweep through dropped and expired Job watches, deletes the Job at the end', async () => {
    await freshApi();
    const workers: ManagedProcess[] = [];
    const env = { TLSWEEP_NATS_URL: nats.url, TLSWEEP_COORDINATOR: `127.0.0.1:${coord.port}`, TLSWEEP_NAK_DELAY_MS: '200', TLSWEEP_BACKEND: 'cpu' };
    let watchResumedFrom = '';
    let linesRef: string[] = [];
    const lines0 = () => linesRef;
    api.onJobCreated = (job: V1Job) => {
      void (async () => {
        api.pods = podsFor(job, () => ({ status: { phase: 'Running', conditions: [{ type: 'PodScheduled', status: 'True' }] } }));
        const n = api.pods.length;
        api.putJob({ ...job, status: { active: n, ready: n } });
        // The connection drops: the launcher must resume from the last resourceVersion it saw.
        await waitFor(() => api.openWatches > 0, 5000, 'job watch open');
        watchResumedFrom = api.jobs.get(`tlsweep/${job.metadata!.name}`)!.metadata!.resourceVersion!;
        api.dropWatches();
        await waitFor(() => api.openWatches > 0, 5000, 'job watch resumed');
        api.putJob({ ...api.jobs.get(`tlsweep/${job.metadata!.name}`)!, status: { active: n, ready: n, failed: 1 } });
        // Dropped again, and while it is away the Job changes and history is compacted:
        // resuming gets 410 Gone, so the launcher reads the Job and goes on from there.
        await waitFor(() => lines0().some((l) => l.includes('failed 1')), 5000, 'status after resume');
        api.dropWatches();
        api.putJob({ ...api.jobs.get(`tlsweep/${job.metadata!.name}`)!, status: { active: n, ready: n, failed: 2 } });
        api.compact();
        // The pods' workers start only once the watch has been through all of that:
        // a tiny sweep could otherwise finish (and the launcher stop watching) first.
        await waitFor(() => lines0().some((l) => l.includes('failed 2')), 5000, 'status after 410 Gone');
        await Promise.all(api.pods.map(async (pod) => {
          const { proc } = await spawnService(pod.metadata!.name!, WORKER_MAIN, { ...env, TLSWEEP_WORKER_ID: pod.metadata!.name! }, createWriteStream(join(logDir, `${pod.metadata!.name}.log`)), 'worker.ready');
          workers.push(proc);
        }));
      })();
    };
    api.onJobDeleted = () => workers.forEach((w) => w.child.kill('SIGTERM'));

    const { p, lines } = run(spec('k8s-run-ok'), { gpus: 8 });
    linesRef = lines;
    const r = await p;
    expect(r.sweep.status).toBe('completed');
    expect(r.sweep.counts).toMatchObject({ total: 3, completed: 3 });
    // min(maxParallel 2, trials 3, gpus 8) = 2 pods
    expect(r.workers).toBe(2);
    const created = api.requests.find((q) => q.method === 'POST')!;
    expect(created.path).toBe('/apis/batch/v1/namespaces/tlsweep/jobs');
    // The Job is gone, and its workers drained and exited cleanly.
    expect(api.jobs.size).toBe(0);
    expect(api.requests.some((q) => q.method === 'DELETE' && q.path === `/apis/batch/v1/namespaces/tlsweep/jobs/${r.jobName}`)).toBe(true);
    expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0]);
    // Trials ran on the Job's pods.
    const rows = (await client.query({ sweepId: r.sweep.sweepId })).rows;
    for (const t of rows) expect(t.worker).toMatch(new RegExp(`^${r.jobName}-[01]-x[01]$`));
    // The dropped watch was resumed from the last resourceVersion, and the status after the drop arrived.
    const watches = api.requests.filter((q) => q.query.watch === 'true');
    expect(watches.length).toBeGreaterThanOrEqual(3);
    expect(watches[0].query.fieldSelector).toBe(`metadata.name=${r.jobName}`);
    expect(watches.map((w) => w.query.resourceVersion)).toContain(watchResumedFrom);
    expect(lines.join('\n')).toContain('failed 1');
    // After 410 Gone the Job was read again (GET) and its latest status printed.
    expect(api.requests.some((q) => q.method === 'GET' && q.path === `/apis/batch/v1/namespaces/tlsweep/jobs/${r.jobName}`)).toBe(true);
    expect(lines.join('\n')).toContain('failed 2');
    expect(lines.some((l) => l.includes(`sweep ${r.sweep.sweepId} completed`))).toBe(true);
  }, 120_000);

  it('a 409 on a Job that is not this sweep\'s: clear error, nothing of theirs touched, the sweep is cancelled', async () => {
    await freshApi();
    api.putJob({ apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'tlsweep-taken', namespace: 'tlsweep', labels: { [SWEEP_LABEL]: 'someone-else' } }, spec: { template: { spec: { containers: [] } } } }, 'ADDED');
    const { p, lines } = run(spec('k8s-run-409'), { jobName: 'tlsweep-taken' });
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(K8sError);
    expect((err as K8sError).code).toBe('JOB_CONFLICT');
    expect((err as K8sError).message).toMatch(/a Job named tlsweep\/tlsweep-taken already exists for sweep someone-else/);
    expect(api.jobs.get('tlsweep/tlsweep-taken')!.metadata!.labels![SWEEP_LABEL]).toBe('someone-else');
    expect(api.requests.some((q) => q.method === 'DELETE')).toBe(false);
    expect((await client.get(sweepIdFrom(lines))).status).toBe('cancelled');
  });

  it('adopts an existing Job of the same sweep; pods stuck Pending fail the run plainly and in bounded time', async () => {
    await freshApi();
    api.beforeCreate = (job) => {
      // The Job is already there (e.g. a create whose answer was lost), and the cluster has no GPU for it.
      api.putJob(structuredClone(job), 'ADDED');
      api.pods = podsFor(job, () => ({
        status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available: 3 Insufficient nvidia.com/gpu.' }] },
      }));
      api.beforeCreate = () => {};
    };
    const started = Date.now();
    const { p, lines } = run(spec('k8s-run-pending'), { gpus: 1, unschedulableTimeoutMs: 800 });
    const err = await p.catch((e: unknown) => e);
    expect((err as K8sError).code).toBe('UNSCHEDULABLE');
    expect((err as K8sError).message).toMatch(/none of the 1 worker pods could be scheduled/);
    expect((err as K8sError).message).toMatch(/no node has a free nvidia.com\/gpu/);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(lines.join('\n')).toMatch(/already exists for sweep .*: adopting it/);
    expect(api.jobs.size).toBe(0);
    expect((await client.get(sweepIdFrom(lines))).status).toBe('cancelled');
  });
});
