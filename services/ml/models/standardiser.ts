import { ModelParamsError } from '../errors.js';
import { expectFiniteArray, expectRecord } from './params-check.js';

/** Per-feature centring and scaling, fitted on training data and stored inside the model params. */
export interface StandardiserParams {
  mean: number[];
  scale: number[];
}

/** Mean and population standard deviation per feature; constant features keep scale 1 (as sklearn). */
export function fitStandardiser(X: readonly ArrayLike<number>[], nFeatures: number): StandardiserParams {
  const n = X.length;
  const mean = new Array<number>(nFeatures).fill(0);
  const scale = new Array<number>(nFeatures).fill(0);
  for (const row of X) for (let j = 0; j < nFeatures; j++) mean[j]! += row[j]!;
  for (let j = 0; j < nFeatures; j++) mean[j] = mean[j]! / n;
  for (const row of X) {
    for (let j = 0; j < nFeatures; j++) {
      const d = row[j]! - mean[j]!;
      scale[j]! += d * d;
    }
  }
  for (let j = 0; j < nFeatures; j++) {
    const std = Math.sqrt(scale[j]! / n);
    scale[j] = std > 1e-10 * Math.max(1, Math.abs(mean[j]!)) ? std : 1;
  }
  return { mean, scale };
}

export class Standardiser {
  private readonly mean: Float64Array;
  private readonly invScale: Float64Array;

  constructor(readonly params: StandardiserParams) {
    this.mean = Float64Array.from(params.mean);
    this.invScale = Float64Array.from(params.scale, (s) => 1 / s);
  }

  /** Writes the standardised `x` into `out` (allocated if absent) and returns it. */
  transform(x: ArrayLike<number>, out: Float64Array = new Float64Array(this.mean.length)): Float64Array {
    for (let j = 0; j < this.mean.length; j++) out[j] = (x[j]! - this.mean[j]!) * this.invScale[j]!;
    return out;
  }

  static fromJSON(value: unknown, nFeatures: number): Standardiser {
    const params = expectRecord(value, 'standardiser');
    const mean = expectFiniteArray(params.mean, 'standardiser.mean', nFeatures);
    const scale = expectFiniteArray(params.scale, 'standardiser.scale', nFeatures);
    if (scale.some((s) => s <= 0)) throw new ModelParamsError('standardiser.scale must be positive');
    return new Standardiser({ mean, scale });
  }
}
