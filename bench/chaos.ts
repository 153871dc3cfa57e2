/**
 * `npm run bench:chaos`: the chaos scenario of tests/chaos.test.ts at 400
 * trials (3 worker SIGKILLs, 2 coordinator SIGKILLs, 1 nats-server restart).
 * Prints progress, then the figures as JSON on the last line.
 *
 * Flags: --trials N (400), --workers N (3), --kills N (3), --coordinator-restarts N (2), --nats-restarts N (1).
 */
import { parseArgs } from 'node:util';
import { runChaosScenario } from './chaos-scenario.js';

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '400' },
    workers: { type: 'string', default: '3' },
    kills: { type: 'string', default: '3' },
    'coordinator-restarts': { type: 'string', default: '2' },
    'nats-restarts': { type: 'string', default: '1' },
  },
});
const int = (name: string, raw: string, min: number): number => {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name}: must be an integer >= ${min}; got ${JSON.stringify(raw)}`);
  return n;
};
const { figures } = await runChaosScenario({
  trials: int('trials', values.trials, 1),
  workers: int('workers', values.workers, 1),
  workerKills: int('kills', values.kills, 0),
  coordinatorRestarts: int('coordinator-restarts', values['coordinator-restarts'], 0),
  natsRestarts: int('nats-restarts', values['nats-restarts'], 0),
  timeoutMs: 3_600_000,
  log: (line) => console.error(`[chaos] ${line}`),
});
console.log(JSON.stringify({ bench: 'chaos', ...figures }));
process.exit(figures.resultsLost === 0 && figures.duplicatedEpochs === 0 ? 0 : 1);
