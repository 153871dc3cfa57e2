/**
 * The `tlsweep` command line: run a local cluster, submit and watch sweeps,
 * read the leaderboard. `tlsweep help` lists the commands.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { TlsweepClient } from './client.js';
import { printLeaderboard } from './commands/leaderboard.js';
import { watchSweep } from './commands/watch.js';
import { printTrial } from './commands/trial.js';
import { clusterEnv, removeClusterFile, resolveClientAuth, resolveCoordinator, writeClusterFile } from './config.js';
import { sweepLine } from './format.js';
import { startLocalCluster } from './local-cluster.js';
import { runDemo } from './commands/demo.js';
import { runFeatureMaps } from './commands/feature-maps.js';

const HELP = `tlsweep — transfer-learning sweeps on a cluster

Usage:
  tlsweep demo [--workers N] [--spec FILE]    start a local cluster, run a real sweep, print the leaderboard, stop
  tlsweep up [--workers N]                    run a local cluster (nats-server, coordinator, workers) until Ctrl-C
  tlsweep submit <spec.yaml> [--watch]        submit a sweep (YAML or JSON); --watch follows it to the end
  tlsweep watch <sweepId>                     follow a sweep's progress
  tlsweep status [sweepId] [--json]           one sweep, or all sweeps
  tlsweep leaderboard [--sweep ID] [--top N] [--group-by AXIS] [--sort-by METRIC]
                      [--backbone NAME] [--status S] [--all] [--json]
  tlsweep trial <trialId> [--json]            one trial: config, history, test metrics per class, confusion matrix
  tlsweep cancel <sweepId>
  tlsweep feature-maps <backbone> <image> [--layer NAME] [--out grid.png] [--image-size N] [--channels N]
                                              one layer's activation grid for an image (no --layer: list layers)

Options:
  --coordinator host:port   coordinator gRPC address (default: $TLSWEEP_COORDINATOR, then the cluster
                            started by \`tlsweep up\` in this folder, then 127.0.0.1:50051)
  --token TOKEN             bearer token (default: $TLSWEEP_TOKEN, $TLSWEEP_TOKEN_FILE); TLS: $TLSWEEP_TLS_CA_FILE,
                            $TLSWEEP_TLS_CLIENT_CERT_FILE + $TLSWEEP_TLS_CLIENT_KEY_FILE (see README, Security)
Axes for --group-by: backbone, unfreeze, learning_rate, dropout, dataset, status
Metrics for --sort-by: val_accuracy (default), test_accuracy, val_loss, test_loss, seconds, epochs`;

async function main(argv: string[]): Promise<number> {
  const { values: o, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      coordinator: { type: 'string' },
      token: { type: 'string' },
      workers: { type: 'string' },
      spec: { type: 'string' },
      watch: { type: 'boolean' },
      json: { type: 'boolean' },
      sweep: { type: 'string' },
      top: { type: 'string' },
      'group-by': { type: 'string' },
      'sort-by': { type: 'string' },
      backbone: { type: 'string' },
      status: { type: 'string' },
      all: { type: 'boolean' },
      layer: { type: 'string' },
      out: { type: 'string' },
      'image-size': { type: 'string' },
      channels: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [cmd, ...args] = positionals;
  if (!cmd || cmd === 'help' || o.help) {
    console.log(HELP);
    return cmd || o.help ? 0 : 2;
  }
  const intOpt = (name: string, v: string | undefined, dflt: number, min = 1) => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name}: must be an integer >= ${min}; got ${JSON.stringify(v)}`);
    return n;
  };

  if (cmd === 'feature-maps') {
    if (args.length < 2) throw new UsageError('feature-maps: give a backbone and an image, e.g. `tlsweep feature-maps mobilenet_v2 shoe.png --layer block_3_expand_relu`');
    return runFeatureMaps({
      backbone: args[0], image: args[1], layer: o.layer, out: o.out,
      imageSize: o['image-size'] === undefined ? undefined : intOpt('image-size', o['image-size'], 0), channels: intOpt('channels', o.channels, 64),
    });
  }
  if (cmd === 'demo') return runDemo({ workers: intOpt('workers', o.workers, 2), specFile: o.spec });
  if (cmd === 'up') {
    const cluster = await startLocalCluster({ workers: intOpt('workers', o.workers, 2), env: clusterEnv() });
    writeClusterFile({ coordinator: cluster.coordinator, natsUrl: cluster.natsUrl, pid: process.pid, startedAt: new Date().toISOString() });
    console.log(`tlsweep cluster up: coordinator ${cluster.coordinator}, NATS ${cluster.natsUrl}, ${cluster.workers.length} workers; logs in ${cluster.logDir}`);
    if (cluster.dashboardUrl) console.log(`dashboard: ${cluster.dashboardUrl} (metrics at ${cluster.dashboardUrl}metrics)`);
    console.log('Submit with `tlsweep submit examples/demo.yaml --watch` in another terminal; Ctrl-C stops the cluster.');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    console.log('stopping…');
    await cluster.stop();
    removeClusterFile();
    return 0;
  }

  const client = new TlsweepClient(resolveCoordinator(o.coordinator), resolveClientAuth(o.token));
  try {
    await client.ready();
    switch (cmd) {
      case 'submit': {
        const file = args[0] ?? o.spec;
        if (!file) throw new UsageError('submit: give the spec file, e.g. `tlsweep submit examples/demo.yaml`');
        const sweep = await client.submit(readFileSync(file, 'utf8'));
        if (o.json) console.log(JSON.stringify(sweep));
        else console.log(`submitted ${sweep.sweepId} (${sweep.counts!.total} trials)`);
        if (o.watch) {
          const done = await watchSweep(client, sweep.sweepId);
          await printLeaderboard(client, { sweep: sweep.sweepId, top: 20 });
          return done.status === 'failed' ? 1 : 0;
        }
        return 0;
      }
      case 'watch': {
        if (!args[0]) throw new UsageError('watch: give the sweep id (see `tlsweep status`)');
        const done = await watchSweep(client, args[0]);
        return done.status === 'failed' ? 1 : 0;
      }
      case 'status': {
        const sweeps = args[0] ? [await client.get(args[0])] : await client.list();
        if (o.json) console.log(JSON.stringify(sweeps, null, 2));
        else if (sweeps.length === 0) console.log('no sweeps yet; submit one with `tlsweep submit <spec.yaml>`');
        else for (const s of sweeps) console.log(sweepLine(s));
        return 0;
      }
      case 'leaderboard':
        await printLeaderboard(client, {
          sweep: o.sweep, top: intOpt('top', o.top, 20), groupBy: o['group-by'], sortBy: o['sort-by'],
          backbone: o.backbone, status: o.status, json: o.json, all: o.all,
        });
        return 0;
      case 'trial': {
        if (!args[0]) throw new UsageError('trial: give the trial id (see `tlsweep leaderboard`)');
        await printTrial(client, args[0], { json: o.json });
        return 0;
      }
      case 'cancel': {
        if (!args[0]) throw new UsageError('cancel: give the sweep id');
        console.log(sweepLine(await client.cancel(args[0])));
        return 0;
      }
      default:
        throw new UsageError(`unknown command '${cmd}'; run \`tlsweep help\``);
    }
  } finally {
    client.close();
  }
}

class UsageError extends Error {}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`tlsweep: ${err.message}`);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
