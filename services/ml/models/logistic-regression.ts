import { checkFeatureVector, checkTrainingData } from './input-checks.js';
import { type Objective, minimiseLbfgs } from './lbfgs.js';
import { expectFiniteArray, expectInteger, expectParamsOf } from './params-check.js';
import { softmaxInPlace } from './softmax.js';
import { Standardiser, fitStandardiser, type StandardiserParams } from './standardiser.js';
import type { Classifier } from './types.js';

export interface LogisticRegressionParams {
  family: 'logistic-regression';
  nClasses: number;
  nFeatures: number;
  /** Null when the model was fitted on raw inputs. */
  standardiser: StandardiserParams | null;
  /** Row-major nClasses x nFeatures. */
  weights: number[];
  intercepts: number[];
}

export interface LogisticRegressionOptions {
  /** L2 penalty on the weights (not the intercepts); scikit-learn's 1/C. */
  l2?: number;
  /** Default 300. */
  maxIterations?: number;
  /** On the largest gradient entry of the mean loss; default 1e-5 (scikit-learn stops at 1e-4). */
  gradientTolerance?: number;
  /** Standardise inputs first (default true); the scaling is kept in the params. */
  standardise?: boolean;
}

/** Multinomial (softmax) logistic regression. */
export class LogisticRegression implements Classifier {
  readonly family = 'logistic-regression' as const;
  readonly nClasses: number;
  readonly nFeatures: number;
  private readonly standardiser: Standardiser | null;
  private readonly weights: Float64Array;
  private readonly intercepts: Float64Array;

  constructor(private readonly params: LogisticRegressionParams) {
    this.nClasses = params.nClasses;
    this.nFeatures = params.nFeatures;
    this.standardiser = params.standardiser === null ? null : new Standardiser(params.standardiser);
    this.weights = Float64Array.from(params.weights);
    this.intercepts = Float64Array.from(params.intercepts);
  }

  predictProba(x: ArrayLike<number>): Float64Array {
    checkFeatureVector(x, this.nFeatures);
    const input = this.standardiser === null ? x : this.standardiser.transform(x);
    const scores = new Float64Array(this.nClasses);
    for (let c = 0; c < this.nClasses; c++) {
      let z = this.intercepts[c]!;
      const offset = c * this.nFeatures;
      for (let j = 0; j < this.nFeatures; j++) z += this.weights[offset + j]! * input[j]!;
      scores[c] = z;
    }
    return softmaxInPlace(scores);
  }

  toJSON(): LogisticRegressionParams {
    return this.params;
  }

  static fromJSON(value: unknown): LogisticRegression {
    const params = expectParamsOf(value, 'logistic-regression');
    const nClasses = expectInteger(params.nClasses, 'nClasses', 1);
    const nFeatures = expectInteger(params.nFeatures, 'nFeatures', 1);
    const standardiser = params.standardiser === null ? null : Standardiser.fromJSON(params.standardiser, nFeatures).params;
    return new LogisticRegression({
      family: 'logistic-regression',
      nClasses,
      nFeatures,
      standardiser,
      weights: expectFiniteArray(params.weights, 'weights', nClasses * nFeatures),
      intercepts: expectFiniteArray(params.intercepts, 'intercepts', nClasses),
    });
  }
}

/**
 * Minimises mean cross-entropy + l2 / (2n) * ||W||^2 with L-BFGS: the same optimum as scikit-learn's
 * multinomial LogisticRegression(C = 1 / l2). Works on any numeric inputs, so it also serves as the
 * stacking meta-model over other models' probabilities.
 */
export function fitLogisticRegression(
  X: readonly ArrayLike<number>[],
  y: ArrayLike<number>,
  nClasses: number,
  options: LogisticRegressionOptions = {},
): LogisticRegression {
  const nFeatures = checkTrainingData(X, y, nClasses);
  const l2 = options.l2 ?? 1;
  const standardiserParams = (options.standardise ?? true) ? fitStandardiser(X, nFeatures) : null;
  const data = flatInputs(X, nFeatures, standardiserParams);
  const nWeights = nClasses * nFeatures;
  const objective = penalisedCrossEntropy(data, y, X.length, nFeatures, nClasses, l2);

  const { x: theta } = minimiseLbfgs(objective, new Float64Array(nWeights + nClasses), {
    maxIterations: options.maxIterations ?? 300,
    gradientTolerance: options.gradientTolerance ?? 1e-5,
  });
  return new LogisticRegression({
    family: 'logistic-regression',
    nClasses,
    nFeatures,
    standardiser: standardiserParams,
    weights: Array.from(theta.subarray(0, nWeights)),
    intercepts: Array.from(theta.subarray(nWeights)),
  });
}

/** One flat row-major copy of the (standardised) inputs keeps the inner loops cache friendly. */
function flatInputs(X: readonly ArrayLike<number>[], nFeatures: number, standardiserParams: StandardiserParams | null): Float64Array {
  const standardiser = standardiserParams === null ? null : new Standardiser(standardiserParams);
  const data = new Float64Array(X.length * nFeatures);
  X.forEach((row, i) => {
    const target = data.subarray(i * nFeatures, (i + 1) * nFeatures);
    if (standardiser === null) target.set(row);
    else standardiser.transform(row, target);
  });
  return data;
}

/**
 * Mean cross-entropy of the softmax + l2 / (2n) * ||W||^2 and its gradient, over the `n` rows of
 * `data`; theta = [weights (nClasses x nFeatures), intercepts (nClasses)].
 */
function penalisedCrossEntropy(data: Float64Array, y: ArrayLike<number>, n: number, nFeatures: number, nClasses: number, l2: number): Objective {
  const nWeights = nClasses * nFeatures;
  const scores = new Float64Array(nClasses);
  return (theta, gradient) => {
    gradient.fill(0);
    let loss = 0;
    for (let i = 0; i < n; i++) {
      const offset = i * nFeatures;
      let max = -Infinity;
      for (let c = 0; c < nClasses; c++) {
        let z = theta[nWeights + c]!;
        const w = c * nFeatures;
        for (let j = 0; j < nFeatures; j++) z += theta[w + j]! * data[offset + j]!;
        scores[c] = z;
        if (z > max) max = z;
      }
      let sum = 0;
      for (let c = 0; c < nClasses; c++) {
        const e = Math.exp(scores[c]! - max);
        scores[c] = e;
        sum += e;
      }
      const label = y[i]!;
      loss += Math.log(sum) - Math.log(scores[label]!);
      for (let c = 0; c < nClasses; c++) {
        const residual = scores[c]! / sum - (c === label ? 1 : 0);
        gradient[nWeights + c] = gradient[nWeights + c]! + residual;
        const w = c * nFeatures;
        for (let j = 0; j < nFeatures; j++) gradient[w + j] = gradient[w + j]! + residual * data[offset + j]!;
      }
    }
    let penalty = 0;
    for (let k = 0; k < nWeights; k++) {
      penalty += theta[k]! * theta[k]!;
      gradient[k] = gradient[k]! / n + (l2 / n) * theta[k]!;
    }
    for (let c = 0; c < nClasses; c++) gradient[nWeights + c] = gradient[nWeights + c]! / n;
    return loss / n + (l2 / (2 * n)) * penalty;
  };
}
