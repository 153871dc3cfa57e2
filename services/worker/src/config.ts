import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { parseLogLevel, type LogLevel } from '../../coordinator/src/log.js';
import { clientTlsFromEnv, clientTokenFromEnv, natsAuthFromEnv, type ClientTls, type NatsAuth } from '../../coordinator/src/index.js';
import { FROZEN_PREFIX_MODES, type FrozenPrefixMode } from './engine/per-epoch-features.js';

/** Worker settings; the only module of the worker that reads the environment. */
export interface WorkerConfig {
  /** TLSWEEP_NATS_URL. @default 'nats://127.0.0.1:4222' */
  natsUrl: string;
  /** TLSWEEP_COORDINATOR: host:port of the coordinator's gRPC. @default '127.0.0.1:50051' */
  coordinator: string;
  /** TLSWEEP_WORKER_ID. @default '<hostname>-<pid>' */
  workerId: string;
  /** TLSWEEP_BACKEND: tensorflow | wasm | cpu; empty = best available (tensorflow → wasm → cpu). @default '' */
  backend: '' | 'tensorflow' | 'wasm' | 'cpu';
  /** TLSWEEP_HEARTBEAT_MS: `working()` interval; keep well under the queue's ack wait. @default 10000 */
  heartbeatMs: number;
  /** TLSWEEP_REPORT_RETRY_MS: how long a report is retried while the coordinator is unreachable. @default 120000 */
  reportRetryMs: number;
  /** TLSWEEP_NAK_DELAY_MS: redelivery delay after a transient failure. @default 5000 */
  nakDelayMs: number;
  /** TLSWEEP_MAX_TRIALS: exit after this many trials (0 = never; for batch Jobs). @default 0 */
  maxTrials: number;
  /** TLSWEEP_FEATURE_MEMO_MB: memory for frozen-prefix features reused across this worker's trials; 0 turns reuse off. @default 512 */
  featureMemoMb: number;
  /** TLSWEEP_FEATURE_CACHE_DIR: local disk tier of the feature cache. @default '~/.cache/tlsweep/features' */
  featureCacheDir: string;
  /** TLSWEEP_FEATURE_CACHE_MB: size cap of the disk tier (LRU eviction); 0 turns it off. @default 4096 */
  featureCacheMb: number;
  /** TLSWEEP_FEATURE_STORE_MB: size cap of the shared NATS Object Store bucket `tlsweep-features` when this worker creates it; 0 turns the tier off. @default 8192 */
  featureStoreMb: number;
  /**
   * TLSWEEP_DRAIN_GRACE_MS: after SIGTERM the worker stops pulling and hands the trial in hand back
   * at its next epoch boundary; past this long it hands it back at once (its last epoch checkpoint
   * is kept) and exits. Keep it under the pod's terminationGracePeriodSeconds. @default 30000
   */
  drainGraceMs: number;
  /** TLSWEEP_CHECKPOINTS: `off` stops saving and resuming epoch checkpoints (Object Store bucket `tlsweep-checkpoints`). @default on */
  checkpoints: boolean;
  /** TLSWEEP_METRICS_ADDRESS: host:port for Prometheus GET /metrics (port 0 = any free port); empty = no endpoint. @default '' */
  metricsAddress: string;
  /** TLSWEEP_LOG_LEVEL: debug | info | warn | error; lower levels are not written. @default 'info' */
  logLevel: LogLevel;
  /** TLSWEEP_TOKEN or TLSWEEP_TOKEN_FILE: the worker-role bearer token for ReportService. @default '' */
  token: string;
  /** TLSWEEP_TLS_CA_FILE, TLSWEEP_TLS_CLIENT_CERT_FILE/_KEY_FILE, TLSWEEP_TLS=on: TLS to the coordinator. @default null (plaintext) */
  tls: ClientTls | null;
  /** TLSWEEP_NATS_USER + TLSWEEP_NATS_PASSWORD, or TLSWEEP_NATS_CREDS. @default null */
  natsAuth: NatsAuth | null;
  /**
   * TLSWEEP_AFFINITY=1|0: advertise locally held features (KV `tlsweep-cache-holders`) and take units
   * from this worker's inbox before the shared queue (cache-affinity dispatch). @default true
   */
  affinity: boolean;
  /** TLSWEEP_CACHE_HOLDERS_TTL_MS: lifetime of this worker's advertisements (refreshed every third of it); same as the coordinator's. @default 30000 */
  cacheHoldersTtlMs: number;
  /**
   * TLSWEEP_AFFINITY_MIN_BUILD_MS: advertise only features that took at least this long to compute
   * here; cheaper ones are not worth a routed unit's wait for this worker's next look at its inbox. @default 2000
   */
  affinityMinBuildMs: number;
  /**
   * TLSWEEP_FROZEN_PREFIX=once|every-epoch: `every-epoch` runs each trial's frozen layers again on every
   * epoch and keeps no features (what Keras and per-trial tuners do; a baseline for `bench:sweep`'s
   * naive run, never faster). Units then run their trials one by one. @default 'once'
   */
  frozenPrefix: FrozenPrefixMode;
}

