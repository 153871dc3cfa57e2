import { readFileSync } from 'node:fs';
import { parseLogLevel, type LogLevel } from './log.js';
import type { RoleTokens } from './grpc/auth.js';
import type { TlsServerOptions } from './grpc/server.js';
import type { NatsAuth } from './nats-auth.js';
import type { ClientTls } from './grpc/client-credentials.js';

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
  /** TLSWEEP_LOG_LEVEL: debug | info | warn | error; lower levels are not written. @default 'info' */
  logLevel?: LogLevel;
  /** TLSWEEP_OPERATOR_TOKENS / _WORKER_ / _READER_ (comma-separated) or their `_FILE` variants (one per line). @default none: no authentication (loopback only) */
  tokens?: RoleTokens;
  /**
   * TLSWEEP_TLS_CERT_FILE + TLSWEEP_TLS_KEY_FILE (PEM), TLSWEEP_TLS_CA_FILE (client CA),
   * TLSWEEP_TLS_CLIENT_AUTH=require|none (mTLS). @default null: plaintext (loopback only)
   */
  tls?: TlsServerOptions | null;
  /** TLSWEEP_LEASE_SECRET or TLSWEEP_LEASE_SECRET_FILE: key of the per-attempt lease tokens. @default random, kept in KV `tlsweep-coordinator` */
  leaseSecret?: string | null;
  /** TLSWEEP_GRPC_MAX_MESSAGE_BYTES: largest gRPC message either way. @default 16777216 */
  maxMessageBytes?: number;
  /** TLSWEEP_MAX_TRIALS_PER_SWEEP. @default 10000 (also the hard ceiling) */
  maxTrialsPerSweep?: number;
  /** TLSWEEP_MAX_RUNNING_SWEEPS: sweeps running at once; 0 = unlimited. @default 0 */
  maxRunningSweeps?: number;
  /** TLSWEEP_SUBMIT_RATE: SubmitSweep calls a minute per client (token or peer host); 0 = unlimited. @default 0 */
  submitRatePerMinute?: number;
  /** TLSWEEP_NATS_USER + TLSWEEP_NATS_PASSWORD, or TLSWEEP_NATS_CREDS (a .creds file). @default none */
  natsAuth?: NatsAuth | null;
  /** TLSWEEP_ALLOW_NOOP_BACKBONE=1: accept specs on the `noop` backbone (synthetic metrics, nothing trained; benchmarks only). @default false */
  allowNoopBackbone?: boolean;
  /**
   * TLSWEEP_FEATURE_STORE_MB: create the workers' shared feature-cache bucket
   * `tlsweep-features` at start with this size cap (needed when workers log in
   * as the restricted NATS `worker` user, which may not create streams);
   * 0 = leave it to the workers. @default 0
   */
  featureStoreMb?: number;
  /**
   * TLSWEEP_AFFINITY=1|0: cache-affinity dispatch. A unit whose frozen-prefix features a live worker
   * advertises (KV `tlsweep-cache-holders`) goes to that worker's inbox (stream TLSWEEP_AFFINITY); if it
   * does not start there within TLSWEEP_AFFINITY_WAIT_MS it goes to the shared queue. @default true
   */
  affinity?: boolean;
  /** TLSWEEP_AFFINITY_WAIT_MS: how long a holder has to start a unit routed to it. @default 5000 */
  affinityWaitMs?: number;
  /** TLSWEEP_CACHE_HOLDERS_TTL_MS: lifetime of a worker's feature advertisement (workers refresh every third of it; a dead one is forgotten after it). Set the same on workers. @default 30000 */
  cacheHoldersTtlMs?: number;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): CoordinatorConfig {
  return {
    natsUrl: env.TLSWEEP_NATS_URL || 'nats://127.0.0.1:4222',
    grpcAddress: env.TLSWEEP_GRPC_ADDRESS || '127.0.0.1:50051',
    ackWaitMs: intEnv(env, 'TLSWEEP_ACK_WAIT_MS', 60_000, 1000),
    maxDeliver: intEnv(env, 'TLSWEEP_MAX_DELIVER', 5, 1),
    replicas: intEnv(env, 'TLSWEEP_KV_REPLICAS', 1, 1),
    httpAddress: env.TLSWEEP_HTTP_ADDRESS === 'off' ? null : env.TLSWEEP_HTTP_ADDRESS || '127.0.0.1:8080',
    logLevel: parseLogLevel(env.TLSWEEP_LOG_LEVEL),
    tokens: {
      operator: readTokens(env.TLSWEEP_OPERATOR_TOKENS, env.TLSWEEP_OPERATOR_TOKENS_FILE),
      worker: readTokens(env.TLSWEEP_WORKER_TOKENS, env.TLSWEEP_WORKER_TOKENS_FILE),
      reader: readTokens(env.TLSWEEP_READER_TOKENS, env.TLSWEEP_READER_TOKENS_FILE),
    },
    tls: serverTls(env),
    leaseSecret: env.TLSWEEP_LEASE_SECRET || (env.TLSWEEP_LEASE_SECRET_FILE ? readFileSync(env.TLSWEEP_LEASE_SECRET_FILE, 'utf8').trim() : null),
    maxMessageBytes: intEnv(env, 'TLSWEEP_GRPC_MAX_MESSAGE_BYTES', 16 * 1024 * 1024, 1024),
    maxTrialsPerSweep: intEnv(env, 'TLSWEEP_MAX_TRIALS_PER_SWEEP', 10_000, 1),
    maxRunningSweeps: intEnv(env, 'TLSWEEP_MAX_RUNNING_SWEEPS', 0, 0),
    submitRatePerMinute: intEnv(env, 'TLSWEEP_SUBMIT_RATE', 0, 0),
    natsAuth: natsAuthFromEnv(env),
    allowNoopBackbone: boolFlag(env, 'TLSWEEP_ALLOW_NOOP_BACKBONE'),
    featureStoreMb: intEnv(env, 'TLSWEEP_FEATURE_STORE_MB', 0, 0),
    affinity: env.TLSWEEP_AFFINITY === undefined || env.TLSWEEP_AFFINITY === '' ? true : boolFlag(env, 'TLSWEEP_AFFINITY'),
    affinityWaitMs: intEnv(env, 'TLSWEEP_AFFINITY_WAIT_MS', 5000, 0),
    cacheHoldersTtlMs: intEnv(env, 'TLSWEEP_CACHE_HOLDERS_TTL_MS', 30_000, 1000),
  };
}

