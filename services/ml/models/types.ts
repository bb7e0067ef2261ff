import type { DecisionTreeParams } from './decision-tree.js';
import type { KnnParams } from './knn.js';
import type { LogisticRegressionParams } from './logistic-regression.js';
import type { NaiveBayesParams } from './naive-bayes.js';
import type { RandomForestParams } from './random-forest.js';

export const MODEL_FAMILIES = ['logistic-regression', 'naive-bayes', 'knn', 'decision-tree', 'random-forest'] as const;

export type ModelFamily = (typeof MODEL_FAMILIES)[number];

export function isModelFamily(value: unknown): value is ModelFamily {
  return typeof value === 'string' && (MODEL_FAMILIES as readonly string[]).includes(value);
}

/** Plain JSON parameters of any family; `family` tells them apart. */
export type ModelParams = LogisticRegressionParams | NaiveBayesParams | KnnParams | DecisionTreeParams | RandomForestParams;

/** A trained classifier. Models are immutable; the same params always give the same probabilities. */
export interface Classifier {
  readonly family: ModelFamily;
  readonly nClasses: number;
  readonly nFeatures: number;
  /** One probability per class, finite, >= 0, summing to 1 (within 1e-9). */
  predictProba(x: ArrayLike<number>): Float64Array;
  /** The same answers for many rows in one pass, when a family has a faster way than row by row. */
  predictProbaBatch?(rows: readonly ArrayLike<number>[]): Float64Array[];
  toJSON(): ModelParams;
}
