import { K8sError } from './errors.js';

/**
 * Merge keys of the lists this project's patches touch, as the Kubernetes API
 * declares them (`patchMergeKey`). Any other list is replaced whole, which is
 * what a strategic merge does with lists that have no merge key (tolerations,
 * args, command).
 */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'name',
  imagePullSecrets: 'name',
  volumeClaimTemplates: 'metadata.name',
  ports: 'containerPort',
};

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);
const keyOf = (item: unknown, key: string): unknown => key.split('.').reduce<unknown>((o, k) => (isObj(o) ? o[k] : undefined), item);

/**
 * A strategic-merge patch for the simple cases: maps merge recursively, `null`
 * deletes a field, lists with a merge key (see MERGE_KEYS) merge item by item,
 * other lists are replaced. Patch directives (`$patch`, `$setElementOrder`,
 * `$retainKeys`, `$deleteFromPrimitiveList`) are refused rather than ignored.
 */
export function strategicMerge(base: unknown, patch: unknown, path = ''): unknown {
  if (!isObj(patch)) return structuredClone(patch);
  const out: Obj = isObj(base) ? structuredClone(base) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$')) throw new K8sError('KUSTOMIZE_UNSUPPORTED', `strategic-merge directive ${k} at ${path || '/'} is not supported; use a JSON 6902 patch`);
    if (v === null) {
      delete out[k];
      continue;
    }
    const here = `${path}/${k}`;
    if (Array.isArray(v) && MERGE_KEYS[k] && Array.isArray(out[k])) out[k] = mergeList(out[k] as unknown[], v, MERGE_KEYS[k], here);
    else if (isObj(v)) out[k] = strategicMerge(out[k], v, here);
    else out[k] = structuredClone(v);
  }
  return out;
}

function mergeList(base: unknown[], patch: unknown[], key: string, path: string): unknown[] {
  const out = structuredClone(base);
  for (const item of patch) {
    const id = keyOf(item, key);
    if (id === undefined) throw new K8sError('KUSTOMIZE_INVALID', `strategic-merge patch: an item of ${path} has no ${key}, its merge key`);
    const i = out.findIndex((b) => keyOf(b, key) === id);
    if (i >= 0) out[i] = strategicMerge(out[i], item, `${path}[${key}=${String(id)}]`);
    else out.push(structuredClone(item));
  }
  return out;
}
