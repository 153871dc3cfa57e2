import { readdir } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { IMAGE_EXTENSIONS } from '../../../worker/src/data/image-folder.js';
import { InvalidArgumentError, type FieldViolation } from '../errors.js';
import type { SweepSpec } from './sweep-spec.js';

/** Whether `dir` holds a PNG/JPEG file at any depth (by extension; stops at the first). */
async function hasImage(dir: string, depth = 0): Promise<boolean> {
  if (depth > 32) return false;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return false;
  }
  for (const e of entries) {
    if (!e.name.startsWith('.') && e.isFile() && IMAGE_EXTENSIONS.includes(extname(e.name).toLowerCase())) return true;
  }
  for (const e of entries) {
    if (!e.name.startsWith('.') && (e.isDirectory() || e.isSymbolicLink()) && (await hasImage(join(dir, e.name), depth + 1))) return true;
  }
  return false;
}

/**
 * Refuses a sweep whose folder dataset has a class sub-folder without any
 * image file, before any trial runs (otherwise every trial of it would fail
 * on a worker with DATASET_EMPTY_CLASS). Only folders the coordinator can
 * see are checked: workers may mount datasets the coordinator does not
 * have, and they check again when they load. Files are not decoded here; a
 * class whose files are all corrupt still fails on the worker.
 *
 * @throws InvalidArgumentError naming `dataset.path` (or `dataset[i].path`) and the empty classes
 */
export async function checkFolderDatasets(spec: SweepSpec): Promise<void> {
  const v: FieldViolation[] = [];
  for (const [i, d] of spec.datasets.entries()) {
    if (d.kind !== 'folder') continue;
    const field = spec.datasets.length > 1 ? `dataset[${i}].path` : 'dataset.path';
    let entries;
    try {
      entries = await readdir(d.path, { withFileTypes: true });
    } catch {
      continue; // not visible here
    }
    const classes = entries.filter((e) => !e.name.startsWith('.') && (e.isDirectory() || e.isSymbolicLink())).map((e) => e.name).sort();
    const empty: string[] = [];
    for (const name of classes) if (!(await hasImage(join(d.path, name)))) empty.push(name);
    if (empty.length > 0) {
      v.push({ field, message: `class${empty.length > 1 ? 'es' : ''} ${empty.map((n) => `'${n}'`).join(', ')} of ${d.path} ha${empty.length > 1 ? 've' : 's'} no ${IMAGE_EXTENSIONS.join('/')} images; every class needs at least one` });
    }
  }
  if (v.length > 0) throw new InvalidArgumentError(v, 'invalid sweep spec');
}
