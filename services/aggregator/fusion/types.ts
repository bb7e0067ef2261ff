/**
 * Vocabulary of prediction fusion: tasks, strategy names, model outputs and fused results.
 */

/** Valid strategy names per task; configuration validation checks names against these lists. */
export const STRATEGIES = Object.freeze({
  classification: Object.freeze(['weighted-average', 'weighted-sum', 'hard-voting', 'soft-voting'] as const),
  regression: Object.freeze(['weighted-average', 'weighted-sum', 'median'] as const),
});

export type Task = keyof typeof STRATEGIES;
export type ClassificationStrategy = (typeof STRATEGIES.classification)[number];
export type RegressionStrategy = (typeof STRATEGIES.regression)[number];
export type Strategy<T extends Task = Task> = (typeof STRATEGIES)[T][number];

export function isTask(value: unknown): value is Task {
  return value === 'classification' || value === 'regression';
}

export function isStrategy<T extends Task>(task: T, name: unknown): name is Strategy<T> {
  // Widened to readonly string[] so that arbitrary input can be looked up.
  const names: readonly string[] = STRATEGIES[task];
  return typeof name === 'string' && names.includes(name);
}

/** One model's answer for one request. */
export interface ModelOutput {
  modelId: string;
  /** Classification: one probability per class, in the configured class order. */
  probabilities?: ArrayLike<number>;
  /** Regression. */
  value?: number;
}

export interface FusionResult {
  /** Classification: index of the winning class in the configured class order. */
  labelIndex?: number;
  label?: string;
  /** Classification: fused distribution over the classes (sums to 1). */
  probabilities?: number[];
  /** weighted-sum: raw sums of w_i * p_i; hard-voting: weighted vote counts. */
  scores?: number[];
  /** Regression. */
  value?: number;
  /**
   * Weight each present model had in the result: renormalised to sum to 1 over the present models,
   * except weighted-sum (the configured weights, which it applies unnormalised) and median (1/n each,
   * as every value counts equally).
   */
  weightsUsed: Record<string, number>;
}

export interface Fuser {
  readonly task: Task;
  readonly strategy: string;
  fuse(outputs: readonly ModelOutput[]): FusionResult;
}

/** Per-model weights; a model not listed is unknown. Omitted entirely, every model weighs 1. */
export type Weights = Readonly<Record<string, number>>;

export interface ClassificationSpec {
  task: 'classification';
  strategy: ClassificationStrategy;
  /** Class labels, in the order of every model's probabilities. */
  classes: readonly string[];
  weights?: Weights;
}

export interface RegressionSpec {
  task: 'regression';
  strategy: RegressionStrategy;
  weights?: Weights;
}

export type FuserSpec = ClassificationSpec | RegressionSpec;
