import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TlsweepClient } from '../client.js';
import { clusterEnv } from '../config.js';
import { startLocalCluster } from '../local-cluster.js';
import { printLeaderboard } from './leaderboard.js';
import { watchSweep } from './watch.js';
import { progressMode } from '../progress.js';

export const DEMO_SPEC = fileURLToPath(new URL('../../../../examples/demo.yaml', import.meta.url));

/** `npm run demo`: local cluster → real sweep with live progress → leaderboard → clean shutdown. */
export async function runDemo(o: { workers: number; specFile?: string }): Promise<number> {
  const t0 = Date.now();
  const spec = readFileSync(o.specFile ?? DEMO_SPEC, 'utf8');
  console.log(`starting a local cluster: nats-server (JetStream, temp store), 1 coordinator, ${o.workers} workers…`);
  const cluster = await startLocalCluster({ workers: o.workers, env: clusterEnv() });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await cluster.stop();
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  const client = new TlsweepClient(cluster.coordinator);
  try {
    await client.ready();
    console.log(`cluster up in ${((Date.now() - t0) / 1000).toFixed(1)}s: coordinator ${cluster.coordinator}, NATS ${cluster.natsUrl}; logs in ${cluster.logDir}`);
    if (cluster.dashboardUrl) console.log(`dashboard (live while the demo runs): ${cluster.dashboardUrl}`);
    const sweep = await client.submit(spec);
    console.log(`submitted sweep ${sweep.sweepId} '${sweep.name}': ${sweep.counts!.total} trials`);
    const done = await watchSweep(client, sweep.sweepId, { progress: progressMode({ isTTY: process.stderr.isTTY }) });
    console.log(`\nLeaderboard (${done.name}, sorted by validation accuracy):`);
    await waitForBestModel(client, sweep.sweepId);
    await printLeaderboard(client, { sweep: sweep.sweepId, top: 50, groupBy: 'unfreeze' });
    console.log(`\ndemo finished in ${((Date.now() - t0) / 1000).toFixed(1)}s; sweep ${done.status}`);
    return done.status === 'completed' ? 0 : 1;
  } finally {
    client.close();
    console.log('stopping the cluster…');
    await stop();
  }
}

/**
 * The best trial's worker stores its model just after its result (README:
 * Weights, export and predict), so a sweep can end a moment before the model
 * lands: wait briefly for it, so the leaderboard names the model kept.
 */
async function waitForBestModel(client: TlsweepClient, sweepId: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const s = await client.get(sweepId);
    if (!s.bestTrialId || s.bestModelRef === s.bestTrialId || Date.now() > until) return;
    await new Promise((r) => setTimeout(r, 250));
  }
}
