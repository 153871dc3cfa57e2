import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, loadConfig, parseSweepSpec, type TrialConfig } from '../services/coordinator/src/index.js';
import { NOOP_BACKEND, NOOP_WEIGHTS_SOURCE, runNoopTrial } from '../services/worker/src/runner/noop-runner.js';
import { runTrial } from '../services/worker/src/runner/run-trial.js';

const spec = `
name: noop
dataset: { kind: synthetic, classes: 2, perClass: 1 }
backbones: [noop]
unfreeze: [0]
learningRates: [0.01]
dropouts: [0.1]
headEpochs: 4
`;

const config = (over: Partial<TrialConfig> = {}): TrialConfig => ({
  trialId: 'sw1-t0001', sweepId: 'sw1', index: 1, backbone: 'noop', unfreeze: 0, learningRate: 0.01, dropout: 0.1,
  dataset: { kind: 'synthetic' }, datasetLabel: 'synthetic', imageSize: null, headUnits: 8, headEpochs: 4, fineTuneEpochs: 2,
  fineTuneLrFactor: 0.1, batchSize: 8, seed: 0, split: { valFraction: 0.15, testFraction: 0.15 }, ...over,
});

describe('noop backbone (control-plane benchmark mode)', () => {
  it('is refused in a spec unless explicitly allowed, with a message naming the field and the switch', () => {
    let err: unknown;
    try {
      parseSweepSpec(spec);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).violations).toContainEqual({ field: 'backbones[0]', message: expect.stringContaining('TLSWEEP_ALLOW_NOOP_BACKBONE=1') });
    expect(parseSweepSpec(spec, { allowNoopBackbone: true }).backbones).toEqual(['noop']);
    expect(() => parseSweepSpec(spec.replace('unfreeze: [0]', 'unfreeze: [1]'), { allowNoopBackbone: true })).toThrow(/unfreeze\[0\]/);
  });

  it('is switched on by TLSWEEP_ALLOW_NOOP_BACKBONE=1 only', () => {
    expect(loadConfig({}).allowNoopBackbone).toBe(false);
    expect(loadConfig({ TLSWEEP_ALLOW_NOOP_BACKBONE: '1' }).allowNoopBackbone).toBe(true);
    expect(() => loadConfig({ TLSWEEP_ALLOW_NOOP_BACKBONE: 'yes' })).toThrow(/TLSWEEP_ALLOW_NOOP_BACKBONE: must be 1 or 0/);
  });

  it('reports every planned epoch through the hooks, labelled as synthetic, and honours STOP', async () => {
    const seen: number[] = [];
    const out = await runTrial(config(), { onEpoch: async (r) => (seen.push(r.epoch), 'CONTINUE') });
    expect(seen).toEqual([1, 2, 3, 4]);
    expect(out).toMatchObject({ epochs: 4, stopped: false, backend: NOOP_BACKEND, weightsSource: NOOP_WEIGHTS_SOURCE, pretrained: false, totalParams: 0 });
    expect(out.history.map((e) => e.valAccuracy)).toEqual([...out.history.map((e) => e.valAccuracy)].sort((a, b) => a - b));
    // Deterministic: the same trial reports the same numbers.
    expect((await runNoopTrial(config(), { onEpoch: async () => 'CONTINUE' })).valAccuracy).toBe(out.valAccuracy);

    const withFineTune = await runNoopTrial(config({ unfreeze: 1 }), { onEpoch: async (r) => (r.epoch === 2 ? 'STOP' : 'CONTINUE') });
    expect(withFineTune).toMatchObject({ epochs: 2, stopped: true });
  });
});
