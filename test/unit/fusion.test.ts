import { describe, expect, it } from 'vitest';
import { STRATEGIES, createFuser, isStrategy, isTask } from '../../services/core/fusion/index.js';
import type { ModelOutput } from '../../services/core/fusion/index.js';

const ABC = ['a', 'b', 'c'] as const;

function expectCloseAll(actual: readonly number[] | undefined, expected: readonly number[]): void {
  expect(actual).toBeDefined();
  expect(actual).toHaveLength(expected.length);
  expected.forEach((e, i) => {
    expect(actual?.[i]).toBeCloseTo(e, 12);
  });
}

function expectWeights(actual: Record<string, number>, expected: Record<string, number>): void {
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
  for (const [id, w] of Object.entries(expected)) expect(actual[id]).toBeCloseTo(w, 12);
}

const p = (modelId: string, ...probabilities: number[]): ModelOutput => ({ modelId, probabilities });
const v = (modelId: string, value: number): ModelOutput => ({ modelId, value });

// Shared classification inputs: m1 leans a, m2 and m3 lean b.
const M1 = p('m1', 0.7, 0.2, 0.1);
const M2 = p('m2', 0.2, 0.5, 0.3);
const M3 = p('m3', 0.1, 0.6, 0.3);

describe('strategy names', () => {
  it('lists the valid strategies per task', () => {
    expect(STRATEGIES.classification).toEqual(['weighted-average', 'weighted-sum', 'hard-voting', 'soft-voting', 'stacking']);
    expect(STRATEGIES.regression).toEqual(['weighted-average', 'weighted-sum', 'median']);
  });

  it('recognises tasks and the strategies valid for each', () => {
    expect(isTask('classification')).toBe(true);
    expect(isTask('ranking')).toBe(false);
    expect(isStrategy('classification', 'hard-voting')).toBe(true);
    expect(isStrategy('regression', 'hard-voting')).toBe(false);
    expect(isStrategy('regression', 'median')).toBe(true);
    expect(isStrategy('classification', 'median')).toBe(false);
    expect(isStrategy('regression', 42)).toBe(false);
  });

  it('exposes the task and strategy on the fuser', () => {
    const fuser = createFuser({ task: 'regression', strategy: 'median' });
    expect(fuser.task).toBe('regression');
    expect(fuser.strategy).toBe('median');
  });
});

