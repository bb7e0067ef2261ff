import type { RedisClient } from '../shared/redis.js';
import { codecs } from '../shared/codec.js';
import { ConfigError } from '../shared/errors.js';
import type { EnsembleMetrics, MetricsEntry } from '../shared/records.js';
import type { RedisKeys } from '../shared/redis-keys.js';

/**
 * Fusion weights learned online from label feedback. Per model the evaluator keeps an exponentially
 * weighted mean of its loss (log loss, or squared error for regression), with a half-life counted in
 * labels; the weights are w_i proportional to exp(-eta * loss_i), normalised and held within
 * [minWeight, maxWeight]. The evaluator stores them in its snapshot; `LearnedWeights` reads them back.
 */
export interface WeightLearningOptions {
  /** After this many labels, a loss counts half as much as a new one. */
  halfLifeLabels: number;
  /** How sharply a loss difference separates weights: exp(-eta * difference). */
  eta: number;
  minWeight: number;
  maxWeight: number;
}

export const WEIGHT_LEARNING_DEFAULTS: WeightLearningOptions = { halfLifeLabels: 200, eta: 1, minWeight: 0.01, maxWeight: 1 };

/** The factor each earlier loss is multiplied by when a new label arrives. */
export function decayPerLabel(halfLifeLabels: number): number {
  return 2 ** (-1 / halfLifeLabels);
}

/** Rejects bounds no weights summing to 1 can meet. */
export function checkWeightLearning(o: WeightLearningOptions, modelCount: number): void {
  const problems: string[] = [];
  if (!(o.halfLifeLabels > 0 && Number.isFinite(o.halfLifeLabels))) problems.push('half-life must be a positive number of labels');
  if (!(o.eta >= 0 && Number.isFinite(o.eta))) problems.push('eta must be a finite number >= 0');
  if (!(o.minWeight >= 0 && o.minWeight <= o.maxWeight && o.maxWeight <= 1)) problems.push('weights need 0 <= min <= max <= 1');
  else if (o.minWeight * modelCount > 1 || o.maxWeight * modelCount < 1) {
    problems.push(`${modelCount} weights within [${o.minWeight}, ${o.maxWeight}] cannot sum to 1`);
  }
  if (problems.length > 0) throw new ConfigError(`invalid weight learning: ${problems.join('; ')}`);
}

/**
 * Weights for `models` from their weighted losses. A model without feedback yet counts as average;
 * before any feedback every model weighs the same.
 */
export function learnedWeights(models: readonly string[], losses: ReadonlyMap<string, number>, o: WeightLearningOptions): Record<string, number> {
  const known = models.map((m) => losses.get(m)).filter((l): l is number => l !== undefined && Number.isFinite(l));
  if (known.length === 0) return equalWeights(models);
  const mean = known.reduce((a, b) => a + b, 0) / known.length;
  const filled = models.map((m) => {
    const l = losses.get(m);
    return l !== undefined && Number.isFinite(l) ? l : mean;
  });
  // Shifted by the smallest loss so that the best model's term is exp(0) and nothing underflows to all-zero.
  const best = Math.min(...filled);
  const bounded = boundedWeights(
    filled.map((l) => Math.exp(-o.eta * (l - best))),
    o.minWeight,
    o.maxWeight,
  );
  return Object.fromEntries(models.map((m, i) => [m, bounded[i] ?? 0]));
}

/**
 * Scales positive scores to weights summing to 1 with every weight in [min, max]: the weights are
 * clamp(lambda * score, min, max) for the one lambda that makes them sum to 1, which is what
 * "normalise, clamp, renormalise" converges to. Needs n * min <= 1 <= n * max.
 */
