import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { startCoordinator, type RunningCoordinator } from '../services/coordinator/src/index.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';
import { ClientError, TlsweepClient } from '../services/sweeper/src/client.js';

const require = createRequire(import.meta.url);

describe('coordinator gRPC surface', () => {
  let nats: RunningNatsServer;
  let coord: RunningCoordinator;
  let client: TlsweepClient;
  beforeAll(async () => {
    nats = await startNatsServer();
    coord = await startCoordinator({ natsUrl: nats.url, grpcAddress: '127.0.0.1:0', ackWaitMs: 30_000, maxDeliver: 3, replicas: 1 });
    client = new TlsweepClient(`127.0.0.1:${coord.port}`);
    await client.ready();
  });
  afterAll(async () => {
    client?.close();
    await coord?.stop();
    await nats?.stop();
  });

  it('answers INVALID_ARGUMENT naming the field for a bad spec, and stores nothing', async () => {
    const before = (await client.list()).length;
    const err = await client.submit('name: bad\ndataset: {kind: synthetic}\nbackbones: [tiny_cnn]\nunfreeze: [0]\nlearningRates: [0.01]\ndropouts: [2]').catch((e) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect((err as ClientError).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((err as ClientError).message).toContain('dropouts[0]');
    expect((err as ClientError).message).toContain('[0, 1)');
    expect((await client.list()).length).toBe(before);
  });

  it('answers NOT_FOUND for an unknown sweep and INVALID_ARGUMENT for a bad query', async () => {
    expect(((await client.get('nope').catch((e) => e)) as ClientError).code).toBe(grpc.status.NOT_FOUND);
    const e = (await client.query({ sortBy: 'f1' }).catch((x) => x)) as ClientError;
    expect(e.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(e.message).toContain('sort_by');
  });

  it('serves the standard health service', async () => {
    const healthProto = join(dirname(require.resolve('grpc-health-check/package.json')), 'proto/health/v1/health.proto');
    const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(healthProto, { enums: String })) as any;
    const health = new pkg.grpc.health.v1.Health(`127.0.0.1:${coord.port}`, grpc.credentials.createInsecure());
    const res = await new Promise<any>((resolve, reject) => health.check({ service: 'tlsweep.v1.ReportService' }, (err: unknown, r: unknown) => (err ? reject(err) : resolve(r))));
    expect(res.status).toBe('SERVING');
    health.close();
  });

  it('serves reflection listing the tlsweep services', async () => {
    const reflProto = join(dirname(require.resolve('@grpc/reflection/package.json')), 'build/proto/grpc/reflection/v1/reflection.proto');
    const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(reflProto)) as any;
    const refl = new pkg.grpc.reflection.v1.ServerReflection(`127.0.0.1:${coord.port}`, grpc.credentials.createInsecure());
    const call = refl.ServerReflectionInfo();
    const names = await new Promise<string[]>((resolve, reject) => {
      call.on('data', (r: any) => {
        resolve(r.listServicesResponse.service.map((s: any) => s.name));
        call.end();
      });
      call.on('error', reject);
      call.write({ listServices: '' });
    });
    expect(names).toEqual(expect.arrayContaining(['tlsweep.v1.SweepService', 'tlsweep.v1.LeaderboardService', 'tlsweep.v1.ReportService']));
    refl.close();
  });
});
