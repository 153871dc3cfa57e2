import { existsSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { clientTlsFromEnv, clientTokenFromEnv } from '../../coordinator/src/config.js';
import type { ClientAuth } from './client.js';

/** Written by `tlsweep up` so later commands in the same folder find the cluster. */
export const CLUSTER_FILE = join('.tlsweep', 'cluster.json');

export interface ClusterFile {
  coordinator: string;
  natsUrl: string;
  pid: number;
  startedAt: string;
}

export function writeClusterFile(c: ClusterFile, file = CLUSTER_FILE): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(c, null, 2));
}

export function removeClusterFile(file = CLUSTER_FILE): void {
  rmSync(file, { force: true });
}

/**
 * The coordinator address for CLI commands: --coordinator, then
 * TLSWEEP_COORDINATOR, then a running `tlsweep up` in this folder, then the
 * default 127.0.0.1:50051. The only place the CLI reads the environment.
 */
export function resolveCoordinator(flag: string | undefined, env: NodeJS.ProcessEnv = process.env, file = CLUSTER_FILE): string {
  if (flag) return flag;
  if (env.TLSWEEP_COORDINATOR) return env.TLSWEEP_COORDINATOR;
  if (existsSync(file)) {
    try {
      const c = JSON.parse(readFileSync(file, 'utf8')) as ClusterFile;
      if (c.coordinator) return c.coordinator;
    } catch {
      /* a broken file falls through to the default */
    }
  }
  return '127.0.0.1:50051';
}

/** Environment passed through to local cluster processes (backend choice etc.). */
export function clusterEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const k of Object.keys(env)) if (k.startsWith('TLSWEEP_') && k !== 'TLSWEEP_COORDINATOR' && k !== 'TLSWEEP_NATS_URL') out[k] = env[k];
  return out;
}

/**
 * Whether CLI output may be coloured: only on a TTY, never with --no-color,
 * never when NO_COLOR is set to anything non-empty (https://no-color.org)
 * or TERM=dumb.
 */
export function colorWanted(o: { isTTY: boolean | undefined; noColorFlag?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (o.noColorFlag || !o.isTTY) return false;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  return env.TERM !== 'dumb';
}

/** Token (--token, then TLSWEEP_TOKEN / TLSWEEP_TOKEN_FILE) and TLS files (TLSWEEP_TLS_CA_FILE, TLSWEEP_TLS_CLIENT_CERT_FILE/_KEY_FILE) of CLI calls. */
export function resolveClientAuth(tokenFlag: string | undefined, env: NodeJS.ProcessEnv = process.env): ClientAuth {
  return { token: clientTokenFromEnv(env, tokenFlag), tls: clientTlsFromEnv(env) };
}
