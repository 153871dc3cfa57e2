/**
 * `tlsweep k8s run`: a sweep as a Kubernetes batch job. Submits the sweep to
 * the coordinator, starts an Indexed Job of workers for it, prints progress
 * (trials over gRPC, the Job and its pods from the Kubernetes API), and when
 * the sweep ends deletes the Job. Fails with a reason — and cancels the sweep
 * and deletes the Job — when the pods cannot be scheduled or the Job fails.
 */
import { ApiException, BatchV1Api, CoreV1Api, type KubeConfig, type V1Job } from '@kubernetes/client-node';
import type { Sweep } from '../../../../proto/generated/tlsweep/v1/tlsweep.js';
import type { TlsweepClient } from '../client.js';
import { watchSweep } from '../commands/watch.js';
import { K8sError } from './errors.js';
import { watchJob } from './job-watch.js';
import { renderKustomization } from './kustomize.js';
import { explainUnschedulable, isScheduled, unschedulableMessage } from './unschedulable.js';
import { buildWorkerJob, jobNameFor, SWEEP_LABEL } from './worker-job.js';

export interface K8sRunOptions {
  /** The sweep spec, YAML or JSON. */
  spec: string;
  /** A connected coordinator client. */
  client: TlsweepClient;
  kubeConfig: KubeConfig;
  /** Namespace of the worker Job. */
  namespace: string;
  /** Kustomization directory whose worker Deployment gives the pod template. */
  overlayDir: string;
  /** At most this many worker pods (GPUs, one per pod). @default no cap: min(maxParallel, trials) */
  gpus?: number;
  /** Worker image instead of the overlay's. */
  image?: string;
  /** Job name. @default `tlsweep-<sweepId>` */
  jobName?: string;
  /** How long worker pods may stay Pending as Unschedulable, none of them running, before the run fails. @default 300000 */
  unschedulableTimeoutMs?: number;
  /** How often the Job's pods are listed. @default 5000 */
  podPollMs?: number;
  /** Progress lines. @default console.log */
  out?: (line: string) => void;
  /** Aborting it (Ctrl-C, SIGTERM) deletes the Job and cancels the sweep. */
  signal?: AbortSignal;
}

export interface K8sRunResult {
  sweep: Sweep;
  jobName: string;
  workers: number;
  /** Whether an existing Job of this sweep was adopted after a 409. */
  adopted: boolean;
}

const statusLine = (j: V1Job) => {
  const s = j.status ?? {};
  return `active ${s.active ?? 0}, ready ${s.ready ?? 0}, succeeded ${s.succeeded ?? 0}, failed ${s.failed ?? 0}`;
};

