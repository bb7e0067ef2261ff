import { describe, expect, it } from 'vitest';
import type { FoldScore, FusionCandidate } from '../../services/selection/candidates.js';
import { chooseCandidate, complexityOf, scoreFolds } from '../../services/selection/choice-rule.js';

/** A candidate with only what the rule reads: what it is and its fold scores. */
function candidate(
  name: string,
  strategy: FusionCandidate['strategy'],
  weighting: FusionCandidate['weighting'],
  errors: readonly number[],
  logLoss = 0.3,
  models = name === 'single' ? 1 : 3,
): FusionCandidate {
  const folds: FoldScore[] = errors.map((error) => ({ error, logLoss }));
  return {
    strategy,
    weighting,
    subset: { name: name === 'single' ? 'single' : 'all', models: Array.from({ length: models }, (_, i) => `m${i}`) },
    weights: {},
    folds,
  } as unknown as FusionCandidate;
}

const around = (mean: number, spread: number) => [
  mean - spread,
  mean + spread,
  mean,
  mean - spread,
  mean + spread,
  mean,
  mean - spread,
  mean + spread,
  mean,
  mean,
];

describe('choice rule', () => {
  it('orders complexity: single < equal weights < fitted weights < stacking', () => {
    expect(complexityOf(candidate('single', 'weighted-average', 'equal', [0]))).toBe(0);
    expect(complexityOf(candidate('all', 'soft-voting', 'equal', [0]))).toBe(1);
    expect(complexityOf(candidate('all', 'hard-voting', 'fitted', [0]))).toBe(2);
    expect(complexityOf(candidate('all', 'stacking', 'meta-model', [0]))).toBe(3);
  });

  it('keeps the single model when a fusion is better only within the noise', () => {
    const single = candidate('single', 'weighted-average', 'equal', around(0.1, 0.02));
    const stacking = candidate('all', 'stacking', 'meta-model', around(0.095, 0.02));
    const choice = chooseCandidate([single, stacking]);
    expect(choice.lowestError).toBe(1);
    expect(choice.chosen).toBe(0);
  });

  it('takes the complex config when it is better by far more than the noise', () => {
    const single = candidate('single', 'weighted-average', 'equal', around(0.1, 0.005));
    const equal = candidate('all', 'soft-voting', 'equal', around(0.09, 0.005));
    const stacking = candidate('all', 'stacking', 'meta-model', around(0.06, 0.005));
    expect(chooseCandidate([single, equal, stacking]).chosen).toBe(2);
  });

  it('lets log loss decide between candidates of one level that are equal within the noise', () => {
    // A k-NN a few rows ahead on validation, with crude probabilities, and a sharper random forest.
    const knn = candidate('single', 'weighted-average', 'equal', around(0.094, 0.02), 0.8);
    const forest = candidate('single', 'weighted-average', 'equal', around(0.098, 0.02), 0.26);
    const choice = chooseCandidate([knn, forest]);
    expect(choice.lowestError).toBe(0);
    expect(choice.chosen).toBe(1);
  });

  it('ranks hard voting by its error rate, and after probabilistic configs of the same error and level', () => {
    // Vote shares give a tiny log loss: it must not count.
    const hard = candidate('all', 'hard-voting', 'equal', around(0.05, 0.001), 0.001);
    const soft = candidate('all', 'soft-voting', 'equal', around(0.05, 0.001), 0.2);
    const single = candidate('single', 'weighted-average', 'equal', around(0.2, 0.001));
    expect(chooseCandidate([single, hard, soft]).chosen).toBe(2);
    const betterHard = candidate('all', 'hard-voting', 'equal', around(0.03, 0.001), 5);
    expect(chooseCandidate([single, betterHard, soft]).chosen).toBe(1);
  });

  it('breaks ties left by floating-point rounding deterministically: fewer models, then the strategy order', () => {
    const errors = around(0.05, 0.001);
    const sum = candidate('all', 'weighted-sum', 'equal', errors, 0.2 + 1e-15);
    const soft = candidate('all', 'soft-voting', 'equal', errors, 0.2);
    const average = candidate('all', 'weighted-average', 'equal', errors, 0.2 + 2e-16);
    expect(chooseCandidate([sum, soft, average]).chosen).toBe(2);
    expect(chooseCandidate([average, soft, sum]).chosen).toBe(0);
    const fewer = candidate('greedy', 'weighted-sum', 'equal', errors, 0.2, 2);
    expect(chooseCandidate([sum, soft, average, fewer]).chosen).toBe(3);
  });

  it('scores folds by mean error and its standard error', () => {
    const s = scoreFolds([0.1, 0.2, 0.3].map((error) => ({ error, logLoss: 1 })));
    expect(s.meanError).toBeCloseTo(0.2, 12);
    expect(s.foldStandardError).toBeCloseTo(0.1 / Math.sqrt(3), 12);
    expect(s.meanLogLoss).toBe(1);
  });
});
