import * as grpc from '@grpc/grpc-js';
import type { ModelChunk, ModelExportRequest, WeightsInfo, WeightsPushChunk } from '../../../../proto/generated/tlsweep/v1/tlsweep.js';
import type { Coordinator } from '../coordinator.js';
import { InvalidArgumentError, toGrpcStatus } from '../errors.js';
import type { StoredModelInfo } from '../store/model-objects.js';

/** Bytes of weights per ModelChunk: well under gRPC's 4 MiB default receive limit. */
export const MODEL_CHUNK_BYTES = 1024 * 1024;

export function weightsInfoToPb(i: StoredModelInfo): WeightsInfo {
  return { name: i.name, ref: `objstore:${i.name}`, bytes: i.bytes, sha256: i.sha256, weightCount: i.weightCount, storedAtMs: i.storedAtMs };
}

/**
 * PushWeights: the first message names the weights and carries model.json;
 * the data of every message, in order, is the weight bytes, streamed into the
 * Object Store as they arrive.
 */
export function pushWeightsHandler(c: Coordinator): grpc.handleClientStreamingCall<WeightsPushChunk, WeightsInfo> {
  return (call, cb) => {
    const it = (call as AsyncIterable<WeightsPushChunk>)[Symbol.asyncIterator]();
    (async () => {
      const first = await it.next();
      if (first.done) throw new InvalidArgumentError([{ field: 'name', message: 'required in the first message (the stream was empty)' }], 'invalid weights push');
      const head = first.value;
      if (!head.modelJson) throw new InvalidArgumentError([{ field: 'model_json', message: 'required in the first message' }], 'invalid weights push');
      async function* data(): AsyncGenerator<Uint8Array> {
        if (head.data.length > 0) yield head.data;
        for (let n = await it.next(); !n.done; n = await it.next()) {
          if (n.value.name || n.value.modelJson) throw new InvalidArgumentError([{ field: 'name', message: 'only the first message may carry name and model_json' }], 'invalid weights push');
          if (n.value.data.length > 0) yield n.value.data;
        }
      }
      return weightsInfoToPb(await c.pushWeights({ name: head.name, modelJson: head.modelJson, data: data() }));
    })().then(
      (res) => cb(null, res),
      (err) => {
        const s = toGrpcStatus(err);
        cb({ code: s.code, details: s.details, metadata: new grpc.Metadata() });
      },
    );
  };
}

/** Writes, waiting for the stream to drain when its buffer is full. */
async function write(call: grpc.ServerWritableStream<unknown, ModelChunk>, chunk: ModelChunk): Promise<void> {
  if (!call.write(chunk)) await new Promise<void>((resolve) => call.once('drain', () => resolve()));
}

/** ExportModel: model.json and tlsweep.json first, then weights.bin in chunks. */
export function exportModelHandler(c: Coordinator): grpc.handleServerStreamingCall<ModelExportRequest, ModelChunk> {
  return (call) => {
    let cancelled = false;
    call.on('cancelled', () => {
      cancelled = true;
    });
    (async () => {
      if (!call.request.trialId) throw new InvalidArgumentError([{ field: 'trial_id', message: 'required' }], 'invalid request');
      const m = await c.exportModel(call.request.trialId);
      const empty = Buffer.alloc(0);
      await write(call, { modelJson: m.modelJson, tlsweepJson: m.tlsweepJson, totalBytes: m.bytes, data: empty });
      const reader = m.data.getReader();
      try {
        for (let r = await reader.read(); !r.done && !cancelled; r = await reader.read()) {
          for (let o = 0; o < r.value.byteLength; o += MODEL_CHUNK_BYTES) {
            await write(call, { modelJson: '', tlsweepJson: '', totalBytes: 0, data: Buffer.from(r.value.buffer, r.value.byteOffset + o, Math.min(MODEL_CHUNK_BYTES, r.value.byteLength - o)) });
          }
        }
      } finally {
        reader.releaseLock();
      }
      call.end();
    })().catch((err) => {
      const s = toGrpcStatus(err);
      call.emit('error', { code: s.code, details: s.details });
    });
  };
}
