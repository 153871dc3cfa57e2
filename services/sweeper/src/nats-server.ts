import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NatsServerOptions {
  /** Port to listen on; -1 = a random free port (read back from the log). @default -1 */
  port?: number;
  /** JetStream store directory. @default a fresh temp dir, removed on stop */
  storeDir?: string;
  /** Path of the nats-server binary. @default first found on PATH, /usr/sbin, /usr/bin */
  binary?: string;
  /** Give up waiting for the server after this long. @default 15000 ms */
  startTimeoutMs?: number;
  /** A nats-server config file (`-c`), e.g. deploy/nats/nats-server.conf; port and store dir above still apply. @default none */
  configFile?: string;
  /** Extra environment of the server process (the config file's `$VAR` references). @default none */
  env?: NodeJS.ProcessEnv;
}

export interface RunningNatsServer {
  url: string;
  port: number;
  storeDir: string;
  /** Stops the server (SIGTERM, then SIGKILL) and removes a temp store it created. */
  stop(): Promise<void>;
  /** Kills and starts it again on the same port and store (chaos tests). */
  restart(): Promise<void>;
  /** Stops it, keeping port and store, until `up()` (outage tests). */
  down(): Promise<void>;
  /** Starts it again after `down()`, on the same port and store. */
  up(): Promise<void>;
}

/** Finds nats-server, or throws with the command that installs it. */
export function findNatsServer(binary?: string): string {
  const candidates = binary ? [binary] : [...(process.env.PATH ?? '').split(':').map((d) => join(d, 'nats-server')), '/usr/sbin/nats-server', '/usr/bin/nats-server'];
  for (const c of candidates) if (c && existsSync(c)) return c;
  throw new Error('nats-server not found: install it with `sudo apt-get install -y nats-server` (or run `npm run setup`)');
}

/** Starts a private nats-server with JetStream on loopback. */
export async function startNatsServer(opts: NatsServerOptions = {}): Promise<RunningNatsServer> {
  const bin = findNatsServer(opts.binary);
  const ownStore = !opts.storeDir;
  const storeDir = opts.storeDir ?? mkdtempSync(join(tmpdir(), 'tlsweep-nats-'));
  let port = opts.port ?? -1;
  let child: ChildProcess;

  const launch = () =>
    new Promise<number>((resolve, reject) => {
      // Own process group: a Ctrl-C meant for the CLI must not stop NATS before the workers have drained.
      const config = opts.configFile ? ['-c', opts.configFile] : [];
      child = spawn(bin, [...config, '-js', '-a', '127.0.0.1', '-p', String(port), '-sd', storeDir], {
        stdio: ['ignore', 'ignore', 'pipe'], detached: true, env: opts.env ? { ...process.env, ...opts.env } : process.env,
      });
      let log = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`nats-server did not start within ${opts.startTimeoutMs ?? 15000} ms:\n${log}`));
      }, opts.startTimeoutMs ?? 15000);
      child.stderr!.setEncoding('utf8');
      child.stderr!.on('data', (chunk: string) => {
        log += chunk;
        const m = /Listening for client connections on [^\s]*:(\d+)/.exec(log);
        if (m && /Server is ready/.test(log)) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited with ${code}:\n${log}`));
      });
    });

  const kill = async () => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  };

  // Never outlive the process that started it.
  const killOnExit = () => child?.exitCode === null && child.kill('SIGKILL');
  process.on('exit', killOnExit);
  try {
    port = await launch();
  } catch (err) {
    process.off('exit', killOnExit);
    if (ownStore) rmSync(storeDir, { recursive: true, force: true });
    throw err;
  }
  return {
    get url() {
      return `nats://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    storeDir,
    stop: async () => {
      await kill();
      process.off('exit', killOnExit);
      if (ownStore) rmSync(storeDir, { recursive: true, force: true });
    },
    restart: async () => {
      await kill();
      port = await launch();
    },
    down: () => kill(),
    up: async () => {
      port = await launch();
    },
  };
}
