/**
 * Logs are pino-format JSON lines (numeric level, ISO time, pid, hostname,
 * msg) at TLSWEEP_LOG_LEVEL and above, and every trial or sweep line of the
 * coordinator and a worker carries the ids, checked on a real one-trial sweep.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger, parseLogLevel, startCoordinator, type RunningCoordinator } from '../services/coordinator/src/index.js';
import { loadConfig as coordinatorConfig } from '../services/coordinator/src/config.js';
import { loadConfig as workerConfig } from '../services/worker/src/config.js';
import { selectBackend } from '../services/worker/src/engine/backend.js';
import { Reporter } from '../services/worker/src/runner/reporter.js';
import { TrialConsumer } from '../services/worker/src/runner/trial-consumer.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';
import { TlsweepClient } from '../services/sweeper/src/client.js';
import { waitFor } from './helpers/wait-for.js';

type Line = Record<string, unknown> & { level: number; time: string; msg: string };

describe('log line format and level', () => {
  it('writes pino fields: numeric level, ISO time, pid, hostname, msg, bound ids', () => {
    const lines: string[] = [];
    const log = createLogger('coordinator', {}, (l) => lines.push(l)).child({ sweepId: 's-1' }).child({ trialId: 't-1' });
    log.warn('trial.failed', { error: new Error('boom'), attempt: 2 });
    const rec = JSON.parse(lines[0]) as Line;
    expect(rec).toMatchObject({ level: 40, pid: process.pid, service: 'coordinator', msg: 'trial.failed', sweepId: 's-1', trialId: 't-1', error: 'boom', attempt: 2 });
    expect(typeof rec.hostname).toBe('string');
    expect(new Date(rec.time).toISOString()).toBe(rec.time);
    expect(Object.keys(rec).slice(0, 4)).toEqual(['level', 'time', 'pid', 'hostname']);
  });

  it('drops lines below the level, children included', () => {
    const lines: string[] = [];
    const log = createLogger('worker', {}, (l) => lines.push(l), 'warn');
    log.debug('a');
    log.info('b');
    log.child({ trialId: 't' }).info('c');
    log.warn('d');
    log.child({ trialId: 't' }).error('e');
    expect(lines.map((l) => (JSON.parse(l) as Line).msg)).toEqual(['d', 'e']);
    const debug: string[] = [];
    createLogger('worker', {}, (l) => debug.push(l), 'debug').debug('x');
    expect((JSON.parse(debug[0]) as Line).level).toBe(20);
  });

  it('reads TLSWEEP_LOG_LEVEL in both config modules, default info, bad values named', () => {
    expect(parseLogLevel(undefined)).toBe('info');
    expect(parseLogLevel('DEBUG')).toBe('debug');
    expect(coordinatorConfig({}).logLevel).toBe('info');
    expect(coordinatorConfig({ TLSWEEP_LOG_LEVEL: 'error' }).logLevel).toBe('error');
    expect(workerConfig({ TLSWEEP_LOG_LEVEL: 'warn' }).logLevel).toBe('warn');
    expect(() => workerConfig({ TLSWEEP_LOG_LEVEL: 'verbose' })).toThrow('TLSWEEP_LOG_LEVEL: must be one of debug, info, warn, error; got "verbose"');
    expect(() => coordinatorConfig({ TLSWEEP_LOG_LEVEL: 'trace' })).toThrow(/TLSWEEP_LOG_LEVEL/);
  });
});

describe('ids on every trial and sweep line of a real sweep', () => {
  let nats: RunningNatsServer;
  let coord: RunningCoordinator;
  let nc: NatsConnection;
  let reporter: Reporter;
  let client: TlsweepClient;
  afterAll(async () => {
    reporter?.close();
    client?.close();
    await nc?.close();
    await coord?.stop();
    await nats?.stop();
  });

  it('coordinator and worker lines name sweepId and trialId', async () => {
    await selectBackend('cpu');
    const lines: string[] = [];
    const sink = (l: string) => lines.push(l);
    nats = await startNatsServer();
    coord = await startCoordinator({ natsUrl: nats.url, grpcAddress: '127.0.0.1:0', ackWaitMs: 30_000, maxDeliver: 3, replicas: 1, httpAddress: null }, createLogger('coordinator', {}, sink, 'debug'));
    client = new TlsweepClient(`127.0.0.1:${coord.port}`);
    await client.ready();
    nc = await connect({ servers: nats.url });
    reporter = new Reporter({ address: `127.0.0.1:${coord.port}`, retryMs: 5000 });
    const sweep = await client.submit(`
name: logs
dataset: {kind: synthetic, classes: 3, perClass: 6, seed: 1}
backbones: [tiny_cnn]
imageSize: 16
unfreeze: [0]
learningRates: [0.01]
dropouts: [0.1]
headEpochs: 1
batchSize: 8
headUnits: 4
`);
    const worker = new TrialConsumer({ nc, reporter, workerId: 'w-log', backend: 'cpu', log: createLogger('worker', { worker: 'w-log' }, sink), maxTrials: 1, heartbeatMs: 5000 });
    await worker.run();
    await waitFor(async () => (await client.get(sweep.sweepId)).status === 'completed', 10_000, 'sweep completed');

    const recs = lines.map((l) => JSON.parse(l) as Line);
    const trialId = (await client.query({ sweepId: sweep.sweepId })).rows[0].trialId;
    for (const r of recs) {
      expect(typeof r.level).toBe('number');
      expect(r.time).toMatch(/^\d{4}-\d\d-\d\dT/);
      if (r.msg.startsWith('trial.')) expect(r, r.msg).toMatchObject({ sweepId: sweep.sweepId, trialId });
      if (r.msg.startsWith('sweep.')) expect(r, r.msg).toMatchObject({ sweepId: sweep.sweepId });
    }
    const msgs = new Set(recs.map((r) => `${r.service}:${r.msg}`));
    for (const m of ['coordinator:sweep.submitted', 'coordinator:trial.started', 'coordinator:trial.finished', 'coordinator:sweep.finished', 'worker:trial.running', 'worker:trial.epoch', 'worker:trial.done']) {
      expect(msgs, m).toContain(m);
    }
  }, 60_000);
});