describe('classification: weighted-average', () => {
  it('averages the distributions with equal weights by default', () => {
    const r = createFuser({ task: 'classification', strategy: 'weighted-average', classes: ABC }).fuse([M1, M2, M3]);
    expectCloseAll(r.probabilities, [
      1.0 / 3, // (0.7 + 0.2 + 0.1) / 3
      1.3 / 3, // (0.2 + 0.5 + 0.6) / 3
      0.7 / 3, // (0.1 + 0.3 + 0.3) / 3
    ]);
    expect(r.labelIndex).toBe(1);
    expect(r.label).toBe('b');
    expect(r.scores).toBeUndefined();
    expectWeights(r.weightsUsed, { m1: 1 / 3, m2: 1 / 3, m3: 1 / 3 });
  });

  it('weighs the distributions by the configured weights', () => {
    const fuser = createFuser({
      task: 'classification',
      strategy: 'weighted-average',
      classes: ABC,
      weights: { m1: 2, m2: 1, m3: 1 },
    });
    const r = fuser.fuse([M1, M2, M3]);
    expectCloseAll(r.probabilities, [
      0.425, // (0.7*2 + 0.2*1 + 0.1*1) / 4 = 1.7 / 4
      0.375, // (0.2*2 + 0.5*1 + 0.6*1) / 4 = 1.5 / 4
      0.2, //   (0.1*2 + 0.3*1 + 0.3*1) / 4 = 0.8 / 4
    ]);
    expect(r.label).toBe('a');
    expectWeights(r.weightsUsed, { m1: 0.5, m2: 0.25, m3: 0.25 }); // 2/4, 1/4, 1/4
  });

  it('renormalises the weights over the models present', () => {
    const fuser = createFuser({
      task: 'classification',
      strategy: 'weighted-average',
      classes: ABC,
      weights: { m1: 2, m2: 1, m3: 1 },
    });
    const r = fuser.fuse([M2, M1]); // m3 missing
    expectCloseAll(r.probabilities, [
      1.6 / 3, // (0.7*2 + 0.2*1) / 3
      0.3, //     (0.2*2 + 0.5*1) / 3 = 0.9 / 3
      0.5 / 3, // (0.1*2 + 0.3*1) / 3
    ]);
    expect(r.label).toBe('a');
    expectWeights(r.weightsUsed, { m1: 2 / 3, m2: 1 / 3 });
    expect((r.probabilities ?? []).reduce((s, x) => s + x, 0)).toBeCloseTo(1, 12);
  });

  it('lets a zero-weight model answer without influence', () => {
    const fuser = createFuser({
      task: 'classification',
      strategy: 'weighted-average',
      classes: ABC,
      weights: { m1: 0, m2: 1 },
    });
    const r = fuser.fuse([M1, M2]);
    expectCloseAll(r.probabilities, [0.2, 0.5, 0.3]); // (0.7*0 + 0.2*1) / 1, ...: m2 alone
    expect(r.label).toBe('b');
    expect(r.weightsUsed).toEqual({ m1: 0, m2: 1 });
  });

  it('breaks a tie between the top classes towards the lowest index', () => {
    const r = createFuser({ task: 'classification', strategy: 'weighted-average', classes: ABC }).fuse([
      p('m1', 0.125, 0.375, 0.5),
      p('m2', 0.125, 0.5, 0.375),
    ]);
    // b = (0.375 + 0.5) / 2 = 0.4375 = c = (0.5 + 0.375) / 2, both exact in binary
    expect(r.probabilities).toEqual([0.125, 0.4375, 0.4375]);
    expect(r.labelIndex).toBe(1);
    expect(r.label).toBe('b');
  });

  it('accepts typed arrays as probabilities', () => {
    const r = createFuser({ task: 'classification', strategy: 'weighted-average', classes: ABC }).fuse([
      { modelId: 'm1', probabilities: Float64Array.of(0.5, 0.25, 0.25) },
      { modelId: 'm2', probabilities: Float32Array.of(0.7, 0.2, 0.1) }, // float32 rounding stays within 1e-6
    ]);
    // (0.5 + 0.7) / 2, (0.25 + 0.2) / 2, (0.25 + 0.1) / 2, up to float32 rounding (~1e-8)
    const expected = [0.6, 0.225, 0.175];
    expected.forEach((e, i) => {
      expect(r.probabilities?.[i]).toBeCloseTo(e, 7);
    });
    expect(r.label).toBe('a');
  });
});

