import { MlArgumentError, ModelParamsError } from '../errors.js';
import { type Rng, randomInt } from '../random.js';
import { CompiledTree, type TreeParams, growTree, prepareData, treeParamsFromJSON } from './cart.js';
import { checkFeatureVector, checkTrainingData } from './input-checks.js';
import { expectInteger, expectParamsOf } from './params-check.js';
import type { Classifier } from './types.js';

export interface RandomForestParams {
  family: 'random-forest';
  nClasses: number;
  nFeatures: number;
  trees: TreeParams[];
}

export interface RandomForestOptions {
  nTrees?: number;
  maxDepth?: number;
  /** Features evaluated per split; default floor(sqrt(nFeatures)). */
  maxFeatures?: number;
  minSamplesSplit?: number;
}

/** Bagged CART trees with random feature subsets; probabilities are the trees' averaged leaf shares. */
export class RandomForest implements Classifier {
  readonly family = 'random-forest' as const;
  readonly nClasses: number;
  readonly nFeatures: number;
  private readonly trees: CompiledTree[];

  constructor(private readonly params: RandomForestParams) {
    this.nClasses = params.nClasses;
    this.nFeatures = params.nFeatures;
    this.trees = params.trees.map((tree) => new CompiledTree(tree));
  }

  predictProba(x: ArrayLike<number>): Float64Array {
    checkFeatureVector(x, this.nFeatures);
    const proba = new Float64Array(this.nClasses);
    for (const tree of this.trees) tree.addProba(x, proba);
    for (let c = 0; c < this.nClasses; c++) proba[c] = proba[c]! / this.trees.length;
    return proba;
  }

  toJSON(): RandomForestParams {
    return this.params;
  }

  static fromJSON(value: unknown): RandomForest {
    const params = expectParamsOf(value, 'random-forest');
    const nClasses = expectInteger(params.nClasses, 'nClasses', 1);
    const nFeatures = expectInteger(params.nFeatures, 'nFeatures', 1);
    if (!Array.isArray(params.trees) || params.trees.length === 0) throw new ModelParamsError('trees must be a non-empty array');
    return new RandomForest({
      family: 'random-forest',
      nClasses,
      nFeatures,
      trees: params.trees.map((tree, i) => treeParamsFromJSON(tree, nClasses, nFeatures, `trees[${i}]`)),
    });
  }
}

export function fitRandomForest(
  X: readonly ArrayLike<number>[],
  y: ArrayLike<number>,
  nClasses: number,
  rng: Rng,
  options: RandomForestOptions = {},
): RandomForest {
  const nFeatures = checkTrainingData(X, y, nClasses);
  const nTrees = options.nTrees ?? 50;
  const maxFeatures = options.maxFeatures ?? Math.max(1, Math.floor(Math.sqrt(nFeatures)));
  if (!Number.isInteger(nTrees) || nTrees < 1) throw new MlArgumentError(`nTrees must be a positive integer, got ${nTrees}`);
  if (!Number.isInteger(maxFeatures) || maxFeatures < 1) {
    throw new MlArgumentError(`maxFeatures must be a positive integer, got ${maxFeatures}`);
  }
  const data = prepareData(X, y, nFeatures);
  const n = X.length;
  const weights = new Float64Array(n);
  const trees: TreeParams[] = [];
  for (let t = 0; t < nTrees; t++) {
    // Bootstrap sample as multiplicities: drawing row r k times gives it weight k.
    weights.fill(0);
    for (let i = 0; i < n; i++) {
      const r = randomInt(rng, n);
      weights[r] = weights[r]! + 1;
    }
    trees.push(growTree(data, weights, nClasses, { maxDepth: options.maxDepth ?? 12, maxFeatures, minSamplesSplit: options.minSamplesSplit ?? 2 }, rng));
  }
  return new RandomForest({ family: 'random-forest', nClasses, nFeatures, trees });
}