/** Runs one sweep on Kubernetes to its end; throws K8sError with the reason when it cannot. */
export async function runSweepOnKubernetes(o: K8sRunOptions): Promise<K8sRunResult> {
  const out = o.out ?? console.log;
  if (o.gpus !== undefined && (!Number.isInteger(o.gpus) || o.gpus < 1)) throw new K8sError('KUSTOMIZE_INVALID', `--gpus: must be an integer >= 1; got ${o.gpus}`);
  const rendered = renderKustomization(o.overlayDir);
  const batch = o.kubeConfig.makeApiClient(BatchV1Api);
  const core = o.kubeConfig.makeApiClient(CoreV1Api);
  const ns = o.namespace;

  const sweep = await o.client.submit(o.spec);
  const sweepId = sweep.sweepId;
  const maxParallel = Number((JSON.parse(sweep.specJson || '{}') as { maxParallel?: number }).maxParallel ?? 4);
  const workers = Math.max(1, Math.min(maxParallel, sweep.counts?.total ?? 1, o.gpus ?? Infinity));
  const name = o.jobName ?? jobNameFor(sweepId);
  const job = buildWorkerJob(rendered, { sweepId, workers, namespace: ns, name, image: o.image });
  out(`submitted ${sweepId} (${sweep.counts?.total ?? '?'} trials); starting Job ${ns}/${name} with ${workers} worker pod${workers === 1 ? '' : 's'}`);

  const cancel = (reason: string) => o.client.cancel(sweepId).then(
    () => out(`cancelled sweep ${sweepId}: ${reason}`),
    (err: Error) => out(`could not cancel sweep ${sweepId}: ${err.message}`),
  );

  let created: V1Job;
  let adopted = false;
  try {
    created = await batch.createNamespacedJob({ namespace: ns, body: job as V1Job });
  } catch (err) {
    if (err instanceof ApiException && err.code === 409) {
      // A Job of this name exists. Ours (same sweep label): adopt it. Anyone else's: never touch it.
      const existing = await batch.readNamespacedJob({ name, namespace: ns }).catch(() => null);
      const owner = existing?.metadata?.labels?.[SWEEP_LABEL];
      if (existing && owner === job.metadata.labels![SWEEP_LABEL]) {
        created = existing;
        adopted = true;
        out(`Job ${ns}/${name} already exists for sweep ${sweepId}: adopting it`);
      } else {
        await cancel('its worker Job could not be created');
        throw new K8sError('JOB_CONFLICT', `a Job named ${ns}/${name} already exists${owner ? ` for sweep ${owner}` : ' and was not started by tlsweep'}; delete it (kubectl -n ${ns} delete job ${name}) or pass --job-name`);
      }
    } else {
      await cancel('its worker Job could not be created');
      throw kubeError(err, `create Job ${ns}/${name}`);
    }
  }

  // Whichever ends first: the sweep, a Job failure, unschedulable pods, or a signal.
  let failure: ((e: K8sError) => void) | null = null;
  const failed = new Promise<never>((_, reject) => (failure = reject));
  failed.catch(() => undefined); // a failure after the sweep ended is nobody's to handle
  const fail = (e: K8sError) => failure!(e);
  let last = '';
  const jw = watchJob(o.kubeConfig, {
    namespace: ns, name, resourceVersion: created.metadata?.resourceVersion ?? '',
    relist: () => batch.readNamespacedJob({ name, namespace: ns }),
    onReconnect: (rv) => out(`  (Job watch reconnected at resourceVersion ${rv})`),
    onEvent: (type, j) => {
      if (type === 'DELETED') return fail(new K8sError('JOB_FAILED', `Job ${ns}/${name} was deleted while sweep ${sweepId} was running`));
      const line = statusLine(j);
      if (line !== last) out(`  Job ${name}: ${(last = line)}`);
      const f = j.status?.conditions?.find((c) => c.type === 'Failed' && c.status === 'True');
      if (f) fail(new K8sError('JOB_FAILED', `Job ${ns}/${name} failed: ${f.reason ?? ''} ${f.message ?? ''}`.trim()));
      return undefined;
    },
  });
  const pods = monitorPods(core, ns, `${SWEEP_LABEL}=${job.metadata.labels![SWEEP_LABEL]}`, o, out, fail);
  const onAbort = () => fail(new K8sError('SWEEP_FAILED', `interrupted; sweep ${sweepId} cancelled`));
  o.signal?.addEventListener('abort', onAbort, { once: true });

  let final: Sweep;
  try {
    final = await Promise.race([followSweep(o.client, sweepId, out), failed]);
  } catch (err) {
    const e = err instanceof K8sError ? err : new K8sError('KUBE_API', (err as Error).message, { cause: err });
    await cancel(e.message);
    throw e;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    jw.stop();
    pods.stop();
    await deleteJob(batch, ns, name, out);
  }
  if (final.status !== 'completed') throw new K8sError('SWEEP_FAILED', `sweep ${sweepId} ${final.status}${final.reason ? `: ${final.reason}` : ''}`);
  return { sweep: final, jobName: name, workers, adopted };
}

