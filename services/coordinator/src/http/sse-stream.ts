import type { ServerResponse } from 'node:http';

/** Options of {@link openSseStream}. */
export interface SseOptions {
  /** Events are batched and flushed at most this often, so a 10,000-trial sweep cannot flood a browser. @default 250 */
  flushMs?: number;
  /** Comment line sent when idle, so proxies keep the connection open. @default 15000 */
  keepAliveMs?: number;
  /** Events kept per flush; older ones in a burst are dropped and counted (the page re-queries anyway). @default 500 */
  maxBatch?: number;
}

export interface SseStream {
  send(event: unknown): void;
  close(): void;
}

/**
 * A Server-Sent Events response that sends each batch of events as one
 * `data:` line holding a JSON array (`{ dropped }` first when a burst overflowed).
 */
export function openSseStream(res: ServerResponse, opts: SseOptions = {}): SseStream {
  const flushMs = opts.flushMs ?? 250;
  const keepAliveMs = opts.keepAliveMs ?? 15_000;
  const maxBatch = opts.maxBatch ?? 500;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  res.write(': connected\n\n');
  let batch: unknown[] = [];
  let dropped = 0;
  let timer: NodeJS.Timeout | null = null;
  let closed = false;
  const flush = () => {
    timer = null;
    if (closed || batch.length === 0) return;
    const payload = dropped > 0 ? [{ type: 'dropped', count: dropped }, ...batch] : batch;
    batch = [];
    dropped = 0;
    res.write(`data: ${JSON.stringify(payload, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v))}\n\n`);
  };
  const keepAlive = setInterval(() => {
    if (!closed) res.write(': keep-alive\n\n');
  }, keepAliveMs);
  keepAlive.unref();
  return {
    send(event) {
      if (closed) return;
      if (batch.length >= maxBatch) {
        batch.shift();
        dropped++;
      }
      batch.push(event);
      timer ??= setTimeout(flush, flushMs);
    },
    close() {
      if (closed) return;
      flush();
      closed = true;
      if (timer) clearTimeout(timer);
      clearInterval(keepAlive);
      res.end();
    },
  };
}
