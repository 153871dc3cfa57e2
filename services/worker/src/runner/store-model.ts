import type { NatsConnection } from '@nats-io/transport-node';
import { ModelObjects, type TrialConfig } from '../../../coordinator/src/index.js';
import type { TrialOutcome } from '../engine/train-trial.js';
import type { TlsweepModelMeta } from '../engine/export-model.js';
import { MODELS_BUCKET, trialModelName } from '../engine/weights/object-layout.js';

/**
 * Writes a trial's exported model to the tlsweep-models bucket (model.json,
 * weights.bin, tlsweep.json with the trial's id and metrics) and returns the
 * model's name there, for ModelStored.
 */
export async function storeTrialModel(nc: NatsConnection, config: TrialConfig, outcome: TrialOutcome): Promise<string> {
  const model = outcome.model;
  if (!model) throw new Error(`trial ${config.trialId} has no exported model`);
  const meta: TlsweepModelMeta = {
    ...model.meta,
    trialId: config.trialId,
    sweepId: config.sweepId,
    metrics: { valAccuracy: outcome.valAccuracy, valLoss: outcome.valLoss, testAccuracy: outcome.testAccuracy, testLoss: outcome.testLoss },
  };
  const name = trialModelName(config.trialId);
  const objects = await ModelObjects.open(nc, { create: false });
  async function* data(): AsyncGenerator<Uint8Array> {
    yield new Uint8Array(model!.weightData);
  }
  await objects.put(MODELS_BUCKET, { name, modelJson: model.modelJson, data: data(), tlsweepJson: JSON.stringify(meta, null, 2) });
  return name;
}