const BACKENDS = ['', 'tensorflow', 'wasm', 'cpu'] as const;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const backend = (env.TLSWEEP_BACKEND ?? '') as WorkerConfig['backend'];
  const frozenPrefix = (env.TLSWEEP_FROZEN_PREFIX || 'once') as FrozenPrefixMode;
  if (!FROZEN_PREFIX_MODES.includes(frozenPrefix)) throw new Error(`TLSWEEP_FROZEN_PREFIX: must be one of ${FROZEN_PREFIX_MODES.join(', ')}; got ${JSON.stringify(env.TLSWEEP_FROZEN_PREFIX)}`);
  if (!BACKENDS.includes(backend)) throw new Error(`TLSWEEP_BACKEND: must be one of tensorflow, wasm, cpu (or empty for auto); got ${JSON.stringify(backend)}`);
  return {
    natsUrl: env.TLSWEEP_NATS_URL || 'nats://127.0.0.1:4222',
    coordinator: env.TLSWEEP_COORDINATOR || '127.0.0.1:50051',
    workerId: env.TLSWEEP_WORKER_ID || `${hostname()}-${process.pid}`,
    backend,
    heartbeatMs: intEnv(env, 'TLSWEEP_HEARTBEAT_MS', 10_000, 100),
    reportRetryMs: intEnv(env, 'TLSWEEP_REPORT_RETRY_MS', 120_000, 0),
    nakDelayMs: intEnv(env, 'TLSWEEP_NAK_DELAY_MS', 5_000, 0),
    maxTrials: intEnv(env, 'TLSWEEP_MAX_TRIALS', 0, 0),
    metricsAddress: env.TLSWEEP_METRICS_ADDRESS ?? '',
    drainGraceMs: intEnv(env, 'TLSWEEP_DRAIN_GRACE_MS', 30_000, 0),
    checkpoints: env.TLSWEEP_CHECKPOINTS !== 'off',
    featureMemoMb: intEnv(env, 'TLSWEEP_FEATURE_MEMO_MB', 512, 0),
    featureCacheDir: env.TLSWEEP_FEATURE_CACHE_DIR || join(homedir(), '.cache', 'tlsweep', 'features'),
    featureCacheMb: intEnv(env, 'TLSWEEP_FEATURE_CACHE_MB', 4096, 0),
    featureStoreMb: intEnv(env, 'TLSWEEP_FEATURE_STORE_MB', 8192, 0),
    logLevel: parseLogLevel(env.TLSWEEP_LOG_LEVEL),
    token: clientTokenFromEnv(env),
    tls: clientTlsFromEnv(env),
    natsAuth: natsAuthFromEnv(env),
    affinity: flag(env, 'TLSWEEP_AFFINITY', true),
    cacheHoldersTtlMs: intEnv(env, 'TLSWEEP_CACHE_HOLDERS_TTL_MS', 30_000, 1000),
    affinityMinBuildMs: intEnv(env, 'TLSWEEP_AFFINITY_MIN_BUILD_MS', 2000, 0),
    frozenPrefix,
  };
}

function intEnv(env: NodeJS.ProcessEnv, name: string, dflt: number, min: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name}: must be an integer >= ${min}; got ${JSON.stringify(raw)}`);
  return n;
}

/** A 1/0 switch with a default; anything else is an error naming the variable. */
function flag(env: NodeJS.ProcessEnv, name: string, dflt: boolean): boolean {
  const raw = env[name] ?? '';
  if (raw === '') return dflt;
  if (raw === '1' || raw === '0') return raw === '1';
  throw new Error(`${name}: must be 1 or 0; got ${JSON.stringify(raw)}`);
}
