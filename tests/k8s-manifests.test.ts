import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { K8S_DIR, overlayDir, renderKustomization, toYaml, type K8sObject } from '../services/sweeper/src/k8s/kustomize.js';
import { manifestProblems, parseQuantity } from '../services/sweeper/src/k8s/api-rules.js';
import { buildWorkerJob } from '../services/sweeper/src/k8s/worker-job.js';
import { TRIAL_STREAM, WORKER_CONSUMER } from '../services/coordinator/src/queue/names.js';
import { findNatsServer, startNatsServer } from '../services/sweeper/src/nats-server.js';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { loadConfig as loadCoordinatorConfig, natsAuthOptions, startCoordinator, startGrpcServer, type RunningCoordinator, type TrialTaskV1 } from '../services/coordinator/src/index.js';
import { loadConfig as loadWorkerConfig, ObjectFeatureStore, Reporter } from '../services/worker/src/index.js';
import { resolveClientAuth } from '../services/sweeper/src/config.js';
import { TlsweepClient } from '../services/sweeper/src/client.js';
import { makeTestPki } from './helpers/test-pki.js';
import { containerEnv, recordingEnv, type SecretData } from './helpers/k8s-pod-env.js';

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

/**
 * The manifests against the code that reads them: every TLSWEEP_* variable a
 * container gets is read by that service's config loader, and the coordinator,
 * a worker and the sweeper started from exactly the env (and Secret files) of
 * their containers talk to each other over TLS with tokens, through a NATS
 * server with the ConfigMap's auth block.
 */
