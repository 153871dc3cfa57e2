import { createHash } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { Objm, type ObjectInfo, type ObjectStore } from '@nats-io/obj';
import { manifestBytes, parseModelJson } from '../../../worker/src/engine/weights/read-weights.js';
import {
  MODEL_JSON,
  MODELS_BUCKET,
  objectName,
  TLSWEEP_JSON,
  WEIGHTS_BIN,
  WEIGHTS_BUCKET,
} from '../../../worker/src/engine/weights/object-layout.js';
import { InvalidArgumentError, NotFoundError } from '../errors.js';

export type ModelBucket = typeof WEIGHTS_BUCKET | typeof MODELS_BUCKET;

/** A stored model as listed. */
export interface StoredModelInfo {
  name: string;
  bytes: number;
  /** Of weights.bin, hex. */
  sha256: string;
  weightCount: number;
  storedAtMs: number;
}

/** A stored model as read back: its JSON files whole, the weights as a stream. */
export interface StoredModel {
  modelJson: string;
  /** Only exported trial models have one. */
  tlsweepJson: string;
  bytes: number;
  data: ReadableStream<Uint8Array>;
}

/** What a model is written from: model.json text and the weight bytes (in manifest order), streamed. */
export interface ModelUpload {
  name: string;
  modelJson: string;
  data: AsyncIterable<Uint8Array>;
  /** Written beside model.json (exported trial models). @default none */
  tlsweepJson?: string;
}

function toStream(it: AsyncIterable<Uint8Array>, onChunk: (c: Uint8Array) => void): ReadableStream<Uint8Array> {
  const iterator = it[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await iterator.next();
      if (done) {
        controller.close();
        return;
      }
      onChunk(value);
      // A copy: gRPC hands out Buffer views into larger buffers; the Object Store keeps what it is given.
      controller.enqueue(new Uint8Array(value));
    },
    async cancel() {
      await iterator.return?.();
    },
  });
}

/**
 * tfjs models in the NATS Object Store (layout: weights/object-layout.ts):
 * pushed backbone weights and the full models of the best trials.
 */
export class ModelObjects {
  private constructor(private readonly stores: Record<ModelBucket, ObjectStore>) {}

  /**
   * Opens both buckets. The coordinator creates them (`create: true`);
   * workers only open what it created.
   */
  static async open(nc: NatsConnection, opts: { replicas?: number; create?: boolean } = {}): Promise<ModelObjects> {
    const objm = new Objm(nc);
    const bucket = (name: string, description: string) =>
      opts.create === false ? objm.open(name) : objm.create(name, { replicas: opts.replicas ?? 1, description });
    const [weights, models] = await Promise.all([
      bucket(WEIGHTS_BUCKET, 'tlsweep backbone weights (tfjs layers format)'),
      bucket(MODELS_BUCKET, 'tlsweep full models of the best trials'),
    ]);
    return new ModelObjects({ [WEIGHTS_BUCKET]: weights, [MODELS_BUCKET]: models });
  }

  /**
   * Writes a model: weights.bin streamed first (checked against the manifest's
   * size), then model.json with its manifest pointing at weights.bin. A
   * failed or short upload leaves no model.json, so the model does not exist.
   * @throws InvalidArgumentError for a bad model.json or a byte count the manifest does not describe.
   */
  async put(bucket: ModelBucket, m: ModelUpload): Promise<StoredModelInfo> {
    let manifest;
    try {
      manifest = parseModelJson(m.modelJson, `model ${m.name}`);
    } catch (err) {
      throw new InvalidArgumentError([{ field: 'model_json', message: (err as Error).message }], 'invalid model');
    }
    let expected: number;
    try {
      expected = manifestBytes(manifest.weightsManifest);
    } catch (err) {
      throw new InvalidArgumentError([{ field: 'model_json', message: (err as Error).message }], 'invalid model');
    }
    const os = this.stores[bucket];
    // A half-replaced model must not look complete.
    await os.delete(objectName(m.name, MODEL_JSON)).catch(() => {});
    const hash = createHash('sha256');
    let bytes = 0;
    await os.put({ name: objectName(m.name, WEIGHTS_BIN) }, toStream(m.data, (c) => {
      hash.update(c);
      bytes += c.byteLength;
    }));
    if (bytes !== expected) {
      await os.delete(objectName(m.name, WEIGHTS_BIN)).catch(() => {});
      throw new InvalidArgumentError([{ field: 'data', message: `got ${bytes} weight bytes but model.json's weightsManifest describes ${expected}` }], 'invalid model');
    }
    const weights = manifest.weightsManifest.flatMap((g) => g.weights);
    const stored = { ...manifest, weightsManifest: [{ paths: [WEIGHTS_BIN], weights }] };
    const sha256 = hash.digest('hex');
    if (m.tlsweepJson !== undefined) await os.putBlob({ name: objectName(m.name, TLSWEEP_JSON) }, new TextEncoder().encode(m.tlsweepJson));
    const info = await os.putBlob(
      { name: objectName(m.name, MODEL_JSON), metadata: { sha256, bytes: String(bytes), weights: String(weights.length) } },
      new TextEncoder().encode(JSON.stringify(stored)),
    );
    return infoOf(m.name, info);
  }

  /** Every complete model of a bucket, by name. */
  async list(bucket: ModelBucket): Promise<StoredModelInfo[]> {
    const suffix = `/${MODEL_JSON}`;
    const all = await this.stores[bucket].list();
    return all
      .filter((o) => !o.deleted && o.name.endsWith(suffix))
      .map((o) => infoOf(o.name.slice(0, -suffix.length), o))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** @throws NotFoundError when the model is absent or incomplete. */
  async get(bucket: ModelBucket, name: string): Promise<StoredModel> {
    const os = this.stores[bucket];
    const json = await os.getBlob(objectName(name, MODEL_JSON));
    const weights = json ? await os.get(objectName(name, WEIGHTS_BIN)) : null;
    if (!json || !weights) throw new NotFoundError(`model in bucket ${bucket}`, name);
    const meta = await os.getBlob(objectName(name, TLSWEEP_JSON));
    return {
      modelJson: new TextDecoder().decode(json),
      tlsweepJson: meta ? new TextDecoder().decode(meta) : '',
      bytes: weights.info.size,
      data: weights.data,
    };
  }

  /** Removes every object of a model; absent ones are fine. */
  async delete(bucket: ModelBucket, name: string): Promise<void> {
    const os = this.stores[bucket];
    // model.json first: the model stops existing before its parts go.
    for (const file of [MODEL_JSON, TLSWEEP_JSON, WEIGHTS_BIN]) {
      if (await os.info(objectName(name, file))) await os.delete(objectName(name, file));
    }
  }
}

function infoOf(name: string, o: ObjectInfo): StoredModelInfo {
  const md = o.metadata ?? {};
  return {
    name,
    bytes: Number(md.bytes ?? 0),
    sha256: md.sha256 ?? '',
    weightCount: Number(md.weights ?? 0),
    storedAtMs: Date.parse(o.mtime) || 0,
  };
}