describe('classification: soft-voting', () => {
  it("is scikit-learn's np.average(probas, weights=w): the same numbers as weighted-average", () => {
    const weights = { m1: 2, m2: 1, m3: 1 };
    const soft = createFuser({ task: 'classification', strategy: 'soft-voting', classes: ABC, weights });
    const average = createFuser({ task: 'classification', strategy: 'weighted-average', classes: ABC, weights });
    const r = soft.fuse([M1, M2, M3]);
    expectCloseAll(r.probabilities, [0.425, 0.375, 0.2]); // (0.7*2 + 0.2 + 0.1) / 4, (0.2*2 + 0.5 + 0.6) / 4, (0.1*2 + 0.3 + 0.3) / 4
    expect(r.label).toBe('a');
    expect(r).toEqual(average.fuse([M1, M2, M3]));
    expect(soft.strategy).toBe('soft-voting');
  });

  it('breaks a weighted tie towards the lowest index', () => {
    const fuser = createFuser({
      task: 'classification',
      strategy: 'soft-voting',
      classes: ['x', 'y'],
      weights: { m1: 1, m2: 3 },
    });
    const r = fuser.fuse([p('m2', 0.375, 0.625), p('m1', 0.875, 0.125)]);
    // x = (0.875*1 + 0.375*3) / 4 = 2 / 4 = 0.5; y = (0.125*1 + 0.625*3) / 4 = 2 / 4 = 0.5 (exact in binary)
    expect(r.probabilities).toEqual([0.5, 0.5]);
    expect(r.labelIndex).toBe(0);
    expect(r.label).toBe('x');
  });

  it('follows confidence where hard voting follows the head count', () => {
    const outputs = [p('m1', 0.98, 0.01, 0.01), p('m2', 0.3, 0.4, 0.3), p('m3', 0.3, 0.4, 0.3)];
    const soft = createFuser({ task: 'classification', strategy: 'soft-voting', classes: ABC }).fuse(outputs);
    const hard = createFuser({ task: 'classification', strategy: 'hard-voting', classes: ABC }).fuse(outputs);
    expectCloseAll(soft.probabilities, [
      1.58 / 3, // (0.98 + 0.3 + 0.3) / 3
      0.81 / 3, // (0.01 + 0.4 + 0.4) / 3
      0.61 / 3, // (0.01 + 0.3 + 0.3) / 3
    ]);
    expect(soft.label).toBe('a');
    expect(hard.scores).toEqual([1, 2, 0]); // votes: m1 -> a, m2 -> b, m3 -> b
    expect(hard.label).toBe('b');
  });
});

describe('classification: weighted-sum', () => {
  const weights = { m1: 2, m2: 1, m3: 1 };

  it('sums the weighted distributions with the weights as configured', () => {
    const r = createFuser({ task: 'classification', strategy: 'weighted-sum', classes: ABC, weights }).fuse([M1, M2, M3]);
    expectCloseAll(r.scores, [
      1.7, // 0.7*2 + 0.2*1 + 0.1*1
      1.5, // 0.2*2 + 0.5*1 + 0.6*1
      0.8, // 0.1*2 + 0.3*1 + 0.3*1
    ]);
    expectCloseAll(r.probabilities, [0.425, 0.375, 0.2]); // scores / (1.7 + 1.5 + 0.8 = 4)
    expect(r.label).toBe('a');
    expect(r.weightsUsed).toEqual(weights);
  });

  it('does not renormalise when a model is missing', () => {
    const r = createFuser({ task: 'classification', strategy: 'weighted-sum', classes: ABC, weights }).fuse([M1, M2]);
    expectCloseAll(r.scores, [
      1.6, // 0.7*2 + 0.2*1
      0.9, // 0.2*2 + 0.5*1
      0.5, // 0.1*2 + 0.3*1
    ]);
    expectCloseAll(r.probabilities, [1.6 / 3, 0.3, 0.5 / 3]); // scores / (1.6 + 0.9 + 0.5 = 3)
    expect(r.label).toBe('a');
    expect(r.weightsUsed).toEqual({ m1: 2, m2: 1 }); // as configured, not 2/3 and 1/3
  });

  it('sums with weight 1 per model by default', () => {
    const r = createFuser({ task: 'classification', strategy: 'weighted-sum', classes: ABC }).fuse([M1, M2, M3]);
    expectCloseAll(r.scores, [1.0, 1.3, 0.7]); // 0.7 + 0.2 + 0.1, 0.2 + 0.5 + 0.6, 0.1 + 0.3 + 0.3
    expectCloseAll(r.probabilities, [1.0 / 3, 1.3 / 3, 0.7 / 3]); // scores / 3
    expect(r.label).toBe('b');
    expect(r.weightsUsed).toEqual({ m1: 1, m2: 1, m3: 1 });
  });

  it('keeps the scale of fractional weights', () => {
    const fuser = createFuser({
      task: 'classification',
      strategy: 'weighted-sum',
      classes: ['x', 'y'],
      weights: { m1: 0.25, m2: 0.5 },
    });
    const r = fuser.fuse([p('m1', 0.5, 0.5), p('m2', 0.25, 0.75)]);
    expect(r.scores).toEqual([0.25, 0.5]); // 0.5*0.25 + 0.25*0.5, 0.5*0.25 + 0.75*0.5; sum 0.75, not 1
    expect(r.probabilities).toEqual([1 / 3, 2 / 3]); // 0.25 / 0.75, 0.5 / 0.75
    expect(r.label).toBe('y');
  });
});

