import { ModelParamsError } from '../errors.js';
import type { Rng } from '../random.js';
import { DecisionTree, fitDecisionTree } from './decision-tree.js';
import { Knn, fitKnn } from './knn.js';
import { LogisticRegression, fitLogisticRegression } from './logistic-regression.js';
import { NaiveBayes, fitNaiveBayes } from './naive-bayes.js';
import { expectRecord } from './params-check.js';
import { RandomForest, fitRandomForest } from './random-forest.js';
import type { Classifier, ModelFamily } from './types.js';

export { MODEL_FAMILIES, isModelFamily, type Classifier, type ModelFamily, type ModelParams } from './types.js';

/** Fits one family with the product's default hyperparameters. */
export function fitModel(family: ModelFamily, X: readonly ArrayLike<number>[], y: ArrayLike<number>, nClasses: number, rng: Rng): Classifier {
  switch (family) {
    case 'logistic-regression':
      return fitLogisticRegression(X, y, nClasses);
    case 'naive-bayes':
      return fitNaiveBayes(X, y, nClasses);
    case 'knn':
      return fitKnn(X, y, nClasses);
    case 'decision-tree':
      return fitDecisionTree(X, y, nClasses, rng);
    case 'random-forest':
      return fitRandomForest(X, y, nClasses, rng);
  }
}

/** Rebuilds a model from `toJSON()` output, validating it; throws ModelParamsError if unusable. */
export function modelFromParams(value: unknown): Classifier {
  const family = expectRecord(value, 'model params').family;
  switch (family) {
    case 'logistic-regression':
      return LogisticRegression.fromJSON(value);
    case 'naive-bayes':
      return NaiveBayes.fromJSON(value);
    case 'knn':
      return Knn.fromJSON(value);
    case 'decision-tree':
      return DecisionTree.fromJSON(value);
    case 'random-forest':
      return RandomForest.fromJSON(value);
    default:
      throw new ModelParamsError(`unknown model family ${JSON.stringify(family)}`);
  }
}