/** NATS credentials from TLSWEEP_NATS_USER/PASSWORD or TLSWEEP_NATS_CREDS (shared with the worker's config). */
export function natsAuthFromEnv(env: NodeJS.ProcessEnv): NatsAuth | null {
  if (env.TLSWEEP_NATS_CREDS) return { creds: readFileSync(env.TLSWEEP_NATS_CREDS) };
  if (env.TLSWEEP_NATS_USER) {
    if (!env.TLSWEEP_NATS_PASSWORD) throw new Error('TLSWEEP_NATS_PASSWORD: required with TLSWEEP_NATS_USER');
    return { user: env.TLSWEEP_NATS_USER, pass: env.TLSWEEP_NATS_PASSWORD };
  }
  return null;
}

function serverTls(env: NodeJS.ProcessEnv): TlsServerOptions | null {
  const { TLSWEEP_TLS_CERT_FILE: cert, TLSWEEP_TLS_KEY_FILE: key, TLSWEEP_TLS_CA_FILE: ca } = env;
  const clientAuth = env.TLSWEEP_TLS_CLIENT_AUTH || 'none';
  if (clientAuth !== 'require' && clientAuth !== 'none') throw new Error(`TLSWEEP_TLS_CLIENT_AUTH: must be require or none; got ${JSON.stringify(clientAuth)}`);
  if (!cert && !key) {
    if (clientAuth === 'require') throw new Error('TLSWEEP_TLS_CLIENT_AUTH=require needs TLS: set TLSWEEP_TLS_CERT_FILE and TLSWEEP_TLS_KEY_FILE');
    return null;
  }
  if (!cert || !key) throw new Error('TLSWEEP_TLS_CERT_FILE and TLSWEEP_TLS_KEY_FILE: give both or neither');
  if (clientAuth === 'require' && !ca) throw new Error('TLSWEEP_TLS_CLIENT_AUTH=require needs TLSWEEP_TLS_CA_FILE (the CA client certificates must chain to)');
  return { cert: readFileSync(cert), key: readFileSync(key), ca: ca ? readFileSync(ca) : null, requireClientCert: clientAuth === 'require' };
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

/**
 * TLS to the coordinator for clients (CLI, worker): on when TLSWEEP_TLS=on
 * or any of TLSWEEP_TLS_CA_FILE (CA to trust), TLSWEEP_TLS_CLIENT_CERT_FILE
 * and TLSWEEP_TLS_CLIENT_KEY_FILE (mTLS) is set. @default null: plaintext
 */
export function clientTlsFromEnv(env: NodeJS.ProcessEnv): ClientTls | null {
  const { TLSWEEP_TLS_CA_FILE: ca, TLSWEEP_TLS_CLIENT_CERT_FILE: cert, TLSWEEP_TLS_CLIENT_KEY_FILE: key } = env;
  const flag = env.TLSWEEP_TLS ?? '';
  if (!['', 'on', 'off'].includes(flag)) throw new Error(`TLSWEEP_TLS: must be on or off; got ${JSON.stringify(flag)}`);
  if (flag === 'off' || (flag === '' && !ca && !cert && !key)) return null;
  if (!!cert !== !!key) throw new Error('TLSWEEP_TLS_CLIENT_CERT_FILE and TLSWEEP_TLS_CLIENT_KEY_FILE: give both or neither');
  return { ca: ca ? readFileSync(ca) : null, cert: cert ? readFileSync(cert) : null, key: key ? readFileSync(key) : null };
}

/** A client's bearer token: `flag` (--token), then TLSWEEP_TOKEN, then the first line of TLSWEEP_TOKEN_FILE. @default '' */
export function clientTokenFromEnv(env: NodeJS.ProcessEnv, flag?: string): string {
  if (flag) return flag;
  if (env.TLSWEEP_TOKEN) return env.TLSWEEP_TOKEN.trim();
  if (env.TLSWEEP_TOKEN_FILE) return readFileSync(env.TLSWEEP_TOKEN_FILE, 'utf8').split('\n')[0]!.trim();
  return '';
}

/** A 0/1 switch; anything else is an error naming the variable. */
function boolFlag(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = env[name] ?? '';
  if (raw === '' || raw === '0') return false;
  if (raw === '1') return true;
  throw new Error(`${name}: must be 1 or 0; got ${JSON.stringify(raw)}`);
}
