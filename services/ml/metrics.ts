import { MlArgumentError } from './errors.js';

/**
 * Classification metrics with scikit-learn semantics. Everything derived from hard predictions goes
 * through `metricsFromConfusion`, so a rolling window that maintains a confusion matrix gets the
 * same numbers as the batch functions.
 */

/** counts[trueClass][predictedClass]. */
export type ConfusionMatrix = number[][];

export interface ClassMetrics {
  precision: number;
  recall: number;
  f1: number;
  /** Rows whose true class is this one. */
  support: number;
}

export interface ConfusionMetrics {
  total: number;
  accuracy: number;
  /** Means over `labels`, scikit-learn's average='macro'. */
  macroPrecision: number;
  macroRecall: number;
  macroF1: number;
  /** Classes that occur as true or predicted class, ascending: what labels=None averages over. */
  labels: number[];
  perClass: ClassMetrics[];
}

export interface EvaluationMetrics extends ConfusionMetrics {
  logLoss: number;
  brier: number;
}

/** Clipping floor of `logLoss`, scikit-learn's historical default. */
export const LOG_LOSS_EPSILON = 1e-15;

export function confusionMatrix(yTrue: ArrayLike<number>, yPred: ArrayLike<number>, nClasses: number): ConfusionMatrix {
  checkLengths(yTrue, yPred);
  const matrix = Array.from({ length: nClasses }, () => new Array<number>(nClasses).fill(0));
  for (let i = 0; i < yTrue.length; i++) {
    const t = yTrue[i]!;
    const p = yPred[i]!;
    const row = matrix[t];
    if (row === undefined || !Number.isInteger(t)) throw new MlArgumentError(`true label ${t} is not a class in [0, ${nClasses})`);
    if (!(Number.isInteger(p) && p >= 0 && p < nClasses)) throw new MlArgumentError(`predicted label ${p} is not a class in [0, ${nClasses})`);
    row[p]!++;
  }
  return matrix;
}

/**
 * Accuracy and per-class / macro precision, recall and F1 (zero_division=0: a ratio with an empty
 * denominator is 0). An empty matrix gives zeros throughout.
 */
export function metricsFromConfusion(matrix: ConfusionMatrix): ConfusionMetrics {
  const nClasses = matrix.length;
  const predicted = new Array<number>(nClasses).fill(0);
  const perClass: ClassMetrics[] = [];
  let total = 0;
  let correct = 0;
  for (let t = 0; t < nClasses; t++) {
    const row = matrix[t]!;
    if (row.length !== nClasses) throw new MlArgumentError('confusion matrix must be square');
    for (let p = 0; p < nClasses; p++) {
      predicted[p]! += row[p]!;
      total += row[p]!;
    }
    correct += row[t]!;
  }
  const labels: number[] = [];
  for (let c = 0; c < nClasses; c++) {
    const truePositives = matrix[c]![c]!;
    const support = matrix[c]!.reduce((a, b) => a + b, 0);
    const falsePositives = predicted[c]! - truePositives;
    const falseNegatives = support - truePositives;
    perClass.push({
      precision: ratio(truePositives, predicted[c]!),
      recall: ratio(truePositives, support),
      // 2TP / (2TP + FP + FN) equals 2PR / (P + R) and stays defined when P = R = 0.
      f1: ratio(2 * truePositives, 2 * truePositives + falsePositives + falseNegatives),
      support,
    });
    if (support > 0 || predicted[c]! > 0) labels.push(c);
  }
  const macro = (pick: (m: ClassMetrics) => number): number =>
    labels.length === 0 ? 0 : labels.reduce((sum, c) => sum + pick(perClass[c]!), 0) / labels.length;
  return {
    total,
    accuracy: ratio(correct, total),
    macroPrecision: macro((m) => m.precision),
    macroRecall: macro((m) => m.recall),
    macroF1: macro((m) => m.f1),
    labels,
    perClass,
  };
}

export function classificationMetrics(yTrue: ArrayLike<number>, yPred: ArrayLike<number>, nClasses: number): ConfusionMetrics {
  return metricsFromConfusion(confusionMatrix(yTrue, yPred, nClasses));
}

export function accuracy(yTrue: ArrayLike<number>, yPred: ArrayLike<number>): number {
  checkLengths(yTrue, yPred);
  let correct = 0;
  for (let i = 0; i < yTrue.length; i++) if (yTrue[i] === yPred[i]) correct++;
  return correct / yTrue.length;
}

/** Index of the largest probability; ties go to the lowest class index (as numpy's argmax). */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let c = 1; c < values.length; c++) if (values[c]! > values[best]!) best = c;
  return best;
}

export function predictedClasses(probabilities: readonly ArrayLike<number>[]): Int32Array {
  return Int32Array.from(probabilities, argmax);
}

/**
 * Mean negative log-likelihood of the true class, its probability clipped to [eps, 1 - eps] so a
 * confident miss costs -log(eps) instead of infinity. No renormalisation after clipping, as in
 * scikit-learn >= 1.5.
 */
export function logLoss(yTrue: ArrayLike<number>, probabilities: readonly ArrayLike<number>[], eps = LOG_LOSS_EPSILON): number {
  checkLengths(yTrue, probabilities);
  let sum = 0;
  for (let i = 0; i < yTrue.length; i++) {
    const p = classProbability(probabilities[i]!, yTrue[i]!);
    sum -= Math.log(Math.min(Math.max(p, eps), 1 - eps));
  }
  return sum / yTrue.length;
}

/** Multiclass Brier score: mean over rows of the summed squared error against the one-hot truth. */
export function brierScore(yTrue: ArrayLike<number>, probabilities: readonly ArrayLike<number>[]): number {
  checkLengths(yTrue, probabilities);
  let sum = 0;
  for (let i = 0; i < yTrue.length; i++) {
    const row = probabilities[i]!;
    const label = yTrue[i]!;
    classProbability(row, label); // rejects a label without a column
    for (let c = 0; c < row.length; c++) {
      const error = row[c]! - (c === label ? 1 : 0);
      sum += error * error;
    }
  }
  return sum / yTrue.length;
}

/** Everything above for one set of probabilistic predictions. */
export function evaluateProbabilities(yTrue: ArrayLike<number>, probabilities: readonly ArrayLike<number>[]): EvaluationMetrics {
  checkLengths(yTrue, probabilities);
  const nClasses = probabilities[0]!.length;
  return {
    ...classificationMetrics(yTrue, predictedClasses(probabilities), nClasses),
    logLoss: logLoss(yTrue, probabilities),
    brier: brierScore(yTrue, probabilities),
  };
}

function ratio(numerator: number, denominator: number): number {
  return denominator === 0 ? 0 : numerator / denominator;
}

function classProbability(row: ArrayLike<number>, label: number): number {
  const p = row[label];
  if (!Number.isInteger(label) || p === undefined) throw new MlArgumentError(`label ${label} has no probability column`);
  return p;
}

function checkLengths(yTrue: ArrayLike<number>, other: ArrayLike<unknown>): void {
  if (yTrue.length === 0) throw new MlArgumentError('metrics need at least one row');
  if (yTrue.length !== other.length) throw new MlArgumentError(`${yTrue.length} labels but ${other.length} predictions`);
}
