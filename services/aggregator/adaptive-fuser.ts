import type { LearnedWeights, RankingMetric } from '../core/learned-weights.js';
import { describeError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { type AdaptiveStrategy, createFuser, type FusionResult, type Fuser, type ModelOutput, type Task } from '../core/fusion/index.js';

export interface AdaptiveFuserOptions {
  strategy: AdaptiveStrategy;
  task: Task;
  classes: readonly string[];
  models: readonly string[];
  source: Pick<LearnedWeights, 'current' | 'bestModel'>;
  logger: Logger;
  /** How often the weights are read again, ms. @defaultValue 1000 */
  refreshMs?: number;
  /** The rolling metric that ranks models for best-model. @defaultValue 'logLoss' */
  metric?: RankingMetric;
}

/**
 * Fusion whose weights follow the models' recent quality, as the evaluator measures it from labels:
 * - `learned-weights`: a weighted average (soft vote) with the evaluator's learned weights;
 * - `best-model`: the answer of the model with the best rolling metric, or, when it is missing from a
 *   request, of the next present model by learned weight (online model selection).
 * The weights are refreshed in the background; a request is never delayed by the refresh, and until the
 * first refresh (or while the evaluator has seen no labels) every model weighs the same.
 */
export class AdaptiveFuser implements Fuser {
  readonly task: Task;
  readonly strategy: AdaptiveStrategy;
  private weights: Record<string, number>;
  private ranking: string[];
  private averaging: Fuser;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: AdaptiveFuserOptions) {
    this.task = o.task;
    this.strategy = o.strategy;
    this.weights = Object.fromEntries(o.models.map((m) => [m, 1 / o.models.length]));
    this.ranking = [...o.models];
    this.averaging = this.build(this.weights);
  }

  /** Current weights, for metrics and tests. */
  currentWeights(): Readonly<Record<string, number>> {
    return this.weights;
  }

  start(): void {
    this.timer = setInterval(() => void this.refresh(), this.o.refreshMs ?? 1000);
    void this.refresh();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async refresh(): Promise<void> {
    try {
      const [weights, best] = await Promise.all([this.o.source.current(), this.o.source.bestModel(this.o.metric ?? 'logLoss')]);
      const averaging = this.build(weights);
      const byWeight = [...this.o.models].sort((a, b) => (weights[b] ?? 0) - (weights[a] ?? 0));
      this.ranking = best === undefined ? byWeight : [best, ...byWeight.filter((m) => m !== best)];
      this.weights = weights;
      this.averaging = averaging;
    } catch (error) {
      // Keep fusing with the last good weights; the evaluator may be restarting.
      this.o.logger.warn('could not refresh learned weights', { error: describeError(error) });
    }
  }

  fuse(outputs: readonly ModelOutput[]): FusionResult {
    if (this.strategy === 'learned-weights') return this.averaging.fuse(outputs);
    const present = new Set(outputs.map((x) => x.modelId));
    const chosen = this.ranking.find((m) => present.has(m));
    const output = outputs.find((x) => x.modelId === chosen) ?? outputs[0];
    return this.averaging.fuse(output === undefined ? [] : [output]);
  }

  private build(weights: Record<string, number>): Fuser {
    // Floor the weights so a model the evaluator has all but written off can still answer alone.
    const floored = Object.fromEntries(this.o.models.map((m) => [m, Math.max(weights[m] ?? 0, 1e-9)]));
    return this.o.task === 'classification'
      ? createFuser({ task: 'classification', strategy: 'soft-voting', classes: this.o.classes, weights: floored })
      : createFuser({ task: 'regression', strategy: 'weighted-average', weights: floored });
  }
}