describe('classification: hard-voting', () => {
  it('elects the majority class', () => {
    const r = createFuser({ task: 'classification', strategy: 'hard-voting', classes: ABC }).fuse([M1, M2, M3]);
    expect(r.scores).toEqual([1, 2, 0]); // votes: m1 -> a (0.7), m2 -> b (0.5), m3 -> b (0.6)
    expectCloseAll(r.probabilities, [1 / 3, 2 / 3, 0]); // scores / 3
    expect(r.labelIndex).toBe(1);
    expect(r.label).toBe('b');
    expectWeights(r.weightsUsed, { m1: 1 / 3, m2: 1 / 3, m3: 1 / 3 });
  });

  it('gives a tie between two classes to the lowest index', () => {
    const r = createFuser({ task: 'classification', strategy: 'hard-voting', classes: ABC }).fuse([
      p('m1', 0.1, 0.2, 0.7), // votes c, and is listed first
      p('m2', 0.1, 0.8, 0.1), // votes b
    ]);
    expect(r.scores).toEqual([0, 1, 1]);
    expect(r.probabilities).toEqual([0, 0.5, 0.5]); // 1 / 2 each
    expect(r.label).toBe('b');
  });

  it('lets the weights outvote the majority', () => {
    const fuser = createFuser({
      task: 'classification',
      strategy: 'hard-voting',
      classes: ABC,
      weights: { m1: 3, m2: 1, m3: 1 },
    });
    const r = fuser.fuse([M1, M2, M3]);
    expect(r.scores).toEqual([3, 2, 0]); // a: m1 (3); b: m2 + m3 (1 + 1)
    expect(r.probabilities).toEqual([0.6, 0.4, 0]); // 3 / 5, 2 / 5
    expect(r.label).toBe('a');
    expectWeights(r.weightsUsed, { m1: 0.6, m2: 0.2, m3: 0.2 }); // 3/5, 1/5, 1/5
  });

  it('gives a weighted tie to the lowest index', () => {
    const fuser = createFuser({
      task: 'classification',
      strategy: 'hard-voting',
      classes: ABC,
      weights: { m1: 1.5, m2: 0.5, m3: 1 },
    });
    const r = fuser.fuse([p('m1', 0.1, 0.1, 0.8), p('m2', 0.1, 0.8, 0.1), p('m3', 0.2, 0.7, 0.1)]);
    expect(r.scores).toEqual([0, 1.5, 1.5]); // b: m2 + m3 = 0.5 + 1; c: m1 = 1.5
    expect(r.probabilities).toEqual([0, 0.5, 0.5]); // 1.5 / 3 each
    expect(r.label).toBe('b');
  });

  it('counts a model whose own top classes tie as a vote for the lowest of them (np.argmax)', () => {
    const r = createFuser({ task: 'classification', strategy: 'hard-voting', classes: ABC }).fuse([
      p('m1', 0.25, 0.375, 0.375), // b and c tie -> votes b
      p('m2', 0.2, 0.2, 0.6), //       votes c
      p('m3', 0.1, 0.45, 0.45), //     b and c tie -> votes b
    ]);
    expect(r.scores).toEqual([0, 2, 1]); // voting for the highest tied index instead would give [0, 0, 3]
    expect(r.label).toBe('b');
  });

  it('renormalises over the models present and ignores the vote of a zero-weight model', () => {
    const fuser = createFuser({
      task: 'classification',
      strategy: 'hard-voting',
      classes: ABC,
      weights: { m1: 0, m2: 1, m3: 3, m4: 5 },
    });
    const r = fuser.fuse([M1, M2, p('m3', 0.5, 0.1, 0.4)]); // m4 missing
    expect(r.scores).toEqual([3, 1, 0]); // a: m1 (0) + m3 (3); b: m2 (1)
    expect(r.probabilities).toEqual([0.75, 0.25, 0]); // 3 / 4, 1 / 4
    expect(r.label).toBe('a');
    expect(r.weightsUsed).toEqual({ m1: 0, m2: 0.25, m3: 0.75 }); // 0/4, 1/4, 3/4
  });
});

