import { clusterEnv } from '../../services/sweeper/src/config.js';

/** What the sweep bench takes from the environment; the only bench/sweep module that reads it. */
export interface SweepBenchEnv {
  /** TLSWEEP_* variables passed on to the local cluster's processes (e.g. TLSWEEP_BACKEND), as `npm run demo` does. */
  clusterEnv: NodeJS.ProcessEnv;
  /** TLSWEEP_BACKEND for the bench process itself (data export, port-check reference); empty = auto, as the workers. */
  backend: string;
}

export function loadSweepBenchEnv(env: NodeJS.ProcessEnv = process.env): SweepBenchEnv {
  return { clusterEnv: clusterEnv(env), backend: env.TLSWEEP_BACKEND ?? '' };
}
