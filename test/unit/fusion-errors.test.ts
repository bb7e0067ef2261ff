import { describe, expect, it } from 'vitest';
import { ConfigError, EnsembleError } from '../../services/shared/errors.js';
import { FusionError, createFuser } from '../../services/core/fusion/index.js';
import type { FuserSpec, FusionErrorCode, ModelOutput } from '../../services/core/fusion/index.js';

const ABC = ['a', 'b', 'c'];

function fusionError(run: () => unknown): FusionError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(FusionError);
    return error as FusionError;
  }
  throw new Error('expected a FusionError, nothing was thrown');
}

function expectFusionError(run: () => unknown, code: FusionErrorCode, modelId?: string): FusionError {
  const error = fusionError(run);
  expect(error.code).toBe(code);
  expect(error.modelId).toBe(modelId);
  return error;
}

/** Builds a spec from untyped parts, as a configuration file would. */
const spec = (raw: Record<string, unknown>): FuserSpec => raw as unknown as FuserSpec;

describe('FusionError', () => {
  it('is a non-retriable EnsembleError', () => {
    const error = expectFusionError(() => createFuser({ task: 'regression', strategy: 'median' }).fuse([]), 'NO_OUTPUTS');
    expect(error).toBeInstanceOf(EnsembleError);
    expect(error.retriable).toBe(false);
    expect(error.name).toBe('FusionError');
  });
});

describe('invalid fuser specs', () => {
  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['an unknown task', { task: 'ranking', strategy: 'median' }, /task must be one of classification, regression/],
    [
      'a strategy of the other task',
      { task: 'classification', strategy: 'median', classes: ABC },
      /must be one of weighted-average, weighted-sum, hard-voting, soft-voting, stacking for classification, got median/,
    ],
    [
      'a voting strategy for regression',
      { task: 'regression', strategy: 'hard-voting' },
      /must be one of weighted-average, weighted-sum, median for regression/,
    ],
    ['classification without classes', { task: 'classification', strategy: 'hard-voting' }, /at least two class labels/],
    ['a single class', { task: 'classification', strategy: 'hard-voting', classes: ['a'] }, /at least two class labels/],
    ['a duplicate class', { task: 'classification', strategy: 'hard-voting', classes: ['a', 'b', 'a'] }, /"a" is listed twice/],
    ['an empty class label', { task: 'classification', strategy: 'hard-voting', classes: ['a', ''] }, /non-empty strings/],
    ['a non-string class label', { task: 'classification', strategy: 'hard-voting', classes: ['a', 2] }, /non-empty strings/],
    ['classes for regression', { task: 'regression', strategy: 'median', classes: ABC }, /classification only/],
    ['a negative weight', { task: 'regression', strategy: 'median', weights: { m1: 1, m2: -0.5 } }, /"m2" must be a finite number >= 0, got -0.5/],
    ['a NaN weight', { task: 'regression', strategy: 'median', weights: { m1: Number.NaN } }, /"m1" must be a finite number >= 0, got NaN/],
    ['an infinite weight', { task: 'regression', strategy: 'median', weights: { m1: Number.POSITIVE_INFINITY } }, /got Infinity/],
    ['a non-numeric weight', { task: 'regression', strategy: 'median', weights: { m1: '2' } }, /got 2/],
    ['weights that are not an object', { task: 'regression', strategy: 'median', weights: [1, 2] }, /must be an object/],
    ['empty weights', { task: 'regression', strategy: 'median', weights: {} }, /name no model/],
    ['all weights 0', { task: 'regression', strategy: 'median', weights: { m1: 0, m2: 0 } }, /must not all be 0/],
    ['weights summing beyond the double range', { task: 'regression', strategy: 'median', weights: { m1: 1e308, m2: 1e308 } }, /beyond the double range/],
  ];

  it.each(bad)('rejects %s with a ConfigError', (_, raw, message) => {
    expect(() => createFuser(spec(raw))).toThrow(ConfigError);
    expect(() => createFuser(spec(raw))).toThrow(message);
  });

  it('rejects a spec that is not an object', () => {
    expect(() => createFuser(null as unknown as FuserSpec)).toThrow(ConfigError);
  });

  it('keeps its own copy of the classes', () => {
    const classes = ['x', 'y'];
    const fuser = createFuser({ task: 'classification', strategy: 'soft-voting', classes });
    classes[0] = 'changed';
    expect(fuser.fuse([{ modelId: 'm1', probabilities: [0.9, 0.1] }]).label).toBe('x');
  });
});

