/**
 * An in-process HTTP server that speaks the Kubernetes API subset `tlsweep k8s
 * run` uses — create/get/watch/delete Jobs, list Pods — with resourceVersions,
 * 409 on an existing name, 410 for a compacted resourceVersion, and hooks so a
 * test decides what the "cluster" does when a Job is created (start real
 * worker processes, or leave pods Pending as Unschedulable).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { KubeConfig, type V1Job, type V1Pod } from '@kubernetes/client-node';

export interface RequestRecord { method: string; path: string; query: Record<string, string> }
interface WatchConn { ns: string; name?: string; res: ServerResponse }

export class FakeKubeApi {
  readonly requests: RequestRecord[] = [];
  readonly jobs = new Map<string, V1Job>();
  pods: V1Pod[] = [];
  private rv = 100;
  private readonly events: { rv: number; type: string; job: V1Job }[] = [];
  private readonly watches = new Set<WatchConn>();
  private server!: Server;
  port = 0;
  /** Called after a Job is stored. */
  onJobCreated: (job: V1Job) => void = () => {};
  /** Called after a Job is deleted. */
  onJobDeleted: (job: V1Job) => void = () => {};
  /** Called before a create is handled (e.g. to put a conflicting Job in place). */
  beforeCreate: (job: V1Job) => void = () => {};

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const w of this.watches) w.res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: `http://127.0.0.1:${this.port}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: 'test-token' }],
      contexts: [{ name: 'c', cluster: 'fake', user: 'u', namespace: 'tlsweep' }],
      currentContext: 'c',
    });
    return kc;
  }

  /** Stores a Job change and sends it to open watches, as the API server does. */
  putJob(job: V1Job, type = 'MODIFIED'): V1Job {
    job.metadata!.resourceVersion = String(++this.rv);
    const key = `${job.metadata!.namespace}/${job.metadata!.name}`;
    if (type === 'DELETED') this.jobs.delete(key);
    else this.jobs.set(key, job);
    this.events.push({ rv: this.rv, type, job: structuredClone(job) });
    for (const w of this.watches) if (w.ns === job.metadata!.namespace && (!w.name || w.name === job.metadata!.name)) w.res.write(`${JSON.stringify({ type, object: job })}\n`);
    return job;
  }

  /** Closes every open watch connection (a dropped watch the client must resume). */
  dropWatches(): void {
    for (const w of this.watches) w.res.end();
    this.watches.clear();
  }

  /** Forgets events up to now: older resourceVersions get 410 Gone. */
  compact(): void {
    this.events.length = 0;
  }

  get openWatches(): number {
    return this.watches.size;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url!, 'http://x');
    const query = Object.fromEntries(url.searchParams);
    this.requests.push({ method: req.method!, path: url.pathname, query });
    let body = '';
    for await (const chunk of req) body += chunk;
    const send = (code: number, obj: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(obj));
    };
    const status = (code: number, reason: string, message: string) => send(code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message, reason, code });
    let m: RegExpExecArray | null;
    if ((m = /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs$/.exec(url.pathname))) {
      const ns = decodeURIComponent(m[1]);
      if (req.method === 'POST') {
        const job = JSON.parse(body) as V1Job;
        job.metadata!.namespace = ns;
        this.beforeCreate(job);
        if (this.jobs.has(`${ns}/${job.metadata!.name}`)) return status(409, 'AlreadyExists', `jobs.batch "${job.metadata!.name}" already exists`);
        job.metadata!.uid = `uid-${this.rv}`;
        job.status = {};
        send(201, this.putJob(job, 'ADDED'));
        this.onJobCreated(job);
        return;
      }
      if (req.method === 'GET' && query.watch === 'true') {
        const name = /^metadata\.name=(.+)$/.exec(query.fieldSelector ?? '')?.[1];
        const from = Number(query.resourceVersion || 0);
        res.writeHead(200, { 'content-type': 'application/json' });
        if (from && this.events.length && from < this.events[0].rv - 1) {
          res.write(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' } })}\n`);
          return void res.end();
        }
        if (from && this.events.length === 0 && from < this.rv) {
          res.write(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' } })}\n`);
          return void res.end();
        }
        for (const e of this.events) {
          if (e.rv > from && e.job.metadata!.namespace === ns && (!name || e.job.metadata!.name === name)) res.write(`${JSON.stringify({ type: e.type, object: e.job })}\n`);
        }
        const w = { ns, name, res };
        this.watches.add(w);
        req.on('close', () => this.watches.delete(w));
        return;
      }
    }
    if ((m = /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs\/([^/]+)$/.exec(url.pathname))) {
      const key = `${decodeURIComponent(m[1])}/${decodeURIComponent(m[2])}`;
      const job = this.jobs.get(key);
      if (!job) return status(404, 'NotFound', `jobs.batch "${m[2]}" not found`);
      if (req.method === 'GET') return send(200, job);
      if (req.method === 'DELETE') {
        this.putJob(job, 'DELETED');
        this.pods = this.pods.filter((p) => p.metadata?.labels?.['job-name'] !== job.metadata!.name);
        send(200, { kind: 'Status', apiVersion: 'v1', status: 'Success', details: { name: m[2], kind: 'jobs' } });
        this.onJobDeleted(job);
        return;
      }
    }
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/pods$/.exec(url.pathname)) && req.method === 'GET') {
      const [k, v] = (query.labelSelector ?? '').split('=');
      const items = this.pods.filter((p) => p.metadata?.namespace === m![1] && (!k || p.metadata?.labels?.[k] === v));
      return send(200, { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) }, items });
    }
    status(404, 'NotFound', `${req.method} ${url.pathname} is not part of the fake API`);
  }
}

/** The pods the Job controller would create for an Indexed Job: one per index, labels from the template. */
export function podsFor(job: V1Job, state: (index: number) => Partial<V1Pod>): V1Pod[] {
  return Array.from({ length: job.spec!.parallelism ?? 1 }, (_, i) => ({
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: `${job.metadata!.name}-${i}-x${i}`, namespace: job.metadata!.namespace, labels: { ...job.spec!.template.metadata?.labels, 'job-name': job.metadata!.name!, 'batch.kubernetes.io/job-completion-index': String(i) } },
    spec: job.spec!.template.spec!,
    ...state(i),
  }));
}
