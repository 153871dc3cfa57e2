import { K8sError } from './errors.js';

/** One RFC 6902 operation, of the kinds kustomize overlays here use. */
export interface JsonPatchOp {
  op: 'add' | 'remove' | 'replace' | 'test';
  path: string;
  value?: unknown;
}

const SUPPORTED = ['add', 'remove', 'replace', 'test'];

/** RFC 6901 pointer to its reference tokens. */
function tokens(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new K8sError('KUSTOMIZE_INVALID', `JSON patch path ${JSON.stringify(path)} must start with '/'`);
  return path.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

type Container = Record<string, unknown> | unknown[];

function child(parent: unknown, token: string, path: string): unknown {
  if (Array.isArray(parent)) {
    const i = Number(token);
    if (!/^\d+$/.test(token) || i >= parent.length) throw new K8sError('KUSTOMIZE_INVALID', `JSON patch path ${path}: no element ${token}`);
    return parent[i];
  }
  if (parent && typeof parent === 'object' && Object.hasOwn(parent, token)) return (parent as Record<string, unknown>)[token];
  throw new K8sError('KUSTOMIZE_INVALID', `JSON patch path ${path}: no field ${JSON.stringify(token)}`);
}

/**
 * Applies RFC 6902 operations (add, remove, replace, test) to a copy of `doc`.
 * A path that does not exist is an error, as in kustomize: a patch that
 * silently does nothing hides a renamed field.
 */
export function applyJsonPatch<T>(doc: T, ops: unknown): T {
  if (!Array.isArray(ops)) throw new K8sError('KUSTOMIZE_INVALID', 'a JSON 6902 patch must be a list of operations');
  const out = structuredClone(doc) as unknown;
  for (const raw of ops as JsonPatchOp[]) {
    if (!raw || typeof raw !== 'object' || typeof raw.path !== 'string') throw new K8sError('KUSTOMIZE_INVALID', `JSON patch operation needs op and path; got ${JSON.stringify(raw)}`);
    if (!SUPPORTED.includes(raw.op)) throw new K8sError('KUSTOMIZE_UNSUPPORTED', `JSON patch op ${JSON.stringify(raw.op)} is not supported (supported: ${SUPPORTED.join(', ')})`);
    const toks = tokens(raw.path);
    if (toks.length === 0) throw new K8sError('KUSTOMIZE_UNSUPPORTED', 'JSON patch on the whole document is not supported');
    let parent: unknown = out;
    for (const t of toks.slice(0, -1)) parent = child(parent, t, raw.path);
    const last = toks.at(-1)!;
    if (!parent || typeof parent !== 'object') throw new K8sError('KUSTOMIZE_INVALID', `JSON patch path ${raw.path}: parent is not an object or list`);
    const p = parent as Container;
    if (raw.op === 'test') {
      if (JSON.stringify(child(p, last, raw.path)) !== JSON.stringify(raw.value)) throw new K8sError('KUSTOMIZE_INVALID', `JSON patch test failed at ${raw.path}`);
      continue;
    }
    if (Array.isArray(p)) {
      const i = last === '-' ? p.length : Number(last);
      if (!Number.isInteger(i) || i < 0 || i > p.length || (raw.op !== 'add' && i >= p.length)) throw new K8sError('KUSTOMIZE_INVALID', `JSON patch path ${raw.path}: index ${last} out of range`);
      if (raw.op === 'add') p.splice(i, 0, structuredClone(raw.value));
      else if (raw.op === 'remove') p.splice(i, 1);
      else p[i] = structuredClone(raw.value);
    } else {
      if (raw.op !== 'add' && !Object.hasOwn(p, last)) throw new K8sError('KUSTOMIZE_INVALID', `JSON patch ${raw.op} ${raw.path}: no field ${JSON.stringify(last)}`);
      if (raw.op === 'remove') delete p[last];
      else p[last] = structuredClone(raw.value);
    }
  }
  return out as T;
}
