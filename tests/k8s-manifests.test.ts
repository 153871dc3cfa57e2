import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { K8S_DIR, overlayDir, renderKustomization, toYaml, type K8sObject } from '../services/sweeper/src/k8s/kustomize.js';
import { manifestProblems, parseQuantity } from '../services/sweeper/src/k8s/api-rules.js';
import { buildWorkerJob } from '../services/sweeper/src/k8s/worker-job.js';
import { TRIAL_STREAM, WORKER_CONSUMER } from '../services/coordinator/src/queue/names.js';
import { findNatsServer } from '../services/sweeper/src/nats-server.js';

const OVERLAYS = ['dev', 'gpu'] as const;
const render = (o: string) => renderKustomization(overlayDir(o));
const find = (objs: K8sObject[], kind: string, name: string) => objs.find((x) => x.kind === kind && x.metadata.name === name)!;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const podSpec = (o: K8sObject) => (o.spec as any).template.spec;

describe('deploy/k8s overlays', () => {
  for (const overlay of OVERLAYS) {
    it(`${overlay}: every object passes the Kubernetes schemas and the API-server rules`, () => {
      const objs = render(overlay);
      expect(objs.length).toBeGreaterThan(15);
      expect(manifestProblems(objs)).toEqual([]);
      // Namespace first, every namespaced object in it.
      expect(objs[0].kind).toBe('Namespace');
      for (const o of objs.slice(1)) expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe('tlsweep');
    });

    it(`${overlay}: the Indexed worker Job built from it passes the same checks`, () => {
      const objs = render(overlay);
      const job = buildWorkerJob(objs, { sweepId: 'sw-Abc123', workers: 3, namespace: 'tlsweep' });
      expect(manifestProblems([...objs, job])).toEqual([]);
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const spec = job.spec as any;
      expect(spec).toMatchObject({ completionMode: 'Indexed', completions: 3, parallelism: 3 });
      expect(spec.template.spec.restartPolicy).toBe('Never');
      expect(job.metadata.name).toBe('tlsweep-sw-abc123');
      // Its pods are workers to the NetworkPolicies but not the Deployment's pods.
      expect(spec.template.metadata.labels['app.kubernetes.io/component']).toBe('worker');
      expect(spec.template.metadata.labels['app.kubernetes.io/name']).not.toBe('tlsweep-worker');
    });
  }

  it('the gpu overlay asks one GPU per worker, on GPU nodes, with the GPU image and no fixed replica count', () => {
    const objs = render('gpu');
    const worker = find(objs, 'Deployment', 'tlsweep-worker');
    const c = podSpec(worker).containers[0];
    expect(c.resources.limits['nvidia.com/gpu']).toBe('1');
    expect(c.resources.requests['nvidia.com/gpu']).toBe('1');
    expect(c.image).toBe('tlsweep/worker-gpu:0.1.0');
    expect(c.env.find((e: { name: string }) => e.name === 'TLSWEEP_BACKEND').value).toBe('tensorflow');
    expect(podSpec(worker).tolerations).toEqual([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(podSpec(worker).nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true' });
    expect((worker.spec as Record<string, unknown>).replicas).toBeUndefined();
    // KEDA scales it on the trial queue the coordinator creates.
    const so = find(objs, 'ScaledObject', 'tlsweep-worker');
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const t = (so.spec as any).triggers[0];
    expect(t.type).toBe('nats-jetstream');
    expect(t.metadata).toMatchObject({ stream: TRIAL_STREAM, consumer: WORKER_CONSUMER });
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    expect((so.spec as any).minReplicaCount).toBe(0);
  });

  it('the dev overlay runs CPU workers (wasm) from the slim image, no GPU, no autoscaler', () => {
    const objs = render('dev');
    const c = podSpec(find(objs, 'Deployment', 'tlsweep-worker')).containers[0];
    expect(c.image).toBe('tlsweep/tlsweep:0.1.0');
    expect(c.resources.limits['nvidia.com/gpu']).toBeUndefined();
    expect(c.env.find((e: { name: string }) => e.name === 'TLSWEEP_BACKEND').value).toBe('wasm');
    expect(objs.some((o) => o.kind === 'ScaledObject')).toBe(false);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    expect((find(objs, 'StatefulSet', 'nats').spec as any).volumeClaimTemplates[0].spec.resources.requests.storage).toBe('1Gi');
  });

  it('coordinator probes use the gRPC health service on its port; the sweeper may only manage Jobs and read Pods', () => {
    const objs = render('gpu');
    const c = podSpec(find(objs, 'Deployment', 'tlsweep-coordinator')).containers[0];
    for (const p of ['startupProbe', 'readinessProbe', 'livenessProbe']) expect(c[p].grpc.port).toBe(c.ports[0].containerPort);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const rules = (find(objs, 'Role', 'tlsweep-sweeper') as any).rules;
    expect(rules).toEqual([
      { apiGroups: ['batch'], resources: ['jobs'], verbs: ['create', 'get', 'list', 'watch', 'delete'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
    ]);
    expect(find(objs, 'StatefulSet', 'nats').spec).toMatchObject({ replicas: 3 });
  });

  it('the nightly CronJob example renders and passes the checks beside the gpu overlay', () => {
    const objs = [...render('gpu'), ...renderKustomization(join(K8S_DIR, 'examples/nightly'))];
    expect(manifestProblems(objs)).toEqual([]);
  });

  it('the NATS config in the ConfigMap turns client auth on, is accepted by nats-server, and its auth block is the tested deploy/nats one', () => {
    const cm = find(render('gpu'), 'ConfigMap', 'nats-config');
    const data = cm.data as Record<string, string>;
    expect(data['nats.conf']).toMatch(/^\s*include \.\/auth\.conf$/m);
    // tests/nats-permissions.test.ts runs deploy/nats/nats-server.conf: the cluster must get the same rules.
    const sample = readFileSync(join(K8S_DIR, '..', 'nats', 'nats-server.conf'), 'utf8');
    expect(data['auth.conf'].trimEnd()).toBe(sample.slice(sample.indexOf('authorization {')).trimEnd());
    // The passwords it references are the ones the StatefulSet passes in.
    const natsEnv = podSpec(find(render('gpu'), 'StatefulSet', 'nats')).containers[0].env.map((e: { name: string }) => e.name);
    for (const v of data['auth.conf'].matchAll(/\$(TLSWEEP_[A-Z_]+)/g)) expect(natsEnv).toContain(v[1]);
    const dir = mkdtempSync(join(tmpdir(), 'tlsweep-natsconf-'));
    try {
      writeFileSync(join(dir, 'auth.conf'), data['auth.conf']);
      writeFileSync(join(dir, 'nats.conf'), data['nats.conf']);
      const env = { ...process.env, POD_NAME: 'nats-0', TLSWEEP_NATS_COORDINATOR_PASSWORD: 'c', TLSWEEP_NATS_WORKER_PASSWORD: 'w' };
      expect(execFileSync(findNatsServer(), ['-c', join(dir, 'nats.conf'), '-t'], { env, encoding: 'utf8', stdio: 'pipe' })).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('toYaml round-trips the render', () => {
    const objs = render('dev');
    expect(parseAllDocuments(toYaml(objs)).map((d) => d.toJS())).toEqual(objs);
  });
});

describe('the checks catch what the API server would refuse', () => {
  const base = () => render('dev');
  const withChange = (fn: (objs: K8sObject[]) => void) => {
    const objs = base();
    fn(objs);
    return manifestProblems(objs);
  };
  const job = (objs: K8sObject[]) => buildWorkerJob(objs, { sweepId: 's1', workers: 2, namespace: 'tlsweep' });

  it('a Job with restartPolicy Always', () => {
    const objs = base();
    const j = job(objs);
    podSpec(j).restartPolicy = 'Always';
    expect(manifestProblems([...objs, j]).join('\n')).toMatch(/restartPolicy must be Never or OnFailure/);
  });
  it('an Indexed Job without completions', () => {
    const objs = base();
    const j = job(objs);
    delete (j.spec as Record<string, unknown>).completions;
    expect(manifestProblems([...objs, j]).join('\n')).toMatch(/Indexed Job needs spec.completions/);
  });
  it('a selector that does not match the template', () => {
    expect(withChange((o) => { (find(o, 'Deployment', 'tlsweep-worker').spec as any).selector.matchLabels['x'] = 'y'; }).join('\n')) // eslint-disable-line @typescript-eslint/no-explicit-any
      .toMatch(/Deployment\/tlsweep-worker: spec.selector does not match/);
  });
  it('requests above limits, and a GPU request without an equal limit', () => {
    const p = withChange((o) => {
      const c = podSpec(find(o, 'Deployment', 'tlsweep-worker')).containers[0];
      c.resources.requests.memory = '8Gi';
      c.resources.requests['nvidia.com/gpu'] = '1';
    }).join('\n');
    expect(p).toMatch(/memory request 8Gi exceeds its limit 4Gi/);
    expect(p).toMatch(/nvidia.com\/gpu is requested but has no limit/);
  });
  it('a duplicate container port, a mount without a volume, a PDB that selects nothing', () => {
    const p = withChange((o) => {
      const c = podSpec(find(o, 'StatefulSet', 'nats')).containers[0];
      c.ports.push({ name: 'again', containerPort: 4222 });
      c.volumeMounts.push({ name: 'missing', mountPath: '/x' });
      (find(o, 'PodDisruptionBudget', 'nats').spec as any).selector.matchLabels = { 'app.kubernetes.io/name': 'nope' }; // eslint-disable-line @typescript-eslint/no-explicit-any
    }).join('\n');
    expect(p).toMatch(/containerPort 4222\/TCP is declared twice/);
    expect(p).toMatch(/volumeMount missing names no volume/);
    expect(p).toMatch(/PodDisruptionBudget\/nats: spec.selector matches no pod template/);
  });
  it('a schema type error and an unknown (misspelt) field', () => {
    const p = withChange((o) => {
      const c = podSpec(find(o, 'Deployment', 'tlsweep-coordinator')).containers[0];
      c.ports[0].containerPort = '50051';
      podSpec(find(o, 'Deployment', 'tlsweep-worker')).tolerration = [];
    }).join('\n');
    expect(p).toMatch(/containerPort must be integer/);
    expect(p).toMatch(/unknown field spec.template.spec.tolerration/);
  });
  it('a ScaledObject with a numeric threshold and no consumer', () => {
    const objs = render('gpu');
    const t = (find(objs, 'ScaledObject', 'tlsweep-worker').spec as any).triggers[0]; // eslint-disable-line @typescript-eslint/no-explicit-any
    t.metadata.lagThreshold = 1;
    delete t.metadata.consumer;
    const p = manifestProblems(objs).join('\n');
    expect(p).toMatch(/lagThreshold must be a string/);
    expect(p).toMatch(/consumer is required/);
  });
  it('quantities', () => {
    expect(parseQuantity('500m')).toBe(0.5);
    expect(parseQuantity('4Gi')).toBe(4 * 2 ** 30);
    expect(parseQuantity('1')).toBe(1);
  });
});

describe('tlsweep k8s render (CLI)', () => {
  it('prints the checked gpu overlay plus an Indexed worker Job as YAML', () => {
    const yaml = execFileSync(process.execPath, ['--import', 'tsx', 'services/sweeper/src/main.ts', 'k8s', 'render', 'gpu', '--worker-job', '2'], { encoding: 'utf8' });
    const objs = parseAllDocuments(yaml).map((d) => d.toJS() as K8sObject);
    expect(objs).toEqual([...render('gpu'), expect.objectContaining({ kind: 'Job', spec: expect.objectContaining({ completionMode: 'Indexed', completions: 2 }) })]);
  });
});
