import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import { ReflectionService } from '@grpc/reflection';
import { fileURLToPath } from 'node:url';
import {
  LeaderboardServiceService,
  ReportServiceService,
  SweepServiceService,
  type LeaderboardServiceServer,
  type ReportServiceServer,
  type SweepServiceServer,
  type TrialEvent,
} from '../../../../proto/generated/tlsweep/v1/tlsweep.js';
import type { Coordinator, SweepEvent } from '../coordinator.js';
import { InvalidArgumentError, toGrpcStatus } from '../errors.js';
import { authInterceptor, NO_TOKENS, tokensEnabled, type RoleTokens } from './auth.js';
import { RateLimiter, rateLimitInterceptor } from './rate-limit.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { earlyStopFromPb, epochFromPb, epochToPb, sweepToPb, testMetricsFromPb, trialToPb } from './convert.js';
import { reportHandlers } from './report-handlers.js';
import { exportModelHandler, pushWeightsHandler, weightsInfoToPb } from './model-streams.js';

export const PROTO_FILE = fileURLToPath(new URL('../../../../proto/tlsweep/v1/tlsweep.proto', import.meta.url));

export interface GrpcServerOptions {
  /** host:port; port 0 picks a free one. @default '127.0.0.1:50051' */
  address?: string;
  /** Largest accepted (and sent) message, bytes; larger ones get RESOURCE_EXHAUSTED. @default 16 MiB */
  maxMessageBytes?: number;
  /** Serve TLS (PEM contents). @default none: plaintext, allowed only on a loopback address */
  tls?: TlsServerOptions | null;
  /** Bearer tokens per role; none at all = no authentication, allowed only on a loopback address. @default none */
  tokens?: RoleTokens;
  /** SubmitSweep calls a minute per client (token, else peer host); 0 = unlimited. @default 0 */
  submitRatePerMinute?: number;
  log?: Logger;
}

/** Server certificate and key, and the CA that client certificates must chain to (mTLS). */
export interface TlsServerOptions {
  cert: Buffer;
  key: Buffer;
  /** Client CA bundle; needed when `requireClientCert`. */
  ca?: Buffer | null;
  /** Refuse connections without a client certificate signed by `ca` (mTLS). @default false */
  requireClientCert?: boolean;
}

/** Methods the submission rate limit applies to. */
const RATE_LIMITED = new Set(['/tlsweep.v1.SweepService/SubmitSweep']);

/** Whether a listen host reaches only this machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/** The host part of host:port, [v6]:port or a bare host. */
export function hostOf(address: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(address);
  if (m) return m[1]!;
  const i = address.lastIndexOf(':');
  return i > 0 && address.indexOf(':') === i ? address.slice(0, i) : address;
}

/**
 * Refuses an open coordinator on the network: without TLS and tokens a
 * network address would let anyone submit, cancel and report.
 */
function checkExposure(address: string, tls: TlsServerOptions | null, tokens: RoleTokens): void {
  const host = hostOf(address);
  if (isLoopbackHost(host)) return;
  const missing = [!tls && 'TLS (TLSWEEP_TLS_CERT_FILE, TLSWEEP_TLS_KEY_FILE)', !tokensEnabled(tokens) && 'bearer tokens (TLSWEEP_OPERATOR_TOKENS, TLSWEEP_WORKER_TOKENS, TLSWEEP_READER_TOKENS or their _FILE variants)'].filter(Boolean);
  if (missing.length > 0) {
    throw new InvalidArgumentError(
      [{ field: 'address', message: `${address} is not a loopback address, so the coordinator needs ${missing.join(' and ')}; or listen on 127.0.0.1` }],
      'refusing insecure gRPC on a network address',
    );
  }
}

