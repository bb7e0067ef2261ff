import { MlArgumentError } from './errors.js';
import { type Rng, shuffleInPlace } from './random.js';

export interface SplitFractions {
  train: number;
  validation: number;
  test: number;
}

/** Row indices of each part, ascending. */
export interface Split {
  train: number[];
  validation: number[];
  test: number[];
}

export const DEFAULT_SPLIT_FRACTIONS: Readonly<SplitFractions> = { train: 0.6, validation: 0.2, test: 0.2 };

/**
 * Stratified split: each class is shuffled and dealt to the parts so that every part holds (to
 * within one row) its fraction of every class, and the part sizes are round(fraction * n); the
 * classes whose exact share has the largest remainder receive the leftover rows.
 * The same labels and the same rng sequence give the same split.
 */
export function stratifiedSplit(y: ArrayLike<number>, rng: Rng, fractions: SplitFractions = DEFAULT_SPLIT_FRACTIONS): Split {
  const { train, validation, test } = fractions;
  for (const [part, f] of Object.entries(fractions)) {
    if (!(f >= 0 && f <= 1)) throw new MlArgumentError(`split fraction ${part}=${f} is not in [0, 1]`);
  }
  if (Math.abs(train + validation + test - 1) > 1e-9) {
    throw new MlArgumentError(`split fractions sum to ${train + validation + test}, not 1`);
  }
  const n = y.length;
  if (n === 0) throw new MlArgumentError('cannot split an empty data set');

  const byClass = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const c = y[i]!;
    let rows = byClass.get(c);
    if (rows === undefined) byClass.set(c, (rows = []));
    rows.push(i);
  }
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  const counts = classes.map((c) => byClass.get(c)!.length);

  const testCounts = allocate(counts, test, Math.round(test * n), counts);
  const remaining = counts.map((count, k) => count - testCounts[k]!);
  const validationCounts = allocate(counts, validation, Math.round(validation * n), remaining);

  const split: Split = { train: [], validation: [], test: [] };
  classes.forEach((c, k) => {
    const rows = shuffleInPlace(byClass.get(c)!, rng);
    const nTest = testCounts[k]!;
    const nValidation = validationCounts[k]!;
    split.test.push(...rows.slice(0, nTest));
    split.validation.push(...rows.slice(nTest, nTest + nValidation));
    split.train.push(...rows.slice(nTest + nValidation));
  });
  for (const part of [split.train, split.validation, split.test]) part.sort((a, b) => a - b);
  return split;
}

/**
 * Largest-remainder apportionment of `total` rows over classes in proportion `fraction * count`,
 * never giving a class more than its `capacity`. Ties go to the lower class index.
 */
function allocate(counts: number[], fraction: number, total: number, capacity: number[]): number[] {
  const ideal = counts.map((count) => count * fraction);
  const result = ideal.map((v, k) => Math.min(Math.floor(v), capacity[k]!));
  let left = total - result.reduce((a, b) => a + b, 0);
  const order = ideal.map((v, k) => ({ k, remainder: v - Math.floor(v) })).sort((a, b) => b.remainder - a.remainder || a.k - b.k);
  // Several passes only matter for tiny classes that hit their capacity.
  while (left > 0) {
    let progressed = false;
    for (const { k } of order) {
      if (left === 0) break;
      if (result[k]! < capacity[k]!) {
        result[k] = result[k]! + 1;
        left--;
        progressed = true;
      }
    }
    if (!progressed) break;
  }
  return result;
}
