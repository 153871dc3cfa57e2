import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { startCoordinator, TRIAL_STREAM, WORKER_CONSUMER, type RunningCoordinator, type TrialTaskV1 } from '../services/coordinator/src/index.js';
import { redactSecrets, redactUrl } from '../services/coordinator/src/redact.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';
import { TlsweepClient } from '../services/sweeper/src/client.js';
import { waitFor } from './helpers/wait-for.js';

describe('URL credentials never reach readers', () => {
  it('masks userinfo, query and fragment values, leaves the rest', () => {
    expect(redactUrl('https://alice:s3cret@weights.example:8443/m/model.json?X-Amz-Signature=abc&v=2#k=1'))
      .toBe('https://***@weights.example:8443/m/model.json?X-Amz-Signature=***&v=***#k=***');
    expect(redactUrl('https://h/m/model.json')).toBe('https://h/m/model.json');
    expect(redactUrl('http://tok@h')).toBe('http://***@h');
    expect(redactSecrets('WEIGHTS: GET https://u:p@h/x.json?t=1 failed: 404; see "http://h2/y?a"')).toBe('WEIGHTS: GET https://***@h/x.json?t=*** failed: 404; see "http://h2/y?***"');
    expect(redactSecrets('objstore:w /abs/dir no url')).toBe('objstore:w /abs/dir no url');
  });

  let nats: RunningNatsServer;
  let nc: NatsConnection;
  let coord: RunningCoordinator;
  let client: TlsweepClient;
  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    coord = await startCoordinator({ natsUrl: nats.url, grpcAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0', ackWaitMs: 30_000, maxDeliver: 3, replicas: 1 });
    client = new TlsweepClient(`127.0.0.1:${coord.port}`);
    await client.ready();
  });
  afterAll(async () => {
    client?.close();
    await coord?.stop();
    await nc?.close();
    await nats?.stop();
  });

  it('the worker gets the full URL; gRPC, the CLI\'s source, and the dashboard API show it redacted', async () => {
    const url = 'https://alice:s3cret@weights.example/tiny/model.json?token=hunter2';
    const sweep = await client.submit(`name: secrets\ndataset: {kind: synthetic}\nbackbones: [tiny_cnn]\nunfreeze: [0]\nlearningRates: [0.01]\ndropouts: [0.1]\nweights: {tiny_cnn: "${url}"}\nfuse: false`);
    const consumer = await jetstream(nc).consumers.get(TRIAL_STREAM, WORKER_CONSUMER);
    const m = await waitFor(() => consumer.next({ expires: 1000 }), 10_000, 'the trial message');
    const task = m.json<TrialTaskV1>();
    expect(task.config.weights).toBe(url);
    const trialId = task.config.trialId;
    await coord.coordinator.trialStarted({ trialId, attempt: 1, worker: 'w1', backend: 'cpu', pretrained: false, weightsSource: '' });
    await coord.coordinator.trialFailed({ trialId, attempt: 1, error: `could not fetch ${url}: 403`, code: 'WEIGHTS', retrying: false });
    m.term();

    const secret = /s3cret|hunter2|alice/;
    const trial = await client.getTrial(trialId);
    expect(trial.configJson).toContain('https://***@weights.example/tiny/model.json?token=***');
    expect(trial.error).toBe('WEIGHTS: could not fetch https://***@weights.example/tiny/model.json?token=***: 403');
    const got = await client.get(sweep.sweepId);
    for (const text of [JSON.stringify(trial), JSON.stringify(got), JSON.stringify(await client.query({ sweepId: sweep.sweepId }))]) expect(text).not.toMatch(secret);

    const http = (path: string) => fetch(new URL(path, coord.dashboard!.url)).then((r) => r.text());
    const pages = await Promise.all([http(`/api/trials/${trialId}`), http(`/api/sweeps/${sweep.sweepId}`), http(`/api/sweeps/${sweep.sweepId}/leaderboard`), http('/api/sweeps')]);
    expect(pages[0]).toContain('***@weights.example');
    for (const p of pages) expect(p).not.toMatch(secret);
    // What is stored keeps the full URL: nothing is lost.
    expect(coord.coordinator.getTrial(trialId).config.weights).toBe(url);
  });
});
