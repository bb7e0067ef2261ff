import { describe, expect, it } from 'vitest';
import { loadDataset } from '../../services/ml/dataset.js';
import { KdTree } from '../../services/ml/models/kd-tree.js';
import { fitKnn } from '../../services/ml/models/knn.js';
import { scanNearest } from '../../services/ml/models/knn-scan.js';
import { Standardiser } from '../../services/ml/models/standardiser.js';
import { createRng } from '../../services/ml/random.js';
import { stratifiedSplit } from '../../services/ml/split.js';

function treeNearest(tree: KdTree, query: ArrayLike<number>, k: number): { rows: number[]; distances: number[] } {
  const rows = new Int32Array(k);
  const distances = new Float64Array(k);
  const found = tree.nearest(query, k, rows, distances);
  return { rows: Array.from(rows.subarray(0, found)), distances: Array.from(distances.subarray(0, found)) };
}

function standardised(X: readonly ArrayLike<number>[], standardiser: Standardiser, nFeatures: number): Float64Array {
  const data = new Float64Array(X.length * nFeatures);
  X.forEach((row, i) => {
    standardiser.transform(row, data.subarray(i * nFeatures, (i + 1) * nFeatures));
  });
  return data;
}

describe('k-d tree neighbour search', () => {
  it('finds the same neighbours, in the same order, as the scan on the letter data', async () => {
    const letter = await loadDataset('letter');
    const split = stratifiedSplit(letter.y, createRng(42));
    const trainX = split.train.map((i) => letter.X[i]!);
    const knn = fitKnn(
      trainX,
      split.train.map((i) => letter.y[i]!),
      letter.classes.length,
    );
    const params = knn.toJSON();
    const standardiser = new Standardiser(params.standardiser);
    const data = standardised(trainX, standardiser, params.nFeatures);
    const tree = new KdTree(data, params.nFeatures);
    const differing: number[] = [];
    for (const i of split.test) {
      const query = standardiser.transform(letter.X[i]!);
      const fromTree = treeNearest(tree, query, params.k);
      const fromScan = scanNearest(data, params.nFeatures, query, params.k);
      if (JSON.stringify(fromTree) !== JSON.stringify(fromScan)) differing.push(i);
    }
    expect(split.test).toHaveLength(4000);
    expect(differing).toEqual([]);
  }, 60_000);

  it('breaks ties in distance as the scan does, on a grid full of equal distances and duplicate rows', () => {
    const rng = createRng(7);
    const nFeatures = 3;
    const rows = Array.from({ length: 600 }, () => Array.from({ length: nFeatures }, () => Math.floor(rng() * 4)));
    const data = Float64Array.from(rows.flat());
    const tree = new KdTree(data, nFeatures);
    for (let q = 0; q < 200; q++) {
      const query = Array.from({ length: nFeatures }, () => Math.floor(rng() * 5) - 0.5 * Math.floor(rng() * 2));
      for (const k of [1, 2, 7, 25, 600, 700]) expect(treeNearest(tree, query, k)).toEqual(scanNearest(data, nFeatures, query, k));
    }
  }, 30_000);

  it('handles one row and rows that are all the same', () => {
    const one = new KdTree(Float64Array.from([1, 2]), 2);
    expect(treeNearest(one, [0, 0], 3)).toEqual({ rows: [0], distances: [5] });
    const same = new KdTree(new Float64Array(40).fill(3), 2);
    expect(treeNearest(same, [3, 4], 5)).toEqual({ rows: [0, 1, 2, 3, 4], distances: [1, 1, 1, 1, 1] });
  });
});

describe('k-NN batch prediction', () => {
  it('gives every row what predictProba gives it', () => {
    const rng = createRng(3);
    const X = Array.from({ length: 300 }, () => [rng() * 10, Math.floor(rng() * 3)]);
    const y = X.map(([a]) => (a! > 5 ? 1 : 0));
    const knn = fitKnn(X, y, 2, { k: 5 });
    const queries = Array.from({ length: 50 }, () => [rng() * 10, Math.floor(rng() * 3)]);
    expect(knn.predictProbaBatch(queries)).toEqual(queries.map((q) => knn.predictProba(q)));
  });
});
