/**
 * Fusion weights fitted on validation predictions. Each weighted strategy gets the weights that
 * optimise what it produces: averaging strategies a distribution (log loss), hard voting a label
 * (accuracy).
 */

/** Fitted weights are rounded to this many decimals, so the config holds exactly what was evaluated. */
const WEIGHT_DECIMALS = 6;

export interface AverageWeightOptions {
  /** @defaultValue 500 */
  maxIterations?: number;
  /** Stop once an iteration lowers the mean log loss by less than this. @defaultValue 1e-10 */
  tolerance?: number;
}

/**
 * Weights (>= 0, summing to 1) of the weighted average sum_m w_m p_m that minimise its log loss,
 * given `trueClassProbabilities[m][i]`, the probability model m gave row i's true class (the only
 * entry the log loss reads). Fitted by expectation-maximisation of the mixture likelihood: the loss
 * is convex in w, each step lowers it and needs no step size, and a weight stays within [0, 1].
 * Rows that every model rules out cost the same whatever the weights and are skipped.
 */
export function fitAverageWeights(trueClassProbabilities: readonly Float64Array[], options: AverageWeightOptions = {}): number[] {
  const maxIterations = options.maxIterations ?? 500;
  const tolerance = options.tolerance ?? 1e-10;
  const nModels = trueClassProbabilities.length;
  const nRows = trueClassProbabilities[0]?.length ?? 0;
  let weights = new Array<number>(nModels).fill(1 / nModels);
  let previousLoss = Infinity;
  for (let iteration = 0; iteration < maxIterations; iteration++) {
    const next = new Array<number>(nModels).fill(0);
    let loss = 0;
    let used = 0;
    for (let i = 0; i < nRows; i++) {
      let mixture = 0;
      for (let m = 0; m < nModels; m++) mixture += weights[m]! * trueClassProbabilities[m]![i]!;
      if (!(mixture > 0)) continue;
      used++;
      loss -= Math.log(mixture);
      // Responsibility of model m for row i.
      for (let m = 0; m < nModels; m++) next[m]! += (weights[m]! * trueClassProbabilities[m]![i]!) / mixture;
    }
    if (used === 0) break;
    loss /= used;
    if (previousLoss - loss < tolerance) break;
    previousLoss = loss;
    weights = next.map((r) => r / used);
  }
  return roundWeights(weights);
}

export interface VoteWeightOptions {
  /** Values each weight may take. @defaultValue [0, 0.5, 1, 1.5, 2, 2.5, 3] */
  grid?: readonly number[];
  /** @defaultValue 20 */
  maxSweeps?: number;
}

/**
 * Hard-voting weights maximising accuracy, by coordinate search: starting from equal weights, each
 * sweep tries every grid value for one model at a time and keeps a strict improvement. Accuracy is
 * piecewise constant in the weights, so there is no gradient to follow. The default grid holds
 * multiples of 0.5, whose sums are exact: ties come out as the fuser will compute them.
 * `votes[m][i]` is model m's class for row i.
 */
export function fitVoteWeights(votes: readonly Int32Array[], y: ArrayLike<number>, nClasses: number, options: VoteWeightOptions = {}): number[] {
  const grid = options.grid ?? [0, 0.5, 1, 1.5, 2, 2.5, 3];
  const maxSweeps = options.maxSweeps ?? 20;
  const weights = new Array<number>(votes.length).fill(1);
  let best = voteAccuracy(votes, y, nClasses, weights);
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let improved = false;
    for (let m = 0; m < votes.length; m++) {
      let bestValue = weights[m]!;
      for (const value of grid) {
        weights[m] = value;
        const accuracy = weights.some((w) => w > 0) ? voteAccuracy(votes, y, nClasses, weights) : -1;
        if (accuracy > best) {
          best = accuracy;
          bestValue = value;
          improved = true;
        }
      }
      weights[m] = bestValue;
    }
    if (!improved) break;
  }
  return weights;
}

/** Accuracy of the weighted hard vote; ties go to the lowest class index, as in the fuser. */
function voteAccuracy(votes: readonly Int32Array[], y: ArrayLike<number>, nClasses: number, weights: readonly number[]): number {
  const tally = new Float64Array(nClasses);
  let correct = 0;
  for (let i = 0; i < y.length; i++) {
    tally.fill(0);
    for (let m = 0; m < votes.length; m++) tally[votes[m]![i]!]! += weights[m]!;
    let winner = 0;
    for (let c = 1; c < nClasses; c++) if (tally[c]! > tally[winner]!) winner = c;
    if (winner === y[i]) correct++;
  }
  return correct / y.length;
}

/** Weights summing to 1 keep one of at least 1/n, so rounding cannot zero them all. */
function roundWeights(weights: readonly number[]): number[] {
  const scale = 10 ** WEIGHT_DECIMALS;
  return weights.map((w) => Math.round(w * scale) / scale);
}
