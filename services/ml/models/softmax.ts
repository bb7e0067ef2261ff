/**
 * Turns log-scores into probabilities in place (max-shifted, so large scores cannot overflow).
 * Scores of -Infinity get probability 0; if every score is -Infinity the result is uniform.
 */
export function softmaxInPlace(scores: Float64Array): Float64Array {
  let max = -Infinity;
  for (let c = 0; c < scores.length; c++) if (scores[c]! > max) max = scores[c]!;
  if (max === -Infinity) return scores.fill(1 / scores.length);
  let sum = 0;
  for (let c = 0; c < scores.length; c++) {
    const e = Math.exp(scores[c]! - max);
    scores[c] = e;
    sum += e;
  }
  for (let c = 0; c < scores.length; c++) scores[c] = scores[c]! / sum;
  return scores;
}
