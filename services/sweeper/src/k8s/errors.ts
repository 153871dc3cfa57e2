/** Stable codes for what can go wrong rendering manifests or running a sweep on Kubernetes. */
export type K8sErrorCode =
  /** A kustomization uses a field or patch form this renderer does not implement. */
  | 'KUSTOMIZE_UNSUPPORTED'
  /** A kustomization, resource or patch is malformed or refers to something missing. */
  | 'KUSTOMIZE_INVALID'
  /** A rendered object breaks the Kubernetes schema or an API-server rule. */
  | 'MANIFEST_INVALID'
  /** The worker Job's pods cannot be scheduled (e.g. no node has the GPUs asked for). */
  | 'UNSCHEDULABLE'
  /** A Job with the name the launcher wants already exists and is not this sweep's. */
  | 'JOB_CONFLICT'
  /** The sweep ended failed or cancelled. */
  | 'SWEEP_FAILED'
  /** The worker Job failed (its pods kept failing). */
  | 'JOB_FAILED'
  /** A Kubernetes API call failed. */
  | 'KUBE_API';

/** An error from tlsweep's Kubernetes tooling; `code` is stable, the message says what to do. */
export class K8sError extends Error {
  constructor(readonly code: K8sErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'K8sError';
  }
}
