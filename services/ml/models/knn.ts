import { MlArgumentError, ModelParamsError } from '../errors.js';
import { checkFeatureVector, checkTrainingData } from './input-checks.js';
import { expectFiniteArray, expectInteger, expectIntegerArray, expectParamsOf } from './params-check.js';
import { KdTree } from './kd-tree.js';
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
 * of a class is its share of the k neighbours. Ties in distance go to the earlier training row. The
 * neighbours come from a k-d tree (kd-tree.ts): the same ones a scan of every row finds, several
 * times faster on the letter data.
 */
export class Knn implements Classifier {
  readonly family = 'knn' as const;
  readonly nClasses: number;
  readonly nFeatures: number;
  private readonly k: number;
  private readonly standardiser: Standardiser;
  private readonly labels: Int32Array;
  private readonly tree: KdTree;
  // Buffers of one search (predictions are synchronous).
  private readonly query: Float64Array;
  private readonly rows: Int32Array;
  private readonly distances: Float64Array;

  constructor(private readonly params: KnnParams) {
    this.nClasses = params.nClasses;
    this.nFeatures = params.nFeatures;
    this.standardiser = new Standardiser(params.standardiser);
    this.labels = Int32Array.from(params.y);
    this.k = Math.min(params.k, this.labels.length);
    const data = new Float64Array(params.X.length);
    for (let i = 0; i < this.labels.length; i++) {
      const offset = i * this.nFeatures;
      this.standardiser.transform(params.X.slice(offset, offset + this.nFeatures), data.subarray(offset, offset + this.nFeatures));
    }
    this.tree = new KdTree(data, this.nFeatures);
    this.query = new Float64Array(this.nFeatures);
    this.rows = new Int32Array(this.k);
    this.distances = new Float64Array(this.k);
  }

  predictProba(x: ArrayLike<number>): Float64Array {
    checkFeatureVector(x, this.nFeatures);
    const found = this.tree.nearest(this.standardiser.transform(x, this.query), this.k, this.rows, this.distances);
    const proba = new Float64Array(this.nClasses);
    for (let s = 0; s < found; s++) proba[this.labels[this.rows[s]!]!]! += 1;
    for (let c = 0; c < this.nClasses; c++) proba[c] = proba[c]! / this.k;
    return proba;
  }

  predictProbaBatch(rows: readonly ArrayLike<number>[]): Float64Array[] {
    return rows.map((x) => this.predictProba(x));
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
