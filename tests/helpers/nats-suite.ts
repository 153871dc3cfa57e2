import { afterAll, beforeAll } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type RunningNatsServer } from '../../services/sweeper/src/nats-server.js';
import { Coordinator } from '../../services/coordinator/src/index.js';

/** A private nats-server (JetStream, temp store, free port) and one connection for a describe block. */
export interface NatsSuite {
  readonly server: RunningNatsServer;
  readonly nc: NatsConnection;
}

/**
 * Starts the server and connects before the block's tests and stops both
 * after them; call it at the top of a `describe`. The connection reconnects
 * forever, so a test may restart the server.
 */
export function useNatsServer(): NatsSuite {
  let server: RunningNatsServer | undefined;
  let nc: NatsConnection | undefined;
  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  });
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });
  return {
    get server() {
      if (!server) throw new Error('useNatsServer: the server starts in beforeAll; use it inside tests');
      return server;
    },
    get nc() {
      if (!nc) throw new Error('useNatsServer: the connection opens in beforeAll; use it inside tests');
      return nc;
    },
  };
}

/**
 * Coordinators on the suite's connection, each closed after the block's
 * tests (before the connection: this afterAll is registered later).
 */
export function useCoordinators(suite: NatsSuite): (() => Promise<Coordinator>) & { readonly all: readonly Coordinator[] } {
  const all: Coordinator[] = [];
  afterAll(() => {
    for (const c of all) c.close();
  });
  const start = async () => {
    const c = await Coordinator.start({ nc: suite.nc });
    all.push(c);
    return c;
  };
  // `all`: every coordinator started so far, latest last (tests that restart one mid-sweep).
  return Object.assign(start, { all });
}
