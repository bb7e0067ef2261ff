import type { Batch } from './batch.js';
import { FusionError } from './errors.js';
import { compensatedDot, midpoint } from './numeric.js';
import type { FusionResult, RegressionStrategy } from './types.js';
import { checkedValue } from './validate.js';

type RegressionFusion = (batch: Batch) => number;

/** sum_i w_i * y_i / sum_i w_i, formed as a convex combination so it cannot overflow. */
function average(batch: Batch): number {
  batch.normaliseWeights();
  loadValues(batch);
  return compensatedDot(batch.weights, batch.values, batch.size);
}

/** sum_i w_i * y_i with the weights as configured (calibrated linear combinations). */
function weightedSum(batch: Batch): number {
  batch.totalWeight();
  loadValues(batch);
  return compensatedDot(batch.weights, batch.values, batch.size);
}

/** np.median of the present values; weights do not apply, every model counts 1/n. */
function median(batch: Batch): number {
  const n = batch.size;
  loadValues(batch);
  batch.weights.fill(1 / n, 0, n);
  const sorted = batch.values.subarray(0, n).sort();
  const mid = n >> 1;
  return n % 2 === 1 ? (sorted[mid] as number) : midpoint(sorted[mid - 1] as number, sorted[mid] as number);
}

function loadValues(batch: Batch): void {
  for (let i = 0; i < batch.size; i++) batch.values[i] = checkedValue(batch.output(i));
}

const REGRESSION_FUSIONS: Readonly<Record<RegressionStrategy, RegressionFusion>> = {
  'weighted-average': average,
  'weighted-sum': weightedSum,
  median,
};

export function fuseRegression(strategy: RegressionStrategy, batch: Batch): FusionResult {
  const value = REGRESSION_FUSIONS[strategy](batch);
  // Large weights times large values can leave the double range.
  if (!Number.isFinite(value)) {
    throw new FusionError('NON_FINITE_RESULT', `${strategy} of the present values is ${value}`);
  }
  return { value, weightsUsed: batch.weightsUsed() };
}
