/**
 * The `tlsweep` command line: run a local cluster, submit and watch sweeps,
 * read the leaderboard. `tlsweep help` lists the commands.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { TlsweepClient } from './client.js';
import { printLeaderboard } from './commands/leaderboard.js';
import { watchSweep } from './commands/watch.js';
import { printTrial } from './commands/trial.js';
import { clusterEnv, colorWanted, removeClusterFile, resolveClientAuth, resolveCoordinator, writeClusterFile } from './config.js';
import { sweepLine, sweepsTable } from './format.js';
import { explainError, SpecError, UsageError, type ErrorContext } from './cli-errors.js';
import { printCompare } from './commands/compare.js';
import { progressMode } from './progress.js';
import { createStyle } from './style.js';
import type { TableOptions } from './table.js';
import { InvalidArgumentError, parseSweepSpec } from '../../coordinator/src/index.js';
import { startLocalCluster } from './local-cluster.js';
import { runDemo } from './commands/demo.js';
import { listWeights, pushWeights } from './commands/weights.js';
import { exportTrialModel } from './commands/export.js';

const HELP = `tlsweep — transfer-learning sweeps on a cluster

Usage:
  tlsweep demo [--workers N] [--spec FILE]    start a local cluster, run a real sweep, print the leaderboard, stop
  tlsweep up [--workers N]                    run a local cluster (nats-server, coordinator, workers) until Ctrl-C
  tlsweep submit <spec.yaml> [--watch]        submit a sweep (YAML or JSON, checked here first); --watch follows it
  tlsweep watch <sweepId> [--json]            follow a sweep: event lines over a live progress bar (ETA); --json: JSON lines
  tlsweep status [sweepId] [--json]           one sweep, or all sweeps
  tlsweep leaderboard [--sweep ID] [--top N] [--group-by AXIS] [--sort-by METRIC]
                      [--backbone NAME] [--status S] [--all] [--json | --csv]
  tlsweep compare <sweepA> <sweepB> [--sort-by METRIC] [--json]
                                              best trial of each, per-axis best/mean on shared values, the winner
  tlsweep trial <trialId> [--json]            one trial: config, history, test metrics per class, confusion matrix
  tlsweep cancel <sweepId> [--json]
  tlsweep weights push <name> <dir>           store a tfjs model folder (model.json + shards) as objstore:<name>
  tlsweep weights list [--json]               weights in the cluster's Object Store
  tlsweep export <trialId> <dir>              write a kept trial's full model: model.json, weights.bin, tlsweep.json
  tlsweep predict <dir> <images...> [--top N] [--json]
                                              classify PNG/JPEG images with an exported model (no cluster needed)
  tlsweep feature-maps <backbone|trialId|modelDir> [image] [--layer NAME] [--out grid.png] [--image-size N] [--channels N] [--json]
                                              one layer's activation grid for an image (no --layer: list layers)
  tlsweep k8s render <dev|gpu|DIR> [--worker-job N]
                      print the overlay's manifests (checked) for \`kubectl apply -f -\`
  tlsweep k8s run <spec.yaml> [--gpus N] [--namespace NS] [--overlay dev|gpu|DIR] [--image IMG]
                      [--job-name NAME] [--unschedulable-timeout SECONDS]
                      submit the sweep, run it on an Indexed Job of min(maxParallel, trials, N)
                      worker pods, delete the Job when it ends; exit 1 with the reason if it fails

Options:
  --no-color                no colours (also when NO_COLOR is set or output is not a terminal)
  --json                    machine-readable output on every read command (no progress bar)
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
      csv: { type: 'boolean' },
      'no-color': { type: 'boolean' },
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
      gpus: { type: 'string' },
      namespace: { type: 'string' },
      overlay: { type: 'string' },
      image: { type: 'string' },
      'job-name': { type: 'string' },
      'worker-job': { type: 'string' },
      'unschedulable-timeout': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [cmd, ...args] = positionals;
  ctx.command = cmd ?? '';
  const style = createStyle(colorWanted({ isTTY: process.stdout.isTTY, noColorFlag: o['no-color'] }));
  // Fit tables to the terminal; piped output keeps full cells for grep and scripts.
  const tableOpts: TableOptions = { style, maxWidth: process.stdout.isTTY ? process.stdout.columns : undefined };
  const progress = progressMode({ json: o.json, isTTY: process.stderr.isTTY });
  if (o.json && o.csv) throw new UsageError('--json and --csv: pick one');
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
    if (args.length < 1) throw new UsageError('feature-maps: give a backbone (and an image with --layer), e.g. `tlsweep feature-maps mobilenet_v2 shoe.png --layer block_3_expand_relu`');
    // Loaded on demand: TensorFlow.js and the Kubernetes client would slow every other command's start.
    const { runFeatureMaps } = await import('./commands/feature-maps.js');
    const source = await featureMapSource(args[0], o.coordinator, o.token);
    return runFeatureMaps({
      backbone: source, image: args[1], layer: o.layer, out: o.out,
      imageSize: o['image-size'] === undefined ? undefined : intOpt('image-size', o['image-size'], 0), channels: intOpt('channels', o.channels, 64), json: o.json,
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

  if (cmd === 'predict') {
    const [dir, ...images] = args;
    if (!dir || images.length === 0) throw new UsageError('predict: give an exported model folder and images, e.g. `tlsweep predict ./best cat.jpg dog.png`');
    // TensorFlow.js loads only for the commands that need it.
    const [{ selectBackend }, { predictImages }] = await Promise.all([import('../../worker/src/engine/backend.js'), import('./commands/predict.js')]);
    await selectBackend();
    await predictImages(dir, images, { top: intOpt('top', o.top, 3), json: o.json });
    return 0;
  }
  if (cmd === 'k8s' && args[0] === 'render') {
    if (!args[1]) throw new UsageError('k8s render: give the overlay, e.g. `tlsweep k8s render gpu`');
    const { renderCommand } = await import('./commands/k8s.js');
    process.stdout.write(renderCommand(args[1], { workerJob: o['worker-job'] === undefined ? undefined : intOpt('worker-job', o['worker-job'], 1), namespace: o.namespace }));
    return 0;
  }
  if (cmd === 'k8s' && args[0] !== 'run') throw new UsageError('k8s: the subcommands are render and run; see `tlsweep help`');

  // Check the spec here first: every violation with its field, without needing a cluster.
  let specText = '';
  if (cmd === 'submit') {
    const file = args[0] ?? o.spec;
    if (!file) throw new UsageError('submit: give the spec file, e.g. `tlsweep submit examples/demo.yaml`');
    try {
      specText = readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError(`submit: cannot read '${file}': ${(err as Error).message}`);
    }
    try {
      parseSweepSpec(specText);
    } catch (err) {
      if (err instanceof InvalidArgumentError) throw new SpecError(file, err.violations);
      throw err;
    }
  }

  ctx.coordinator = resolveCoordinator(o.coordinator);
  ctx.sweepId = cmd === 'trial' ? undefined : args[0] ?? o.sweep;
  ctx.trialId = cmd === 'trial' ? args[0] : undefined;
  const client = new TlsweepClient(ctx.coordinator, resolveClientAuth(o.token));
  try {
    await client.ready();
    switch (cmd) {
      case 'submit': {
        const sweep = await client.submit(specText);
        ctx.sweepId = sweep.sweepId;
        if (o.json) console.log(JSON.stringify(sweep));
        else console.log(`submitted ${sweep.sweepId} (${sweep.counts!.total} trials)`);
        if (o.watch) {
          const done = await watchSweep(client, sweep.sweepId, { json: o.json, progress, style });
          if (!o.json) await printLeaderboard(client, { sweep: sweep.sweepId, top: 20, table: tableOpts });
          return done.status === 'failed' ? 1 : 0;
        }
        return 0;
      }
      case 'watch': {
        if (!args[0]) throw new UsageError('watch: give the sweep id (see `tlsweep status`)');
        const done = await watchSweep(client, args[0], { json: o.json, progress, style });
        return done.status === 'failed' ? 1 : 0;
      }
      case 'status': {
        const sweeps = args[0] ? [await client.get(args[0])] : await client.list();
        if (o.json) console.log(JSON.stringify(sweeps, null, 2));
        else if (sweeps.length === 0) console.log('no sweeps yet; submit one with `tlsweep submit <spec.yaml>`');
        else console.log(sweepsTable(sweeps, tableOpts));
        return 0;
      }
      case 'leaderboard':
        await printLeaderboard(client, {
          sweep: o.sweep, top: intOpt('top', o.top, 20), groupBy: o['group-by'], sortBy: o['sort-by'],
          backbone: o.backbone, status: o.status, json: o.json, csv: o.csv, all: o.all, table: tableOpts,
        });
        return 0;
      case 'trial': {
        if (!args[0]) throw new UsageError('trial: give the trial id (see `tlsweep leaderboard`)');
        await printTrial(client, args[0], { json: o.json });
        return 0;
      }
      case 'k8s': {
        if (!args[1]) throw new UsageError('k8s run: give the spec file, e.g. `tlsweep k8s run examples/demo.yaml --gpus 4`');
        const { runCommand } = await import('./commands/k8s.js');
        return await runCommand({
          specFile: args[1], client, overlay: o.overlay ?? 'gpu', namespace: o.namespace, image: o.image, jobName: o['job-name'],
          gpus: o.gpus === undefined ? undefined : intOpt('gpus', o.gpus, 1),
          unschedulableTimeoutMs: o['unschedulable-timeout'] === undefined ? undefined : intOpt('unschedulable-timeout', o['unschedulable-timeout'], 1) * 1000,
        });
      }
      case 'cancel': {
        if (!args[0]) throw new UsageError('cancel: give the sweep id (see `tlsweep status`)');
        const s = await client.cancel(args[0]);
        console.log(o.json ? JSON.stringify(s, null, 2) : sweepLine(s));
        return 0;
      }
      case 'compare': {
        if (args.length < 2) throw new UsageError('compare: give two sweep ids, e.g. `tlsweep compare s-1 s-2` (list them with `tlsweep status`)');
        await printCompare(client, args[0], args[1], { metric: o['sort-by'], json: o.json, table: tableOpts });
        return 0;
      }
      case 'export': {
        if (!args[0] || !args[1]) throw new UsageError('export: give the trial id and a folder, e.g. `tlsweep export <trialId> ./best` (see `tlsweep leaderboard`)');
        await exportTrialModel(client, args[0], args[1]);
        return 0;
      }
      case 'weights': {
        const [sub, name, dir] = args;
        if (sub === 'list') {
          await listWeights(client, { json: o.json });
          return 0;
        }
        if (sub === 'push') {
          if (!name || !dir) throw new UsageError('weights push: give a name and a tfjs model folder, e.g. `tlsweep weights push vgg16-imagenet ./vgg16`');
          await pushWeights(client, name, dir);
          return 0;
        }
        throw new UsageError('weights: use `tlsweep weights push <name> <dir>` or `tlsweep weights list`');
      }
      default:
        throw new UsageError(`unknown command '${cmd}'; run \`tlsweep help\``);
    }
  } finally {
    client.close();
  }
}

const ctx: ErrorContext = { command: '' };

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`tlsweep: ${explainError(err, ctx)}`);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);

/**
 * What `tlsweep feature-maps` runs on: a backbone name or an exported model
 * folder as given; a trial id becomes that trial's kept model (exported to a
 * temp folder through the coordinator), or its backbone when it kept none.
 */
async function featureMapSource(arg: string, coordinator: string | undefined, token: string | undefined): Promise<string> {
  const { KNOWN_BACKBONES } = await import('../../worker/src/engine/backbones/catalog.js');
  if (KNOWN_BACKBONES.includes(arg) || existsSync(join(arg, 'tlsweep.json'))) return arg;
  const client = new TlsweepClient(resolveCoordinator(coordinator), resolveClientAuth(token));
  try {
    await client.ready();
    const trial = await client.getTrial(arg);
    if (!trial.modelRef) {
      console.error(`trial ${arg} kept no model: showing its backbone ${trial.backbone} with its bundled or random weights`);
      return trial.backbone;
    }
    const dir = mkdtempSync(join(tmpdir(), 'tlsweep-fm-model-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    await exportTrialModel(client, arg, dir, () => {});
    return dir;
  } finally {
    client.close();
  }
}
