import { describe, expect, it } from 'vitest';
import { EnsembleError } from '../../services/shared/errors.js';
import {
  LOG_LOSS_EPSILON,
  accuracy,
  argmax,
  brierScore,
  classificationMetrics,
  confusionMatrix,
  evaluateProbabilities,
  logLoss,
  metricsFromConfusion,
} from '../../services/ml/metrics.js';

describe('confusion matrix and derived metrics', () => {
  // Class 2 is never predicted.
  const yTrue = [0, 0, 1, 1, 2, 2];
  const yPred = [0, 0, 1, 0, 1, 1];

  it('counts true classes by row and predictions by column', () => {
    expect(confusionMatrix(yTrue, yPred, 3)).toEqual([
      [2, 0, 0],
      [1, 1, 0],
      [0, 2, 0],
    ]);
  });

  it('computes per-class and macro precision/recall/F1 with zero_division=0', () => {
    const m = classificationMetrics(yTrue, yPred, 3);
    expect(m.accuracy).toBe(0.5);
    expect(m.perClass[0]).toEqual({ precision: 2 / 3, recall: 1, f1: 0.8, support: 2 });
    expect(m.perClass[1]!.precision).toBeCloseTo(1 / 3, 15);
    expect(m.perClass[1]!.recall).toBe(0.5);
    expect(m.perClass[1]!.f1).toBeCloseTo(0.4, 15);
    expect(m.perClass[2]).toEqual({ precision: 0, recall: 0, f1: 0, support: 2 });
    expect(m.labels).toEqual([0, 1, 2]);
    expect(m.macroPrecision).toBeCloseTo(1 / 3, 15);
    expect(m.macroRecall).toBeCloseTo(0.5, 15);
    expect(m.macroF1).toBeCloseTo(0.4, 15);
  });

  it('averages macro metrics only over labels seen in y_true or y_pred', () => {
    // Same data with a fourth class that never occurs: the macro averages must not change.
    const m = classificationMetrics(yTrue, yPred, 4);
    expect(m.labels).toEqual([0, 1, 2]);
    expect(m.macroPrecision).toBeCloseTo(1 / 3, 15);
    expect(m.macroF1).toBeCloseTo(0.4, 15);

    // A class that is only predicted counts, with recall 0 (support 0).
    const onlyPredicted = classificationMetrics([0, 0], [0, 1], 2);
    expect(onlyPredicted.labels).toEqual([0, 1]);
    expect(onlyPredicted.perClass[1]).toEqual({ precision: 0, recall: 0, f1: 0, support: 0 });
    expect(onlyPredicted.macroPrecision).toBe(0.5);
    expect(onlyPredicted.macroRecall).toBe(0.25);
    expect(onlyPredicted.macroF1).toBeCloseTo(1 / 3, 15);
  });

  it('gives zeros for an empty confusion matrix', () => {
    const m = metricsFromConfusion([
      [0, 0],
      [0, 0],
    ]);
    expect(m).toMatchObject({ total: 0, accuracy: 0, macroPrecision: 0, macroRecall: 0, macroF1: 0, labels: [] });
  });

  it('agrees with plain accuracy', () => {
    expect(accuracy([1, 2, 3, 4], [1, 2, 0, 4])).toBe(0.75);
    expect(metricsFromConfusion(confusionMatrix([1, 2, 3, 4], [1, 2, 0, 4], 5)).accuracy).toBe(0.75);
  });

  it('rejects labels outside the class range and mismatched lengths', () => {
    expect(() => confusionMatrix([0, 3], [0, 1], 3)).toThrow(/true label 3/);
    expect(() => confusionMatrix([0, 1], [0, -1], 3)).toThrow(/predicted label -1/);
    expect(() => accuracy([0, 1], [0])).toThrow(EnsembleError);
    expect(() => accuracy([], [])).toThrow(/at least one row/);
  });
});

describe('probabilistic metrics', () => {
  const yTrue = [0, 1];
  const proba = [
    [0.8, 0.2],
    [0.3, 0.7],
  ];

  it('computes log loss as mean negative log-likelihood of the true class', () => {
    expect(logLoss(yTrue, proba)).toBeCloseTo(-(Math.log(0.8) + Math.log(0.7)) / 2, 15);
  });

  it('clips probabilities to [eps, 1 - eps] so certainty costs at most -log(eps)', () => {
    const confidentlyWrong = logLoss(
      [1, 1],
      [
        [1, 0],
        [0, 1],
      ],
    );
    // -log(1e-15) for the miss, -log(1 - 1e-15) (about 1.1e-15) for the hit.
    expect(confidentlyWrong).toBeCloseTo((-Math.log(LOG_LOSS_EPSILON) - Math.log(1 - LOG_LOSS_EPSILON)) / 2, 12);
    expect(confidentlyWrong).toBeCloseTo(34.538776394910684 / 2, 12);
    expect(logLoss([0], [[1, 0]])).toBeGreaterThan(0);
    expect(logLoss([0], [[1, 0]])).toBeLessThan(2e-15);
  });

  it('computes the multiclass Brier score', () => {
    // (0.2^2 + 0.2^2 + 0.3^2 + 0.3^2) / 2
    expect(brierScore(yTrue, proba)).toBeCloseTo(0.13, 15);
    expect(brierScore([2], [[0.5, 0.3, 0.2]])).toBeCloseTo(0.25 + 0.09 + 0.64, 15);
    expect(brierScore([0], [[1, 0, 0]])).toBe(0);
  });

  it('argmax breaks ties towards the lowest class', () => {
    expect(argmax([0.2, 0.4, 0.4])).toBe(1);
    expect(argmax([0.5, 0.5])).toBe(0);
  });

  it('evaluates probabilities end to end', () => {
    const m = evaluateProbabilities(
      [0, 1, 2],
      [
        [0.6, 0.3, 0.1],
        [0.5, 0.4, 0.1],
        [0.1, 0.1, 0.8],
      ],
    );
    expect(m.accuracy).toBeCloseTo(2 / 3, 15);
    expect(m.perClass.map((c) => c.support)).toEqual([1, 1, 1]);
    expect(m.logLoss).toBeCloseTo(-(Math.log(0.6) + Math.log(0.4) + Math.log(0.8)) / 3, 15);
    expect(m.brier).toBeCloseTo((0.16 + 0.09 + 0.01 + 0.25 + 0.36 + 0.01 + 0.01 + 0.01 + 0.04) / 3, 15);
  });

  it('rejects a label without a probability column', () => {
    expect(() => logLoss([2], [[0.5, 0.5]])).toThrow(/no probability column/);
    expect(() => brierScore([2], [[0.5, 0.5]])).toThrow(/no probability column/);
  });
});
