import type { V1Pod } from '@kubernetes/client-node';

/** The scheduler's reason when a pod is Pending because no node can take it; null otherwise. */
export function unschedulableMessage(pod: V1Pod): string | null {
  if (pod.status?.phase !== 'Pending') return null;
  const c = pod.status.conditions?.find((x) => x.type === 'PodScheduled' && x.status === 'False' && x.reason === 'Unschedulable');
  return c ? c.message || 'no node can run it' : null;
}

/** True once the pod has a node (or has run). */
export function isScheduled(pod: V1Pod): boolean {
  if (pod.spec?.nodeName) return true;
  if (pod.status?.phase && pod.status.phase !== 'Pending') return true;
  return !!pod.status?.conditions?.some((x) => x.type === 'PodScheduled' && x.status === 'True');
}

/**
 * Says in plain words why worker pods cannot be scheduled, from the
 * scheduler's message (e.g. "0/3 nodes are available: 3 Insufficient
 * nvidia.com/gpu.") and what the pods ask for.
 */
export function explainUnschedulable(message: string, pod: V1Pod): string {
  const c = pod.spec?.containers?.[0];
  const gpus = c?.resources?.limits?.['nvidia.com/gpu'];
  if (/nvidia\.com\/gpu/.test(message)) {
    return `no node has a free nvidia.com/gpu (each worker pod asks for ${gpus ?? 1}); the scheduler says: "${message}". `
      + 'Check that the cluster has GPU nodes with the NVIDIA device plugin, or ask for fewer with --gpus.';
  }
  if (/node affinity|node selector|nodeSelector|didn't match Pod's node/i.test(message)) {
    return `no node matches the worker pods' node selector ${JSON.stringify(pod.spec?.nodeSelector ?? {})}; the scheduler says: "${message}".`;
  }
  if (/taint/i.test(message)) return `every node has a taint the worker pods do not tolerate; the scheduler says: "${message}".`;
  if (/Insufficient (cpu|memory)/.test(message)) {
    return `no node has the CPU or memory a worker pod requests (${JSON.stringify(c?.resources?.requests ?? {})}); the scheduler says: "${message}".`;
  }
  return `the worker pods cannot be scheduled; the scheduler says: "${message}".`;
}
