import { ConfigError, EnsembleError } from '../shared/errors.js';

/**
 * DDSketch (Masson, Rim and Lee, VLDB 2019): a quantile sketch with relative-error guarantees. A
 * positive value x goes to bucket k = ceil(log_gamma(x)), gamma = (1 + a) / (1 - a); every value in a
 * bucket is within a relative a of the bucket's representative 2 gamma^k / (gamma + 1). Buckets are
 * plain counts, so sketches merge by adding counts: the evaluator keeps them as Redis hash fields that
 * any number of instances increment, and a quantile read from the merged counts is still within a of
 * the exact one. Values at or below zero (clock skew) share a zero bucket reported as 0.
 */
export const DEFAULT_RELATIVE_ACCURACY = 0.01;

/** Bucket key of the values at or below zero. */
export const ZERO_BUCKET = 'z';

export class DDSketch {
  private readonly gamma: number;
  private readonly logGamma: number;
  private readonly counts = new Map<number, number>();
  private zeroCount = 0;
  private total = 0;

  constructor(readonly relativeAccuracy = DEFAULT_RELATIVE_ACCURACY) {
    if (!(relativeAccuracy > 0 && relativeAccuracy < 1)) throw new ConfigError(`sketch relative accuracy must be in (0, 1), got ${relativeAccuracy}`);
    this.gamma = (1 + relativeAccuracy) / (1 - relativeAccuracy);
    this.logGamma = Math.log(this.gamma);
  }

  /** The bucket a value falls in, as stored: an integer, or ZERO_BUCKET. */
  bucketKey(value: number): string {
    if (!Number.isFinite(value)) throw new EnsembleError(`cannot sketch ${value}`, { code: 'BAD_SKETCH_VALUE' });
    return value <= 0 ? ZERO_BUCKET : String(Math.ceil(Math.log(value) / this.logGamma));
  }

  add(value: number, count = 1): void {
    this.addToBucket(this.bucketKey(value), count);
  }

  /** Adds `count` values to a bucket given by its key (as read back from storage). */
  addToBucket(key: string, count: number): void {
    if (count <= 0) return;
    if (key === ZERO_BUCKET) this.zeroCount += count;
    else {
      const k = Number(key);
      if (!Number.isInteger(k)) throw new EnsembleError(`"${key}" is not a sketch bucket`, { code: 'BAD_SKETCH_BUCKET' });
      this.counts.set(k, (this.counts.get(k) ?? 0) + count);
    }
    this.total += count;
  }

  merge(other: DDSketch): void {
    if (other.relativeAccuracy !== this.relativeAccuracy) {
      throw new EnsembleError('cannot merge sketches of different accuracy', { code: 'BAD_SKETCH_MERGE' });
    }
    this.zeroCount += other.zeroCount;
    for (const [k, c] of other.counts) this.counts.set(k, (this.counts.get(k) ?? 0) + c);
    this.total += other.total;
  }

  get count(): number {
    return this.total;
  }

  /**
   * The q-quantile (0 <= q <= 1) within the relative accuracy of the exact value at rank
   * floor(q * (count - 1)) of the sorted values; undefined when empty.
   */
  quantile(q: number): number | undefined {
    if (!(q >= 0 && q <= 1)) throw new EnsembleError(`quantile must be in [0, 1], got ${q}`, { code: 'BAD_QUANTILE' });
    if (this.total === 0) return undefined;
    const rank = Math.floor(q * (this.total - 1));
    let seen = this.zeroCount;
    if (seen > rank) return 0;
    const keys = [...this.counts.keys()].sort((a, b) => a - b);
    for (const k of keys) {
      seen += this.counts.get(k) ?? 0;
      if (seen > rank) return (2 * this.gamma ** k) / (this.gamma + 1);
    }
    throw new EnsembleError('sketch bucket counts do not add up to its total', { code: 'BAD_SKETCH_STATE' });
  }
}
