import CircuitBreaker from 'opossum';
import { describeError, EnsembleError, InvalidMessageError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { probabilitiesProblem, valueProblem } from '../shared/model-output.js';
import type { FeatureEvent, Prediction } from '../shared/records.js';
import type { ModelAnswer, ModelRunner } from './model-runner.js';
import type { WorkerMetrics } from './worker-metrics.js';

/** The worker's breaker around its model call (opossum options of the same names). */
export interface BreakerOptions {
  /** A model call slower than this fails, ms. @defaultValue 1000 */
  timeout?: number;
  /** Failure percentage in the rolling window that opens the breaker. @defaultValue 50 */
  errorThresholdPercentage?: number;
  /** How long the breaker stays open before a trial call, ms. @defaultValue 5000 */
  resetTimeout?: number;
  /** Calls in the window before the percentage counts. @defaultValue 10 */
  volumeThreshold?: number;
}

export interface WorkerStats {
  predictions: number;
  errors: number;
  abstains: number;
  deadLetters: number;
  /** Dead letters by reason code (INVALID_TIMESTAMP, INVALID_DEADLINE, OVERSIZED, ...). */
  deadLettersByReason: Record<string, number>;
  /** Answers of the model that were no valid output (published as ERROR predictions; also in `errors`). */
  invalidOutputs: number;
}

export function emptyStats(): WorkerStats {
  return { predictions: 0, errors: 0, abstains: 0, deadLetters: 0, deadLettersByReason: {}, invalidOutputs: 0 };
}

/** An accepted feature event and when the worker read it. */
export interface AcceptedEvent {
  event: FeatureEvent;
  receivedAtMs: number;
}

/**
 * One model inside a worker: its runner, its own breaker, its own checks, stats and predictions. A
 * worker serving several models (co-located) holds one lane per model, so each model keeps the
 * outcomes it would have in a process of its own; only the fetch and the produce are shared.
 */
export class ModelLane {
  readonly stats: WorkerStats = emptyStats();
  /** The name its dead letters carry, as a worker of this model alone would write it. */
  readonly service: string;
  readonly breaker: CircuitBreaker<[readonly number[], string], ModelAnswer>;
  /** Around the runner's batch call, when it has one: one call (and one breaker outcome) per partition batch. */
  private readonly batchBreaker: CircuitBreaker<[readonly (readonly number[])[]], ModelAnswer[]> | undefined;
  private metrics: WorkerMetrics | undefined;

  constructor(
    readonly runner: ModelRunner,
    options: BreakerOptions,
    logger: Logger,
    private readonly concurrency: number,
  ) {
    this.service = `worker:${runner.modelId}`;
    const breakerOptions = {
      timeout: options.timeout ?? 1000,
      errorThresholdPercentage: options.errorThresholdPercentage ?? 50,
      resetTimeout: options.resetTimeout ?? 5000,
      volumeThreshold: options.volumeThreshold ?? 10,
      // Bad input says nothing about the model's health.
      errorFilter: (error: unknown) => error instanceof EnsembleError && !error.retriable,
      name: runner.modelId,
      // Per-call latency lists cost memory on every call, and opossum sorts them all on every failure.
      rollingPercentilesEnabled: false,
    };
    this.breaker = new CircuitBreaker((features: readonly number[], requestId: string) => runner.predict(features, requestId), breakerOptions);
    const batch = runner.predictBatch?.bind(runner);
    this.batchBreaker = batch === undefined ? undefined : new CircuitBreaker(batch, breakerOptions);
    const transition = (state: string) => () => logger.warn(`model breaker ${state}`, { model: runner.modelId });
    for (const breaker of [this.breaker, this.batchBreaker]) {
      breaker?.on('open', transition('open'));
      breaker?.on('halfOpen', transition('half-open'));
      breaker?.on('close', transition('closed'));
    }
  }

  get modelId(): string {
    return this.runner.modelId;
  }

  /** Reports this model's breaker transitions and call times to the worker's instruments. */
  watch(metrics: WorkerMetrics): void {
    this.metrics = metrics;
    for (const breaker of [this.breaker, this.batchBreaker]) if (breaker !== undefined) metrics.watchBreaker(this.modelId, breaker);
  }

  /** The checks that depend on the model: throws the InvalidMessageError its dead letter carries. */
  check(event: FeatureEvent): void {
    const expected = this.runner.featureCount;
    if (expected !== undefined && event.features.length !== expected) {
      throw new InvalidMessageError('WRONG_FEATURE_COUNT', `${event.features.length} features, model ${this.runner.modelId} takes ${expected}`);
    }
    if (!event.features.every(Number.isFinite)) throw new InvalidMessageError('INVALID_VALUE', 'features must be finite numbers');
  }

  countDeadLetter(code: string): void {
    this.stats.deadLetters++;
    this.stats.deadLettersByReason[code] = (this.stats.deadLettersByReason[code] ?? 0) + 1;
  }

  /** One prediction per accepted event, in order: one batch call when the runner has one, else a call each. */
  predictAll(accepted: readonly AcceptedEvent[]): Promise<Prediction[]> {
    return this.batchBreaker === undefined
      ? mapLimited(accepted, this.concurrency, ({ event, receivedAtMs }) => this.predict(event, receivedAtMs))
      : this.predictBatch(this.batchBreaker, accepted);
  }

  shutdown(): void {
    this.breaker.shutdown();
    this.batchBreaker?.shutdown();
  }

  private async predict(event: FeatureEvent, receivedAtMs: number): Promise<Prediction> {
    const started = performance.now();
    try {
      const answer = await this.breaker.fire(event.features, event.requestId);
      return this.answered(event, receivedAtMs, answer, started);
    } catch (error) {
      return this.failed(event, receivedAtMs, error, started);
    } finally {
      this.metrics?.call(this.modelId, performance.now() - started);
    }
  }

  /** One model call for a partition's batch; each prediction's inferenceMicros is the whole call's time. */
  private async predictBatch(
    breaker: CircuitBreaker<[readonly (readonly number[])[]], ModelAnswer[]>,
    accepted: readonly AcceptedEvent[],
  ): Promise<Prediction[]> {
    if (accepted.length === 0) return [];
    const started = performance.now();
    try {
      const answers = await breaker.fire(accepted.map(({ event }) => event.features));
      if (answers.length !== accepted.length) throw new Error(`model answered ${answers.length} of ${accepted.length} rows`);
      return accepted.map(({ event, receivedAtMs }, i) => this.answered(event, receivedAtMs, answers[i]!, started));
    } catch (error) {
      return accepted.map(({ event, receivedAtMs }) => this.failed(event, receivedAtMs, error, started));
    } finally {
      this.metrics?.call(this.modelId, performance.now() - started);
    }
  }

  private base(event: FeatureEvent, receivedAtMs: number) {
    const { runner } = this;
    return {
      requestId: event.requestId,
      modelId: runner.modelId,
      modelVersion: runner.modelVersion,
      requestCreatedAtMs: event.createdAtMs,
      deadlineMs: event.deadlineMs,
      receivedAtMs,
    };
  }

  private answered(event: FeatureEvent, receivedAtMs: number, answer: ModelAnswer, started: number): Prediction {
    const base = this.base(event, receivedAtMs);
    const inferenceMicros = Math.round((performance.now() - started) * 1000);
    const problem = 'value' in answer ? valueProblem(answer.value) : probabilitiesProblem(answer.probabilities, this.runner.classCount);
    if (problem !== undefined) {
      // The model's own fault for this request: answered as an error, never passed downstream as a result.
      this.stats.errors++;
      this.stats.invalidOutputs++;
      return { ...base, status: 'ERROR', probabilities: null, value: null, error: `invalid model output: ${problem}`, inferenceMicros };
    }
    this.stats.predictions++;
    return 'value' in answer
      ? { ...base, status: 'OK', probabilities: null, value: answer.value, error: null, inferenceMicros }
      : { ...base, status: 'OK', probabilities: answer.probabilities, value: null, error: null, inferenceMicros };
  }

  private failed(event: FeatureEvent, receivedAtMs: number, error: unknown, started: number): Prediction {
    const inferenceMicros = Math.round((performance.now() - started) * 1000);
    const open = (error as { code?: string }).code === 'EOPENBREAKER';
    if (open) this.stats.abstains++;
    else this.stats.errors++;
    return {
      ...this.base(event, receivedAtMs),
      status: open ? 'ABSTAIN' : 'ERROR',
      probabilities: null,
      value: null,
      error: open ? 'circuit open' : describeError(error).slice(0, 1000),
      inferenceMicros,
    };
  }
}

/** Like Promise.all over `items`, with at most `limit` calls in flight; keeps the order. */
async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}
