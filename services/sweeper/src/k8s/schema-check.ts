/**
 * Schema checks of rendered objects: the Kubernetes OpenAPI schemas as
 * compiled by kubernetes-models (types, required fields, formats), plus the
 * field names the API server knows (from @kubernetes/client-node's generated
 * models), since kubectl's default `--validate=strict` refuses unknown fields
 * and the kubernetes-models schemas let them through.
 */
import * as k8s from '@kubernetes/client-node';
import { Namespace, ServiceAccount, ConfigMap, Secret, Service, PersistentVolumeClaim } from 'kubernetes-models/v1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { Job, CronJob } from 'kubernetes-models/batch/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Role, RoleBinding, ClusterRole, ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import type { K8sObject } from './kustomize.js';
import { checkScaledObject } from './keda-schema.js';

type ModelClass = new (data: never) => { validate(): void };

const MODELS: Record<string, ModelClass> = {
  'v1/Namespace': Namespace, 'v1/ServiceAccount': ServiceAccount, 'v1/ConfigMap': ConfigMap, 'v1/Secret': Secret,
  'v1/Service': Service, 'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'apps/v1/Deployment': Deployment, 'apps/v1/StatefulSet': StatefulSet,
  'batch/v1/Job': Job, 'batch/v1/CronJob': CronJob,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'rbac.authorization.k8s.io/v1/Role': Role, 'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole, 'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
};

interface AttributeType { baseName: string; type: string }
const generated = k8s as unknown as Record<string, { getAttributeTypeMap?: () => AttributeType[] } | undefined>;

/** Field paths in `value` that the API type `type` (a client-node model name) does not have. */
export function unknownFields(value: unknown, type: string, path: string, out: string[] = []): string[] {
  if (value === null || value === undefined) return out;
  const arr = /^Array<(.+)>$/.exec(type);
  if (arr) {
    if (Array.isArray(value)) value.forEach((v, i) => unknownFields(v, arr[1], `${path}[${i}]`, out));
    return out;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value === 'object') for (const [k, v] of Object.entries(value)) unknownFields(v, map[1], `${path}.${k}`, out);
    return out;
  }
  const attrs = generated[type]?.getAttributeTypeMap?.();
  if (!attrs || typeof value !== 'object' || Array.isArray(value)) return out;
  const byName = new Map(attrs.map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    const t = byName.get(k);
    if (t === undefined) out.push(`${path}.${k}`);
    else unknownFields(v, t, `${path}.${k}`, out);
  }
  return out;
}

/** Problems with one object's schema, each naming the object and the field. */
export function schemaProblems(o: K8sObject): string[] {
  const id = `${o.kind}/${o.metadata?.name}`;
  if (o.apiVersion === 'keda.sh/v1alpha1' && o.kind === 'ScaledObject') return checkScaledObject(o).map((p) => `${id}: ${p}`);
  const Model = MODELS[`${o.apiVersion}/${o.kind}`];
  if (!Model) return [`${id}: ${o.apiVersion} ${o.kind} is not a kind this check knows; add its model to schema-check.ts`];
  const problems: string[] = [];
  try {
    new Model(structuredClone(o) as never).validate();
  } catch (err) {
    problems.push(`${id}: ${(err as Error).message}`);
  }
  for (const f of unknownFields(o, `V1${o.kind}`, '')) problems.push(`${id}: unknown field ${f.slice(1)}`);
  return problems;
}