/** Follows the sweep to its end, re-watching if the coordinator restarts meanwhile. */
async function followSweep(client: TlsweepClient, sweepId: string, out: (l: string) => void): Promise<Sweep> {
  const deadline = () => Date.now() + 120_000;
  let giveUpAt = deadline();
  for (;;) {
    try {
      return await watchSweep(client, sweepId, out);
    } catch (err) {
      if (Date.now() > giveUpAt) throw new K8sError('KUBE_API', `lost the coordinator while following ${sweepId}: ${(err as Error).message}`);
      out(`  (sweep watch broke: ${(err as Error).message}; resuming)`);
      await new Promise((r) => setTimeout(r, 1000));
      const s = await client.get(sweepId).catch(() => null);
      if (s && s.finishedAtMs > 0) return s;
      if (s) giveUpAt = deadline();
    }
  }
}

function monitorPods(core: CoreV1Api, ns: string, labelSelector: string, o: K8sRunOptions, out: (l: string) => void, fail: (e: K8sError) => void) {
  const firstSeen = new Map<string, number>();
  let warned = false;
  let stopped = false;
  const timeout = o.unschedulableTimeoutMs ?? 300_000;
  const tick = async () => {
    const list = await core.listNamespacedPod({ namespace: ns, labelSelector }).catch((err: unknown) => {
      out(`  (listing pods failed: ${(err as Error).message})`);
      return null;
    });
    if (!list || stopped) return;
    const now = Date.now();
    const stuck = list.items.filter((p) => unschedulableMessage(p));
    const scheduled = list.items.filter(isScheduled).length;
    for (const p of list.items) if (!unschedulableMessage(p)) firstSeen.delete(p.metadata!.name!);
    for (const p of stuck) if (!firstSeen.has(p.metadata!.name!)) firstSeen.set(p.metadata!.name!, now);
    if (stuck.length === 0) return;
    const oldest = Math.min(...stuck.map((p) => firstSeen.get(p.metadata!.name!)!));
    const why = explainUnschedulable(unschedulableMessage(stuck[0])!, stuck[0]);
    if (scheduled === 0 && now - oldest >= timeout) {
      fail(new K8sError('UNSCHEDULABLE', `none of the ${list.items.length} worker pods could be scheduled in ${Math.round((now - oldest) / 1000)} s: ${why}`));
    } else if (scheduled > 0 && !warned) {
      warned = true;
      out(`  warning: ${stuck.length} of ${list.items.length} worker pods cannot be scheduled; the sweep goes on with the others. ${why}`);
    }
  };
  const timer = setInterval(() => void tick(), o.podPollMs ?? 5000);
  void tick();
  return { stop: () => { stopped = true; clearInterval(timer); } };
}

async function deleteJob(batch: BatchV1Api, ns: string, name: string, out: (l: string) => void): Promise<void> {
  try {
    // Background: the Job goes now, its pods get SIGTERM and drain (trials in hand go back to the queue).
    await batch.deleteNamespacedJob({ name, namespace: ns, propagationPolicy: 'Background' });
    out(`deleted Job ${ns}/${name}`);
  } catch (err) {
    if (err instanceof ApiException && err.code === 404) return;
    out(`could not delete Job ${ns}/${name}: ${(err as Error).message}; delete it with kubectl -n ${ns} delete job ${name}`);
  }
}

function kubeError(err: unknown, what: string): K8sError {
  if (err instanceof ApiException) {
    const body = typeof err.body === 'string' ? err.body : JSON.stringify(err.body);
    let msg = body;
    try {
      msg = (JSON.parse(body) as { message?: string }).message ?? body;
    } catch { /* not JSON */ }
    const hint = err.code === 403 ? ' (the sweeper needs the tlsweep-sweeper Role: create/get/watch/delete Jobs, read Pods)' : '';
    return new K8sError('KUBE_API', `${what}: HTTP ${err.code}: ${msg}${hint}`, { cause: err });
  }
  return new K8sError('KUBE_API', `${what}: ${(err as Error).message}`, { cause: err });
}
