import { MlArgumentError, ModelParamsError } from '../errors.js';
import { checkFeatureVector, checkTrainingData } from './input-checks.js';
import { expectFiniteArray, expectInteger, expectIntegerArray, expectParamsOf } from './params-check.js';
import { Standardiser, fitStandardiser, type StandardiserParams } from './standardiser.js';
import type { Classifier } from './types.js';

export interface KnnParams {
  family: 'knn';
  nClasses: number;
  nFeatures: number;
  k: number;
  standardiser: StandardiserParams;
  /** Raw training rows, row-major, flattened (raw values serialise shorter than standardised ones). */
  X: number[];
  y: number[];
}

export interface KnnOptions {
  k?: number;
}

/**
 * k-nearest neighbours on standardised features, Euclidean distance, uniform votes: the probability
 * of a class is its share of the k neighbours. Ties in distance go to the earlier training row.
 */
export class Knn implements Classifier {
  readonly family = 'knn' as const;
  readonly nClasses: number;
  readonly nFeatures: number;
  private readonly k: number;
  private readonly standardiser: Standardiser;
  private readonly data: Float64Array;
  private readonly labels: Int32Array;

  constructor(private readonly params: KnnParams) {
    this.nClasses = params.nClasses;
    this.nFeatures = params.nFeatures;
    this.standardiser = new Standardiser(params.standardiser);
    this.labels = Int32Array.from(params.y);
    this.k = Math.min(params.k, this.labels.length);
    this.data = new Float64Array(params.X.length);
    for (let i = 0; i < this.labels.length; i++) {
      const offset = i * this.nFeatures;
      this.standardiser.transform(params.X.slice(offset, offset + this.nFeatures), this.data.subarray(offset, offset + this.nFeatures));
    }
  }

  predictProba(x: ArrayLike<number>): Float64Array {
    checkFeatureVector(x, this.nFeatures);
    const query = this.standardiser.transform(x);
    const { k, nFeatures, data, labels } = this;
    // The k best so far, kept sorted by distance: insertion into a k-slot buffer beats sorting
    // all n distances, and the running k-th distance lets most rows stop after a few features.
    const bestDistance = new Float64Array(k).fill(Infinity);
    const bestLabel = new Int32Array(k);
    let worst = Infinity;
    for (let i = 0, offset = 0; i < labels.length; i++, offset += nFeatures) {
      let distance = 0;
      for (let j = 0; j < nFeatures && distance < worst; j++) {
        const d = data[offset + j]! - query[j]!;
        distance += d * d;
      }
      if (distance >= worst) continue;
      let slot = k - 1;
      while (slot > 0 && bestDistance[slot - 1]! > distance) {
        bestDistance[slot] = bestDistance[slot - 1]!;
        bestLabel[slot] = bestLabel[slot - 1]!;
        slot--;
      }
      bestDistance[slot] = distance;
      bestLabel[slot] = labels[i]!;
      worst = bestDistance[k - 1]!;
    }
    const proba = new Float64Array(this.nClasses);
    for (let s = 0; s < k; s++) proba[bestLabel[s]!] = proba[bestLabel[s]!]! + 1;
    for (let c = 0; c < this.nClasses; c++) proba[c] = proba[c]! / k;
    return proba;
  }

  toJSON(): KnnParams {
    return this.params;
  }

  static fromJSON(value: unknown): Knn {
    const params = expectParamsOf(value, 'knn');
    const nClasses = expectInteger(params.nClasses, 'nClasses', 1);
    const nFeatures = expectInteger(params.nFeatures, 'nFeatures', 1);
    const y = expectIntegerArray(params.y, 'y', 0, nClasses - 1);
    if (y.length === 0) throw new ModelParamsError('knn needs at least one training row');
    return new Knn({
      family: 'knn',
      nClasses,
      nFeatures,
      k: expectInteger(params.k, 'k', 1),
      standardiser: Standardiser.fromJSON(params.standardiser, nFeatures).params,
      X: expectFiniteArray(params.X, 'X', y.length * nFeatures),
      y,
    });
  }
}

export function fitKnn(X: readonly ArrayLike<number>[], y: ArrayLike<number>, nClasses: number, options: KnnOptions = {}): Knn {
  const nFeatures = checkTrainingData(X, y, nClasses);
  const k = options.k ?? 7;
  if (!Number.isInteger(k) || k < 1) throw new MlArgumentError(`k must be a positive integer, got ${k}`);
  const flat: number[] = [];
  for (const row of X) for (let j = 0; j < nFeatures; j++) flat.push(row[j]!);
  return new Knn({
    family: 'knn',
    nClasses,
    nFeatures,
    k,
    standardiser: fitStandardiser(X, nFeatures),
    X: flat,
    y: Array.from(y),
  });
}

