/**
 * Rules the API server (or the controllers behind it) enforces that the
 * OpenAPI schemas miss, plus cross-object consistency a render must have
 * (selectors that select, references that resolve). Each problem names the
 * object and the field.
 */
import type { K8sObject } from './kustomize.js';
import { schemaProblems } from './schema-check.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
interface PodTemplate { metadata?: { labels?: Record<string, string> }; spec: Obj }

/** Parses a Kubernetes quantity ("500m", "4Gi", "1") to a number of base units. */
export function parseQuantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = /^([0-9.]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.exec(q.trim());
  if (!m) throw new Error(`not a quantity: ${JSON.stringify(q)}`);
  const mult: Record<string, number> = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
  return Number(m[1]) * (m[2] ? mult[m[2]] : 1);
}

/** A label selector (matchLabels + matchExpressions) against a set of labels. */
export function selects(sel: Obj | undefined, labels: Record<string, string> = {}): boolean {
  if (!sel) return false;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of (sel.matchExpressions ?? []) as { key: string; operator: string; values?: string[] }[]) {
    const has = Object.hasOwn(labels, e.key);
    const ok = e.operator === 'In' ? has && e.values!.includes(labels[e.key])
      : e.operator === 'NotIn' ? !has || !e.values!.includes(labels[e.key])
      : e.operator === 'Exists' ? has : e.operator === 'DoesNotExist' ? !has : false;
    if (!ok) return false;
  }
  return true;
}

/** The pod templates an object holds (workloads, Jobs, CronJobs). */
export function podTemplates(o: K8sObject): PodTemplate[] {
  const spec = o.spec as Obj | undefined;
  if (!spec) return [];
  if (o.kind === 'CronJob') return spec.jobTemplate?.spec?.template ? [spec.jobTemplate.spec.template] : [];
  return spec.template ? [spec.template] : [];
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const EXTENDED = (name: string) => name.includes('/') && !name.startsWith('kubernetes.io/') && !name.startsWith('requests.') && !name.startsWith('hugepages-');

function podSpecProblems(id: string, spec: Obj, claimTemplates: string[] = []): string[] {
  const p: string[] = [];
  // A StatefulSet's volumeClaimTemplates are volumes of its pods too.
  const volumes = new Set([...((spec.volumes ?? []) as Obj[]).map((v) => v.name), ...claimTemplates]);
  const portNames = new Set<string>();
  const portKeys = new Set<string>();
  for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])] as Obj[]) {
    const at = `${id}: container ${c.name}`;
    if (!DNS_LABEL.test(c.name ?? '')) p.push(`${at}: name must be a DNS label`);
    for (const port of (c.ports ?? []) as Obj[]) {
      const key = `${port.containerPort}/${port.protocol ?? 'TCP'}`;
      if (portKeys.has(key)) p.push(`${at}: containerPort ${key} is declared twice in the pod`);
      portKeys.add(key);
      if (port.name) {
        if (portNames.has(port.name)) p.push(`${at}: port name ${port.name} is not unique in the pod`);
        portNames.add(port.name);
        if (port.name.length > 15) p.push(`${at}: port name ${port.name} is longer than 15 characters`);
      }
    }
    for (const m of (c.volumeMounts ?? []) as Obj[]) if (!volumes.has(m.name)) p.push(`${at}: volumeMount ${m.name} names no volume of the pod`);
    const req = (c.resources?.requests ?? {}) as Record<string, string>;
    const lim = (c.resources?.limits ?? {}) as Record<string, string>;
    for (const [r, q] of Object.entries(req)) {
      if (EXTENDED(r)) {
        if (lim[r] === undefined) p.push(`${at}: ${r} is requested but has no limit (extended resources cannot be overcommitted)`);
        else if (parseQuantity(lim[r]) !== parseQuantity(q)) p.push(`${at}: ${r} request ${q} must equal its limit ${lim[r]}`);
      } else if (lim[r] !== undefined && parseQuantity(q) > parseQuantity(lim[r])) p.push(`${at}: ${r} request ${q} exceeds its limit ${lim[r]}`);
    }
    for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
      const pr = c[probe] as Obj | undefined;
      if (!pr) continue;
      const handlers = ['exec', 'httpGet', 'tcpSocket', 'grpc'].filter((h) => pr[h]);
      if (handlers.length !== 1) p.push(`${at}: ${probe} must have exactly one handler; has ${handlers.join(', ') || 'none'}`);
      if (probe !== 'readinessProbe' && pr.successThreshold !== undefined && pr.successThreshold !== 1) p.push(`${at}: ${probe}.successThreshold must be 1`);
    }
  }
  return p;
}

function jobSpecProblems(id: string, spec: Obj): string[] {
  const p: string[] = [];
  const rp = spec.template?.spec?.restartPolicy;
  if (rp !== 'Never' && rp !== 'OnFailure') p.push(`${id}: spec.template.spec.restartPolicy must be Never or OnFailure for a Job; got ${rp ?? 'unset (Always)'}`);
  if (spec.completionMode === 'Indexed') {
    if (!Number.isInteger(spec.completions)) p.push(`${id}: an Indexed Job needs spec.completions`);
    if (spec.completions > 100_000) p.push(`${id}: spec.completions of an Indexed Job must be <= 100000`);
  }
  if (spec.parallelism !== undefined && spec.completions !== undefined && spec.parallelism > spec.completions && spec.completionMode === 'Indexed') {
    p.push(`${id}: spec.parallelism ${spec.parallelism} > completions ${spec.completions} leaves pods idle`);
  }
  if (spec.podFailurePolicy && rp !== 'Never') p.push(`${id}: spec.podFailurePolicy requires restartPolicy Never`);
  if (spec.manualSelector !== true && spec.selector) p.push(`${id}: spec.selector is generated for Jobs; leave it out`);
  return p;
}

