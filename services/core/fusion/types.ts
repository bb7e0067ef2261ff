/**
 * Vocabulary of prediction fusion: tasks, strategy names, model outputs and fused results.
 */

import type { Classifier } from '../../ml/models/index.js';

/** Valid strategy names per task; configuration validation checks names against these lists. */
export const STRATEGIES = Object.freeze({
  classification: Object.freeze(['weighted-average', 'weighted-sum', 'hard-voting', 'soft-voting', 'stacking'] as const),
  regression: Object.freeze(['weighted-average', 'weighted-sum', 'median'] as const),
});

export type Task = keyof typeof STRATEGIES;
/** The classification strategies that combine weighted outputs; stacking has its own spec. */
export type ClassificationStrategy = Exclude<(typeof STRATEGIES.classification)[number], 'stacking'>;
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

/** Strategies whose weights come from label feedback instead of the config file. */
export const ADAPTIVE_STRATEGIES = Object.freeze(['learned-weights', 'best-model'] as const);
export type AdaptiveStrategy = (typeof ADAPTIVE_STRATEGIES)[number];

export function isAdaptiveStrategy(name: unknown): name is AdaptiveStrategy {
  return typeof name === 'string' && (ADAPTIVE_STRATEGIES as readonly string[]).includes(name);
}

/** What an ensemble config may name for a task: a fixed fusion or an adaptive one. */
export type ConfiguredStrategy<T extends Task = Task> = Strategy<T> | AdaptiveStrategy;

/** Why `name` is not a strategy of `task`, or undefined when it is; the one check of strategy names. */
export function strategyProblem(task: Task, name: unknown, options: { adaptive: boolean }): string | undefined {
  if (isStrategy(task, name) || (options.adaptive && isAdaptiveStrategy(name))) return undefined;
  const names = [...STRATEGIES[task], ...(options.adaptive ? ADAPTIVE_STRATEGIES : [])];
  return `must be one of ${names.join(', ')} for ${task}, got ${String(name)}`;
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
   * except weighted-sum (the configured weights, which it applies unnormalised), median (1/n each,
   * as every value counts equally) and stacking (1/n each: the meta-model, not weights, combines them).
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

/** Stacking: a meta-model maps the base models' probabilities to the fused distribution. */
export interface StackingSpec {
  task: 'classification';
  strategy: 'stacking';
  /** Class labels, in the order of every model's probabilities and of the meta-model's output. */
  classes: readonly string[];
  /** The base models, in the order of their probability blocks in the meta-model's input. */
  models: readonly string[];
  /** Takes models.length * classes.length inputs and gives one probability per class. */
  meta: Classifier;
}

export type FuserSpec = ClassificationSpec | StackingSpec | RegressionSpec;
