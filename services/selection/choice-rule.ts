import type { FoldScore, FusionCandidate } from './candidates.js';

/**
 * How `select` picks one config among the candidates, from their scores on the folds of a repeated
 * cross-validation of the validation rows (the same folds for every candidate):
 *
 * 1. Each candidate's score is its mean error rate over the folds. Error rate suits every candidate,
 *    hard voting included (its vote shares are not probabilities, so their log loss means little),
 *    and it is what "better than the best single model" is measured in.
 * 2. A standard-error rule: the lowest mean error plus `SE_MULTIPLIER` standard errors of that
 *    candidate's fold errors is the bar. Every candidate at or below the bar is as good as the best
 *    within the noise of the validation rows. The standard error is the corrected one (see
 *    `CandidateScore`): folds of a repeated cross-validation overlap, and the textbook sd/sqrt(n)
 *    would understate the noise about threefold. Two of them, not one, because the config must also
 *    hold on rows nobody has seen, whose own noise is as large: measured over 10 seeds on letter,
 *    spam and satellite, one corrected standard error still chose fusions that lost up to 0.85 points
 *    to the best single model on test.
 * 3. Of those, the simplest wins: a single model < an equal-weight fusion < fitted weights < a
 *    stacking meta-model. A more complex config must beat the simpler ones by more than the noise.
 * 4. Within that level, the candidates are equal by error within the noise, so the lowest mean log
 *    loss decides: a proper scoring rule reads the whole distribution and is far less noisy than an
 *    error rate (it keeps a random forest over a k-NN whose error is a few rows lower on validation).
 *    Hard voting, whose vote shares are not probabilities, comes after every probabilistic candidate.
 *    Then the lowest mean error, fewer models, the strategy in the order of `STRATEGY_ORDER`, and the
 *    earlier candidate. Means are compared rounded to 1e-12, so configs that differ only by
 *    floating-point rounding (a soft vote and a weighted average of the same models with the same
 *    weights) tie and this order decides.
 */

/** How many (corrected) standard errors above the lowest mean error a candidate may be and still count. */
export const SE_MULTIPLIER = 2;

export type Complexity = 0 | 1 | 2 | 3;

export const COMPLEXITY_NAMES: Readonly<Record<Complexity, string>> = {
  0: 'single model',
  1: 'equal weights',
  2: 'fitted weights',
  3: 'stacking',
};

/** Tie order of strategies: the plain average first, hard voting (label only) last among the votes. */
export const STRATEGY_ORDER: readonly string[] = ['weighted-average', 'soft-voting', 'weighted-sum', 'hard-voting', 'stacking'];

export function complexityOf(c: Pick<FusionCandidate, 'subset' | 'weighting'>): Complexity {
  if (c.subset.name === 'single') return 0;
  return c.weighting === 'equal' ? 1 : c.weighting === 'fitted' ? 2 : 3;
}

export interface CandidateScore {
  meanError: number;
  /** The textbook standard error of the mean of the fold errors, sd / sqrt(folds): too small for overlapping folds. */
  foldStandardError: number;
  /**
   * The standard error corrected for the overlap of the folds' training rows (Nadeau and Bengio's
   * corrected resampled variance, as Bouckaert and Frank apply it to repeated k-fold:
   * sd * sqrt(1 / folds + 1 / (k - 1))): what the rule reads.
   */
  standardError: number;
  meanLogLoss: number;
}

/** @param foldsPerRepetition k of the k-fold cross-validation; the folds of all repetitions are given. */
export function scoreFolds(folds: readonly FoldScore[], foldsPerRepetition?: number): CandidateScore {
  const n = folds.length;
  const meanError = folds.reduce((s, f) => s + f.error, 0) / n;
  const sd = n < 2 ? 0 : Math.sqrt(folds.reduce((s, f) => s + (f.error - meanError) ** 2, 0) / (n - 1));
  const k = foldsPerRepetition ?? n;
  return {
    meanError,
    foldStandardError: sd / Math.sqrt(n),
    standardError: sd * Math.sqrt(1 / n + (k > 1 ? 1 / (k - 1) : 0)),
    meanLogLoss: folds.reduce((s, f) => s + f.logLoss, 0) / n,
  };
}

export interface Choice {
  /** Index of the chosen candidate. */
  chosen: number;
  /** Index of the candidate with the lowest mean error (before the simplicity preference). */
  lowestError: number;
  /** Mean error at or below which a candidate counts as good as the lowest. */
  bar: number;
  scores: CandidateScore[];
}

const round = (x: number) => Math.round(x * 1e12) / 1e12;

const hard = (c: FusionCandidate) => (c.strategy === 'hard-voting' ? 1 : 0);

/** Ties of the lowest mean error (step 2): probabilistic configs first, then log loss, fewer models, strategy order. */
function compareErrors(a: FusionCandidate, sa: CandidateScore, b: FusionCandidate, sb: CandidateScore): number {
  return round(sa.meanError) - round(sb.meanError) || compareWithinLevel(a, sa, b, sb);
}

/** The deterministic order of step 4. */
function compareWithinLevel(a: FusionCandidate, sa: CandidateScore, b: FusionCandidate, sb: CandidateScore): number {
  return (
    hard(a) - hard(b) ||
    round(sa.meanLogLoss) - round(sb.meanLogLoss) ||
    round(sa.meanError) - round(sb.meanError) ||
    a.subset.models.length - b.subset.models.length ||
    STRATEGY_ORDER.indexOf(a.strategy) - STRATEGY_ORDER.indexOf(b.strategy)
  );
}

/** Applies the rule above; candidates must all carry the same folds (`foldsPerRepetition` per repetition). */
export function chooseCandidate(candidates: readonly FusionCandidate[], foldsPerRepetition?: number, multiplier = SE_MULTIPLIER): Choice {
  if (candidates.length === 0) throw new Error('no candidates to choose from');
  const scores = candidates.map((c) => scoreFolds(c.folds, foldsPerRepetition));
  const order = candidates.map((_, i) => i);
  const byScore = (i: number, j: number) => compareWithinLevel(candidates[i]!, scores[i]!, candidates[j]!, scores[j]!) || i - j;
  const lowestError = [...order].sort(
    (i, j) =>
      round(scores[i]!.meanError) - round(scores[j]!.meanError) ||
      complexityOf(candidates[i]!) - complexityOf(candidates[j]!) ||
      compareErrors(candidates[i]!, scores[i]!, candidates[j]!, scores[j]!) ||
      i - j,
  )[0]!;
  const bar = round(scores[lowestError]!.meanError + multiplier * scores[lowestError]!.standardError);
  const eligible = order.filter((i) => round(scores[i]!.meanError) <= bar);
  const chosen = eligible.sort((i, j) => complexityOf(candidates[i]!) - complexityOf(candidates[j]!) || byScore(i, j))[0]!;
  return { chosen, lowestError, bar, scores };
}