describe('regression', () => {
  const values = [v('m1', 1), v('m2', 2), v('m3', 6)];

  it('weighted-average: the mean with equal weights by default', () => {
    const r = createFuser({ task: 'regression', strategy: 'weighted-average' }).fuse(values);
    expect(r.value).toBeCloseTo(3, 12); // (1 + 2 + 6) / 3
    expectWeights(r.weightsUsed, { m1: 1 / 3, m2: 1 / 3, m3: 1 / 3 });
    expect(r.probabilities).toBeUndefined();
    expect(r.label).toBeUndefined();
  });

  it('weighted-average: weighted, then renormalised when a model is missing', () => {
    const fuser = createFuser({ task: 'regression', strategy: 'weighted-average', weights: { m1: 1, m2: 1, m3: 2 } });
    const all = fuser.fuse(values);
    expect(all.value).toBeCloseTo(3.75, 12); // (1*1 + 2*1 + 6*2) / 4 = 15 / 4
    expect(all.weightsUsed).toEqual({ m1: 0.25, m2: 0.25, m3: 0.5 });
    const partial = fuser.fuse([v('m3', 6), v('m1', 1)]); // m2 missing
    expect(partial.value).toBeCloseTo(13 / 3, 12); // (1*1 + 6*2) / 3
    expectWeights(partial.weightsUsed, { m1: 1 / 3, m3: 2 / 3 });
  });

  it('weighted-sum: applies the configured weights without renormalising', () => {
    const fuser = createFuser({ task: 'regression', strategy: 'weighted-sum', weights: { m1: 0.5, m2: 0.25, m3: 2 } });
    expect(fuser.fuse(values).value).toBe(13); // 1*0.5 + 2*0.25 + 6*2 = 0.5 + 0.5 + 12
    const partial = fuser.fuse([v('m1', 1), v('m2', 2)]); // m3 missing
    expect(partial.value).toBe(1); // 1*0.5 + 2*0.25; an average would give 1 / 0.75
    expect(partial.weightsUsed).toEqual({ m1: 0.5, m2: 0.25 });
  });

  it('weighted-sum: weight 1 per model by default, signed values allowed', () => {
    const r = createFuser({ task: 'regression', strategy: 'weighted-sum' }).fuse([...values, v('m4', -4.5)]);
    expect(r.value).toBe(4.5); // 1 + 2 + 6 - 4.5
  });

  it('weighted-sum: compensates cancellation between large signed terms', () => {
    const r = createFuser({ task: 'regression', strategy: 'weighted-sum' }).fuse([v('m1', 1e16), v('m2', 1), v('m3', -1e16)]);
    // Left to right in doubles, 1e16 + 1 rounds back to 1e16 and the sum collapses to 0.
    expect(r.value).toBe(1);
  });

  it('median: the middle value of an odd count, whatever the arrival order', () => {
    const r = createFuser({ task: 'regression', strategy: 'median' }).fuse([v('m1', 5), v('m2', 1), v('m3', 3)]);
    expect(r.value).toBe(3); // sorted 1, 3, 5
    expectWeights(r.weightsUsed, { m1: 1 / 3, m2: 1 / 3, m3: 1 / 3 });
  });

  it('median: the mean of the two middle values of an even count', () => {
    const r = createFuser({ task: 'regression', strategy: 'median' }).fuse([v('m1', 4), v('m2', 1), v('m3', 10), v('m4', 3)]);
    expect(r.value).toBe(3.5); // sorted 1, 3, 4, 10 -> (3 + 4) / 2
    expect(r.weightsUsed).toEqual({ m1: 0.25, m2: 0.25, m3: 0.25, m4: 0.25 });
  });

  it('median: ignores the weights', () => {
    const fuser = createFuser({ task: 'regression', strategy: 'median', weights: { m1: 100, m2: 1, m3: 0 } });
    expect(fuser.fuse([v('m1', -7), v('m2', 0.5), v('m3', 2)]).value).toBe(0.5); // sorted -7, 0.5, 2
    expect(fuser.fuse([v('m1', -7), v('m3', 2)]).value).toBe(-2.5); // (-7 + 2) / 2
    expect(fuser.fuse([v('m3', 2)]).value).toBe(2);
  });

  it('median: does not overflow between two huge middle values', () => {
    const r = createFuser({ task: 'regression', strategy: 'median' }).fuse([v('m1', 1.5e308), v('m2', 1.7e308)]);
    expect((r.value ?? 0) / 1.6e308).toBeCloseTo(1, 12); // 1.5e308/2 + 1.7e308/2; 1.5e308 + 1.7e308 overflows
  });
});

