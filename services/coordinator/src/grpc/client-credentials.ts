import * as grpc from '@grpc/grpc-js';

/** How a client (CLI, worker) reaches a TLS coordinator; PEM contents. */
export interface ClientTls {
  /** CA bundle to trust (a private CA); null = the system's roots. */
  ca?: Buffer | null;
  /** Client certificate and key, for a coordinator that requires mTLS. */
  cert?: Buffer | null;
  key?: Buffer | null;
}

/** Channel credentials: plaintext for null, else TLS (with a client certificate when given). */
export function channelCredentials(tls: ClientTls | null): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  if (!!tls.cert !== !!tls.key) throw new Error('TLS client certificate and key: give both (TLSWEEP_TLS_CLIENT_CERT_FILE, TLSWEEP_TLS_CLIENT_KEY_FILE) or neither');
  return grpc.credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null);
}

/**
 * Adds `authorization: Bearer <token>` to every call of a client. Per-call
 * metadata rather than call credentials: grpc-js sends call credentials only
 * over TLS, and a token must also work against a loopback plaintext coordinator.
 */
export function bearerInterceptor(token: string): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

/** Client options for a coordinator: credentials plus, with a token, the bearer interceptor. */
export function clientOptions(token: string | undefined): grpc.ClientOptions {
  return token ? { interceptors: [bearerInterceptor(token)] } : {};
}
