import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TlsweepClient } from '../client.js';

export interface ExportResult {
  dir: string;
  bytes: number;
  /** tlsweep.json, parsed. */
  meta: Record<string, unknown>;
}

/**
 * `tlsweep export <trialId> <dir>`: fetches a trial's stored full model
 * through the coordinator and writes model.json, weights.bin and
 * tlsweep.json (a folder `tlsweep predict` and `tf.loadLayersModel` read).
 */
export async function exportTrialModel(client: TlsweepClient, trialId: string, dir: string, out: (s: string) => void = console.log): Promise<ExportResult> {
  await mkdir(dir, { recursive: true });
  const weights = await open(join(dir, 'weights.bin'), 'w');
  let total = -1;
  let bytes = 0;
  let meta: Record<string, unknown> = {};
  let lastShown = 0;
  try {
    for await (const chunk of client.exportModel(trialId)) {
      if (total < 0) {
        total = Number(chunk.totalBytes);
        await writeFile(join(dir, 'model.json'), chunk.modelJson);
        await writeFile(join(dir, 'tlsweep.json'), chunk.tlsweepJson);
        meta = chunk.tlsweepJson ? (JSON.parse(chunk.tlsweepJson) as Record<string, unknown>) : {};
      }
      if (chunk.data.length === 0) continue;
      await weights.write(chunk.data);
      bytes += chunk.data.length;
      if (bytes === total || bytes - lastShown >= total / 10) {
        lastShown = bytes;
        out(`exporting ${trialId}: ${(bytes / 1048576).toFixed(1)}/${(total / 1048576).toFixed(1)} MiB`);
      }
    }
  } finally {
    await weights.close();
  }
  if (total < 0) throw new Error(`the coordinator sent nothing for trial ${trialId}`);
  if (bytes !== total) throw new Error(`export of ${trialId} ended after ${bytes} of ${total} weight bytes; run it again`);
  out(`wrote ${dir}/model.json, weights.bin, tlsweep.json (${String(meta.backbone ?? '?')}, classes: ${(meta.classNames as string[] | undefined)?.join(', ') ?? '?'})`);
  return { dir, bytes, meta };
}
