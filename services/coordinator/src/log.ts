/**
 * Structured logs: one JSON object per line on stderr (stdout stays free for
 * command output), with the service name and any ids the caller binds
 * (`sweepId`, `trialId`, `worker`).
 *
 * The line format is pino's (numeric `level`, `time`, `pid`, `hostname`,
 * `msg`), with an ISO time as pino's `stdTimeFunctions.isoTime` writes it,
 * so pino tooling reads it: `… 2>&1 | npx pino-pretty`. pino itself is not a
 * dependency; this writer is the ~40 lines of it the services need.
 */
import { hostname } from 'node:os';

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
  const min = LOG_LEVEL_VALUES[level];
  const host = hostname();
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    const value = LOG_LEVEL_VALUES[lvl];
    if (value < min) return;
    const rec: Record<string, unknown> = { level: value, time: new Date().toISOString(), pid: process.pid, hostname: host, service, msg, ...base, ...fields };
    for (const [k, v] of Object.entries(rec)) if (v instanceof Error) rec[k] = v.message;
    sink(JSON.stringify(rec));
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (f) => createLogger(service, { ...base, ...f }, sink, level),
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
