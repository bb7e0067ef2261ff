import { ConfigError } from '../shared/errors.js';

/**
 * A rolling window kept as a ring of buckets, each holding additive sums. Adding only ever increments
 * the newest bucket (no per-sample storage, no subtraction drift), instances add into the same
 * buckets, and a window is read by merging the buckets it covers; a bucket leaves whole.
 *
 * - `count:N`: the last N labelled predictions of a subject, in steps of ceil(N/32) labels. A sample's
 *   position is its 1-based sequence number among the subject's labelled predictions.
 * - `time:T`: the last T ms, in steps of ceil(T/32) ms. A sample's position is its time (ms).
 *
 * The window therefore spans between N (or T) minus one step and N (or T) plus up to one step; it is
 * exact for N <= 32.
 */
export const STEPS_PER_WINDOW = 32;

/** Count buckets of a subject that receives no label for this long expire. */
const COUNT_BUCKET_RETENTION_MS = 7 * 24 * 3_600_000;

export type WindowKind = 'count' | 'time';

export class RollingWindow {
  /** Labels (count) or milliseconds (time) per bucket. */
  readonly bucketSize: number;
  /** Buckets the window covers, the newest (partly filled) one included. */
  readonly buckets: number;

  constructor(
    readonly kind: WindowKind,
    readonly size: number,
  ) {
    if (!Number.isSafeInteger(size) || size <= 0) throw new ConfigError(`window size must be a positive integer, got ${size}`);
    this.bucketSize = Math.ceil(size / STEPS_PER_WINDOW);
    this.buckets = Math.ceil(size / this.bucketSize);
  }

  /** Parses "count:1000" or "time:300000". */
  static parse(text: string): RollingWindow {
    const match = /^(count|time):(\d+)$/.exec(text.trim());
    if (match === null) throw new ConfigError(`window "${text}": expected count:<labels> or time:<ms>`);
    return new RollingWindow(match[1] as WindowKind, Number(match[2]));
  }

  /** As in the EnsembleMetrics `window` field. */
  toString(): string {
    return `${this.kind}:${this.size}`;
  }

  /** The bucket of a sample at `position`: its sequence number (count, from 1) or time (ms). */
  bucketOf(position: number): number {
    return Math.floor((this.kind === 'count' ? position - 1 : position) / this.bucketSize);
  }

  /**
   * The buckets in the window when it ends at `end`: the subject's labelled total (count) or now
   * (time). Empty for a count window with nothing labelled yet.
   */
  range(end: number): { first: number; last: number } | undefined {
    if (this.kind === 'count' && end < 1) return undefined;
    const last = this.bucketOf(end);
    return { first: last - this.buckets + 1, last };
  }

  /** The buckets among `held` that the window ending at `end` covers; the others are evicted. */
  select(held: readonly number[], end: number): number[] {
    const r = this.range(end);
    if (r === undefined) return [];
    return held.filter((b) => b >= r.first && b <= r.last);
  }

  /**
   * Whether a sample at `position` is not already behind the window ending at `end`. A later one (a
   * clock ahead of ours) is admitted: the window reaches its bucket in time.
   */
  admits(position: number, end: number): boolean {
    const r = this.range(end);
    return r === undefined || this.bucketOf(position) >= r.first;
  }

  /** Every bucket of the window ending at `end`, oldest first (time windows, whose end is known). */
  bucketsUntil(end: number): number[] {
    const r = this.range(end);
    if (r === undefined) return [];
    return Array.from({ length: r.last - r.first + 1 }, (_, i) => r.first + i);
  }

  /** How long an untouched bucket key lives in Redis: past the window for time, while idle for count. */
  retentionMs(): number {
    return this.kind === 'time' ? this.size + 2 * this.bucketSize : COUNT_BUCKET_RETENTION_MS;
  }
}
