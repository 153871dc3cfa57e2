/**
 * A small kustomize: renders this repository's `deploy/k8s` overlays without
 * the kustomize binary, so tests can check every rendered object and users
 * without kustomize can `tlsweep k8s render gpu | kubectl apply -f -`.
 *
 * It implements exactly what those kustomizations use — `resources` (files
 * and directories), `namespace`, `labels` (pairs, not on selectors or
 * templates), `images`, and `patches` (strategic merge by file, JSON 6902 with
 * a target) — and fails loudly on any other field, so a kustomization that
 * grows past it cannot render differently from `kubectl apply -k` in silence.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { K8sError } from './errors.js';
import { applyJsonPatch } from './json-patch.js';
import { strategicMerge } from './strategic-merge.js';

/** A Kubernetes object as rendered: plain data. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

interface PatchTarget {
  group?: string;
  version?: string;
  kind?: string;
  name?: string;
  namespace?: string;
}

const KUSTOMIZATION_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'labels', 'images', 'patches']);
const KUSTOMIZATION_FILES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'];

/** Kinds without a namespace, among those a tlsweep deployment could hold. */
const CLUSTER_SCOPED = new Set([
  'Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PersistentVolume', 'StorageClass',
  'PriorityClass', 'RuntimeClass', 'IngressClass', 'MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration', 'APIService',
]);

/** kustomize's default ("legacy") output order, so `kubectl apply -f -` creates namespaces and RBAC first. */
const ORDER_FIRST = [
  'Namespace', 'ResourceQuota', 'StorageClass', 'CustomResourceDefinition', 'ServiceAccount', 'PodSecurityPolicy', 'Role',
  'ClusterRole', 'RoleBinding', 'ClusterRoleBinding', 'ConfigMap', 'Secret', 'Endpoints', 'Service', 'LimitRange',
  'PriorityClass', 'PersistentVolume', 'PersistentVolumeClaim', 'Deployment', 'StatefulSet', 'CronJob', 'PodDisruptionBudget',
];
const ORDER_LAST = ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'];

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

