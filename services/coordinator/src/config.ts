import { readFileSync } from 'node:fs';

/** Coordinator settings; the only module of the coordinator that reads the environment. */
export interface CoordinatorConfig {
  /** TLSWEEP_NATS_URL. @default 'nats://127.0.0.1:4222' */
  natsUrl: string;
  /** TLSWEEP_GRPC_ADDRESS (host:port, port 0 = any free port). @default '127.0.0.1:50051' */
  grpcAddress: string;
  /** TLSWEEP_ACK_WAIT_MS: lease of a trial without heartbeat. @default 60000 */
  ackWaitMs: number;
  /** TLSWEEP_MAX_DELIVER: deliveries of a trial before it is given up. @default 5 */
  maxDeliver: number;
  /** TLSWEEP_KV_REPLICAS. @default 1 */
  replicas: number;
  /**
   * TLSWEEP_HTTP_ADDRESS: the web dashboard, its JSON API and /metrics
   * (host:port, port 0 = any free port; `off` disables). @default '127.0.0.1:8080'
   */
  httpAddress?: string | null;
  /** TLSWEEP_ALLOW_NOOP_BACKBONE=1: accept specs on the `noop` backbone (synthetic metrics, nothing trained; benchmarks only). @default false */
  allowNoopBackbone?: boolean;
  /** TLSWEEP_READER_TOKENS (comma-separated) or TLSWEEP_READER_TOKENS_FILE (one per line): who may read the dashboard. @default none */
  readerTokens?: string[];
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): CoordinatorConfig {
  return {
    natsUrl: env.TLSWEEP_NATS_URL || 'nats://127.0.0.1:4222',
    grpcAddress: env.TLSWEEP_GRPC_ADDRESS || '127.0.0.1:50051',
    ackWaitMs: intEnv(env, 'TLSWEEP_ACK_WAIT_MS', 60_000, 1000),
    maxDeliver: intEnv(env, 'TLSWEEP_MAX_DELIVER', 5, 1),
    replicas: intEnv(env, 'TLSWEEP_KV_REPLICAS', 1, 1),
    httpAddress: env.TLSWEEP_HTTP_ADDRESS === 'off' ? null : env.TLSWEEP_HTTP_ADDRESS || '127.0.0.1:8080',
    allowNoopBackbone: boolFlag(env, 'TLSWEEP_ALLOW_NOOP_BACKBONE'),
    readerTokens: readTokens(env.TLSWEEP_READER_TOKENS, env.TLSWEEP_READER_TOKENS_FILE),
  };
}

function readTokens(list: string | undefined, file: string | undefined): string[] {
  const fromFile = file ? readFileSync(file, 'utf8').split('\n') : [];
  return [...(list ?? '').split(','), ...fromFile].map((t) => t.trim()).filter(Boolean);
}

/** Reads a positive integer variable; a bad value is an error naming the variable. */
export function intEnv(env: NodeJS.ProcessEnv, name: string, dflt: number, min: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name}: must be an integer >= ${min}; got ${JSON.stringify(raw)}`);
  return n;
}

/** A 0/1 switch; anything else is an error naming the variable. */
function boolFlag(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = env[name] ?? '';
  if (raw === '' || raw === '0') return false;
  if (raw === '1') return true;
  throw new Error(`${name}: must be 1 or 0; got ${JSON.stringify(raw)}`);
}
