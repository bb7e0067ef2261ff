import type { Dataset } from './dataset.js';
import { DatasetError, MlArgumentError, ModelParamsError } from './errors.js';
import { checkFeatureVector } from './models/input-checks.js';
import type { Classifier, ModelFamily, ModelParams } from './models/types.js';

/**
 * What turns a data set's feature values (numbers, category codes, NaN for missing) into the numbers
 * a model is fitted on: a missing number becomes the training median, a category one 0/1 column per
 * kept level (a level not kept, or a missing one, is all zeros). Fitted on the training rows only,
 * stored in the artifact, and applied by the model the artifact loads as, so a worker serves exactly
 * what was evaluated.
 */
export interface Preprocessing {
  inputs: PreprocessingInput[];
}

export type PreprocessingInput =
  | { name: string; kind: 'numeric'; median: number }
  /**
   * `categories`: the code table (a feature value v means `categories[v]`); `oneHot`: the codes that
   * get a column, most frequent in the training rows first.
   */
  | { name: string; kind: 'categorical'; categories: string[]; oneHot: number[] };

/** Levels of one categorical column that get their own one-hot column; the rarer ones share all-zeros. */
export const DEFAULT_MAX_ONE_HOT = 20;

/** True when a data set has a categorical column or a missing value: then training fits a preprocessing. */
export function needsPreprocessing(data: Dataset): boolean {
  return data.columns.some((c) => c.kind === 'categorical' || c.missing > 0);
}

export function fitPreprocessing(data: Dataset, trainingRows: readonly number[], maxOneHot = DEFAULT_MAX_ONE_HOT): Preprocessing {
  if (trainingRows.length === 0) throw new MlArgumentError('cannot fit a preprocessing on zero rows');
  const inputs = data.columns.map((column, j): PreprocessingInput => {
    const name = data.featureNames[j]!;
    const values = trainingRows.map((i) => data.X[i]![j]!).filter((v) => !Number.isNaN(v));
    if (column.kind === 'numeric') {
      if (values.length === 0) throw new DatasetError(`column "${name}" has no value in the ${trainingRows.length} training rows`);
      return { name, kind: 'numeric', median: median(values) };
    }
    const counts = new Map<number, number>();
    for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
    // Most frequent first, ties by code: the same rows give the same columns.
    const oneHot = [...counts.entries()]
      .sort((a, b) => b[1] - a[1] || a[0] - b[0])
      .slice(0, maxOneHot)
      .map(([code]) => code);
    return { name, kind: 'categorical', categories: column.categories, oneHot };
  });
  return { inputs };
}

/** How many numbers the model sees. */
export function encodedWidth(p: Preprocessing): number {
  return p.inputs.reduce((n, input) => n + (input.kind === 'numeric' ? 1 : input.oneHot.length), 0);
}

/** Names of the model's inputs: `name` for a number, `name=level` for a one-hot column. */
export function encodedNames(p: Preprocessing): string[] {
  return p.inputs.flatMap((input) => (input.kind === 'numeric' ? [input.name] : input.oneHot.map((code) => `${input.name}=${input.categories[code]}`)));
}

export function encodeRow(p: Preprocessing, x: ArrayLike<number>): Float64Array {
  checkFeatureVector(x, p.inputs.length);
  const out = new Float64Array(encodedWidth(p));
  let k = 0;
  p.inputs.forEach((input, j) => {
    const v = x[j]!;
    if (input.kind === 'numeric') {
      out[k++] = Number.isNaN(v) ? input.median : v;
      return;
    }
    if (!Number.isNaN(v) && !(Number.isInteger(v) && v >= 0 && v < input.categories.length)) {
      throw new MlArgumentError(`feature ${j} ("${input.name}") is categorical: ${v} is not a code in [0, ${input.categories.length})`);
    }
    for (const code of input.oneHot) out[k++] = v === code ? 1 : 0;
  });
  return out;
}

/** A fitted model behind its preprocessing: takes the data set's values, as feature events carry them. */
export class PreprocessedClassifier implements Classifier {
  readonly family: ModelFamily;
  readonly nClasses: number;
  readonly nFeatures: number;

  constructor(
    readonly preprocessing: Preprocessing,
    readonly model: Classifier,
  ) {
    if (model.nFeatures !== encodedWidth(preprocessing)) {
      throw new ModelParamsError(`model takes ${model.nFeatures} inputs, the preprocessing makes ${encodedWidth(preprocessing)}`);
    }
    this.family = model.family;
    this.nClasses = model.nClasses;
    this.nFeatures = preprocessing.inputs.length;
  }

  predictProba(x: ArrayLike<number>): Float64Array {
    return this.model.predictProba(encodeRow(this.preprocessing, x));
  }

  /** The inner model's params: the preprocessing is stored beside them in the artifact. */
  toJSON(): ModelParams {
    return this.model.toJSON();
  }
}

/** Validates a preprocessing read from an artifact. */
export function preprocessingFromJSON(value: unknown): Preprocessing {
  const bad = (why: string): never => {
    throw new ModelParamsError(`preprocessing: ${why}`);
  };
  if (typeof value !== 'object' || value === null || !Array.isArray((value as { inputs?: unknown }).inputs)) bad('must be { inputs: [...] }');
  const inputs = (value as { inputs: unknown[] }).inputs.map((raw, j): PreprocessingInput => {
    const input = raw as Record<string, unknown>;
    if (typeof input !== 'object' || input === null || typeof input.name !== 'string') bad(`input ${j} needs a name`);
    const name = input.name as string;
    if (input.kind === 'numeric') {
      if (typeof input.median !== 'number' || !Number.isFinite(input.median)) bad(`input ${j} needs a finite median`);
      return { name, kind: 'numeric', median: input.median as number };
    }
    if (input.kind !== 'categorical') bad(`input ${j} has kind ${JSON.stringify(input.kind)}`);
    const { categories, oneHot } = input;
    if (!Array.isArray(categories) || !categories.every((c) => typeof c === 'string')) bad(`input ${j} needs categories (strings)`);
    const n = (categories as string[]).length;
    if (!Array.isArray(oneHot) || !oneHot.every((c) => Number.isInteger(c) && c >= 0 && c < n) || new Set(oneHot).size !== oneHot.length) {
      bad(`input ${j} needs oneHot: distinct codes in [0, ${n})`);
    }
    return { name, kind: 'categorical', categories: categories as string[], oneHot: oneHot as number[] };
  });
  return { inputs };
}

function median(values: number[]): number {
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
