import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import type { Coordinator } from '../coordinator.js';
import { CoordinatorError, InvalidArgumentError, NotFoundError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type { CoordinatorMetrics } from '../metrics/coordinator-metrics.js';
import { apiRoute } from './api-routes.js';
import { toJson } from './json-views.js';
import { openSseStream } from './sse-stream.js';
import { serveStatic } from './static-files.js';
import { isGraphBackbone } from '../../../worker/src/engine/backbones/graph-backbone-spec.js';

/** Options of {@link startDashboardServer}. */
export interface DashboardOptions {
  /** host:port to listen on; port 0 picks a free one. @default '127.0.0.1:8080' */
  address?: string;
  /**
   * Bearer tokens that may read. Empty: no token needed — allowed only on a
   * loopback address, since the dashboard shows every sweep.
   * @default []
   */
  readerTokens?: readonly string[];
  /** Served at GET /metrics when given. */
  metrics?: CoordinatorMetrics;
  log?: Logger;
}

export interface RunningDashboard {
  server: Server;
  port: number;
  url: string;
  close(): Promise<void>;
}

function parseAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidArgumentError([{ field: 'address', message: `must be host:port with port 0..65535; got ${JSON.stringify(address)}` }], 'invalid dashboard address');
  }
  return { host, port };
}

const isLoopback = (host: string) => host === 'localhost' || host === '::1' || /^127\./.test(host);

function tokenOf(req: IncomingMessage, url: URL): string {
  const h = req.headers.authorization ?? '';
  if (h.toLowerCase().startsWith('bearer ')) return h.slice(7).trim();
  // EventSource cannot set headers: the page passes the token as a query parameter.
  return url.searchParams.get('token') ?? '';
}

function tokenAllowed(token: string, allowed: readonly string[]): boolean {
  const t = Buffer.from(token);
  return allowed.some((a) => {
    const b = Buffer.from(a);
    return b.length === t.length && timingSafeEqual(b, t);
  });
}

/** GET /api/layers?sweep=&backbone= and GET /api/feature-maps.png?sweep=&backbone=&layer=&image=N. */
async function featureMapRoute(coordinator: Coordinator, url: URL, res: ServerResponse): Promise<void> {
  const sweep = coordinator.getSweep(url.searchParams.get('sweep') ?? '');
  // Backbones with weights from a ref show random-init maps here; say so rather than mislead.
  const weights = (sweep.spec as { weights?: Record<string, string> }).weights ?? {};
  const backbone = url.searchParams.get('backbone') ?? sweep.spec.backbones[0];
  if (!sweep.spec.backbones.includes(backbone)) {
    throw new InvalidArgumentError([{ field: 'backbone', message: `must be one of the sweep's backbones: ${sweep.spec.backbones.join(', ')}; got ${JSON.stringify(backbone)}` }], 'invalid query');
  }
  if (isGraphBackbone(backbone)) {
    throw new InvalidArgumentError([{ field: 'backbone', message: `'${backbone}' is a GraphModel (frozen, one graph op list, no Keras layers): feature maps are shown for catalog backbones only` }], 'invalid query');
  }
  if (weights[backbone]) {
    throw new InvalidArgumentError([{ field: 'backbone', message: `'${backbone}' runs with weights from ${weights[backbone]} in this sweep; feature maps show bundled or random-init weights only (use \`tlsweep feature-maps\` with an exported model)` }], 'invalid query');
  }
  const fm = await import('./feature-map-route.js');
  if (url.pathname === '/api/layers') {
    sendJson(res, 200, await fm.layersOf(backbone, sweep.spec.imageSize));
    return;
  }
  const image = Number(url.searchParams.get('image') ?? '0');
  if (!Number.isInteger(image) || image < 0) throw new InvalidArgumentError([{ field: 'image', message: `must be a non-negative integer; got ${JSON.stringify(url.searchParams.get('image'))}` }], 'invalid query');
  const layer = url.searchParams.get('layer');
  if (!layer) throw new InvalidArgumentError([{ field: 'layer', message: 'required: a layer name from /api/layers' }], 'invalid query');
  const { png, label } = await fm.featureMapPng(backbone, sweep.spec.imageSize, sweep.spec.datasets[0], image, layer);
  res.writeHead(200, { 'content-type': 'image/png', 'cache-control': 'private, max-age=3600', 'x-image-label': encodeURIComponent(label) });
  res.end(png);
}

