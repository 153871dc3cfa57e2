/**
 * One of the processes of `bench:engine`'s host figures (host.ts): measures
 * the tfjs figures of one size like the main run, but waits before each
 * figure's timed steps until the parent says `go` on stdin, so that all
 * processes time the same figure at once. Protocol on stdout, one line each:
 * `ready <n>` before the n-th figure's timed steps, then `result <json>`.
 */
import { createInterface } from 'node:readline';
import { selectBackend } from '../../services/worker/src/engine/index.js';
import { loadEngineBenchConfig } from './config.js';
import { measureTfjsSize } from './tfjs-figures.js';

const [sizeText, ...rest] = process.argv.slice(2);
const cfg = loadEngineBenchConfig(rest);
await selectBackend(cfg.backend);

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
let figure = 0;
const figures = await measureTfjsSize(Number(sizeText), {
  ...cfg,
  beforeTimed: async () => {
    process.stdout.write(`ready ${figure++}\n`);
    const next = await lines.next();
    if (next.done || next.value.trim() !== 'go') throw new Error(`bench:engine host child: expected 'go' from the parent, got ${next.done ? 'end of input' : `'${next.value}'`}`);
  },
});
process.stdout.write(`result ${JSON.stringify(figures)}\n`);
process.exit(0);