function readYamlDocs(file: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'));
  const out: unknown[] = [];
  for (const d of docs) {
    if (d.errors.length) throw new K8sError('KUSTOMIZE_INVALID', `${file}: ${d.errors[0].message}`);
    const v = d.toJS() as unknown;
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

function asObject(v: unknown, where: string): K8sObject {
  if (!isObj(v) || typeof v.apiVersion !== 'string' || typeof v.kind !== 'string' || !isObj(v.metadata) || typeof v.metadata.name !== 'string') {
    throw new K8sError('KUSTOMIZE_INVALID', `${where}: every resource needs apiVersion, kind and metadata.name`);
  }
  return v as K8sObject;
}

function findKustomization(dir: string): string {
  for (const f of KUSTOMIZATION_FILES) if (existsSync(join(dir, f))) return join(dir, f);
  throw new K8sError('KUSTOMIZE_INVALID', `${dir}: no kustomization.yaml`);
}

const gvk = (o: K8sObject) => {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  return { group, version, kind: o.kind };
};

function matches(o: K8sObject, t: PatchTarget): boolean {
  const g = gvk(o);
  return (t.group === undefined || t.group === g.group) && (t.version === undefined || t.version === g.version)
    && (t.kind === undefined || t.kind === g.kind) && (t.name === undefined || t.name === o.metadata.name)
    && (t.namespace === undefined || t.namespace === o.metadata.namespace);
}

/** Renders the kustomization in `dir` (an overlay or base) to its objects, in kustomize's output order. */
export function renderKustomization(dir: string): K8sObject[] {
  const objects = build(resolve(dir), new Set());
  const rank = (k: string) => (ORDER_FIRST.includes(k) ? ORDER_FIRST.indexOf(k) : ORDER_LAST.includes(k) ? 1000 + ORDER_LAST.indexOf(k) : 500);
  // Stable sort: within a kind, objects keep the order of their resources.
  return objects.map((o, i) => ({ o, i })).sort((a, b) => rank(a.o.kind) - rank(b.o.kind) || a.i - b.i).map((x) => x.o);
}

function build(dir: string, seen: Set<string>): K8sObject[] {
  if (seen.has(dir)) throw new K8sError('KUSTOMIZE_INVALID', `${dir}: kustomization includes itself`);
  seen = new Set(seen).add(dir);
  const file = findKustomization(dir);
  const [k] = readYamlDocs(file);
  if (!isObj(k)) throw new K8sError('KUSTOMIZE_INVALID', `${file}: not a mapping`);
  for (const key of Object.keys(k)) {
    if (!KUSTOMIZATION_FIELDS.has(key)) {
      throw new K8sError('KUSTOMIZE_UNSUPPORTED', `${file}: field ${JSON.stringify(key)} is not supported by tlsweep's renderer (supported: ${[...KUSTOMIZATION_FIELDS].join(', ')}); use \`kubectl apply -k\``);
    }
  }
  if (k.kind !== undefined && k.kind !== 'Kustomization') throw new K8sError('KUSTOMIZE_UNSUPPORTED', `${file}: kind ${String(k.kind)} is not supported (only Kustomization)`);

  let objects: K8sObject[] = [];
  for (const r of list<string>(k.resources, `${file}: resources`)) {
    if (typeof r !== 'string' || /^[a-z]+:\/\//.test(r)) throw new K8sError('KUSTOMIZE_UNSUPPORTED', `${file}: resource ${JSON.stringify(r)}: only local files and directories are supported`);
    const p = resolve(dir, r);
    if (!existsSync(p)) throw new K8sError('KUSTOMIZE_INVALID', `${file}: resource ${r} does not exist`);
    if (statSync(p).isDirectory()) objects.push(...build(p, seen));
    else objects.push(...readYamlDocs(p).map((d) => asObject(d, p)));
  }
  objects = applyPatches(objects, k.patches, dir, file);
  if (k.namespace !== undefined) objects = setNamespace(objects, String(k.namespace));
  objects = applyLabels(objects, k.labels, file);
  objects = applyImages(objects, k.images, file);
  return objects;
}

function list<T>(v: unknown, where: string): T[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new K8sError('KUSTOMIZE_INVALID', `${where} must be a list`);
  return v as T[];
}

function applyPatches(objects: K8sObject[], patches: unknown, dir: string, file: string): K8sObject[] {
  for (const [i, p] of list<Record<string, unknown>>(patches, `${file}: patches`).entries()) {
    const where = `${file}: patches[${i}]`;
    if (!isObj(p)) throw new K8sError('KUSTOMIZE_INVALID', `${where} must be a mapping`);
    for (const key of Object.keys(p)) if (!['path', 'patch', 'target'].includes(key)) throw new K8sError('KUSTOMIZE_UNSUPPORTED', `${where}: field ${key} is not supported (path, patch, target)`);
    if ((p.path === undefined) === (p.patch === undefined)) throw new K8sError('KUSTOMIZE_INVALID', `${where}: give exactly one of path and patch`);
    const text = p.path !== undefined ? readFileSync(resolve(dir, String(p.path)), 'utf8') : String(p.patch);
    const docs = parseAllDocuments(text).map((d) => d.toJS() as unknown).filter((d) => d !== null);
    if (docs.length !== 1) throw new K8sError('KUSTOMIZE_UNSUPPORTED', `${where}: a patch must hold exactly one document`);
    const body = docs[0];
    if (p.target !== undefined && !isObj(p.target)) throw new K8sError('KUSTOMIZE_INVALID', `${where}: target must be a mapping`);
    const target = p.target as PatchTarget | undefined;
    if (target) {
      for (const key of Object.keys(target)) {
        if (!['group', 'version', 'kind', 'name', 'namespace'].includes(key)) throw new K8sError('KUSTOMIZE_UNSUPPORTED', `${where}: target.${key} is not supported (group, version, kind, name, namespace)`);
      }
    }
    let hits = 0;
    if (Array.isArray(body)) {
      // JSON 6902: a list of operations, applied to every object the target selects.
      if (!target) throw new K8sError('KUSTOMIZE_INVALID', `${where}: a JSON 6902 patch needs a target`);
      objects = objects.map((o) => (matches(o, target) ? (hits++, applyJsonPatch(o, body)) : o));
    } else {
      // Strategic merge: the patch names its object by apiVersion, kind and name (or a target selects).
      const patch = asObject(body, where);
      const t: PatchTarget = target ?? { ...gvk(patch), name: patch.metadata.name, namespace: patch.metadata.namespace };
      objects = objects.map((o) => (matches(o, t) ? (hits++, strategicMerge(o, patch) as K8sObject) : o));
    }
    if (hits === 0) throw new K8sError('KUSTOMIZE_INVALID', `${where}: the patch matches no resource`);
  }
  return objects;
}

function setNamespace(objects: K8sObject[], ns: string): K8sObject[] {
  return objects.map((o) => {
    if (CLUSTER_SCOPED.has(o.kind)) return o;
    const c = structuredClone(o);
    const old = c.metadata.namespace;
    c.metadata.namespace = ns;
    // As kustomize does: ServiceAccount subjects of bindings follow the namespace they were in.
    if ((c.kind === 'RoleBinding' || c.kind === 'ClusterRoleBinding') && Array.isArray(c.subjects)) {
      for (const s of c.subjects as Record<string, unknown>[]) if (s.kind === 'ServiceAccount' && (s.namespace === undefined || s.namespace === old)) s.namespace = ns;
    }
    return c;
  });
}

function applyLabels(objects: K8sObject[], labels: unknown, file: string): K8sObject[] {
  let out = objects;
  for (const [i, l] of list<Record<string, unknown>>(labels, `${file}: labels`).entries()) {
    const where = `${file}: labels[${i}]`;
    if (!isObj(l) || !isObj(l.pairs)) throw new K8sError('KUSTOMIZE_INVALID', `${where} needs pairs`);
    for (const key of Object.keys(l)) if (!['pairs', 'includeSelectors', 'includeTemplates'].includes(key)) throw new K8sError('KUSTOMIZE_UNSUPPORTED', `${where}: field ${key} is not supported`);
    // Selectors are immutable on Deployments and StatefulSets: labels there would make a later change un-appliable.
    if (l.includeSelectors === true || l.includeTemplates === true) throw new K8sError('KUSTOMIZE_UNSUPPORTED', `${where}: includeSelectors/includeTemplates: true is not supported`);
    const pairs = Object.fromEntries(Object.entries(l.pairs).map(([k, v]) => [k, String(v)]));
    out = out.map((o) => {
      const c = structuredClone(o);
      c.metadata.labels = { ...c.metadata.labels, ...pairs };
      return c;
    });
  }
  return out;
}

interface ImageRule {
  name: string;
  newName?: string;
  newTag?: string;
  digest?: string;
}

/** Splits `registry/name:tag@digest` into name, tag and digest. */
export function parseImage(ref: string): { name: string; tag?: string; digest?: string } {
  const [rest, digest] = ref.split('@');
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  return colon > slash ? { name: rest.slice(0, colon), tag: rest.slice(colon + 1), digest } : { name: rest, digest };
}

function applyImages(objects: K8sObject[], images: unknown, file: string): K8sObject[] {
  const rules = list<ImageRule>(images, `${file}: images`);
  for (const [i, r] of rules.entries()) {
    if (!isObj(r) || typeof r.name !== 'string') throw new K8sError('KUSTOMIZE_INVALID', `${file}: images[${i}] needs name`);
    for (const key of Object.keys(r)) if (!['name', 'newName', 'newTag', 'digest'].includes(key)) throw new K8sError('KUSTOMIZE_UNSUPPORTED', `${file}: images[${i}].${key} is not supported`);
  }
  if (rules.length === 0) return objects;
  const rewrite = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(rewrite);
    if (!isObj(node)) return;
    for (const [k, v] of Object.entries(node)) {
      if ((k === 'containers' || k === 'initContainers') && Array.isArray(v)) {
        for (const c of v) {
          if (!isObj(c) || typeof c.image !== 'string') continue;
          const img = parseImage(c.image);
          const r = rules.find((x) => x.name === img.name);
          if (!r) continue;
          const name = r.newName ?? img.name;
          c.image = r.digest ? `${name}@${r.digest}` : `${name}${r.newTag ?? img.tag ? `:${r.newTag ?? img.tag}` : ''}${!r.newTag && img.digest ? `@${img.digest}` : ''}`;
        }
      }
      rewrite(v);
    }
  };
  return objects.map((o) => {
    const c = structuredClone(o);
    rewrite(c);
    return c;
  });
}

/** Objects as one multi-document YAML stream, as `kustomize build` prints them. */
export function toYaml(objects: K8sObject[]): string {
  return objects.map((o) => stringify(o, { lineWidth: 0 })).join('---\n');
}

/** The repository's deploy/k8s folder. */
export const K8S_DIR = resolve(dirname(new URL(import.meta.url).pathname), '../../../../deploy/k8s');

/** An overlay name (`dev`, `gpu`) or a path to a kustomization directory. */
export function overlayDir(overlay: string): string {
  if (/^[a-z0-9-]+$/.test(overlay) && existsSync(join(K8S_DIR, 'overlays', overlay))) return join(K8S_DIR, 'overlays', overlay);
  if (existsSync(overlay)) return resolve(overlay);
  throw new K8sError('KUSTOMIZE_INVALID', `overlay ${JSON.stringify(overlay)}: not one of dev, gpu, and no such directory`);
}
