/**
 * Structured logs with pino: one JSON object per line on stderr (stdout
 * stays free for command output) — numeric `level`, ISO `time`, `pid`,
 * `hostname`, `service`, `msg` — plus any ids the caller binds (`sweepId`,
 * `trialId`, `worker`). Read them with `… 2>&1 | npx pino-pretty`.
 * The services see only the small `Logger` interface below.
 */
import { hostname } from 'node:os';
import { pino, stdTimeFunctions, type Logger as PinoLogger } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** pino's numeric levels. */
export const LOG_LEVEL_VALUES: Readonly<Record<LogLevel, number>> = { debug: 20, info: 30, warn: 40, error: 50 };

export const LOG_LEVELS = Object.keys(LOG_LEVEL_VALUES) as LogLevel[];

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export type LogSink = (line: string) => void;

/**
 * A logger writing pino-format JSON lines to `sink` at `level` and above.
 * @param level lowest level written. @default 'info'
 */
export function createLogger(
  service: string,
  base: Record<string, unknown> = {},
  sink: LogSink = (line) => process.stderr.write(line + '\n'),
  level: LogLevel = 'info',
): Logger {
  const root = pino(
    { level, base: { pid: process.pid, hostname: hostname(), service }, timestamp: stdTimeFunctions.isoTime },
    // A synchronous stream: a crash right after a log call must not lose the line.
    { write: (line: string) => sink(line.endsWith('\n') ? line.slice(0, -1) : line) },
  );
  return wrap(root.child(plain(base)));
}

/** Errors become their message: a log line names what happened, not a stack of internals. */
function plain(fields: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields ?? {})) out[k] = v instanceof Error ? v.message : v;
  return out;
}

function wrap(p: PinoLogger): Logger {
  return {
    debug: (m, f) => p.debug(plain(f), m),
    info: (m, f) => p.info(plain(f), m),
    warn: (m, f) => p.warn(plain(f), m),
    error: (m, f) => p.error(plain(f), m),
    child: (f) => wrap(p.child(plain(f))),
  };
}

/** Reads a level name; a bad one is an error naming `field` and the allowed values. */
export function parseLogLevel(raw: string | undefined, field = 'TLSWEEP_LOG_LEVEL'): LogLevel {
  if (raw === undefined || raw === '') return 'info';
  const v = raw.toLowerCase();
  if (!(LOG_LEVELS as string[]).includes(v)) throw new Error(`${field}: must be one of ${LOG_LEVELS.join(', ')}; got ${JSON.stringify(raw)}`);
  return v as LogLevel;
}

/** A logger that drops everything (tests, library use). */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
};
