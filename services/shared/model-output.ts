/**
 * What a model's answer must be before anyone downstream may use it: checked by the worker that ran
 * the model (a bad answer becomes an ERROR prediction for that request) and again by the aggregator
 * for whatever reaches the predictions topic (a bad one becomes a dead letter).
 */

/** How far a model's probabilities may sum from 1 (float rounding in the model and the codec). */
export const PROBABILITY_SUM_TOLERANCE = 1e-6;

/** Why `p` is not a probability distribution over `classCount` classes (any count when undefined), or undefined. */
export function probabilitiesProblem(p: ArrayLike<unknown> | null | undefined, classCount: number | undefined): string | undefined {
  if (p === undefined || p === null) return 'they are missing';
  if (classCount !== undefined && p.length !== classCount) return `there are ${p.length}, expected one per class (${classCount})`;
  if (p.length === 0) return 'there are none';
  let sum = 0;
  for (let c = 0; c < p.length; c++) {
    const x = p[c];
    if (typeof x !== 'number') return `entry ${c} is not a number (${JSON.stringify(x)})`;
    if (!Number.isFinite(x)) return `entry ${c} is ${x}`;
    if (x < 0) return `entry ${c} is negative (${x})`;
    sum += x;
  }
  if (!(Math.abs(sum - 1) <= PROBABILITY_SUM_TOLERANCE)) return `they sum to ${sum}, not 1 within ${PROBABILITY_SUM_TOLERANCE}`;
  return undefined;
}

/** Why `v` is not a usable regression value, or undefined. */
export function valueProblem(v: unknown): string | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? undefined : `regression value must be a finite number, got ${String(v)}`;
}
