/**
 * Errors as the CLI prints them: what went wrong, then the next command to
 * try. `explainError` turns a failure of a command into that message.
 */
import * as grpc from '@grpc/grpc-js';
import { ClientError } from './client.js';
import type { FieldViolation } from '../../coordinator/src/errors.js';

/** A bad command line (exit status 2). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A sweep spec that does not validate: every violation, each naming its field. */
export class SpecError extends Error {
  constructor(readonly file: string, readonly violations: FieldViolation[]) {
    super(`${file}: invalid sweep spec (${violations.length} problem${violations.length === 1 ? '' : 's'}):\n${violations.map((v) => `  - ${v.field}: ${v.message}`).join('\n')}\nfix the fields above and run \`tlsweep submit ${file}\` again`);
    this.name = 'SpecError';
  }
}

/** What the failing command was about, so the hint can name the right next step. */
export interface ErrorContext {
  command: string;
  coordinator?: string;
  sweepId?: string;
  trialId?: string;
}

/** The message for a failed command, with a hint where one helps. */
export function explainError(err: unknown, ctx: ErrorContext): string {
  const message = err instanceof Error ? err.message : String(err);
  if (!(err instanceof ClientError)) return message;
  switch (err.code) {
    case grpc.status.UNAVAILABLE:
    case grpc.status.DEADLINE_EXCEEDED:
      return `${message.startsWith('cannot reach') ? message : `cannot reach the coordinator${ctx.coordinator ? ` at ${ctx.coordinator}` : ''} (${message})`}\n` +
        'is a cluster running? start one with `tlsweep up` (or `tlsweep demo`), or pass --coordinator host:port / set TLSWEEP_COORDINATOR';
    case grpc.status.NOT_FOUND:
      if (/trial '/.test(message) || (ctx.trialId && !ctx.sweepId)) {
        return `${message}\nlist a sweep's trials with \`tlsweep leaderboard --sweep <sweepId>\`; list sweeps with \`tlsweep status\``;
      }
      return `${message}\nlist sweeps with \`tlsweep status\``;
    case grpc.status.INVALID_ARGUMENT:
      // The server joins violations with '; ': one per line reads better.
      return `${message.replace(/^INVALID_ARGUMENT: /, '').replace(/; (?=[\w.[\]]+: )/g, '\n  - ').replace(/^([^:\n]+: )/, '$1\n  - ')}\nsee \`tlsweep help\` for the allowed values`;
    case grpc.status.FAILED_PRECONDITION:
      return `${message}\ncheck the sweep's state with \`tlsweep status${ctx.sweepId ? ` ${ctx.sweepId}` : ''}\``;
    default:
      return message;
  }
}
