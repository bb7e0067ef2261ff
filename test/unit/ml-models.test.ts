import { describe, expect, it } from 'vitest';
import { ModelParamsError } from '../../services/ml/errors.js';
import { argmax } from '../../services/ml/metrics.js';
import { fitDecisionTree } from '../../services/ml/models/decision-tree.js';
import { MODEL_FAMILIES, type Classifier, fitModel, modelFromParams } from '../../services/ml/models/index.js';
import { fitKnn } from '../../services/ml/models/knn.js';
import { fitLogisticRegression } from '../../services/ml/models/logistic-regression.js';
import { fitNaiveBayes } from '../../services/ml/models/naive-bayes.js';
import { fitRandomForest } from '../../services/ml/models/random-forest.js';
import { type Rng, createRng } from '../../services/ml/random.js';

/** Three well separated Gaussian blobs in 4 dimensions (the last feature is pure noise). */
function blobs(nPerClass: number, rng: Rng): { X: Float64Array[]; y: Int32Array } {
  const centres = [
    [0, 0, 0],
    [6, 0, 3],
    [0, 6, -3],
  ];
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  const X: Float64Array[] = [];
  const y: number[] = [];
  centres.forEach((centre, c) => {
    for (let i = 0; i < nPerClass; i++) {
      X.push(Float64Array.from([...centre.map((m) => m + normal()), 10 * normal()]));
      y.push(c);
    }
  });
  return { X, y: Int32Array.from(y) };
}

const train = blobs(60, createRng(1));
const test = blobs(40, createRng(2));

function expectValidDistribution(proba: Float64Array, nClasses: number): void {
  expect(proba).toHaveLength(nClasses);
  let sum = 0;
  for (const p of proba) {
    expect(Number.isFinite(p)).toBe(true);
    expect(p).toBeGreaterThanOrEqual(0);
    sum += p;
  }
  expect(Math.abs(sum - 1)).toBeLessThan(1e-9);
}

function testAccuracy(model: Classifier): number {
  let correct = 0;
  test.X.forEach((x, i) => {
    if (argmax(model.predictProba(x)) === test.y[i]) correct++;
  });
  return correct / test.X.length;
}

describe.each(MODEL_FAMILIES)('%s', (family) => {
  const model = fitModel(family, train.X, train.y, 3, createRng(7));

  it('separates separable classes', () => {
    expect(model.family).toBe(family);
    expect(model.nClasses).toBe(3);
    expect(model.nFeatures).toBe(4);
    expect(testAccuracy(model)).toBeGreaterThanOrEqual(0.95);
  });

  it('returns finite, non-negative probabilities summing to 1', () => {
    for (const x of test.X) expectValidDistribution(model.predictProba(x), 3);
    // Far outside the training range too.
    expectValidDistribution(model.predictProba([1e6, -1e6, 1e6, 0]), 3);
  });

  it('is deterministic for a seed', () => {
    const again = fitModel(family, train.X, train.y, 3, createRng(7));
    expect(JSON.stringify(again.toJSON())).toBe(JSON.stringify(model.toJSON()));
  });

  it('survives a JSON round trip with identical probabilities', () => {
    const restored = modelFromParams(JSON.parse(JSON.stringify(model.toJSON())));
    expect(restored.family).toBe(family);
    for (const x of test.X.slice(0, 30)) expect(restored.predictProba(x)).toEqual(model.predictProba(x));
  });

  it('rejects a feature vector of the wrong length', () => {
    expect(() => model.predictProba([1, 2, 3])).toThrow(/expected 4 features/);
  });
});

