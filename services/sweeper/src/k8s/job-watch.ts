import { Watch, type KubeConfig, type V1Job } from '@kubernetes/client-node';

export interface JobWatchOptions {
  namespace: string;
  name: string;
  /** Watch from this resourceVersion (the one create or get returned). */
  resourceVersion: string;
  /** Every ADDED/MODIFIED/DELETED event of the Job. */
  onEvent: (type: string, job: V1Job) => void;
  /** Reads the Job again when the server has compacted past our resourceVersion (410 Gone). */
  relist: () => Promise<V1Job>;
  /** Called on each reconnect, with the resourceVersion it resumes from. */
  onReconnect?: (resourceVersion: string, error: unknown) => void;
  /** Delay before reconnecting a dropped watch; doubles up to 5 s. @default 200 */
  retryMs?: number;
}

/**
 * Watches one Job and keeps watching: when the connection drops (API server
 * restart, load-balancer idle timeout, the client's own timeout) it resumes
 * from the last resourceVersion seen, so no event is lost or replayed; on
 * 410 Gone it reads the Job and resumes from there. Runs until `stop()`.
 */
export function watchJob(kc: KubeConfig, o: JobWatchOptions): { stop(): void; done: Promise<void> } {
  const watch = new Watch(kc);
  let rv = o.resourceVersion;
  let stopped = false;
  let current: AbortController | null = null;
  let wake: (() => void) | null = null;
  const path = `/apis/batch/v1/namespaces/${encodeURIComponent(o.namespace)}/jobs`;

  const once = () =>
    new Promise<{ err: unknown; gone: boolean }>((resolve) => {
      let gone = false;
      void watch
        .watch(path, { fieldSelector: `metadata.name=${o.name}`, resourceVersion: rv, allowWatchBookmarks: true }, (type, obj: V1Job & { code?: number }) => {
          if (type === 'ERROR') {
            // A Status object: 410 means our resourceVersion is too old to resume from.
            if (obj.code === 410) gone = true;
            return;
          }
          if (obj.metadata?.resourceVersion) rv = obj.metadata.resourceVersion;
          if (type !== 'BOOKMARK') o.onEvent(type, obj);
        }, (err) => resolve({ err, gone }))
        .then((c) => {
          current = c;
          if (stopped) c.abort();
        });
      wake = () => resolve({ err: null, gone: false });
    });

  const done = (async () => {
    let delay = o.retryMs ?? 200;
    while (!stopped) {
      const { err, gone } = await once();
      if (stopped) break;
      if (gone) {
        const job = await o.relist().catch(() => null);
        if (job?.metadata?.resourceVersion) {
          rv = job.metadata.resourceVersion;
          o.onEvent('MODIFIED', job);
        }
      }
      o.onReconnect?.(rv, err);
      await new Promise<void>((r) => {
        const t = setTimeout(r, delay);
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
      delay = err ? Math.min(delay * 2, 5000) : o.retryMs ?? 200;
    }
  })();

  return {
    done,
    stop: () => {
      stopped = true;
      current?.abort();
      wake?.();
    },
  };
}
