import { describe, expect, it } from 'vitest';
import { AdaptiveFuser } from '../../services/aggregator/adaptive-fuser.js';
import { createLogger } from '../../services/shared/log.js';

const logger = createLogger('test', 'silent');
const MODELS = ['a', 'b', 'c'];
const outputs = [
  { modelId: 'a', probabilities: [0.9, 0.1] },
  { modelId: 'b', probabilities: [0.2, 0.8] },
  { modelId: 'c', probabilities: [0.5, 0.5] },
];

function source(weights: Record<string, number>, best: string | undefined) {
  return { current: async () => weights, bestModel: async () => best };
}

describe('adaptive fusion', () => {
  it('weighs every model the same until the first refresh', () => {
    const fuser = new AdaptiveFuser({
      strategy: 'learned-weights',
      task: 'classification',
      classes: ['x', 'y'],
      models: MODELS,
      source: source({}, undefined),
      logger,
    });
    // (0.9 + 0.2 + 0.5) / 3
    expect(fuser.fuse(outputs).probabilities?.[0]).toBeCloseTo(1.6 / 3, 12);
  });

  it('applies the learned weights once refreshed', async () => {
    const fuser = new AdaptiveFuser({
      strategy: 'learned-weights',
      task: 'classification',
      classes: ['x', 'y'],
      models: MODELS,
      source: source({ a: 0.1, b: 0.7, c: 0.2 }, 'b'),
      logger,
    });
    await fuser.refresh();
    // 0.1*0.9 + 0.7*0.2 + 0.2*0.5 = 0.33
    expect(fuser.fuse(outputs).probabilities?.[0]).toBeCloseTo(0.33, 12);
    expect(fuser.fuse(outputs).label).toBe('y');
    expect(fuser.currentWeights()).toEqual({ a: 0.1, b: 0.7, c: 0.2 });
  });

  it('routes to the best model, and to the next by weight when the best is missing', async () => {
    const fuser = new AdaptiveFuser({
      strategy: 'best-model',
      task: 'classification',
      classes: ['x', 'y'],
      models: MODELS,
      source: source({ a: 0.5, b: 0.2, c: 0.3 }, 'b'),
      logger,
    });
    await fuser.refresh();
    expect(fuser.fuse(outputs)).toMatchObject({ label: 'y', probabilities: [0.2, 0.8], weightsUsed: { b: 1 } });
    // Without b: a has the higher learned weight of the rest.
    expect(fuser.fuse([outputs[0], outputs[2]] as typeof outputs)).toMatchObject({ label: 'x', probabilities: [0.9, 0.1], weightsUsed: { a: 1 } });
  });

  it('keeps the last good weights when a refresh fails', async () => {
    let fail = false;
    const fuser = new AdaptiveFuser({
      strategy: 'learned-weights',
      task: 'classification',
      classes: ['x', 'y'],
      models: MODELS,
      source: {
        current: async () => {
          if (fail) throw new Error('redis down');
          return { a: 1, b: 0, c: 0 };
        },
        bestModel: async () => 'a',
      },
      logger,
    });
    await fuser.refresh();
    fail = true;
    await fuser.refresh();
    expect(fuser.fuse(outputs).probabilities?.[0]).toBeCloseTo(0.9, 6);
  });
});
