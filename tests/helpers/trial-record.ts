import { newTrialRecord, type TrialRecord } from '../../services/coordinator/src/records.js';

/** A bare trial record with the given id: schedulers only read the id. */
export function newTrialRecordForTest(trialId: string): TrialRecord {
  return newTrialRecord({
    trialId, sweepId: 'sw', index: 0, backbone: 'tiny_cnn', unfreeze: 0, learningRate: 0.1, dropout: 0,
    dataset: { kind: 'synthetic' }, datasetLabel: 'synthetic', imageSize: null, headUnits: 8, headEpochs: 1,
    fineTuneEpochs: 0, fineTuneLrFactor: 0.1, batchSize: 8, seed: 0, split: { valFraction: 0.15, testFraction: 0.15 },
  }, 0);
}
