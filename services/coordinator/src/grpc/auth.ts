import * as grpc from '@grpc/grpc-js';
import { createHash, timingSafeEqual } from 'node:crypto';

/** Who may call what. An operator may also do what a reader may. */
export type Role = 'operator' | 'worker' | 'reader';

/**
 * Every rpc and the role it needs, by full method path. `public` needs no
 * token (probes and tooling). A method missing here needs an operator token:
 * a new rpc is closed until someone decides who may call it.
 */
export const METHOD_ROLES: Readonly<Record<string, Role | 'public'>> = {
  '/tlsweep.v1.SweepService/SubmitSweep': 'operator',
  '/tlsweep.v1.SweepService/CancelSweep': 'operator',
  '/tlsweep.v1.SweepService/GetSweep': 'reader',
  '/tlsweep.v1.SweepService/ListSweeps': 'reader',
  '/tlsweep.v1.SweepService/WatchSweep': 'reader',
  '/tlsweep.v1.SweepService/PushWeights': 'operator',
  '/tlsweep.v1.SweepService/ListWeights': 'reader',
  '/tlsweep.v1.SweepService/ExportModel': 'reader',
  // A worker announces the model it stored for a trial it finished.
  '/tlsweep.v1.SweepService/ModelStored': 'worker',
  '/tlsweep.v1.LeaderboardService/Query': 'reader',
  '/tlsweep.v1.LeaderboardService/GetTrial': 'reader',
  '/tlsweep.v1.ReportService/TrialStarted': 'worker',
  '/tlsweep.v1.ReportService/ReportEpoch': 'worker',
  '/tlsweep.v1.ReportService/TrialFinished': 'worker',
  '/tlsweep.v1.ReportService/TrialFailed': 'worker',
  '/tlsweep.v1.ReportService/Report': 'worker',
};

/** Services that answer without a token: Kubernetes probes and grpcurl must work before anyone has one. */
const PUBLIC_PREFIXES = ['/grpc.health.v1.Health/', '/grpc.reflection.v1.ServerReflection/', '/grpc.reflection.v1alpha.ServerReflection/'];

/** The role a method needs. */
export function roleOf(path: string): Role | 'public' {
  if (PUBLIC_PREFIXES.some((p) => path.startsWith(p))) return 'public';
  return METHOD_ROLES[path] ?? 'operator';
}

/** Bearer tokens per role (from TLSWEEP_{OPERATOR,WORKER,READER}_TOKENS[_FILE]). */
export interface RoleTokens {
  operator: readonly string[];
  worker: readonly string[];
  reader: readonly string[];
}

export const NO_TOKENS: RoleTokens = { operator: [], worker: [], reader: [] };

/** True when any role has a token, i.e. calls must authenticate. */
export function tokensEnabled(t: RoleTokens): boolean {
  return t.operator.length + t.worker.length + t.reader.length > 0;
}

/**
 * Finds the roles a token holds. Tokens are compared by SHA-256 digest with
 * timingSafeEqual: equal lengths always, so neither the content nor the
 * length of a configured token leaks through timing.
 */
export class TokenBook {
  private readonly entries: { digest: Buffer; role: Role }[] = [];

  constructor(tokens: RoleTokens) {
    for (const role of ['operator', 'worker', 'reader'] as const) {
      for (const t of tokens[role]) this.entries.push({ digest: digest(t), role });
    }
  }

  /** Roles of a token; empty when unknown. Checks every entry, match or not. */
  rolesOf(token: string): Set<Role> {
    const d = digest(token);
    const roles = new Set<Role>();
    for (const e of this.entries) if (timingSafeEqual(e.digest, d)) roles.add(e.role);
    return roles;
  }
}

const digest = (t: string) => createHash('sha256').update(t, 'utf8').digest();

/** The bearer token of a call (`authorization: Bearer <token>`), or ''. */
export function bearerToken(md: grpc.Metadata): string {
  const h = md.get('authorization')[0];
  const s = typeof h === 'string' ? h : h ? h.toString('utf8') : '';
  return /^bearer\s+/i.test(s) ? s.replace(/^bearer\s+/i, '').trim() : '';
}

/** Whether roles held may call a method that needs `need`. */
export function allowed(held: ReadonlySet<Role>, need: Role): boolean {
  return held.has(need) || (need === 'reader' && held.has('operator'));
}

/** Ends a call with a status before it reaches its handler. */
export function refuse(call: grpc.ServerInterceptingCallInterface, code: grpc.status, details: string, md = new grpc.Metadata()): void {
  call.sendStatus({ code, details, metadata: md });
}

/**
 * One check per call, before the handler runs: UNAUTHENTICATED for a
 * missing or unknown token, PERMISSION_DENIED for a token of the wrong role.
 * With no tokens configured every call passes (insecure local mode, which
 * the server allows only on loopback).
 */
export function authInterceptor(tokens: RoleTokens): grpc.ServerInterceptor {
  const book = new TokenBook(tokens);
  const enabled = tokensEnabled(tokens);
  return (method, call) => {
    const need = roleOf(method.path);
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((md, next) => {
        if (!enabled || need === 'public') return next(md);
        const token = bearerToken(md);
        if (!token) return refuse(call, grpc.status.UNAUTHENTICATED, `${method.path} needs a ${need} token: send metadata 'authorization: Bearer <token>' (CLI: --token or TLSWEEP_TOKEN)`);
        const held = book.rolesOf(token);
        if (held.size === 0) return refuse(call, grpc.status.UNAUTHENTICATED, 'unknown bearer token');
        if (!allowed(held, need)) return refuse(call, grpc.status.PERMISSION_DENIED, `${method.path} needs the ${need} role; this token has ${[...held].join(', ')}`);
        next(md);
      })
      .build();
    return new grpc.ServerInterceptingCall(call, new grpc.ResponderBuilder().withStart((next) => next(listener)).build());
  };
}
