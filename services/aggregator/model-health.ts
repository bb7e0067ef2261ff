import CircuitBreaker from 'opossum';
import type { Logger } from '../shared/log.js';
import type { FusedPrediction } from '../shared/records.js';

/** Breaker settings for the models the aggregator waits for (opossum options of the same names). */
export interface ModelHealthOptions {
  /** Share of recent outcomes that may fail before the breaker opens, percent. @defaultValue 50 */
  errorThresholdPercentage: number;
  /** Outcomes in the window before the percentage counts. @defaultValue 20 */
  volumeThreshold: number;
  /** How long an open breaker waits before letting a trial through, ms. @defaultValue 10000 */
  resetTimeout: number;
  /** Length of the rolling window, ms. @defaultValue 10000 */
  rollingCountTimeout: number;
}

export const MODEL_HEALTH_DEFAULTS: ModelHealthOptions = {
  errorThresholdPercentage: 50,
  volumeThreshold: 20,
  resetTimeout: 10_000,
  rollingCountTimeout: 10_000,
};

export type BreakerState = 'open' | 'half-open' | 'closed';

/**
 * One circuit breaker per expected model, fed by what each fused request saw of that model: an
 * answer is a success; an error, an abstention or a missed deadline is a failure. While a model's
 * breaker is open the join does not wait for it, so requests close as soon as the healthy models
 * answer. After `resetTimeout` the breaker is half-open: the model is awaited again, and the next
 * outcome decides whether it closes or opens again.
 */
export class ModelHealth {
  readonly transitions: Record<string, Record<BreakerState, number>> = {};
  private readonly breakers = new Map<string, CircuitBreaker<[boolean], void>>();

  constructor(
    private readonly models: readonly string[],
    options: ModelHealthOptions,
    logger: Logger,
  ) {
    for (const model of models) {
      const breaker = new CircuitBreaker(
        (answered: boolean) => (answered ? Promise.resolve() : Promise.reject(new Error(`${model} did not answer`))),
        // No per-call latency lists: opossum sorts them on every failure, which costs the most exactly
        // when a model is failing.
        { ...options, timeout: false, name: model, rollingPercentilesEnabled: false },
      );
      // The outcome is already known; a rejection here is bookkeeping, not an error to surface.
      breaker.fallback(() => undefined);
      this.transitions[model] = { open: 0, 'half-open': 0, closed: 0 };
      const on = (state: BreakerState) => () => {
        (this.transitions[model] as Record<BreakerState, number>)[state]++;
        logger.warn('model breaker', { model, state });
      };
      breaker.on('open', on('open'));
      breaker.on('halfOpen', on('half-open'));
      breaker.on('close', on('closed'));
      this.breakers.set(model, breaker);
    }
  }

  /** The expected models the join should wait for now: every model whose breaker is not open. */
  awaited(): string[] {
    return this.models.filter((m) => !this.breakers.get(m)?.opened);
  }

  state(model: string): BreakerState {
    const b = this.breakers.get(model);
    if (b === undefined || b.closed) return 'closed';
    return b.halfOpen ? 'half-open' : 'open';
  }

  /** Feeds one fused request's view of each model into its breaker. */
  record(fused: FusedPrediction): void {
    for (const c of fused.contributors) void this.breakers.get(c.modelId)?.fire(true);
    for (const m of fused.missing) {
      // Not awaited because the breaker was open: says nothing new about the model.
      if (m.reason !== 'CIRCUIT_OPEN') void this.breakers.get(m.modelId)?.fire(false);
    }
  }

  shutdown(): void {
    for (const b of this.breakers.values()) b.shutdown();
  }
}