describe('invalid requests', () => {
  const classifier = createFuser({ task: 'classification', strategy: 'weighted-average', classes: ABC });
  const ok = (modelId: string): ModelOutput => ({ modelId, probabilities: [0.2, 0.3, 0.5] });

  it('rejects zero outputs', () => {
    expectFusionError(() => classifier.fuse([]), 'NO_OUTPUTS');
  });

  it('rejects a model the weights do not name', () => {
    const fuser = createFuser({ task: 'classification', strategy: 'hard-voting', classes: ABC, weights: { m1: 1, m2: 1 } });
    const error = expectFusionError(() => fuser.fuse([ok('m1'), ok('m9')]), 'UNKNOWN_MODEL', 'm9');
    expect(error.message).toContain('"m9"');
  });

  it('accepts any model when no weights are configured', () => {
    expect(classifier.fuse([ok('anything'), ok('else')]).weightsUsed).toEqual({ anything: 0.5, else: 0.5 });
  });

  it('rejects a model that answered twice', () => {
    expectFusionError(() => classifier.fuse([ok('m1'), ok('m2'), ok('m1')]), 'DUPLICATE_MODEL', 'm1');
  });

  it.each(['weighted-average', 'weighted-sum', 'hard-voting', 'soft-voting'] as const)('rejects %s when the present models weigh 0 in total', (strategy) => {
    const fuser = createFuser({ task: 'classification', strategy, classes: ABC, weights: { m1: 0, m2: 0, m3: 1 } });
    const error = expectFusionError(() => fuser.fuse([ok('m1'), ok('m2')]), 'INVALID_WEIGHTS');
    expect(error.message).toContain('(m1, m2) sum to 0');
  });

  it.each(['weighted-average', 'weighted-sum'] as const)('rejects regression %s when the present models weigh 0 in total', (strategy) => {
    const fuser = createFuser({ task: 'regression', strategy, weights: { m1: 0, m2: 1 } });
    expectFusionError(() => fuser.fuse([{ modelId: 'm1', value: 3 }]), 'INVALID_WEIGHTS');
  });

  it('lets median fuse models that weigh 0, as it ignores weights', () => {
    const fuser = createFuser({ task: 'regression', strategy: 'median', weights: { m1: 0, m2: 1 } });
    expect(fuser.fuse([{ modelId: 'm1', value: 3 }]).value).toBe(3);
  });

  const badProbabilities: [string, unknown, RegExp][] = [
    ['missing', undefined, /missing/],
    ['null', null, /missing/],
    ['too few', [0.5, 0.5], /there are 2, expected one per class \(3\)/],
    ['too many', [0.25, 0.25, 0.25, 0.25], /there are 4, expected one per class \(3\)/],
    ['NaN', [0.5, Number.NaN, 0.5], /entry 1 is NaN/],
    ['infinite', [0, 0, Number.POSITIVE_INFINITY], /entry 2 is Infinity/],
    ['negative', [-0.1, 0.6, 0.5], /entry 0 is negative \(-0.1\)/],
    ['summing under 1', [0.2, 0.3, 0.4], /sum to 0.9/],
    ['summing over 1', [0.2, 0.3, 0.6], /sum to 1.1/],
    ['summing 2e-6 over 1', [0.2, 0.3, 0.500002], /not 1 within 0.000001/],
    ['non-numeric', ['0.2', 0.3, 0.5], /entry 0 is not a number \("0.2"\)/],
  ];

  it.each(badProbabilities)('rejects probabilities that are %s, naming the model', (_, probabilities, why) => {
    const outputs = [ok('m1'), { modelId: 'm2', probabilities } as ModelOutput];
    for (const strategy of ['weighted-average', 'weighted-sum', 'hard-voting', 'soft-voting'] as const) {
      const fuser = createFuser({ task: 'classification', strategy, classes: ABC });
      const error = expectFusionError(() => fuser.fuse(outputs), 'INVALID_PROBABILITIES', 'm2');
      expect(error.message).toContain('model "m2"');
      expect(error.message).toMatch(why);
    }
  });

  it('accepts probabilities within 1e-6 of summing to 1', () => {
    const r = classifier.fuse([{ modelId: 'm1', probabilities: [0.2, 0.3, 0.5000005] }]); // sum 1 + 5e-7
    expect(r.label).toBe('c');
  });

  const badValues: [string, unknown][] = [
    ['missing', undefined],
    ['NaN', Number.NaN],
    ['infinite', Number.NEGATIVE_INFINITY],
    ['a string', '3'],
  ];

  it.each(badValues)('rejects a regression value that is %s, naming the model', (_, value) => {
    for (const strategy of ['weighted-average', 'weighted-sum', 'median'] as const) {
      const fuser = createFuser({ task: 'regression', strategy });
      const outputs = [{ modelId: 'm1', value: 1 }, { modelId: 'm2', value } as ModelOutput];
      const error = expectFusionError(() => fuser.fuse(outputs), 'INVALID_VALUE', 'm2');
      expect(error.message).toContain('model "m2"');
    }
  });

  it('rejects a weighted sum that leaves the double range', () => {
    const fuser = createFuser({ task: 'regression', strategy: 'weighted-sum', weights: { m1: 1e10, m2: 1 } });
    // 1e300 * 1e10 = 1e310 > Number.MAX_VALUE (~1.8e308)
    const error = expectFusionError(
      () =>
        fuser.fuse([
          { modelId: 'm1', value: 1e300 },
          { modelId: 'm2', value: 1 },
        ]),
      'NON_FINITE_RESULT',
    );
    expect(error.message).toContain('weighted-sum');
  });

  it('stays usable after a rejected request', () => {
    expectFusionError(() => classifier.fuse([ok('m1'), ok('m1')]), 'DUPLICATE_MODEL', 'm1');
    expect(classifier.fuse([ok('m1')]).probabilities).toEqual([0.2, 0.3, 0.5]);
  });
});
