import type { Batch } from './batch.js';
import { FusionError } from './errors.js';
import { argmax, zeros } from './numeric.js';
import type { ClassificationStrategy, FusionResult } from './types.js';
import { checkedProbabilities } from './validate.js';

type ClassificationFusion = (batch: Batch, classes: readonly string[]) => FusionResult;

/** sum_i w_i * p_i over the batch's checked distributions, with the batch's current weights. */
function weightedScores(batch: Batch, k: number): number[] {
  const scores = zeros(k);
  for (let i = 0; i < batch.size; i++) {
    const p = checkedProbabilities(batch.output(i), k);
    const w = batch.weights[i] as number;
    // Every term is >= 0, so plain summation cannot cancel: the relative error stays within ~n ulps.
    for (let c = 0; c < k; c++) scores[c]! += w * (p[c] as number);
  }
  return scores;
}

/**
 * scikit-learn's soft voting, np.average(probas, axis=0, weights=w): the renormalised weighted mean
 * of the distributions, label = argmax with ties to the lowest class index.
 */
function average(batch: Batch, classes: readonly string[]): FusionResult {
  const k = classes.length;
  batch.normaliseWeights();
  const probabilities = weightedScores(batch, k);
  const labelIndex = argmax(probabilities, k);
  return { labelIndex, label: classes[labelIndex] as string, probabilities, weightsUsed: batch.weightsUsed() };
}

/** sum_i w_i * p_i with the weights as configured, so calibrated linear combinations keep their scale. */
function weightedSum(batch: Batch, classes: readonly string[]): FusionResult {
  const k = classes.length;
  batch.totalWeight();
  return fromScores(weightedScores(batch, k), batch, classes);
}

/**
 * scikit-learn's hard voting: each model votes for its argmax class (lowest index on ties) and the
 * winner is np.argmax(np.bincount(votes, weights=w)), so ties between classes go to the lowest index.
 */
function hardVote(batch: Batch, classes: readonly string[]): FusionResult {
  const k = classes.length;
  batch.totalWeight();
  const scores = zeros(k);
  for (let i = 0; i < batch.size; i++) {
    const vote = argmax(checkedProbabilities(batch.output(i), k), k);
    scores[vote]! += batch.weights[i] as number;
  }
  batch.normaliseWeights();
  return fromScores(scores, batch, classes);
}

/** The class with the highest score, the scores as shares, and the weights the batch used. */
function fromScores(scores: number[], batch: Batch, classes: readonly string[]): FusionResult {
  const labelIndex = argmax(scores, classes.length);
  return { labelIndex, label: classes[labelIndex] as string, probabilities: shares(scores), scores, weightsUsed: batch.weightsUsed() };
}

/** scores / sum(scores). */
function shares(scores: readonly number[]): number[] {
  let total = 0;
  for (const s of scores) total += s;
  // Only reachable with weights at the edges of the double range (products underflowing to 0).
  if (!(total > 0 && Number.isFinite(total))) {
    throw new FusionError('NON_FINITE_RESULT', `fused scores sum to ${total}; cannot normalise them`);
  }
  return scores.map((s) => s / total);
}

const CLASSIFICATION_FUSIONS: Readonly<Record<ClassificationStrategy, ClassificationFusion>> = {
  'weighted-average': average,
  'soft-voting': average,
  'weighted-sum': weightedSum,
  'hard-voting': hardVote,
};

export function fuseClassification(strategy: ClassificationStrategy, batch: Batch, classes: readonly string[]): FusionResult {
  return CLASSIFICATION_FUSIONS[strategy](batch, classes);
}
