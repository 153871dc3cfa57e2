import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNatsServer, type RunningNatsServer } from './nats-server.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const COORDINATOR_MAIN = join(ROOT, 'services/coordinator/src/main.ts');
export const WORKER_MAIN = join(ROOT, 'services/worker/src/main.ts');

export interface LocalClusterOptions {
  /** Worker processes (one training process per core). @default 2 */
  workers?: number;
  /** Directory for the processes' JSON logs. @default '.tlsweep/logs' */
  logDir?: string;
  /** Extra environment for every process (e.g. TLSWEEP_BACKEND). */
  env?: NodeJS.ProcessEnv;
  /** Worker-only environment. */
  workerEnv?: NodeJS.ProcessEnv;
  /** Use this NATS instead of starting a private one. */
  natsUrl?: string;
  /** Coordinator gRPC address. @default '127.0.0.1:0' (any free port) */
  grpcAddress?: string;
}

export interface ManagedProcess {
  name: string;
  child: ChildProcess;
  /** Resolves with the exit code (or signal name) when the process ends. */
  exited: Promise<number | string>;
}

export interface LocalCluster {
  natsUrl: string;
  coordinator: string;
  /** The coordinator's web dashboard, e.g. http://127.0.0.1:43123/ (null when disabled). */
  dashboardUrl: string | null;
  nats: RunningNatsServer | null;
  coordinatorProcess: ManagedProcess;
  workers: ManagedProcess[];
  logDir: string;
  /** Starts one more worker process. */
  addWorker(name?: string): Promise<ManagedProcess>;
  /** SIGTERM everything (workers first so they drain), then stop NATS. */
  stop(): Promise<void>;
}

/**
 * Spawns a service as `node --import tsx <main.ts>`, copying its JSON log
 * lines to a file, and resolves once a line with `msg === readyMsg` appears.
 */
export function spawnService(
  name: string, main: string, env: NodeJS.ProcessEnv, logFile: WriteStream, readyMsg: string,
  opts: { timeoutMs?: number; onSpawn?: (p: ManagedProcess) => void; detached?: boolean } = {},
): Promise<{ proc: ManagedProcess; ready: Record<string, unknown> }> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const child = spawn(process.execPath, ['--import', 'tsx', main], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: opts.detached ?? false });
  const exited = new Promise<number | string>((r) => child.once('exit', (code, sig) => r(code ?? sig ?? -1)));
  // Registered before it is ready, so a failed start elsewhere can still stop it.
  opts.onSpawn?.({ name, child, exited });
  return new Promise((resolve, reject) => {
    let buf = '';
    let ready = false;
    const fail = (err: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(`${name} was not ready within ${timeoutMs} ms; see ${logFile.path}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      logFile.write(chunk);
      if (ready) return;
      buf += chunk.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const rec = JSON.parse(line) as Record<string, unknown>;
          if (rec.msg === readyMsg) {
            ready = true;
            clearTimeout(timer);
            resolve({ proc: { name, child, exited }, ready: rec });
          } else if (rec.level === 'error') {
            fail(new Error(`${name}: ${String(rec.msg)} ${String(rec.error ?? '')}`));
          }
        } catch {
          /* not a log line */
        }
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((code) => {
      if (!ready) {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code}) before it was ready; see ${logFile.path}`));
      }
    });
  });
}

async function terminate(p: ManagedProcess, graceMs = 15_000): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const t = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  await p.exited;
  clearTimeout(t);
}

/** A whole cluster on this machine: private nats-server, one coordinator, N workers. */
export async function startLocalCluster(opts: LocalClusterOptions = {}): Promise<LocalCluster> {
  const logDir = opts.logDir ?? join(process.cwd(), '.tlsweep', 'logs');
  mkdirSync(logDir, { recursive: true });
  const nats = opts.natsUrl ? null : await startNatsServer();
  const natsUrl = opts.natsUrl ?? nats!.url;
  const started: ManagedProcess[] = [];
  // Own process group: Ctrl-C reaches only the CLI, which then stops workers first, then the coordinator, then NATS.
  const spawnOpts = { detached: true, onSpawn: (p: ManagedProcess) => started.push(p) };
  // If this process dies without stop(), take the children with it.
  const killAll = () => started.forEach((p) => p.child.exitCode === null && p.child.kill('SIGKILL'));
  process.once('exit', killAll);
  try {
    const coordLog = createWriteStream(join(logDir, 'coordinator.log'), { flags: 'a' });
    const { proc: coordinatorProcess, ready } = await spawnService(
      'coordinator', COORDINATOR_MAIN,
      { TLSWEEP_HTTP_ADDRESS: '127.0.0.1:0', ...opts.env, TLSWEEP_NATS_URL: natsUrl, TLSWEEP_GRPC_ADDRESS: opts.grpcAddress ?? '127.0.0.1:0' },
      coordLog, 'coordinator.ready', spawnOpts,
    );
    const coordinator = `127.0.0.1:${Number(ready.port)}`;
    const dashboardUrl = typeof ready.dashboard === 'string' ? ready.dashboard : null;
    const workers: ManagedProcess[] = [];
    let n = 0;
    const addWorker = async (name = `worker-${++n}`) => {
      const wlog = createWriteStream(join(logDir, `${name}.log`), { flags: 'a' });
      const { proc } = await spawnService(name, WORKER_MAIN, { TLSWEEP_METRICS_ADDRESS: '127.0.0.1:0', ...opts.env, ...opts.workerEnv, TLSWEEP_NATS_URL: natsUrl, TLSWEEP_COORDINATOR: coordinator, TLSWEEP_WORKER_ID: name }, wlog, 'worker.ready', spawnOpts);
      workers.push(proc);
      return proc;
    };
    await Promise.all(Array.from({ length: opts.workers ?? 2 }, () => addWorker()));
    return {
      natsUrl, coordinator, dashboardUrl, nats, coordinatorProcess, workers, logDir, addWorker,
      stop: async () => {
        await Promise.all(workers.map((w) => terminate(w)));
        await terminate(coordinatorProcess);
        await nats?.stop();
        process.off('exit', killAll);
      },
    };
  } catch (err) {
    await Promise.all(started.map((p) => terminate(p, 2000)));
    await nats?.stop();
    process.off('exit', killAll);
    throw err;
  }
}
