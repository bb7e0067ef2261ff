import { type ClassificationStrategy, type Fuser, createFuser, stackingInput } from '../core/fusion/index.js';
import { type ConfusionMatrix, type EvaluationMetrics, argmax, confusionMatrix, evaluateProbabilities, logLoss, predictedClasses } from '../ml/metrics.js';
import { type LogisticRegression, fitLogisticRegression } from '../ml/models/logistic-regression.js';
import type { ModelPredictions } from './base-predictions.js';
import { fitAverageWeights, fitVoteWeights } from './weight-fitting.js';

/**
 * Offline evaluation of fusion configs on the base models' validation and test predictions. Every
 * fused probability comes from `createFuser`, the aggregator's own code, so the figures are what
 * the aggregator will produce on the same inputs.
 */

const WEIGHTED_STRATEGIES: readonly ClassificationStrategy[] = ['weighted-average', 'weighted-sum', 'soft-voting', 'hard-voting'];

/**
 * L2 penalty of the stacking meta-model: C = 1, scikit-learn's default for the final estimator of
 * StackingClassifier, which like this one reads the raw probabilities (no standardising).
 */
const META_L2 = 1;

export interface Subset {
  /** `single`: one model on its own, the config a fusion must beat. */
  name: 'single' | 'all' | 'greedy';
  /** Model ids; candidates list them in the order of the base models, the stacking input order. */
  models: string[];
}

export type Weighting = 'equal' | 'fitted' | 'meta-model';

export interface FusionCandidate {
  strategy: ClassificationStrategy | 'stacking';
  weighting: Weighting;
  subset: Subset;
  /** Serving weights by model id; 1 each for equal weights and stacking. */
  weights: Record<string, number>;
  /** Stacking: the meta-model refitted on all validation rows, for serving. */
  meta?: LogisticRegression;
  /**
   * Out-of-fold for fitted weights and stacking (the first repetition of the cross-validation), so no
   * config is scored on rows it was fitted on.
   */
  validation: EvaluationMetrics;
  /** One per fold of every repetition (repetition-major), the same folds for every candidate: what the choice reads. */
  folds: FoldScore[];
  test: EvaluationMetrics;
  testConfusion: ConfusionMatrix;
}

/** A candidate's score on the held-out rows of one fold. */
export interface FoldScore {
  /** Share of the fold's rows whose fused label is wrong. */
  error: number;
  logLoss: number;
}

export interface EvaluationContext {
  classes: string[];
  yValidation: Int32Array;
  yTest: Int32Array;
  /** Validation row indices per fold, for each repetition of the cross-validation. */
  folds: number[][][];
  onProgress?: (line: string) => void;
}

type Part = 'validation' | 'test';
type Scored = 'validation' | 'test' | 'testConfusion' | 'folds';

/** Fuses every row of a part as the aggregator fuses a request with all the models present. */
function fuseRows(fuser: Fuser, models: readonly ModelPredictions[], part: Part, rows: readonly number[]): number[][] {
  return rows.map((i) => fuser.fuse(models.map((m) => ({ modelId: m.modelId, probabilities: m[part][i]! }))).probabilities as number[]);
}

/** The fuser of a weighted strategy. */
function weightedFuser(strategy: ClassificationStrategy, classes: readonly string[], weights: Record<string, number>): Fuser {
  return createFuser({ task: 'classification', strategy, classes, weights });
}

/** Validation log loss of the equal-weight average of `models`: the criterion of greedy selection. */
export function equalAverageLoss(context: EvaluationContext, models: readonly ModelPredictions[]): number {
  const fuser = weightedFuser('soft-voting', context.classes, equalWeights(models));
  return evaluateProbabilities(context.yValidation, fuseRows(fuser, models, 'validation', allRows(context.yValidation))).logLoss;
}

/** Every weighted strategy with equal and fitted weights, then stacking, over one subset. */
export function evaluateSubset(context: EvaluationContext, all: readonly ModelPredictions[], chosen: Subset): FusionCandidate[] {
  const models = all.filter((m) => chosen.models.includes(m.modelId));
  const subset: Subset = { name: chosen.name, models: models.map((m) => m.modelId) };
  const candidates: FusionCandidate[] = [];
  for (const strategy of WEIGHTED_STRATEGIES) {
    candidates.push(unfitted(context, models, { strategy, weighting: 'equal', subset, weights: equalWeights(models) }));
  }
  for (const strategy of WEIGHTED_STRATEGIES) {
    const fit = strategy === 'hard-voting' ? voteWeightFitter(context, models) : averageWeightFitter(context, models);
    const run = crossValidated(context, models, fit, (weights) => weightedFuser(strategy, context.classes, weights));
    candidates.push(candidate(context, { strategy, weighting: 'fitted', subset, weights: run.fitted }, run));
  }
  const run = crossValidated(
    context,
    models,
    metaFitter(context, models),
    (meta) => createFuser({ task: 'classification', strategy: 'stacking', classes: context.classes, models: subset.models, meta }),
    `stacking meta-model over the ${subset.name} subset (${models.length} models)`,
  );
  candidates.push(candidate(context, { strategy: 'stacking', weighting: 'meta-model', subset, weights: equalWeights(models), meta: run.fitted }, run));
  return candidates;
}

/** One model on its own, through the fuser (a weighted average of one distribution is that distribution). */
export function singleModelCandidate(context: EvaluationContext, model: ModelPredictions): FusionCandidate {
  const subset: Subset = { name: 'single', models: [model.modelId] };
  return unfitted(context, [model], { strategy: 'weighted-average', weighting: 'equal', subset, weights: equalWeights([model]) });
}