describe('fusion mechanics', () => {
  it('gives bit-identical results whatever order the outputs arrive in', () => {
    // Summed left to right, a third of (0.1, 0.1, 0.4) is 0.2 in one order and 0.19999999999999998 in another.
    const outputs = [p('m1', 0.1, 0.9), p('m2', 0.1, 0.9), p('m3', 0.4, 0.6)];
    const fuser = createFuser({ task: 'classification', strategy: 'weighted-average', classes: ['x', 'y'] });
    const orders = [
      [0, 1, 2],
      [0, 2, 1],
      [1, 0, 2],
      [1, 2, 0],
      [2, 0, 1],
      [2, 1, 0],
    ];
    const results = orders.map((order) => fuser.fuse(order.map((i) => outputs[i] as ModelOutput)));
    for (const r of results) expect(r).toEqual(results[0]);
    expect(results[0]?.probabilities?.[0]).toBeCloseTo(0.2, 15); // (0.1 + 0.1 + 0.4) / 3
  });

  it('reuses nothing across requests that a caller can observe', () => {
    const fuser = createFuser({ task: 'regression', strategy: 'weighted-average' });
    const small = fuser.fuse([v('m1', 1), v('m2', 3)]);
    const many = fuser.fuse(Array.from({ length: 40 }, (_, i) => v(`m${String(i).padStart(2, '0')}`, i)));
    expect(many.value).toBeCloseTo(19.5, 12); // (0 + 1 + ... + 39) / 40 = 780 / 40
    expect(Object.keys(many.weightsUsed)).toHaveLength(40);
    const again = fuser.fuse([v('m1', 5), v('m2', 7)]);
    expect(again.value).toBe(6); // (5 + 7) / 2
    expect(small).toEqual({ value: 2, weightsUsed: { m1: 0.5, m2: 0.5 } }); // (1 + 3) / 2, untouched
  });

  it('leaves its inputs untouched', () => {
    const outputs = [p('m3', 0.1, 0.6, 0.3), p('m1', 0.7, 0.2, 0.1)];
    const copy = structuredClone(outputs);
    createFuser({ task: 'classification', strategy: 'hard-voting', classes: ABC }).fuse(outputs);
    expect(outputs).toEqual(copy);
  });

  it('handles model ids that collide with Object.prototype', () => {
    const weights = JSON.parse('{"__proto__": 1, "constructor": 3}') as Record<string, number>;
    const r = createFuser({ task: 'regression', strategy: 'weighted-average', weights }).fuse([v('__proto__', 4), v('constructor', 8)]);
    expect(r.value).toBe(7); // (4*1 + 8*3) / 4
    expect(Object.keys(r.weightsUsed).sort()).toEqual(['__proto__', 'constructor']);
    const used = new Map(Object.entries(r.weightsUsed));
    expect(used.get('__proto__')).toBe(0.25);
    expect(used.get('constructor')).toBe(0.75);
  });
});
