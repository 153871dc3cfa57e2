import { K8sError } from './errors.js';
import type { K8sObject } from './kustomize.js';

/** Label on a launcher's Job and its pods: the sweep they serve. */
export const SWEEP_LABEL = 'tlsweep.io/sweep';
/** The Deployment in the rendered overlay whose pod template the Job copies. */
export const WORKER_DEPLOYMENT = 'tlsweep-worker';

export interface WorkerJobOptions {
  /** The sweep the Job's workers are started for (labels, default name). */
  sweepId: string;
  /** Worker pods: the Job's completions and parallelism, one index each. */
  workers: number;
  /** Namespace of the Job. */
  namespace: string;
  /** Job name. @default `tlsweep-<sweepId>` (lower case, at most 63 characters) */
  name?: string;
  /** Worker image instead of the overlay's. @default the overlay's worker image */
  image?: string;
  /** Seconds a finished Job (and its pods' logs) stays before Kubernetes removes it. @default 3600 */
  ttlSecondsAfterFinished?: number;
}

/** The Job name the launcher uses for a sweep: a DNS label. */
export function jobNameFor(sweepId: string): string {
  return `tlsweep-${sweepId.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`.slice(0, 63).replace(/-+$/, '');
}

/**
 * The Indexed Job of workers for one sweep, built from the overlay's worker
 * Deployment so GPU requests, node selector, tolerations, image, volumes and
 * the drain grace period come from one place.
 *
 * - `restartPolicy: Never` with a pod-failure policy that ignores disruptions
 *   (eviction, preemption, node drain): those pods are replaced without
 *   using up `backoffLimit`, and a trial they held is redelivered by JetStream.
 * - One pod per index; each worker pulls trials until the launcher deletes the
 *   Job when the sweep ends (SIGTERM: the worker drains).
 */
export function buildWorkerJob(rendered: K8sObject[], o: WorkerJobOptions): K8sObject {
  if (!Number.isInteger(o.workers) || o.workers < 1) throw new K8sError('MANIFEST_INVALID', `workers: must be an integer >= 1; got ${o.workers}`);
  const dep = rendered.find((x) => x.kind === 'Deployment' && x.metadata.name === WORKER_DEPLOYMENT);
  if (!dep) throw new K8sError('KUSTOMIZE_INVALID', `the overlay has no Deployment ${WORKER_DEPLOYMENT} to take the worker pod template from`);
  const template = structuredClone((dep.spec as { template: { metadata?: { labels?: Record<string, string> }; spec: Record<string, unknown> } }).template);
  const name = o.name ?? jobNameFor(o.sweepId);
  const sweepLabel = o.sweepId.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 63);
  const labels = {
    'app.kubernetes.io/name': 'tlsweep-worker-job',
    'app.kubernetes.io/component': 'worker',
    'app.kubernetes.io/part-of': 'tlsweep',
    'app.kubernetes.io/managed-by': 'tlsweep-k8s-run',
    [SWEEP_LABEL]: sweepLabel,
  };
  // Not the Deployment's name label: its ReplicaSets must never count these pods.
  template.metadata = { ...template.metadata, labels: { ...template.metadata?.labels, ...labels } };
  const spec = template.spec;
  spec.restartPolicy = 'Never';
  if (o.image) {
    const containers = spec.containers as { name: string; image: string }[];
    const worker = containers.find((c) => c.name === 'worker') ?? containers[0];
    worker.image = o.image;
  }
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: o.namespace, labels, annotations: { 'tlsweep.io/sweep-id': o.sweepId } },
    spec: {
      completionMode: 'Indexed',
      completions: o.workers,
      parallelism: o.workers,
      // Crashing workers: a few retries per pod, then the Job fails and the launcher says so.
      backoffLimit: 3 * o.workers,
      ttlSecondsAfterFinished: o.ttlSecondsAfterFinished ?? 3600,
      podFailurePolicy: { rules: [{ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] }] },
      template,
    },
  };
}
