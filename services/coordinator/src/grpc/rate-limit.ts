import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { bearerToken, refuse } from './auth.js';

/**
 * Token buckets per key: `perMinute` calls a minute, bursts up to
 * `perMinute`. Buckets that have refilled are dropped, so memory stays
 * bounded by the clients active in the last minute.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly ratePerMs: number;

  constructor(readonly perMinute: number, private readonly now: () => number = Date.now) {
    if (!(perMinute > 0)) throw new Error(`perMinute: must be > 0; got ${perMinute}`);
    this.ratePerMs = perMinute / 60_000;
  }

  /** Takes one token for `key`; 0 if allowed, else the milliseconds until one is free. */
  take(key: string): number {
    const t = this.now();
    this.sweep(t);
    const b = this.buckets.get(key) ?? { tokens: this.perMinute, at: t };
    b.tokens = Math.min(this.perMinute, b.tokens + (t - b.at) * this.ratePerMs);
    b.at = t;
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - b.tokens) / this.ratePerMs);
  }

  private sweep(t: number): void {
    if (this.buckets.size < 1024) return;
    for (const [k, b] of this.buckets) if (b.tokens + (t - b.at) * this.ratePerMs >= this.perMinute) this.buckets.delete(k);
  }
}

/**
 * The client a call counts against: its token (hashed, never kept in clear)
 * when tokens are checked, else its peer host (an unchecked token would let
 * a client pick a fresh bucket per call).
 */
export function clientKey(md: grpc.Metadata, peer: string, byToken: boolean): string {
  const token = byToken ? bearerToken(md) : '';
  if (token) return `token:${createHash('sha256').update(token).digest('hex').slice(0, 32)}`;
  // Peer is host:port; the port changes per connection, the host is the client.
  return `peer:${peer.replace(/:\d+$/, '')}`;
}

/**
 * Refuses calls to `methods` beyond the limiter's rate per client with
 * RESOURCE_EXHAUSTED, the wait in the message and in `retry-after-ms`
 * trailing metadata (gRPC's retry pushback header is for the client's own
 * retry policy; a named header is simpler for the CLI to show).
 */
export function rateLimitInterceptor(limiter: RateLimiter, methods: ReadonlySet<string>, byToken: boolean): grpc.ServerInterceptor {
  return (method, call) => {
    if (!methods.has(method.path)) return new grpc.ServerInterceptingCall(call);
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((md, next) => {
        const waitMs = limiter.take(clientKey(md, call.getPeer(), byToken));
        if (waitMs === 0) return next(md);
        const trailer = new grpc.Metadata();
        trailer.set('retry-after-ms', String(waitMs));
        refuse(call, grpc.status.RESOURCE_EXHAUSTED, `rate limit: at most ${limiter.perMinute} ${method.path.split('/').pop()} calls a minute per client; retry after ${Math.ceil(waitMs / 1000)} s`, trailer);
      })
      .build();
    return new grpc.ServerInterceptingCall(call, new grpc.ResponderBuilder().withStart((next) => next(listener)).build());
  };
}
