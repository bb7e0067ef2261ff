import type { Task } from '../core/fusion/index.js';
import { brierScore, logLoss, metricsFromConfusion } from '../ml/metrics.js';
import type { MetricsEntry } from '../shared/records.js';
import { EVAL_WINDOW_FIELD } from '../shared/redis-keys.js';

/**
 * Label-based metrics over a rolling window. Each labelled prediction becomes a sample of additive
 * terms (confusion cell, log loss, Brier, errors) computed with the batch functions of
 * services/ml/metrics.ts; a window is the sum of its buckets, and the figures follow from the sums
 * exactly as the batch functions would give them over the same predictions.
 */
export type Sample =
  | { task: 'classification'; trueClass: number; predictedClass: number; logLoss: number | null; brier: number | null }
  | { task: 'regression'; absError: number; squaredError: number };

/** A classification sample; without probabilities (a fused label alone) it adds to the confusion matrix only. */
export function classificationSample(trueClass: number, predictedClass: number, probabilities: readonly number[] | null): Sample {
  const scored = probabilities !== null && probabilities.length > 0;
  return {
    task: 'classification',
    trueClass,
    predictedClass,
    logLoss: scored ? logLoss([trueClass], [probabilities]) : null,
    brier: scored ? brierScore([trueClass], [probabilities]) : null,
  };
}

export function regressionSample(truth: number, predicted: number): Sample {
  const error = predicted - truth;
  return { task: 'regression', absError: Math.abs(error), squaredError: error * error };
}

/** The loss learned weights follow: log loss for classification, squared error for regression. */
export function sampleLoss(sample: Sample): number | null {
  return sample.task === 'classification' ? sample.logLoss : sample.squaredError;
}

/**
 * Sums of a window, as kept in a bucket hash: `n` samples, `np` with probabilities, `c:<true>:<pred>`
 * confusion cells, `ll`/`br` summed log loss and Brier over the `np`, `ae`/`se` summed absolute and
 * squared errors.
 */
export interface WindowSums {
  n: number;
  np: number;
  /** "true:predicted" -> count. */
  confusion: Map<string, number>;
  logLoss: number;
  brier: number;
  absError: number;
  squaredError: number;
}

export function emptySums(): WindowSums {
  return { n: 0, np: 0, confusion: new Map(), logLoss: 0, brier: 0, absError: 0, squaredError: 0 };
}

/** Adds one bucket, given as its hash fields, to `sums`. */
export function addBucket(sums: WindowSums, fields: ReadonlyMap<string, string>): void {
  for (const [field, text] of fields) {
    const value = Number(text);
    switch (field) {
      case EVAL_WINDOW_FIELD.samples:
        sums.n += value;
        break;
      case EVAL_WINDOW_FIELD.withProbabilities:
        sums.np += value;
        break;
      case EVAL_WINDOW_FIELD.logLoss:
        sums.logLoss += value;
        break;
      case EVAL_WINDOW_FIELD.brier:
        sums.brier += value;
        break;
      case EVAL_WINDOW_FIELD.absError:
        sums.absError += value;
        break;
      case EVAL_WINDOW_FIELD.squaredError:
        sums.squaredError += value;
        break;
      default:
        if (field.startsWith(EVAL_WINDOW_FIELD.cell)) {
          const cell = field.slice(EVAL_WINDOW_FIELD.cell.length);
          sums.confusion.set(cell, (sums.confusion.get(cell) ?? 0) + value);
        }
    }
  }
}

/** The label-based part of a metrics entry. */
export type WindowFigures = Pick<MetricsEntry, 'labelled' | 'accuracy' | 'macroPrecision' | 'macroRecall' | 'macroF1' | 'logLoss' | 'brier' | 'mae' | 'rmse'>;

/** The metrics of a window; null where the window holds nothing to compute them from. */
export function windowFigures(sums: WindowSums, task: Task, nClasses: number): WindowFigures {
  const none: WindowFigures = {
    labelled: sums.n,
    accuracy: null,
    macroPrecision: null,
    macroRecall: null,
    macroF1: null,
    logLoss: null,
    brier: null,
    mae: null,
    rmse: null,
  };
  if (sums.n <= 0) return { ...none, labelled: 0 };
  if (task === 'regression') {
    return { ...none, mae: Math.max(0, sums.absError) / sums.n, rmse: Math.sqrt(Math.max(0, sums.squaredError) / sums.n) };
  }
  const matrix = Array.from({ length: nClasses }, () => new Array<number>(nClasses).fill(0));
  for (const [cell, count] of sums.confusion) {
    const [t, p] = cell.split(':').map(Number);
    const row = t === undefined ? undefined : matrix[t];
    if (row !== undefined && p !== undefined && p >= 0 && p < nClasses) row[p] = (row[p] ?? 0) + count;
  }
  const m = metricsFromConfusion(matrix);
  return {
    ...none,
    accuracy: m.accuracy,
    macroPrecision: m.macroPrecision,
    macroRecall: m.macroRecall,
    macroF1: m.macroF1,
    logLoss: sums.np > 0 ? sums.logLoss / sums.np : null,
    brier: sums.np > 0 ? sums.brier / sums.np : null,
  };
}
