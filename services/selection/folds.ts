import { MlArgumentError } from '../ml/errors.js';
import { type Rng, shuffleInPlace } from '../ml/random.js';

/**
 * Stratified k-fold assignment: each class's rows are shuffled and dealt round-robin, continuing
 * where the previous class stopped, so fold sizes differ by at most one row and every fold holds
 * its share of every class. Returns the row indices (into `y`) of each fold, ascending.
 */
export function stratifiedFolds(y: ArrayLike<number>, k: number, rng: Rng): number[][] {
  if (!Number.isInteger(k) || k < 2) throw new MlArgumentError(`fold count must be an integer >= 2, got ${k}`);
  if (y.length < k) throw new MlArgumentError(`${y.length} rows cannot fill ${k} folds`);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < y.length; i++) {
    const c = y[i]!;
    let rows = byClass.get(c);
    if (rows === undefined) byClass.set(c, (rows = []));
    rows.push(i);
  }
  const folds = Array.from({ length: k }, (): number[] => []);
  let next = 0;
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    for (const row of shuffleInPlace(byClass.get(c)!, rng)) {
      folds[next]!.push(row);
      next = (next + 1) % k;
    }
  }
  for (const fold of folds) fold.sort((a, b) => a - b);
  return folds;
}
