import type { Rng } from '../random.js';
import { CompiledTree, type TreeParams, growTree, prepareData, treeParamsFromJSON } from './cart.js';
import { checkFeatureVector, checkTrainingData } from './input-checks.js';
import { expectInteger, expectParamsOf } from './params-check.js';
import type { Classifier } from './types.js';

export interface DecisionTreeParams {
  family: 'decision-tree';
  nClasses: number;
  nFeatures: number;
  tree: TreeParams;
}

export interface DecisionTreeOptions {
  maxDepth?: number;
  minSamplesSplit?: number;
}

/** A single CART tree; probabilities are the class shares of the training rows in the leaf. */
export class DecisionTree implements Classifier {
  readonly family = 'decision-tree' as const;
  readonly nClasses: number;
  readonly nFeatures: number;
  private readonly tree: CompiledTree;

  constructor(private readonly params: DecisionTreeParams) {
    this.nClasses = params.nClasses;
    this.nFeatures = params.nFeatures;
    this.tree = new CompiledTree(params.tree);
  }

  predictProba(x: ArrayLike<number>): Float64Array {
    checkFeatureVector(x, this.nFeatures);
    const proba = new Float64Array(this.nClasses);
    this.tree.addProba(x, proba);
    return proba;
  }

  toJSON(): DecisionTreeParams {
    return this.params;
  }

  static fromJSON(value: unknown): DecisionTree {
    const params = expectParamsOf(value, 'decision-tree');
    const nClasses = expectInteger(params.nClasses, 'nClasses', 1);
    const nFeatures = expectInteger(params.nFeatures, 'nFeatures', 1);
    return new DecisionTree({
      family: 'decision-tree',
      nClasses,
      nFeatures,
      tree: treeParamsFromJSON(params.tree, nClasses, nFeatures, 'tree'),
    });
  }
}

/** `rng` only breaks ties between equally good splits (features are visited in random order). */
export function fitDecisionTree(
  X: readonly ArrayLike<number>[],
  y: ArrayLike<number>,
  nClasses: number,
  rng: Rng,
  options: DecisionTreeOptions = {},
): DecisionTree {
  const nFeatures = checkTrainingData(X, y, nClasses);
  const tree = growTree(
    prepareData(X, y, nFeatures),
    new Float64Array(X.length).fill(1),
    nClasses,
    { maxDepth: options.maxDepth ?? 12, maxFeatures: nFeatures, minSamplesSplit: options.minSamplesSplit ?? 2 },
    rng,
  );
  return new DecisionTree({ family: 'decision-tree', nClasses, nFeatures, tree });
}