describe('logistic regression', () => {
  it('learns the class frequencies through the unpenalised intercepts when features carry nothing', () => {
    const model = fitLogisticRegression([[5], [5], [5], [5]], [0, 0, 0, 1], 2);
    const proba = model.predictProba([5]);
    expect(proba[0]).toBeCloseTo(0.75, 4);
    expect(proba[1]).toBeCloseTo(0.25, 4);
  });

  it('shrinks towards the class frequencies under a strong L2 penalty', () => {
    const X = [[-2], [-1], [1], [2]];
    const y = [0, 0, 1, 1];
    const weak = fitLogisticRegression(X, y, 2, { l2: 1e-3 }).predictProba([2]);
    const strong = fitLogisticRegression(X, y, 2, { l2: 1e6 }).predictProba([2]);
    expect(weak[1]).toBeGreaterThan(0.95);
    expect(strong[1]).toBeCloseTo(0.5, 3);
  });

  it('works as a meta-model on raw, unstandardised inputs', () => {
    // Inputs shaped like two base models' probabilities for class 1.
    const X = [
      [0.9, 0.8],
      [0.8, 0.6],
      [0.7, 0.9],
      [0.2, 0.1],
      [0.1, 0.3],
      [0.3, 0.2],
    ];
    const model = fitLogisticRegression(X, [1, 1, 1, 0, 0, 0], 2, { standardise: false, l2: 0.01 });
    expect(model.toJSON().standardiser).toBeNull();
    expect(model.predictProba([0.85, 0.85])[1]).toBeGreaterThan(0.9);
    expect(model.predictProba([0.15, 0.15])[1]).toBeLessThan(0.1);
    expect(modelFromParams(JSON.parse(JSON.stringify(model))).predictProba([0.5, 0.4])).toEqual(model.predictProba([0.5, 0.4]));
  });
});

describe('naive Bayes', () => {
  it('matches the Gaussian likelihood ratio computed by hand', () => {
    // Class 0: mean 1, variance 1; class 1: mean 5, variance 1; equal priors.
    const model = fitNaiveBayes([[0], [2], [4], [6]], [0, 0, 1, 1], 2);
    expect(model.predictProba([3])[0]).toBeCloseTo(0.5, 9);
    // At x = 1 the log-likelihood ratio is (1 - 5)^2 / 2 = 8.
    expect(model.predictProba([1])[0]).toBeCloseTo(1 / (1 + Math.exp(-8)), 9);
  });

  it('adds var_smoothing times the largest feature variance', () => {
    const model = fitNaiveBayes(
      [
        [1, 0],
        [1, 2],
        [1, 4],
        [1, 6],
      ],
      [0, 0, 1, 1],
      2,
    );
    // Feature 0 is constant within each class; its variance is just epsilon = 1e-9 * var([0,2,4,6]) = 5e-9.
    expect(model.toJSON().variance[0]).toBeCloseTo(5e-9, 20);
    expect(model.toJSON().variance[1]).toBeCloseTo(1 + 5e-9, 12);
  });

  it('gives probability 0 to a class never seen in training', () => {
    const proba = fitNaiveBayes([[0], [1]], [0, 0], 2).predictProba([0.5]);
    expect(Array.from(proba)).toEqual([1, 0]);
  });
});

describe('k-NN', () => {
  it('returns the vote shares of the k nearest rows', () => {
    const model = fitKnn([[0], [1], [2], [10], [11]], [0, 0, 0, 1, 1], 2, { k: 3 });
    // Nearest to 5.9: 2 (class 0), 10 (class 1), 1 (class 0).
    const proba = model.predictProba([5.9]);
    expect(proba[0]).toBeCloseTo(2 / 3, 15);
    expect(proba[1]).toBeCloseTo(1 / 3, 15);
    expect(Array.from(model.predictProba([10.4]))).toEqual([1 / 3, 2 / 3]);
  });

  it('measures distance on standardised features', () => {
    // Raw distances are dominated by feature 1 and would pick row 1; standardised
    // (query -> (-0.8, 0.2)) the query is nearer row 0.
    const model = fitKnn(
      [
        [0, 0],
        [1, 1000],
      ],
      [0, 1],
      2,
      { k: 1 },
    );
    expect(Array.from(model.predictProba([0.1, 600]))).toEqual([1, 0]);
  });

  it('uses every row when k exceeds the training set', () => {
    const proba = fitKnn([[0], [1], [2]], [0, 1, 1], 2, { k: 7 }).predictProba([0]);
    expect(proba[0]).toBeCloseTo(1 / 3, 15);
  });
});

