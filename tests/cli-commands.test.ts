/**
 * The CLI's read commands against a real coordinator (NATS + gRPC on port 0),
 * trials driven by the fake worker (known numbers: val accuracy =
 * 0.5 + 10·lr − 0.1·dropout). Commands run in-process; one spawn of the real
 * `tlsweep` binary checks the wiring of main.ts (flags, exit codes, hints).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator, type RunningCoordinator } from '../services/coordinator/src/index.js';
import { explainError } from '../services/sweeper/src/cli-errors.js';
import { TlsweepClient } from '../services/sweeper/src/client.js';
import { printCompare, type CompareView } from '../services/sweeper/src/commands/compare.js';
import { printLeaderboard } from '../services/sweeper/src/commands/leaderboard.js';
import { printTrial } from '../services/sweeper/src/commands/trial.js';
import { watchSweep, type WatchEventJson } from '../services/sweeper/src/commands/watch.js';
import { LEADERBOARD_CSV_COLUMNS, type LeaderboardRow } from '../services/sweeper/src/format.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';
import { runOneTrial } from './helpers/fake-worker.js';
import { waitFor } from './helpers/wait-for.js';

const spec = (name: string, lrs: number[]) => `
name: ${name}
dataset: { kind: synthetic, classes: 3, perClass: 10 }
backbones: [tiny_cnn]
unfreeze: [0]
learningRates: [${lrs.join(', ')}]
dropouts: [0.1]
maxParallel: 4
fuse: false
`;
// Fake-worker val accuracy for dropout 0.1.
const acc = (lr: number) => 0.5 + 10 * lr - 0.01;
const TLSWEEP = fileURLToPath(new URL('../bin/tlsweep.mjs', import.meta.url));

function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [TLSWEEP, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('tlsweep read commands on a real coordinator', () => {
  let nats: RunningNatsServer;
  let coord: RunningCoordinator;
  let client: TlsweepClient;
  let nc: NatsConnection;
  let a: string;
  let b: string;
  const watchJson: string[] = [];
  const watchText: string[] = [];
  const barLines: string[] = [];

  beforeAll(async () => {
    nats = await startNatsServer();
    coord = await startCoordinator({ natsUrl: nats.url, grpcAddress: '127.0.0.1:0', ackWaitMs: 30_000, maxDeliver: 3, replicas: 1, httpAddress: null });
    client = new TlsweepClient(`127.0.0.1:${coord.port}`);
    await client.ready();
    nc = await connect({ servers: nats.url });
    const c = coord.coordinator;
    // Know when each watch is subscribed, so no event is missed (the spy calls the real method).
    const subscribed = new Map<string, number>();
    const subscribe = c.subscribe.bind(c);
    c.subscribe = (sweepId, fn) => {
      subscribed.set(sweepId, (subscribed.get(sweepId) ?? 0) + 1);
      return subscribe(sweepId, fn);
    };
    a = (await client.submit(spec('cli-a', [0.01, 0.02]))).sweepId;
    b = (await client.submit(spec('cli-b', [0.02, 0.04]))).sweepId;
    const watches = [
      watchSweep(client, a, { json: true, out: (l) => watchJson.push(l) }),
      watchSweep(client, b, { progress: 'lines', out: (l) => watchText.push(l), stream: { write: (s) => barLines.push(s), isTTY: false } }),
    ];
    await waitFor(() => subscribed.get(a) && subscribed.get(b), 10_000, 'watches subscribed');
    for (let i = 0; i < 4; i++) expect(await runOneTrial(nc, c)).toBeTruthy();
    const [fa, fb] = await Promise.all(watches);
    expect([fa.status, fb.status]).toEqual(['completed', 'completed']);
  }, 30_000);

  afterAll(async () => {
    await nc?.close();
    client?.close();
    await coord?.stop();
    await nats?.stop();
  });

  it('watch --json writes one parseable line per event with the trial numbers', () => {
    const events = watchJson.map((l) => JSON.parse(l) as WatchEventJson);
    expect(events.map((e) => e.type).filter((t) => t !== 'trial_queued' && t !== 'epoch')).toEqual(['trial_started', 'trial_finished', 'trial_started', 'trial_finished', 'sweep_finished']);
    expect(events.filter((e) => e.type === 'epoch')).toHaveLength(6);
    const finished = events.filter((e) => e.type === 'trial_finished');
    expect(finished.map((e) => e.trial!.valAccuracy)).toEqual([acc(0.01), acc(0.02)].map((x) => expect.closeTo(x, 9)));
    const last = events.at(-1)!;
    expect(last.sweep).toMatchObject({ sweepId: a, status: 'completed', total: 2, completed: 2, running: 0, failed: 0 });
    expect(last.sweep!.bestValAccuracy).toBeCloseTo(acc(0.02), 9);
  });

  it('watch draws a progress bar that ends at 2/2 with the counts', () => {
    expect(watchText.filter((l) => l.startsWith('✔'))).toHaveLength(2);
    expect(watchText.at(-1)).toBe(`sweep ${b} completed`);
    expect(barLines.every((l) => l.endsWith('\n') && !l.includes('\r'))).toBe(true);
    expect(barLines[0]).toMatch(new RegExp(`^sweep ${b} \\[\\.+\\]  0/2  0%  completed 0, running 0, failed 0`));
    expect(barLines.at(-1)).toMatch(new RegExp(`^sweep ${b} \\[#+\\]  2/2  100%  completed 2, running 0, failed 0  in \\d+s\\n$`));
  });

  it('leaderboard --json and --csv carry the same rows and numbers', async () => {
    const json: string[] = [];
    const rows = JSON.parse((await printLeaderboard(client, { sweep: b, json: true }, (s) => json.push(s)), json[0])) as LeaderboardRow[];
    expect(rows.map((r) => r.valAccuracy)).toEqual([acc(0.04), acc(0.02)].map((x) => expect.closeTo(x, 9)));
    const csv: string[] = [];
    await printLeaderboard(client, { sweep: b, csv: true }, (s) => csv.push(s));
    const lines = csv.join('\n').split('\r\n');
    expect(lines[0].split(',')).toEqual([...LEADERBOARD_CSV_COLUMNS]);
    expect(lines).toHaveLength(3);
    const fields = lines.map((l) => l.split(','));
    const col = (k: keyof LeaderboardRow) => LEADERBOARD_CSV_COLUMNS.indexOf(k);
    for (let i = 0; i < 2; i++) {
      expect(fields[i + 1][col('trialId')]).toBe(rows[i].trialId);
      expect(Number(fields[i + 1][col('valAccuracy')])).toBe(rows[i].valAccuracy);
      expect(Number(fields[i + 1][col('learningRate')])).toBe(rows[i].learningRate);
    }
  });

  it('compare names the better sweep, by how much, and the shared axis values', async () => {
    const out: string[] = [];
    const view = JSON.parse((await printCompare(client, a, b, { json: true }, (s) => out.push(s)), out[0])) as CompareView;
    expect(view.metric).toBe('val_accuracy');
    expect(view.winner).toBe(b);
    expect(view.margin).toBeCloseTo(acc(0.04) - acc(0.02), 9);
    expect(view.sweeps.map((s) => s.best!.valAccuracy)).toEqual([acc(0.02), acc(0.04)].map((x) => expect.closeTo(x, 9)));
    const lr = view.axes.find((x) => x.axis === 'learning_rate')!;
    expect(lr.values.map((v) => v.key)).toEqual(['0.02']); // the only learning rate both sweeps tried
    expect(lr.values[0].a).toMatchObject({ count: 1, best: expect.closeTo(acc(0.02), 9), mean: expect.closeTo(acc(0.02), 9) });
    expect(lr.values[0].deltaBest).toBeCloseTo(0, 9);
    const bb = view.axes.find((x) => x.axis === 'backbone')!;
    expect(bb.values[0]).toMatchObject({ key: 'tiny_cnn', a: { count: 2, mean: expect.closeTo((acc(0.01) + acc(0.02)) / 2, 9) }, b: { count: 2, mean: expect.closeTo((acc(0.02) + acc(0.04)) / 2, 9) } });
    expect(bb.values[0].deltaBest).toBeCloseTo(acc(0.04) - acc(0.02), 9);

    const text: string[] = [];
    await printCompare(client, a, b, {}, (s) => text.push(s));
    expect(text[0]).toContain(`B (${b}) wins by 20.0 pt of val_accuracy`);
    // val_loss ranks lower-is-better; B's best trial has the lower loss (2.1 − accuracy), so B still wins.
    const byLoss = await printCompare(client, a, b, { metric: 'val_loss', json: true }, () => {});
    expect(byLoss.higherIsBetter).toBe(false);
    expect(byLoss.winner).toBe(b);
  });

  it('trial --json parses and matches the stored trial', async () => {
    const out: string[] = [];
    const rows = await printLeaderboard(client, { sweep: a, json: true }, () => {});
    await printTrial(client, rows[0].trialId, { json: true }, (s) => out.push(s));
    const view = JSON.parse(out[0]) as { trialId: string; valAccuracy: number; history: unknown[] };
    expect(view).toMatchObject({ trialId: rows[0].trialId, valAccuracy: expect.closeTo(acc(0.02), 9) });
    expect(view.history).toHaveLength(3);
  });

  it('unknown ids get the next command to try', async () => {
    const sweepErr = await client.get('s-nope').catch((e: unknown) => e);
    expect(explainError(sweepErr, { command: 'status', sweepId: 's-nope' })).toMatch(/sweep 's-nope' not found\nlist sweeps with `tlsweep status`/);
    const trialErr = await client.getTrial('t-nope').catch((e: unknown) => e);
    expect(explainError(trialErr, { command: 'trial', trialId: 't-nope' })).toMatch(/tlsweep leaderboard --sweep/);
  });

  it('the real binary: leaderboard --csv, and exit 1 with a hint for an unknown sweep', async () => {
    const coordinator = `127.0.0.1:${coord.port}`;
    const [csv, missing] = await Promise.all([
      runCli(['leaderboard', '--sweep', a, '--csv', '--coordinator', coordinator]),
      runCli(['status', 's-nope', '--json', '--no-color'], { TLSWEEP_COORDINATOR: coordinator }),
    ]);
    expect(csv.code).toBe(0);
    const records = csv.stdout.split('\r\n');
    expect(records[0]).toBe(LEADERBOARD_CSV_COLUMNS.join(','));
    expect(records).toHaveLength(3);
    expect(Number(records[1].split(',')[LEADERBOARD_CSV_COLUMNS.indexOf('valAccuracy')])).toBeCloseTo(acc(0.02), 9);
    expect(csv.stdout).not.toContain('\x1b[');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("sweep 's-nope' not found");
    expect(missing.stderr).toContain('list sweeps with `tlsweep status`');
  }, 30_000);
});