export function boundedWeights(scores: readonly number[], min: number, max: number): number[] {
  const n = scores.length;
  if (n === 0) return [];
  const total = scores.reduce((a, b) => a + b, 0);
  const normalised = total > 0 ? scores.map((s) => s / total) : scores.map(() => 1 / n);
  const clamped = (lambda: number) => normalised.map((s) => Math.min(max, Math.max(min, lambda * s)));
  const sumAt = (lambda: number) => clamped(lambda).reduce((a, b) => a + b, 0);
  // sumAt grows with lambda from n*min (lambda = 0) to n*max; bisection finds which weights clamp...
  let lo = 0;
  let hi = 1;
  while (sumAt(hi) < 1 && hi < 1e300) hi *= 2;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (sumAt(mid) < 1) lo = mid;
    else hi = mid;
  }
  // ...then the free weights are rescaled exactly, so the sum is 1 up to rounding.
  const atHi = clamped(hi);
  let fixedMass = 0;
  let freeScore = 0;
  atHi.forEach((w, i) => {
    if (w <= min || w >= max) fixedMass += w;
    else freeScore += normalised[i] ?? 0;
  });
  if (freeScore === 0) return atHi;
  const lambda = (1 - fixedMass) / freeScore;
  return atHi.map((w, i) => (w <= min || w >= max ? w : Math.min(max, Math.max(min, lambda * (normalised[i] ?? 0)))));
}

function equalWeights(models: readonly string[]): Record<string, number> {
  return Object.fromEntries(models.map((m) => [m, 1 / models.length]));
}

/** Metrics the best-model strategy can rank by; the losses rank lowest first, the others highest first. */
export type RankingMetric = 'logLoss' | 'brier' | 'mae' | 'rmse' | 'accuracy' | 'macroF1' | 'macroPrecision' | 'macroRecall';
const LOWER_IS_BETTER: ReadonlySet<RankingMetric> = new Set(['logLoss', 'brier', 'mae', 'rmse']);

/**
 * What the aggregator polls: the learned weights and the best model, read from the evaluator's latest
 * snapshot in Redis (one GET). Before any snapshot, or for a model the snapshot lacks, weights fall
 * back to equal shares.
 */
export class LearnedWeights {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    readonly modelIds: readonly string[],
  ) {}

  /** Weights of `modelIds`, summing to 1. */
  async current(): Promise<Record<string, number>> {
    const snapshot = await this.snapshot();
    const byModel = new Map<string, number>();
    for (const e of snapshot?.entries ?? []) if (e.weight !== null && e.weight >= 0) byModel.set(e.subject, e.weight);
    const known = this.modelIds.map((m) => byModel.get(m)).filter((w): w is number => w !== undefined);
    if (known.length === 0) return equalWeights(this.modelIds);
    const mean = known.reduce((a, b) => a + b, 0) / known.length;
    const raw = this.modelIds.map((m) => byModel.get(m) ?? mean);
    const total = raw.reduce((a, b) => a + b, 0);
    if (!(total > 0)) return equalWeights(this.modelIds);
    return Object.fromEntries(this.modelIds.map((m, i) => [m, (raw[i] ?? 0) / total]));
  }

  /** The model with the best rolling `metric`; undefined while no model has one. Ties go to the first listed. */
  async bestModel(metric: RankingMetric = 'logLoss'): Promise<string | undefined> {
    const snapshot = await this.snapshot();
    const entries = new Map<string, MetricsEntry>();
    for (const e of snapshot?.entries ?? []) entries.set(e.subject, e);
    const lower = LOWER_IS_BETTER.has(metric);
    let best: { model: string; value: number } | undefined;
    for (const model of this.modelIds) {
      const value = entries.get(model)?.[metric];
      if (value === null || value === undefined || !Number.isFinite(value)) continue;
      if (best === undefined || (lower ? value < best.value : value > best.value)) best = { model, value };
    }
    return best?.model;
  }

  private async snapshot(): Promise<EnsembleMetrics | undefined> {
    const bytes = await this.redis.getBuffer(this.keys.evaluatorSnapshot());
    return bytes === null ? undefined : codecs.ensembleMetrics.decode(bytes);
  }
}
