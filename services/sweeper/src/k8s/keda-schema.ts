/**
 * KEDA's ScaledObject (keda.sh/v1alpha1) has no kubernetes-models package in
 * this install (@kubernetes-models/keda is absent), so its shape is checked
 * here by hand: the fields tlsweep uses, as KEDA's CRD and the nats-jetstream
 * scaler read them, and nothing unknown.
 */
import type { K8sObject } from './kustomize.js';

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
const isInt = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;

const SPEC_FIELDS = ['scaleTargetRef', 'minReplicaCount', 'maxReplicaCount', 'pollingInterval', 'cooldownPeriod', 'idleReplicaCount', 'advanced', 'triggers', 'fallback', 'initialCooldownPeriod'];
const JETSTREAM_KEYS = ['natsServerMonitoringEndpoint', 'account', 'stream', 'consumer', 'lagThreshold', 'activationLagThreshold', 'useHttps'];

/** Problems with a ScaledObject's shape; empty when it is well formed. */
export function checkScaledObject(o: K8sObject): string[] {
  const p: string[] = [];
  for (const k of Object.keys(o)) if (!['apiVersion', 'kind', 'metadata', 'spec'].includes(k)) p.push(`unknown field ${k}`);
  const s = o.spec;
  if (!isObj(s)) return [...p, 'spec is required'];
  for (const k of Object.keys(s)) if (!SPEC_FIELDS.includes(k)) p.push(`unknown field spec.${k}`);
  const ref = s.scaleTargetRef;
  if (!isObj(ref) || typeof ref.name !== 'string' || !ref.name) p.push('spec.scaleTargetRef.name is required');
  for (const k of ['minReplicaCount', 'maxReplicaCount', 'pollingInterval', 'cooldownPeriod']) if (s[k] !== undefined && !isInt(s[k])) p.push(`spec.${k} must be a non-negative integer`);
  if (isInt(s.minReplicaCount) && isInt(s.maxReplicaCount) && (s.minReplicaCount as number) > (s.maxReplicaCount as number)) p.push('spec.minReplicaCount must be <= spec.maxReplicaCount');
  if (!Array.isArray(s.triggers) || s.triggers.length === 0) return [...p, 'spec.triggers: at least one trigger is required'];
  s.triggers.forEach((t: unknown, i: number) => {
    const at = `spec.triggers[${i}]`;
    if (!isObj(t) || typeof t.type !== 'string') return p.push(`${at}.type is required`);
    if (!isObj(t.metadata)) return p.push(`${at}.metadata is required`);
    // KEDA reads trigger metadata as a map of strings; a YAML number here is refused by the CRD.
    for (const [k, v] of Object.entries(t.metadata)) if (typeof v !== 'string') p.push(`${at}.metadata.${k} must be a string`);
    if (t.type === 'nats-jetstream') {
      for (const k of Object.keys(t.metadata)) if (!JETSTREAM_KEYS.includes(k)) p.push(`${at}.metadata.${k} is not a nats-jetstream setting`);
      for (const k of ['natsServerMonitoringEndpoint', 'account', 'stream', 'consumer']) if (!t.metadata[k]) p.push(`${at}.metadata.${k} is required`);
      for (const k of ['lagThreshold', 'activationLagThreshold']) if (t.metadata[k] !== undefined && !/^\d+$/.test(String(t.metadata[k]))) p.push(`${at}.metadata.${k} must be an integer`);
    }
    return undefined;
  });
  return p;
}