function serverCredentials(tls: TlsServerOptions | null): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  if (tls.requireClientCert && !tls.ca) {
    throw new InvalidArgumentError([{ field: 'tls.ca', message: 'client certificates are required (TLSWEEP_TLS_CLIENT_AUTH=require), so a client CA is needed (TLSWEEP_TLS_CA_FILE)' }], 'invalid TLS settings');
  }
  return grpc.ServerCredentials.createSsl(tls.ca ?? null, [{ cert_chain: tls.cert, private_key: tls.key }], tls.requireClientCert ?? false);
}

export interface RunningGrpcServer {
  server: grpc.Server;
  port: number;
  health: HealthImplementation;
  /** Stops accepting calls, ends open watch streams, waits up to `graceMs` for calls in flight. */
  close(graceMs?: number): Promise<void>;
}

/** Wraps an async handler: errors become gRPC statuses with the field named. */
function unary<Req, Res>(fn: (req: Req) => Promise<Res> | Res): grpc.handleUnaryCall<Req, Res> {
  return (call, cb) => {
    Promise.resolve()
      .then(() => fn(call.request))
      .then((res) => cb(null, res))
      .catch((err) => {
        const s = toGrpcStatus(err);
        cb({ code: s.code, details: s.details, metadata: new grpc.Metadata() });
      });
  };
}

function required(field: string, v: string): string {
  if (!v) throw new InvalidArgumentError([{ field, message: 'required' }], 'invalid request');
  return v;
}

function sweepMsg(c: Coordinator, sweepId: string) {
  return sweepToPb(c.getSweep(sweepId), c.counts(sweepId), c.best(sweepId));
}

function eventToPb(c: Coordinator, e: SweepEvent): TrialEvent {
  return {
    type: e.type,
    sweepId: e.sweepId,
    trial: e.trial ? trialToPb(e.trial, false) : undefined,
    epoch: e.epoch ? epochToPb(e.epoch) : undefined,
    sweep: sweepMsg(c, e.sweepId),
  };
}

