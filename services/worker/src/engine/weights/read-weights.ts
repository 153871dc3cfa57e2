import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { Objm } from '@nats-io/obj';
import type * as tf from '@tensorflow/tfjs';
import { MODEL_JSON, objectName, storedWeightBytes, WEIGHTS_BIN, WEIGHTS_BUCKET } from './object-layout.js';
import { WeightsError } from './weights-error.js';
import type { WeightsRef } from './weights-ref.js';
import type { WeightsCache } from './weights-cache.js';

/** How a worker reaches weights that are not plain files. */
export interface WeightsAccess {
  /** NATS connection for `objstore:` refs (the worker's own). @default none: objstore refs fail */
  nc?: NatsConnection;
  /** Keeps Object Store weights between trials of this process. @default none (every trial downloads) */
  cache?: WeightsCache;
}

/** A model's weights as read: manifest entries and the shards joined in manifest order. */
export interface WeightsArtifacts {
  specs: tf.io.WeightsManifestEntry[];
  data: ArrayBuffer;
  /** sha256 of `data`, hex. */
  sha256: string;
  /** The parsed model.json (topology included when the file has one). */
  modelJson: ModelJson;
}

export interface ModelJson {
  modelTopology?: unknown;
  weightsManifest: tf.io.WeightsManifestConfig;
  [key: string]: unknown;
}

/** Parses model.json text and checks the parts the loader relies on. */
export function parseModelJson(text: string, where: string): ModelJson {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new WeightsError(`${where}: model.json is not JSON: ${(err as Error).message}`, { retryable: false });
  }
  const m = json as Partial<ModelJson> | null;
  const groups = m?.weightsManifest;
  if (!Array.isArray(groups) || groups.some((g) => !Array.isArray(g?.paths) || !Array.isArray(g?.weights))) {
    throw new WeightsError(`${where}: not a tfjs model.json (layers or graph format; needs weightsManifest: [{paths, weights}])`, { retryable: false });
  }
  return m as ModelJson;
}

/** Bytes the manifest says its shards hold. */
export function manifestBytes(manifest: tf.io.WeightsManifestConfig): number {
  return manifest.flatMap((g) => g.weights).reduce((sum, w) => sum + storedWeightBytes(w), 0);
}

function joinShards(parts: Uint8Array[]): ArrayBuffer {
  const total = parts.reduce((s, p) => s + p.byteLength, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.byteLength;
  }
  return out.buffer;
}

function artifacts(modelJson: ModelJson, data: ArrayBuffer, where: string): WeightsArtifacts {
  const expected = manifestBytes(modelJson.weightsManifest);
  if (data.byteLength !== expected) {
    throw new WeightsError(`${where}: the shards hold ${data.byteLength} bytes but the manifest describes ${expected}`, { retryable: false });
  }
  return {
    specs: modelJson.weightsManifest.flatMap((g) => g.weights),
    data,
    sha256: createHash('sha256').update(new Uint8Array(data)).digest('hex'),
    modelJson,
  };
}

async function readFromFiles(path: string, where: string): Promise<WeightsArtifacts> {
  const read = async (p: string) => {
    try {
      return await readFile(p);
    } catch (err) {
      throw new WeightsError(`${where}: cannot read ${p}: ${(err as Error).message}`, { retryable: false, cause: err });
    }
  };
  const modelJson = parseModelJson((await read(path)).toString('utf8'), where);
  const dir = dirname(path);
  const shards: Uint8Array[] = [];
  for (const p of modelJson.weightsManifest.flatMap((g) => g.paths)) shards.push(await read(resolve(dir, p)));
  return artifacts(modelJson, joinShards(shards), where);
}

async function fetchOk(url: string, where: string): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (err) {
    throw new WeightsError(`${where}: cannot fetch ${url}: ${(err as Error).message}`, { retryable: true, cause: err });
  }
  if (!res.ok) {
    // 5xx and 429 may pass; 404 and other client errors will not.
    const retryable = res.status >= 500 || res.status === 429;
    throw new WeightsError(`${where}: GET ${url} answered ${res.status} ${res.statusText}`, { retryable });
  }
  return res;
}

async function readFromUrl(url: string, where: string): Promise<WeightsArtifacts> {
  const modelJson = parseModelJson(await (await fetchOk(url, where)).text(), where);
  const shards: Uint8Array[] = [];
  // Shard paths are relative to model.json, as tfjs' http loader resolves them.
  for (const p of modelJson.weightsManifest.flatMap((g) => g.paths)) {
    shards.push(new Uint8Array(await (await fetchOk(new URL(p, url).href, where)).arrayBuffer()));
  }
  return artifacts(modelJson, joinShards(shards), where);
}

async function readFromObjectStore(name: string, access: WeightsAccess, where: string): Promise<WeightsArtifacts> {
  if (!access.nc) throw new WeightsError(`${where}: no NATS connection to read the Object Store with`, { retryable: false });
  let json: Uint8Array | null = null;
  let data: Uint8Array | null = null;
  let cacheKey = '';
  let pushedSha256 = '';
  try {
    const os = await new Objm(access.nc).open(WEIGHTS_BUCKET);
    const info = await os.info(objectName(name, MODEL_JSON));
    if (info && !info.deleted) {
      // model.json is written last on every push: its nuid names one complete upload.
      cacheKey = `${name}@${info.nuid}`;
      pushedSha256 = info.metadata?.sha256 ?? '';
      const cached = access.cache?.get(cacheKey);
      if (cached) return cached;
      json = await os.getBlob(objectName(name, MODEL_JSON));
      data = json ? await os.getBlob(objectName(name, WEIGHTS_BIN)) : null;
    }
  } catch (err) {
    const e = err as Error;
    // A missing bucket means nothing was ever pushed; everything else is NATS being unreachable.
    const missing = /stream not found|bucket not found|not found/i.test(e.message);
    if (missing) throw new WeightsError(`${where}: no weights named '${name}' (bucket ${WEIGHTS_BUCKET} does not exist; push with \`tlsweep weights push ${name} <dir>\`)`, { retryable: false, cause: err });
    throw new WeightsError(`${where}: cannot read the Object Store: ${e.message}`, { retryable: true, cause: err });
  }
  if (!json || !data) throw new WeightsError(`${where}: no weights named '${name}' in bucket ${WEIGHTS_BUCKET} (see \`tlsweep weights list\`)`, { retryable: false });
  const modelJson = parseModelJson(Buffer.from(json).toString('utf8'), where);
  // A copy: the client may hand out a view of a larger buffer (Buffer.slice would not copy).
  const a = artifacts(modelJson, new Uint8Array(data).buffer, where);
  if (pushedSha256 && a.sha256 !== pushedSha256) {
    // Replaced while we read it (or damaged): reading again gets a consistent copy.
    throw new WeightsError(`${where}: read weights with sha256 ${a.sha256.slice(0, 12)}, pushed as ${pushedSha256.slice(0, 12)}`, { retryable: true });
  }
  access.cache?.put(cacheKey, a);
  return a;
}

/**
 * Reads a model's manifest and weight bytes from wherever `ref` points.
 * @param where how errors name what was read. @default `weights <ref>`
 */
export function readWeights(ref: WeightsRef, access: WeightsAccess = {}, where = `weights ${ref.text}`): Promise<WeightsArtifacts> {
  switch (ref.kind) {
    case 'file':
      return readFromFiles(ref.path, where);
    case 'http':
      return readFromUrl(ref.url, where);
    case 'objstore':
      return readFromObjectStore(ref.name, access, where);
  }
}
