/**
 * Structured logs: one JSON object per line on stderr (stdout stays free for
 * command output), with the service name and any ids the caller binds.
 */
export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export type LogSink = (line: string) => void;

export function createLogger(
  service: string,
  base: Record<string, unknown> = {},
  sink: LogSink = (line) => process.stderr.write(line + '\n'),
): Logger {
  const emit = (level: string, msg: string, fields?: Record<string, unknown>) => {
    const rec: Record<string, unknown> = { t: new Date().toISOString(), level, service, msg, ...base, ...fields };
    for (const [k, v] of Object.entries(rec)) if (v instanceof Error) rec[k] = v.message;
    sink(JSON.stringify(rec));
  };
  return {
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (f) => createLogger(service, { ...base, ...f }, sink),
  };
}

/** A logger that drops everything (tests, library use). */
export const silentLogger: Logger = {
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
};
