import { probabilitiesProblem, valueProblem } from '../../shared/model-output.js';
import { FusionError } from './errors.js';
import type { ModelOutput } from './types.js';

export { PROBABILITY_SUM_TOLERANCE } from '../../shared/model-output.js';

/** The output's probabilities if they form a distribution over `classCount` classes; throws otherwise. */
export function checkedProbabilities(output: ModelOutput, classCount: number): ArrayLike<number> {
  const problem = probabilitiesProblem(output.probabilities, classCount);
  if (problem !== undefined) throw invalidProbabilities(output, problem);
  return output.probabilities as ArrayLike<number>;
}

/** The output's regression value if it is a finite number; throws otherwise. */
export function checkedValue(output: ModelOutput): number {
  const problem = valueProblem(output.value);
  if (problem !== undefined) throw new FusionError('INVALID_VALUE', `model "${output.modelId}": ${problem}`, output.modelId);
  return output.value as number;
}

function invalidProbabilities(output: ModelOutput, why: string): FusionError {
  return new FusionError('INVALID_PROBABILITIES', `model "${output.modelId}": invalid probabilities: ${why}`, output.modelId);
}