/** Serves SweepService, LeaderboardService, ReportService, gRPC health and server reflection. */
export async function startGrpcServer(c: Coordinator, opts: GrpcServerOptions = {}): Promise<RunningGrpcServer> {
  const log = opts.log ?? silentLogger;
  const maxBytes = opts.maxMessageBytes ?? 16 * 1024 * 1024;
  const address = opts.address ?? '127.0.0.1:50051';
  const tls = opts.tls ?? null;
  const tokens = opts.tokens ?? NO_TOKENS;
  checkExposure(address, tls, tokens);
  const creds = serverCredentials(tls);
  // Auth runs first (interceptors see metadata in array order), so an unauthenticated flood cannot spend a client's submissions.
  const interceptors = [authInterceptor(tokens)];
  if (opts.submitRatePerMinute) interceptors.push(rateLimitInterceptor(new RateLimiter(opts.submitRatePerMinute), RATE_LIMITED, tokensEnabled(tokens)));
  const server = new grpc.Server({ 'grpc.max_receive_message_length': maxBytes, 'grpc.max_send_message_length': maxBytes, interceptors });
  // Each open WatchSweep stream and how to end it (unsubscribe included).
  const watchers = new Map<grpc.ServerWritableStream<unknown, unknown>, () => void>();

  const rh = reportHandlers(c);
  const sweeps: SweepServiceServer = {
    submitSweep: unary(async (req) => {
      const s = await c.submitSweep(req.spec);
      return { sweep: sweepMsg(c, s.sweepId) };
    }),
    getSweep: unary((req) => sweepMsg(c, required('sweep_id', req.sweepId))),
    listSweeps: unary(() => ({ sweeps: c.listSweeps().map((s) => sweepMsg(c, s.sweepId)) })),
    cancelSweep: unary(async (req) => {
      await c.cancelSweep(required('sweep_id', req.sweepId));
      return sweepMsg(c, req.sweepId);
    }),
    watchSweep: (call) => {
      let sweepId: string;
      try {
        sweepId = required('sweep_id', call.request.sweepId);
        c.getSweep(sweepId);
      } catch (err) {
        call.emit('error', { code: toGrpcStatus(err).code, details: toGrpcStatus(err).details });
        return;
      }
      const end = () => {
        unsubscribe();
        watchers.delete(call);
        call.end();
      };
      watchers.set(call, () => {
        unsubscribe();
        // Not OK: the sweep did not end, the server did; clients should reconnect.
        call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'coordinator shutting down' });
      });
      const unsubscribe = c.subscribe(sweepId, (e) => {
        call.write(eventToPb(c, e));
        if (e.type === 'sweep_finished') end();
      });
      call.on('cancelled', () => {
        unsubscribe();
        watchers.delete(call);
      });
      if (call.request.includeSnapshot) {
        for (const t of c.trialsOf(sweepId)) call.write({ type: 'snapshot', sweepId, trial: trialToPb(t, false), sweep: sweepMsg(c, sweepId) });
      }
      if (c.getSweep(sweepId).finishedAtMs > 0) {
        call.write({ type: 'sweep_finished', sweepId, sweep: sweepMsg(c, sweepId) });
        end();
      }
    },
    pushWeights: pushWeightsHandler(c),
    listWeights: unary(async () => ({ weights: (await c.listWeights()).map(weightsInfoToPb) })),
    exportModel: exportModelHandler(c),
    modelStored: unary(async (r) => ({ ...(await c.modelStored({ ...r, trialId: rh.leased(r) })), keepModel: false })),
  };

  const leaderboard: LeaderboardServiceServer = {
    query: unary((q) => {
      const r = c.query({
        sweepId: q.sweepId || undefined,
        backbone: q.backbone || undefined,
        status: q.status || undefined,
        sortBy: q.sortBy || undefined,
        order: q.ascending ? 'asc' : q.descending ? 'desc' : undefined,
        limit: q.limit,
        pageToken: q.pageToken || undefined,
        groupBy: q.groupBy || undefined,
      });
      return {
        rows: r.rows.map((t) => trialToPb(t)),
        total: r.total,
        nextPageToken: r.nextPageToken,
        groups: r.groups.map((g) => ({ ...g, best: g.best ?? NaN, mean: g.mean ?? NaN, std: g.std ?? NaN })),
        sortBy: r.sortBy,
      };
    }),
    getTrial: unary((r) => trialToPb(c.getTrial(required('trial_id', r.trialId)))),
  };

  const reports: ReportServiceServer = {
    trialStarted: unary(rh.trialStarted),
    reportEpoch: unary(rh.reportEpoch),
    trialFinished: unary(rh.trialFinished),
    trialFailed: unary(rh.trialFailed),
    report: unary(rh.report),
  };

  server.addService(SweepServiceService, sweeps);
  server.addService(LeaderboardServiceService, leaderboard);
  server.addService(ReportServiceService, reports);

  const health = new HealthImplementation({
    '': 'SERVING',
    'tlsweep.v1.SweepService': 'SERVING',
    'tlsweep.v1.LeaderboardService': 'SERVING',
    'tlsweep.v1.ReportService': 'SERVING',
  });
  health.addToServer(server);
  const pkg = protoLoader.loadSync([PROTO_FILE, healthProtoPath], { keepCase: true });
  new ReflectionService(pkg).addToServer(server);

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, creds, (err, p) => (err ? reject(err) : resolve(p))),
  );
  log.info('grpc.listening', { address, port, tls: !!tls, mtls: !!tls?.requireClientCert, auth: tokensEnabled(tokens) });

  return {
    server,
    port,
    health,
    close: async (graceMs = 5000) => {
      for (const name of ['', 'tlsweep.v1.SweepService', 'tlsweep.v1.LeaderboardService', 'tlsweep.v1.ReportService']) health.setStatus(name, 'NOT_SERVING');
      for (const stop of watchers.values()) stop();
      watchers.clear();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}