/** A request path for logs, without the `token` query parameter. */
export function redactToken(path: string): string {
  return path.replace(/([?&]token=)[^&]*/g, '$1[redacted]');
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = toJson(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
}

function sendError(res: ServerResponse, err: unknown): void {
  if (err instanceof InvalidArgumentError) sendJson(res, 400, { error: err.message, code: err.code, violations: err.violations });
  else if (err instanceof NotFoundError) sendJson(res, 404, { error: err.message, code: err.code });
  else if (err instanceof CoordinatorError) sendJson(res, err.retryable ? 503 : 500, { error: err.message, code: err.code });
  else sendJson(res, 500, { error: err instanceof Error ? err.message : String(err), code: 'INTERNAL' });
}

/**
 * The read-only web dashboard, its JSON API, live events (SSE) and the
 * Prometheus endpoint, served by the coordinator process: it reads the
 * coordinator's in-memory state, so a page never touches NATS. Nothing here
 * changes state: every method but GET/HEAD is refused.
 */
export async function startDashboardServer(coordinator: Coordinator, opts: DashboardOptions = {}): Promise<RunningDashboard> {
  const { host, port } = parseAddress(opts.address ?? '127.0.0.1:8080');
  const tokens = opts.readerTokens ?? [];
  const log = opts.log ?? silentLogger;
  if (tokens.length === 0 && !isLoopback(host)) {
    throw new InvalidArgumentError(
      [{ field: 'readerTokens', message: `the dashboard listens on ${host}, not loopback: set reader tokens (TLSWEEP_READER_TOKENS) or listen on 127.0.0.1` }],
      'refusing an open dashboard on a network address',
    );
  }
  const streams = new Set<() => void>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://dashboard');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (url.pathname === '/healthz') {
      sendJson(res, 200, { ok: true });
      return;
    }
    if (url.pathname === '/metrics' && opts.metrics) {
      const text = await opts.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': opts.metrics.registry.contentType }).end(text);
      return;
    }
    const needsToken = url.pathname.startsWith('/api/');
    if (needsToken && tokens.length > 0 && !tokenAllowed(tokenOf(req, url), tokens)) {
      res.writeHead(401, { 'www-authenticate': 'Bearer realm="tlsweep"', 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'a reader token is required (Authorization: Bearer <token> or ?token=)', code: 'UNAUTHENTICATED' }));
      return;
    }
    const events = /^\/api\/sweeps\/([^/]+)\/events$/.exec(url.pathname);
    if (events) {
      const sweepId = decodeURIComponent(events[1]);
      coordinator.getSweep(sweepId);
      const sse = openSseStream(res);
      const off = coordinator.subscribe(sweepId, (e) =>
        sse.send({ type: e.type, trialId: e.trial?.config.trialId ?? '', status: e.trial?.status ?? e.sweep?.status ?? '', epoch: e.epoch?.epoch ?? 0 }),
      );
      const stop = () => {
        off();
        sse.close();
        streams.delete(stop);
      };
      streams.add(stop);
      req.on('close', stop);
      return;
    }
    if (url.pathname === '/api/layers' || url.pathname === '/api/feature-maps.png') {
      await featureMapRoute(coordinator, url, res);
      return;
    }
    if (needsToken) {
      sendJson(res, 200, apiRoute(coordinator, url));
      return;
    }
    if (!(await serveStatic(url.pathname, res))) sendJson(res, 404, { error: `no such page: ${url.pathname}`, code: 'NOT_FOUND' });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendError(res, err);
      else res.end();
      if (!(err instanceof CoordinatorError)) log.warn('dashboard request failed', { path: redactToken(req.url ?? ''), error: err });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    server,
    port: bound,
    url: `http://${shownHost}:${bound}/`,
    close: async () => {
      for (const stop of [...streams]) stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
