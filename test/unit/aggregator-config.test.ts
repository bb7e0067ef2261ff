import { describe, expect, it } from 'vitest';
import { validateAggregatorConfig } from '../../services/core/ensemble-config.js';
import { ConfigError } from '../../services/shared/errors.js';

const valid = {
  task: 'classification',
  classes: ['a', 'b'],
  strategy: 'soft-voting',
  models: [{ id: 'm1', weight: 2 }, { id: 'm2' }],
};

describe('aggregator config', () => {
  it('fills in the defaults of a minimal valid config', () => {
    const config = validateAggregatorConfig(valid);
    expect(config.models).toEqual([
      { id: 'm1', weight: 2 },
      { id: 'm2', weight: 1 },
    ]);
    expect(config).toMatchObject({ deadlineMs: 2000, quorum: 1, stateTtlMs: 600_000, maxMessageBytes: 65_536 });
    expect(config.breaker).toMatchObject({ errorThresholdPercentage: 50, volumeThreshold: 10, rollingCountTimeout: 3000, probeRequests: 3, warmupMs: 10_000 });
    expect(config).toMatchObject({ fusedMemoryMs: 3_600_000, restoreHorizonMs: 120_000, delivery: 'exactly-once' });
  });

  it('takes at-least-once delivery and refuses an unknown mode', () => {
    expect(validateAggregatorConfig({ ...valid, delivery: 'at-least-once' }).delivery).toBe('at-least-once');
    expect(() => validateAggregatorConfig({ ...valid, delivery: 'at-most-once' })).toThrow(/delivery: must be one of exactly-once, at-least-once/);
  });

  it('accepts the adaptive strategies, which take their weights from the evaluator', () => {
    expect(validateAggregatorConfig({ ...valid, strategy: 'learned-weights' }).strategy).toBe('learned-weights');
    expect(validateAggregatorConfig({ ...valid, strategy: 'best-model' }).strategy).toBe('best-model');
  });

  it('lists every problem of a bad config at once', () => {
    const bad = {
      task: 'classification',
      classes: ['a', 'a'],
      strategy: 'median',
      models: [{ id: 'm 1' }, { id: 'm2', weight: -1 }],
      deadlineMs: 0,
      quorum: 5,
      breaker: { resetTimeout: 'soon', colour: 1 },
      extra: true,
    };
    let error: unknown;
    try {
      validateAggregatorConfig(bad, 'bad.json');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    for (const expected of [
      'invalid aggregator config (bad.json)',
      'classes: labels must be unique',
      'strategy: must be one of',
      'models[0].id',
      'models[1].weight',
      'deadlineMs: must be an integer >= 1',
      'breaker.resetTimeout',
      'breaker.colour: unknown setting',
      'extra: unknown setting',
    ]) {
      expect(message).toContain(expected);
    }
  });

  it('rejects a regression strategy name for classification and a quorum above the models', () => {
    expect(() => validateAggregatorConfig({ ...valid, strategy: 'median' })).toThrow(/strategy: must be one of/);
    expect(() => validateAggregatorConfig({ ...valid, quorum: 3 })).toThrow(/quorum: 3 is more than the 2 models/);
    expect(() => validateAggregatorConfig({ ...valid, stateTtlMs: 1000, deadlineMs: 2000 })).toThrow(/stateTtlMs: must be longer than deadlineMs/);
    expect(() => validateAggregatorConfig([])).toThrow(/must be a JSON object/);
  });
});
