/**
 * The scan of every row k-NN made before the k-d tree, kept verbatim as the reference the tree must
 * equal (test/unit/knn-search.test.ts) and be measured against (bench/knn-speed.ts): the k best
 * rows by distance, summed feature by feature, a tie going to the earlier row.
 */
export function scanNearest(data: Float64Array, nFeatures: number, query: ArrayLike<number>, kWanted: number): { rows: number[]; distances: number[] } {
  const n = data.length / nFeatures;
  const k = Math.min(kWanted, n);
  const bestDistance = new Float64Array(k).fill(Infinity);
  const bestRow = new Int32Array(k);
  let worst = Infinity;
  for (let i = 0, offset = 0; i < n; i++, offset += nFeatures) {
    let distance = 0;
    for (let j = 0; j < nFeatures && distance < worst; j++) {
      const d = data[offset + j]! - query[j]!;
      distance += d * d;
    }
    if (distance >= worst) continue;
    let slot = k - 1;
    while (slot > 0 && bestDistance[slot - 1]! > distance) {
      bestDistance[slot] = bestDistance[slot - 1]!;
      bestRow[slot] = bestRow[slot - 1]!;
      slot--;
    }
    bestDistance[slot] = distance;
    bestRow[slot] = i;
    worst = bestDistance[k - 1]!;
  }
  return { rows: Array.from(bestRow), distances: Array.from(bestDistance) };
}
