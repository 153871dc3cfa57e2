import { open, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { TlsweepClient } from '../client.js';

/** Bytes per message of a push: well under gRPC's message limits. */
const PUSH_CHUNK_BYTES = 1024 * 1024;

function mib(n: number): string {
  return (n / 1024 / 1024).toFixed(1);
}

/** A model folder's model.json and the shard files its manifest lists, in order. */
async function readModelDir(dir: string): Promise<{ modelJson: string; shards: string[]; bytes: number }> {
  const path = dir.endsWith('.json') ? dir : join(dir, 'model.json');
  const modelJson = await readFile(path, 'utf8').catch((err: Error) => {
    throw new Error(`cannot read ${path}: ${err.message} (give a tfjs model folder, layers or graph format: model.json + shards)`);
  });
  let manifest: Array<{ paths: string[] }>;
  try {
    manifest = (JSON.parse(modelJson) as { weightsManifest: Array<{ paths: string[] }> }).weightsManifest;
    if (!Array.isArray(manifest)) throw new Error('no weightsManifest');
  } catch (err) {
    throw new Error(`${path} is not a tfjs model.json: ${(err as Error).message}`);
  }
  const base = resolve(path, '..');
  const shards = manifest.flatMap((g) => g.paths).map((p) => resolve(base, p));
  let bytes = 0;
  for (const s of shards) bytes += (await stat(s)).size;
  return { modelJson, shards, bytes };
}

async function* shardChunks(shards: string[], onBytes: (n: number) => void): AsyncGenerator<Uint8Array> {
  for (const s of shards) {
    const fh = await open(s, 'r');
    try {
      for (;;) {
        const buf = Buffer.alloc(PUSH_CHUNK_BYTES);
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        onBytes(bytesRead);
        yield buf.subarray(0, bytesRead);
      }
    } finally {
      await fh.close();
    }
  }
}

/** Whether model.json holds a tfjs GraphModel (graph nodes) rather than a layers model. */
function isGraphModelJson(text: string): boolean {
  try {
    const m = JSON.parse(text) as { modelTopology?: { node?: unknown } };
    return Array.isArray(m.modelTopology?.node);
  } catch {
    return false;
  }
}

/** `tlsweep weights push <name> <dir>`: uploads a tfjs model folder through the coordinator, with progress. */
export async function pushWeights(client: TlsweepClient, name: string, dir: string, out: (s: string) => void = console.log): Promise<string> {
  const { modelJson, shards, bytes } = await readModelDir(dir);
  let sent = 0;
  let lastShown = 0;
  const info = await client.pushWeights(name, modelJson, shardChunks(shards, (n) => {
    sent += n;
    // A line per ~10% keeps logs readable for big models.
    if (sent === bytes || sent - lastShown >= bytes / 10) {
      lastShown = sent;
      out(`pushing ${name}: ${mib(sent)}/${mib(bytes)} MiB (${bytes ? Math.round((100 * sent) / bytes) : 100}%)`);
    }
  }));
  // A GraphModel is a backbone of its own (graph:<ref>); a layers model holds weights for a catalog backbone.
  const use = isGraphModelJson(modelJson) ? `backbones: [graph:${info.ref}]` : `weights: {<backbone>: ${info.ref}}`;
  out(`stored ${info.ref}: ${info.weightCount} weights, ${mib(info.bytes)} MiB, sha256 ${info.sha256.slice(0, 12)}; use it in a spec as \`${use}\``);
  return info.ref;
}

/** `tlsweep weights list [--json]`. */
export async function listWeights(client: TlsweepClient, o: { json?: boolean } = {}, out: (s: string) => void = console.log): Promise<void> {
  const all = await client.listWeights();
  if (o.json) {
    out(JSON.stringify(all, null, 2));
    return;
  }
  if (all.length === 0) {
    out('no weights stored; push some with `tlsweep weights push <name> <dir>`');
    return;
  }
  for (const w of all) {
    out(`${w.ref.padEnd(32)} ${String(w.weightCount).padStart(5)} weights ${mib(w.bytes).padStart(8)} MiB  sha256 ${w.sha256.slice(0, 12)}  ${new Date(w.storedAtMs).toISOString()}`);
  }
}
