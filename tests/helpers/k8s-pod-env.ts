import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Secret name → key → contents: what the README tells an admin to create. */
export type SecretData = Record<string, Record<string, string | Buffer>>;

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean }; fieldRef?: { fieldPath: string } };
}
interface Container { name: string; env?: EnvVar[]; volumeMounts?: { name: string; mountPath: string }[] }
interface Volume { name: string; secret?: { secretName: string; items?: { key: string; path: string }[]; optional?: boolean } }
/** The parts of a pod spec the kubelet uses to build a container's environment and secret files. */
export interface PodSpecLike { containers: Container[]; volumes?: Volume[] }

/**
 * The environment a container of `pod` would see, as the kubelet builds it:
 * `value`s, `secretKeyRef`s from `secrets`, `fieldRef`s (metadata.name →
 * `<container>-pod-0`, metadata.namespace → `tlsweep`). Secret volumes are
 * written under `root` (only their `items` when listed) and any variable
 * value under a secret volume's mount path is rewritten to that copy, so a
 * config module reading `TLSWEEP_..._FILE` reads what the pod would.
 * A key the Secret lacks throws, as the kubelet refuses to start the pod.
 */
export function containerEnv(pod: PodSpecLike, containerName: string, secrets: SecretData, root: string): Record<string, string> {
  const c = pod.containers.find((x) => x.name === containerName);
  if (!c) throw new Error(`no container ${containerName}`);
  const mounts = new Map<string, string>();
  for (const m of c.volumeMounts ?? []) {
    const secret = pod.volumes?.find((v) => v.name === m.name)?.secret;
    if (!secret) continue;
    const data = secrets[secret.secretName];
    if (!data) throw new Error(`volume ${m.name}: no Secret ${secret.secretName}`);
    const dir = join(root, containerName, m.name);
    mkdirSync(dir, { recursive: true });
    for (const { key, path } of secret.items ?? Object.keys(data).map((k) => ({ key: k, path: k }))) {
      if (data[key] === undefined) throw new Error(`volume ${m.name}: Secret ${secret.secretName} has no key ${key}`);
      writeFileSync(join(dir, path), data[key]);
    }
    mounts.set(m.mountPath.replace(/\/$/, ''), dir);
  }
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    const ref = e.valueFrom?.secretKeyRef;
    const field = e.valueFrom?.fieldRef?.fieldPath;
    let v: string;
    if (ref) {
      const s = secrets[ref.name]?.[ref.key];
      if (s === undefined) throw new Error(`env ${e.name}: Secret ${ref.name} has no key ${ref.key}`);
      v = s.toString();
    } else if (field) v = field === 'metadata.namespace' ? 'tlsweep' : `${containerName}-pod-0`;
    else v = e.value ?? '';
    for (const [mountPath, dir] of mounts) if (v.startsWith(`${mountPath}/`)) v = dir + v.slice(mountPath.length);
    env[e.name] = v;
  }
  return env;
}

/** `env` behind a Proxy that records which variables a config loader reads. */
export function recordingEnv(env: Record<string, string>): { env: NodeJS.ProcessEnv; read: Set<string> } {
  const read = new Set<string>();
  const proxy = new Proxy(env, {
    get(target, key) {
      if (typeof key === 'string') read.add(key);
      return Reflect.get(target, key);
    },
    has(target, key) {
      if (typeof key === 'string') read.add(key);
      return Reflect.has(target, key);
    },
  });
  return { env: proxy, read };
}