/** A weighted config with nothing fitted: scored on every validation row as it is. */
function unfitted(
  context: EvaluationContext,
  models: readonly ModelPredictions[],
  spec: Omit<FusionCandidate, Scored> & { strategy: ClassificationStrategy },
): FusionCandidate {
  const fuser = weightedFuser(spec.strategy, context.classes, spec.weights);
  const validation = fuseRows(fuser, models, 'validation', allRows(context.yValidation));
  const folds = context.folds.flatMap((repetition) =>
    repetition.map((fold) =>
      foldScore(
        context,
        fold.map((i) => validation[i]!),
        fold,
      ),
    ),
  );
  return candidate(context, spec, { validation, test: fuseRows(fuser, models, 'test', allRows(context.yTest)), folds });
}

/**
 * Out-of-fold validation probabilities (each fold fused by a fuser fitted on the other folds) and
 * test probabilities from the fuser refitted on every validation row, the one that is served.
 */
function crossValidated<T>(
  context: EvaluationContext,
  models: readonly ModelPredictions[],
  fitOn: (rows: readonly number[]) => T,
  fuserOf: (fitted: T) => Fuser,
  progressLabel?: string,
): { fitted: T; validation: number[][]; test: number[][]; folds: FoldScore[] } {
  const validationRows = allRows(context.yValidation);
  let validation: number[][] = [];
  const folds: FoldScore[] = [];
  context.folds.forEach((repetition, r) => {
    const outOfFold: number[][] = [];
    repetition.forEach((fold, f) => {
      if (progressLabel !== undefined) {
        context.onProgress?.(`${progressLabel}: repetition ${r + 1} of ${context.folds.length}, fold ${f + 1} of ${repetition.length}`);
      }
      const held = new Set(fold);
      const fused = fuseRows(fuserOf(fitOn(validationRows.filter((i) => !held.has(i)))), models, 'validation', fold);
      folds.push(foldScore(context, fused, fold));
      fold.forEach((row, j) => {
        outOfFold[row] = fused[j]!;
      });
    });
    if (r === 0) validation = outOfFold;
  });
  if (progressLabel !== undefined) context.onProgress?.(`${progressLabel}: refit on all validation rows`);
  const fitted = fitOn(validationRows);
  return { fitted, validation, test: fuseRows(fuserOf(fitted), models, 'test', allRows(context.yTest)), folds };
}

/** Error rate and log loss of fused probabilities on a fold's rows (labels as the fuser picks them: argmax, ties to the lowest index). */
function foldScore(context: EvaluationContext, probabilities: readonly number[][], fold: readonly number[]): FoldScore {
  const y = Int32Array.from(fold, (i) => context.yValidation[i]!);
  let wrong = 0;
  probabilities.forEach((p, j) => {
    if (argmax(p) !== y[j]) wrong++;
  });
  return { error: wrong / fold.length, logLoss: logLoss(y, probabilities) };
}

function averageWeightFitter(context: EvaluationContext, models: readonly ModelPredictions[]) {
  return (rows: readonly number[]): Record<string, number> => {
    const trueClass = models.map((m) => Float64Array.from(rows, (i) => m.validation[i]![context.yValidation[i]!]!));
    return weightRecord(models, fitAverageWeights(trueClass));
  };
}

function voteWeightFitter(context: EvaluationContext, models: readonly ModelPredictions[]) {
  const votes = models.map((m) => Int32Array.from(m.validation, (p) => argmax(p)));
  return (rows: readonly number[]): Record<string, number> => {
    const subset = votes.map((v) => Int32Array.from(rows, (i) => v[i]!));
    const y = Int32Array.from(rows, (i) => context.yValidation[i]!);
    return weightRecord(models, fitVoteWeights(subset, y, context.classes.length));
  };
}

function metaFitter(context: EvaluationContext, models: readonly ModelPredictions[]) {
  const k = context.classes.length;
  const inputs = allRows(context.yValidation).map((i) =>
    stackingInput(
      models.map((m) => m.validation[i]!),
      k,
    ),
  );
  return (rows: readonly number[]): LogisticRegression =>
    fitLogisticRegression(
      rows.map((i) => inputs[i]!),
      Int32Array.from(rows, (i) => context.yValidation[i]!),
      k,
      { l2: META_L2, standardise: false },
    );
}

function candidate(
  context: EvaluationContext,
  spec: Omit<FusionCandidate, Scored>,
  probabilities: { validation: number[][]; test: number[][]; folds: FoldScore[] },
): FusionCandidate {
  return {
    ...spec,
    folds: probabilities.folds,
    validation: evaluateProbabilities(context.yValidation, probabilities.validation),
    test: evaluateProbabilities(context.yTest, probabilities.test),
    testConfusion: confusionMatrix(context.yTest, predictedClasses(probabilities.test), context.classes.length),
  };
}

function equalWeights(models: readonly ModelPredictions[]): Record<string, number> {
  return weightRecord(
    models,
    models.map(() => 1),
  );
}

function weightRecord(models: readonly ModelPredictions[], weights: readonly number[]): Record<string, number> {
  return Object.fromEntries(models.map((m, i) => [m.modelId, weights[i]!]));
}

function allRows(y: ArrayLike<number>): number[] {
  return Array.from({ length: y.length }, (_, i) => i);
}