describe('decision tree', () => {
  it('splits at the midpoint and returns leaf class shares', () => {
    const model = fitDecisionTree([[0], [0], [0], [1], [1], [1]], [0, 0, 1, 1, 1, 1], 2, createRng(1), { maxDepth: 1 });
    const tree = model.toJSON().tree;
    expect(tree.feature[0]).toBe(0);
    expect(tree.threshold[0]).toBe(0.5);
    expect(model.predictProba([0])[0]).toBeCloseTo(2 / 3, 15);
    expect(Array.from(model.predictProba([1]))).toEqual([0, 1]);
  });

  it('learns XOR with depth 2 and stops at pure leaves', () => {
    const X = [
      [0, 0],
      [0, 1],
      [1, 0],
      [1, 1],
    ];
    const model = fitDecisionTree([...X, ...X], [0, 1, 1, 0, 0, 1, 1, 0], 2, createRng(3), { maxDepth: 12 });
    X.forEach((x, i) => {
      expect(argmax(model.predictProba(x))).toBe([0, 1, 1, 0][i]);
    });
    expect(model.toJSON().tree.feature).toHaveLength(7);
  });

  it('makes a leaf when all features are constant', () => {
    const model = fitDecisionTree([[1], [1], [1]], [0, 1, 1], 2, createRng(1));
    expect(model.toJSON().tree.feature).toEqual([-1]);
    expect(model.predictProba([5])[1]).toBeCloseTo(2 / 3, 15);
  });
});

describe('random forest', () => {
  it('averages its trees and depends on the seed', () => {
    const forest = fitRandomForest(train.X, train.y, 3, createRng(11), { nTrees: 5 });
    expect(forest.toJSON().trees).toHaveLength(5);
    const other = fitRandomForest(train.X, train.y, 3, createRng(12), { nTrees: 5 });
    expect(JSON.stringify(other.toJSON())).not.toBe(JSON.stringify(forest.toJSON()));
    // Each tree alone is a decision tree; the forest is their mean.
    const x = test.X[0]!;
    const mean = new Float64Array(3);
    for (const tree of forest.toJSON().trees) {
      const single = modelFromParams({ family: 'decision-tree', nClasses: 3, nFeatures: 4, tree }).predictProba(x);
      single.forEach((p, c) => {
        mean[c] = mean[c]! + p / 5;
      });
    }
    forest.predictProba(x).forEach((p, c) => {
      expect(p).toBeCloseTo(mean[c]!, 12);
    });
  });
});

describe('params validation', () => {
  const tree = fitDecisionTree(train.X, train.y, 3, createRng(1), { maxDepth: 3 }).toJSON();

  it('rejects unknown families and wrong shapes', () => {
    expect(() => modelFromParams({ family: 'svm' })).toThrow(ModelParamsError);
    expect(() => modelFromParams(null)).toThrow(/must be an object/);
    const lr = fitLogisticRegression(train.X, train.y, 3).toJSON();
    expect(() => modelFromParams({ ...lr, weights: lr.weights.slice(1) })).toThrow(/weights has 11 entries, expected 12/);
    expect(() => modelFromParams({ ...lr, intercepts: [0, Number.NaN, 0] })).toThrow(ModelParamsError);
  });

  it('rejects trees whose walks could loop or end without a distribution', () => {
    const loop = structuredClone(tree);
    loop.tree.left[0] = 0;
    expect(() => modelFromParams(loop)).toThrow(/bad children/);
    const badFeature = structuredClone(tree);
    badFeature.tree.feature[0] = 9;
    expect(() => modelFromParams(badFeature)).toThrow(ModelParamsError);
    const emptyLeaf = structuredClone(tree);
    emptyLeaf.tree.valueWeight.fill(0);
    expect(() => modelFromParams(emptyLeaf)).toThrow(/no class weight/);
  });

  it('rejects k-NN labels outside the classes', () => {
    const knn = fitKnn(train.X, train.y, 3).toJSON();
    expect(() => modelFromParams({ ...knn, y: knn.y.map(() => 3) })).toThrow(/outside \[0, 2\]/);
  });

  it('rejects bad training input', () => {
    expect(() => fitNaiveBayes([], [], 2)).toThrow(/zero rows/);
    expect(() => fitNaiveBayes([[1], [2]], [0, 2], 2)).toThrow(/not a class index/);
    expect(() => fitNaiveBayes([[1], [2, 3]], [0, 1], 2)).toThrow(/row 1 has 2 features/);
    expect(() => fitKnn([[Number.NaN]], [0], 1)).toThrow(/not a finite number/);
  });
});