/** Every problem with a rendered set of objects: schemas first, then the rules above. */
export function manifestProblems(objects: K8sObject[]): string[] {
  const p: string[] = [];
  const seen = new Set<string>();
  const workloads = objects.filter((o) => podTemplates(o).length > 0);
  const podLabels = workloads.flatMap((o) => podTemplates(o).map((t) => ({ owner: o, labels: t.metadata?.labels ?? {}, spec: t.spec })));
  const names = (kind: string) => new Set(objects.filter((o) => o.kind === kind).map((o) => o.metadata.name));
  for (const o of objects) {
    const id = `${o.kind}/${o.metadata.name}`;
    const key = `${o.apiVersion}/${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    if (seen.has(key)) p.push(`${id}: defined twice`);
    seen.add(key);
    p.push(...schemaProblems(o));
    const spec = (o.spec ?? {}) as Obj;
    for (const [k, v] of Object.entries(o.metadata.labels ?? {})) if (String(v).length > 63 || !/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(String(v))) p.push(`${id}: label ${k} value ${JSON.stringify(v)} is not a valid label value`);
    if (['Deployment', 'StatefulSet', 'ReplicaSet', 'DaemonSet'].includes(o.kind)) {
      if (!spec.selector) p.push(`${id}: spec.selector is required`);
      else if (!selects(spec.selector, spec.template?.metadata?.labels)) p.push(`${id}: spec.selector does not match spec.template.metadata.labels`);
      if (spec.template?.spec?.restartPolicy && spec.template.spec.restartPolicy !== 'Always') p.push(`${id}: restartPolicy must be Always`);
    }
    if (o.kind === 'Job') p.push(...jobSpecProblems(id, spec));
    if (o.kind === 'CronJob') {
      p.push(...jobSpecProblems(id, spec.jobTemplate?.spec ?? {}));
      if (typeof spec.schedule !== 'string' || spec.schedule.trim().split(/\s+/).length !== 5) p.push(`${id}: spec.schedule must be a 5-field cron expression`);
    }
    for (const t of podTemplates(o)) {
      p.push(...podSpecProblems(id, t.spec, ((spec.volumeClaimTemplates ?? []) as Obj[]).map((v) => v.metadata?.name)));
      const sa = t.spec.serviceAccountName;
      if (sa && !names('ServiceAccount').has(sa)) p.push(`${id}: serviceAccountName ${sa} is not among the rendered ServiceAccounts`);
      for (const c of t.spec.containers ?? []) for (const e of (c.env ?? []) as Obj[]) {
        const cm = e.valueFrom?.configMapKeyRef;
        if (cm && !cm.optional && !names('ConfigMap').has(cm.name)) p.push(`${id}: env ${e.name} refers to ConfigMap ${cm.name}, which is not rendered`);
      }
    }
    if (o.kind === 'PodDisruptionBudget') {
      if ((spec.minAvailable === undefined) === (spec.maxUnavailable === undefined)) p.push(`${id}: set exactly one of minAvailable and maxUnavailable`);
      if (!podLabels.some((x) => selects(spec.selector, x.labels))) p.push(`${id}: spec.selector matches no pod template`);
    }
    if (o.kind === 'Service') {
      const ports = (spec.ports ?? []) as Obj[];
      if (ports.length > 1 && ports.some((x) => !x.name)) p.push(`${id}: every port needs a name when there are several`);
      const target = podLabels.filter((x) => spec.selector && Object.entries(spec.selector).every(([k, v]) => x.labels[k] === v));
      if (spec.selector && target.length === 0) p.push(`${id}: spec.selector matches no pod template`);
      for (const port of ports) {
        if (typeof port.targetPort !== 'string') continue;
        const named = target.some((x) => (x.spec.containers as Obj[]).some((c) => (c.ports ?? []).some((cp: Obj) => cp.name === port.targetPort)));
        if (!named) p.push(`${id}: targetPort ${port.targetPort} is not a named port of the selected pods`);
      }
    }
    if (o.kind === 'NetworkPolicy' && Object.keys(spec.podSelector ?? {}).length > 0 && !podLabels.some((x) => selects(spec.podSelector, x.labels))) {
      p.push(`${id}: spec.podSelector matches no pod template`);
    }
    if (o.kind === 'RoleBinding' && (o as Obj).roleRef?.kind === 'Role' && !names('Role').has((o as Obj).roleRef.name)) p.push(`${id}: roleRef ${(o as Obj).roleRef.name} is not rendered`);
    if (o.kind === 'ScaledObject') {
      const ref = spec.scaleTargetRef ?? {};
      const target = objects.find((x) => x.kind === (ref.kind ?? 'Deployment') && x.metadata.name === ref.name);
      if (!target) p.push(`${id}: scaleTargetRef ${ref.kind ?? 'Deployment'}/${ref.name} is not rendered`);
      else if ((target.spec as Obj).replicas !== undefined) p.push(`${id}: ${target.kind}/${target.metadata.name} sets spec.replicas, which resets the autoscaler on every apply`);
    }
  }
  return p;
}
