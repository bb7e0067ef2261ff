import { FusionError } from './errors.js';
import type { ModelOutput } from './types.js';

/** How far a model's probabilities may sum from 1 (float rounding in the model and the codec). */
export const PROBABILITY_SUM_TOLERANCE = 1e-6;

/** The output's probabilities if they form a distribution over `classCount` classes; throws otherwise. */
export function checkedProbabilities(output: ModelOutput, classCount: number): ArrayLike<number> {
  const p = output.probabilities;
  if (p === undefined || p === null) throw invalidProbabilities(output, 'they are missing');
  if (p.length !== classCount) {
    throw invalidProbabilities(output, `there are ${p.length}, expected one per class (${classCount})`);
  }
  let sum = 0;
  for (let c = 0; c < classCount; c++) {
    const x = p[c] as number;
    if (typeof x !== 'number') throw invalidProbabilities(output, `entry ${c} is not a number (${JSON.stringify(x)})`);
    if (!Number.isFinite(x)) throw invalidProbabilities(output, `entry ${c} is ${x}`);
    if (x < 0) throw invalidProbabilities(output, `entry ${c} is negative (${x})`);
    sum += x;
  }
  if (!(Math.abs(sum - 1) <= PROBABILITY_SUM_TOLERANCE)) {
    throw invalidProbabilities(output, `they sum to ${sum}, not 1 within ${PROBABILITY_SUM_TOLERANCE}`);
  }
  return p;
}

/** The output's regression value if it is a finite number; throws otherwise. */
export function checkedValue(output: ModelOutput): number {
  const v = output.value;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new FusionError(
      'INVALID_VALUE',
      `model "${output.modelId}": regression value must be a finite number, got ${String(v)}`,
      output.modelId,
    );
  }
  return v;
}

function invalidProbabilities(output: ModelOutput, why: string): FusionError {
  return new FusionError('INVALID_PROBABILITIES', `model "${output.modelId}": invalid probabilities: ${why}`, output.modelId);
}
