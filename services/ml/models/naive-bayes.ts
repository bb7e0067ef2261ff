import { ModelParamsError } from '../errors.js';
import { checkFeatureVector, checkTrainingData } from './input-checks.js';
import { expectFiniteArray, expectInteger, expectParamsOf } from './params-check.js';
import { softmaxInPlace } from './softmax.js';
import type { Classifier } from './types.js';

export interface NaiveBayesParams {
  family: 'naive-bayes';
  nClasses: number;
  nFeatures: number;
  /** Training rows per class; the priors are their shares. A class never seen gets probability 0. */
  classCount: number[];
  /** Row-major nClasses x nFeatures. */
  mean: number[];
  /** Row-major nClasses x nFeatures, smoothing already added. */
  variance: number[];
}

export interface NaiveBayesOptions {
  /** Share of the largest feature variance added to every variance (scikit-learn's var_smoothing). */
  varSmoothing?: number;
}

/** Gaussian naive Bayes. */
export class NaiveBayes implements Classifier {
  readonly family = 'naive-bayes' as const;
  readonly nClasses: number;
  readonly nFeatures: number;
  private readonly logPrior: Float64Array;
  private readonly mean: Float64Array;
  private readonly halfInvVariance: Float64Array;

  constructor(private readonly params: NaiveBayesParams) {
    this.nClasses = params.nClasses;
    this.nFeatures = params.nFeatures;
    const total = params.classCount.reduce((a, b) => a + b, 0);
    this.mean = Float64Array.from(params.mean);
    this.halfInvVariance = Float64Array.from(params.variance, (v) => 0.5 / v);
    // The -0.5 * sum(log(2 pi var)) normaliser is folded into the prior term.
    this.logPrior = new Float64Array(this.nClasses);
    for (let c = 0; c < this.nClasses; c++) {
      let logNorm = 0;
      for (let j = 0; j < this.nFeatures; j++) logNorm += Math.log(2 * Math.PI * params.variance[c * this.nFeatures + j]!);
      this.logPrior[c] = Math.log(params.classCount[c]! / total) - 0.5 * logNorm;
    }
  }

  predictProba(x: ArrayLike<number>): Float64Array {
    checkFeatureVector(x, this.nFeatures);
    const scores = new Float64Array(this.nClasses);
    for (let c = 0; c < this.nClasses; c++) {
      let s = this.logPrior[c]!;
      if (s !== -Infinity) {
        const offset = c * this.nFeatures;
        for (let j = 0; j < this.nFeatures; j++) {
          const d = x[j]! - this.mean[offset + j]!;
          s -= d * d * this.halfInvVariance[offset + j]!;
        }
      }
      scores[c] = s;
    }
    return softmaxInPlace(scores);
  }

  toJSON(): NaiveBayesParams {
    return this.params;
  }

  static fromJSON(value: unknown): NaiveBayes {
    const params = expectParamsOf(value, 'naive-bayes');
    const nClasses = expectInteger(params.nClasses, 'nClasses', 1);
    const nFeatures = expectInteger(params.nFeatures, 'nFeatures', 1);
    const classCount = expectFiniteArray(params.classCount, 'classCount', nClasses);
    if (classCount.some((c) => c < 0) || !classCount.some((c) => c > 0)) {
      throw new ModelParamsError('classCount must be non-negative with at least one positive entry');
    }
    const variance = expectFiniteArray(params.variance, 'variance', nClasses * nFeatures);
    if (variance.some((v) => v <= 0)) throw new ModelParamsError('variance must be positive');
    return new NaiveBayes({
      family: 'naive-bayes',
      nClasses,
      nFeatures,
      classCount,
      mean: expectFiniteArray(params.mean, 'mean', nClasses * nFeatures),
      variance,
    });
  }
}

export function fitNaiveBayes(X: readonly ArrayLike<number>[], y: ArrayLike<number>, nClasses: number, options: NaiveBayesOptions = {}): NaiveBayes {
  const nFeatures = checkTrainingData(X, y, nClasses);
  const n = X.length;
  const classCount = new Array<number>(nClasses).fill(0);
  const mean = new Array<number>(nClasses * nFeatures).fill(0);
  const variance = new Array<number>(nClasses * nFeatures).fill(0);
  const overallMean = new Array<number>(nFeatures).fill(0);
  const overallVariance = new Array<number>(nFeatures).fill(0);

  for (let i = 0; i < n; i++) {
    const c = y[i]!;
    classCount[c]!++;
    const row = X[i]!;
    for (let j = 0; j < nFeatures; j++) {
      mean[c * nFeatures + j]! += row[j]!;
      overallMean[j]! += row[j]!;
    }
  }
  for (let c = 0; c < nClasses; c++) {
    for (let j = 0; j < nFeatures; j++) mean[c * nFeatures + j] = classCount[c]! > 0 ? mean[c * nFeatures + j]! / classCount[c]! : 0;
  }
  for (let j = 0; j < nFeatures; j++) overallMean[j] = overallMean[j]! / n;
  for (let i = 0; i < n; i++) {
    const c = y[i]!;
    const row = X[i]!;
    for (let j = 0; j < nFeatures; j++) {
      const d = row[j]! - mean[c * nFeatures + j]!;
      variance[c * nFeatures + j]! += d * d;
      const o = row[j]! - overallMean[j]!;
      overallVariance[j]! += o * o;
    }
  }
  // As scikit-learn: epsilon = var_smoothing * largest feature variance, so no variance is zero.
  const maxVariance = Math.max(...overallVariance.map((v) => v / n));
  const epsilon = (options.varSmoothing ?? 1e-9) * (maxVariance > 0 ? maxVariance : 1);
  for (let c = 0; c < nClasses; c++) {
    for (let j = 0; j < nFeatures; j++) {
      const k = c * nFeatures + j;
      variance[k] = (classCount[c]! > 0 ? variance[k]! / classCount[c]! : 0) + epsilon;
    }
  }
  return new NaiveBayes({ family: 'naive-bayes', nClasses, nFeatures, classCount, mean, variance });
}