describe('env contract: manifests ↔ config modules', () => {
  const pki = makeTestPki();
  const secrets: SecretData = {
    'tlsweep-auth': { 'operator-token': 'op-' + randomBytes(8).toString('hex'), 'worker-token': 'wk-' + randomBytes(8).toString('hex'), 'reader-token': 'rd-' + randomBytes(8).toString('hex'), 'lease-secret': randomBytes(16).toString('hex') },
    'tlsweep-coordinator-tls': { 'tls.crt': pki.read(pki.serverCertFile), 'tls.key': pki.read(pki.serverKeyFile), 'ca.crt': pki.read(pki.caFile) },
    // `pw` first, as the README makes them: nats-server parses a `$VAR` value as config (`8e31...` is a number).
    'tlsweep-nats-auth': { 'coordinator-password': 'pw' + randomBytes(12).toString('hex'), 'worker-password': 'pw' + randomBytes(12).toString('hex') },
  };
  const root = mkdtempSync(join(tmpdir(), 'tlsweep-podenv-'));
  afterAll(() => {
    pki.remove();
    rmSync(root, { recursive: true, force: true });
  });
  const tok = (k: string) => secrets['tlsweep-auth'][k] as string;
  const configSource = readdirSync(join(import.meta.dirname, '..', 'services'), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('/config.ts'))
    .map((f) => readFileSync(join(import.meta.dirname, '..', 'services', f), 'utf8'))
    .join('\n');
  const nightly = () => find(renderKustomization(join(K8S_DIR, 'examples/nightly')), 'CronJob', 'tlsweep-nightly');
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const cronPod = (o: K8sObject) => (o.spec as any).jobTemplate.spec.template.spec;
  const tlsweepNames = (env: Record<string, string>) => Object.keys(env).filter((k) => k.startsWith('TLSWEEP_'));
  const portOf = (address: string) => Number(address.slice(address.lastIndexOf(':') + 1));

  /** Runs `load` on the recorded env; every TLSWEEP_* name must be read by it and appear in a config.ts. */
  function expectAllRead(what: string, env: Record<string, string>, load: (env: NodeJS.ProcessEnv) => void): void {
    const r = recordingEnv(env);
    load(r.env);
    const names = tlsweepNames(env);
    expect(names.length, what).toBeGreaterThan(1);
    for (const n of names) {
      expect(r.read.has(n), `${what}: ${n} is set but its config loader never reads it`).toBe(true);
      expect(new RegExp(`(?<![A-Z0-9_])${n}(?![A-Z0-9_])`).test(configSource), `${what}: ${n} is in no config.ts`).toBe(true);
    }
  }

  for (const overlay of OVERLAYS) {
    it(`${overlay}: every TLSWEEP_* variable of the coordinator, the workers (Deployment and Job) and NATS is read, with the Secrets' files`, () => {
      const objs = render(overlay);
      const coordPod = podSpec(find(objs, 'Deployment', 'tlsweep-coordinator'));
      const coordEnv = containerEnv(coordPod, 'coordinator', secrets, join(root, overlay));
      expectAllRead(`${overlay} coordinator`, coordEnv, (e) => loadCoordinatorConfig(e));
      const cfg = loadCoordinatorConfig(coordEnv);
      expect(cfg.tls?.cert.equals(pki.read(pki.serverCertFile))).toBe(true);
      expect(cfg.tokens).toEqual({ operator: [tok('operator-token')], worker: [tok('worker-token')], reader: [tok('reader-token')] });
      expect(cfg.leaseSecret).toBe(tok('lease-secret'));
      expect(cfg.natsAuth).toEqual({ user: 'coordinator', pass: secrets['tlsweep-nats-auth']['coordinator-password'] });
      // The ports it listens on are the ones the pod declares, probes and Prometheus use.
      const c = coordPod.containers[0];
      const port = (name: string) => c.ports.find((p: { name: string }) => p.name === name).containerPort;
      expect(portOf(cfg.grpcAddress)).toBe(port('grpc'));
      expect(c.readinessProbe.grpc.port).toBe(port('grpc'));
      expect(portOf(cfg.httpAddress!)).toBe(port('http'));
      const ann = find(objs, 'Deployment', 'tlsweep-coordinator').spec as any; // eslint-disable-line @typescript-eslint/no-explicit-any
      expect(ann.template.metadata.annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(port('http')), 'prometheus.io/path': '/metrics' });
      const svc = (find(objs, 'Service', 'tlsweep-coordinator').spec as any).ports; // eslint-disable-line @typescript-eslint/no-explicit-any
      expect(svc.map((p: { targetPort: string }) => p.targetPort)).toEqual(['grpc', 'http']);

      const job = buildWorkerJob(objs, { sweepId: 's1', workers: 2, namespace: 'tlsweep' });
      for (const [what, pod] of [['Deployment', podSpec(find(objs, 'Deployment', 'tlsweep-worker'))], ['Job', podSpec(job)]] as const) {
        const env = containerEnv(pod, 'worker', secrets, join(root, overlay, what));
        expectAllRead(`${overlay} worker ${what}`, env, (e) => loadWorkerConfig(e));
        const w = loadWorkerConfig(env);
        expect(w.token).toBe(tok('worker-token'));
        expect(w.tls?.ca?.equals(pki.read(pki.caFile))).toBe(true);
        expect(w.natsAuth).toEqual({ user: 'worker', pass: secrets['tlsweep-nats-auth']['worker-password'] });
        expect(portOf(w.metricsAddress)).toBe(pod.containers[0].ports.find((p: { name: string }) => p.name === 'metrics').containerPort);
        // A worker gets its own token and the CA, never the other roles' tokens or the server key.
        const files = pod.volumes.filter((v: { secret?: unknown }) => v.secret).flatMap((v: { secret: { items?: { key: string }[] } }) => v.secret.items?.map((i) => i.key) ?? ['*']);
        expect(files.sort()).toEqual(['ca.crt', 'worker-token']);
      }
      expect((job.spec as any).template.metadata.annotations['prometheus.io/port']).toBe('9464'); // eslint-disable-line @typescript-eslint/no-explicit-any

      const natsEnv = containerEnv(podSpec(find(objs, 'StatefulSet', 'nats')), 'nats', secrets, join(root, overlay));
      const natsConf = Object.values(find(objs, 'ConfigMap', 'nats-config').data as Record<string, string>).join('\n');
      for (const n of tlsweepNames(natsEnv)) expect(natsConf, `nats: ${n}`).toContain(`$${n}`);
    });
  }

  it('the nightly CronJob (the launcher) reads its operator token and the CA; nothing it is given goes unread', () => {
    const pod = cronPod(nightly());
    const env = containerEnv(pod, 'sweeper', secrets, join(root, 'cron'));
    expectAllRead('sweeper', env, (e) => resolveClientAuth(undefined, e));
    const auth = resolveClientAuth(undefined, env);
    expect(auth.token).toBe(tok('operator-token'));
    expect(auth.tls?.ca?.equals(pki.read(pki.caFile))).toBe(true);
  });

  it('started from their containers\' env: the coordinator passes its exposure guards on 0.0.0.0, a worker and the sweeper reach it over TLS with their tokens', async () => {
    const objs = render('gpu');
    const at = (name: string) => join(root, 'live', name);
    const coordEnv = containerEnv(podSpec(find(objs, 'Deployment', 'tlsweep-coordinator')), 'coordinator', secrets, at('coordinator'));
    const workerEnv = containerEnv(podSpec(find(objs, 'Deployment', 'tlsweep-worker')), 'worker', secrets, at('worker'));
    const sweeperEnv = containerEnv(cronPod(nightly()), 'sweeper', secrets, at('sweeper'));
    const natsEnv = containerEnv(podSpec(find(objs, 'StatefulSet', 'nats')), 'nats', secrets, at('nats'));
    // A single JetStream server with the ConfigMap's client auth (the cluster block needs the other two pods).
    const dir = at('nats-server');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'auth.conf'), (find(objs, 'ConfigMap', 'nats-config').data as Record<string, string>)['auth.conf']);
    writeFileSync(join(dir, 'nats.conf'), 'include ./auth.conf\n');
    const nats = await startNatsServer({ configFile: join(dir, 'nats.conf'), storeDir: join(dir, 'js'), env: natsEnv });
    // Same hosts (0.0.0.0), free ports, one NATS server (so one replica); everything else as in the manifest.
    const cfg = loadCoordinatorConfig({
      ...coordEnv, TLSWEEP_NATS_URL: nats.url, TLSWEEP_GRPC_ADDRESS: '0.0.0.0:0', TLSWEEP_HTTP_ADDRESS: '0.0.0.0:0', TLSWEEP_KV_REPLICAS: '1', TLSWEEP_FEATURE_STORE_MB: '4',
    });
    let coord: RunningCoordinator | undefined;
    let workerNc: NatsConnection | undefined;
    try {
      coord = await startCoordinator(cfg);
      // The guard is real: the same address without TLS is refused.
      await expect(startGrpcServer(coord.coordinator, { address: '0.0.0.0:0', tls: null, tokens: cfg.tokens })).rejects.toThrow(/refusing insecure gRPC/);
      const address = `localhost:${coord.port}`; // the test certificate names localhost; in the cluster, tlsweep-coordinator
      const sweeper = new TlsweepClient(address, resolveClientAuth(undefined, sweeperEnv));
      const sweep = await sweeper.submit('name: k8s-env\ndataset: {kind: synthetic}\nbackbones: [tiny_cnn]\nunfreeze: [0]\nlearningRates: [0.01]\ndropouts: [0.1]');
      sweeper.close();

      const w = loadWorkerConfig({ ...workerEnv, TLSWEEP_NATS_URL: nats.url, TLSWEEP_COORDINATOR: address });
      workerNc = await connect({ servers: w.natsUrl, ...natsAuthOptions(w.natsAuth) });
      const msg = await (await jetstream(workerNc).consumers.get(TRIAL_STREAM, WORKER_CONSUMER)).next({ expires: 3000 });
      const task = msg!.json<TrialTaskV1>(); // one trial: a unit of one travels as a v1 message
      expect(task.config.sweepId).toBe(sweep.sweepId);
      // The worker's login reaches the feature bucket the coordinator created.
      await ObjectFeatureStore.open(workerNc);
      const reporter = new Reporter({ address: w.coordinator, token: w.token, tls: w.tls, retryMs: 0 });
      const decision = await reporter.trialStarted({ trialId: task.config.trialId, attempt: 1, worker: w.workerId, backend: 'none', pretrained: false, weightsSource: 'none', resumedEpochs: 0 });
      reporter.close();
      expect(decision.action).toBe('CONTINUE');
      expect(decision.leaseToken).not.toBe('');
      msg!.term();

      // Dashboard: the API wants a reader token, /metrics (Prometheus) does not.
      const dash = `http://127.0.0.1:${coord.dashboard!.port}`;
      expect((await fetch(`${dash}/api/sweeps`)).status).toBe(401);
      expect((await fetch(`${dash}/api/sweeps`, { headers: { authorization: `Bearer ${tok('reader-token')}` } })).status).toBe(200);
      expect(await (await fetch(`${dash}/metrics`)).text()).toMatch(/^# HELP/m);
    } finally {
      await workerNc?.close();
      await coord?.stop();
      await nats.stop();
    }
  });
});
