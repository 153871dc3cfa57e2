import { readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import type { TlsweepClient } from '../client.js';
import { printLeaderboard } from './leaderboard.js';
import { manifestProblems } from '../k8s/api-rules.js';
import { K8sError } from '../k8s/errors.js';
import { runSweepOnKubernetes } from '../k8s/k8s-run.js';
import { overlayDir, renderKustomization, toYaml } from '../k8s/kustomize.js';
import { buildWorkerJob } from '../k8s/worker-job.js';

/**
 * `tlsweep k8s render <overlay> [--worker-job N]`: the overlay's objects as
 * YAML, checked first (a render that the API server would refuse is an
 * error). With --worker-job N, also an Indexed Job of N workers for users who
 * start workers by hand.
 */
export function renderCommand(overlay: string, opts: { workerJob?: number; namespace?: string }): string {
  const objs = renderKustomization(overlayDir(overlay));
  if (opts.workerJob) objs.push(buildWorkerJob(objs, { sweepId: 'manual', workers: opts.workerJob, namespace: opts.namespace ?? objs.find((o) => o.metadata.namespace)?.metadata.namespace ?? 'tlsweep', name: 'tlsweep-workers' }));
  const problems = manifestProblems(objs);
  if (problems.length) throw new K8sError('MANIFEST_INVALID', `the render of ${overlay} would be refused:\n  ${problems.join('\n  ')}`);
  return toYaml(objs);
}

export interface K8sRunCommandOptions {
  specFile: string;
  client: TlsweepClient;
  overlay: string;
  gpus?: number;
  namespace?: string;
  image?: string;
  jobName?: string;
  unschedulableTimeoutMs?: number;
}

/** `tlsweep k8s run`: exit code 0 when the sweep completed, 1 with the reason otherwise. */
export async function runCommand(o: K8sRunCommandOptions): Promise<number> {
  // KUBECONFIG, ~/.kube/config, or the pod's service account when run in the cluster.
  const kc = new KubeConfig();
  kc.loadFromDefault();
  const namespace = o.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'tlsweep';
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const r = await runSweepOnKubernetes({
      spec: readFileSync(o.specFile, 'utf8'), client: o.client, kubeConfig: kc, namespace,
      overlayDir: overlayDir(o.overlay), gpus: o.gpus, image: o.image, jobName: o.jobName,
      unschedulableTimeoutMs: o.unschedulableTimeoutMs, signal: abort.signal,
    });
    await printLeaderboard(o.client, { sweep: r.sweep.sweepId, top: 20 });
    return 0;
  } catch (err) {
    if (err instanceof K8sError) {
      console.error(`tlsweep k8s run: ${err.message} [${err.code}]`);
      return 1;
    }
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
