import { MlArgumentError } from '../errors.js';

/** Validates a training set and returns its number of features. */
export function checkTrainingData(X: readonly ArrayLike<number>[], y: ArrayLike<number>, nClasses: number): number {
  if (X.length === 0) throw new MlArgumentError('cannot fit a model on zero rows');
  if (X.length !== y.length) throw new MlArgumentError(`X has ${X.length} rows but y has ${y.length} labels`);
  if (!Number.isInteger(nClasses) || nClasses < 1) throw new MlArgumentError(`nClasses must be a positive integer, got ${nClasses}`);
  const nFeatures = X[0]!.length;
  if (nFeatures === 0) throw new MlArgumentError('cannot fit a model on zero features');
  for (let i = 0; i < X.length; i++) {
    const row = X[i]!;
    if (row.length !== nFeatures) throw new MlArgumentError(`row ${i} has ${row.length} features, expected ${nFeatures}`);
    for (let j = 0; j < nFeatures; j++) {
      if (!Number.isFinite(row[j]!)) throw new MlArgumentError(`row ${i} feature ${j} is not a finite number`);
    }
    const label = y[i]!;
    if (!Number.isInteger(label) || label < 0 || label >= nClasses) {
      throw new MlArgumentError(`label ${label} of row ${i} is not a class index in [0, ${nClasses})`);
    }
  }
  return nFeatures;
}

export function checkFeatureVector(x: ArrayLike<number>, nFeatures: number): void {
  if (x.length !== nFeatures) throw new MlArgumentError(`expected ${nFeatures} features, got ${x.length}`);
}
