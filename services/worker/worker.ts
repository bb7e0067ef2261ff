import CircuitBreaker from 'opossum';
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage, Message, Producer } from 'kafkajs';
import { codecs } from '../shared/codec.js';
import { checkSize, deadLetterMessage, requestKey } from '../shared/dead-letters.js';
import { describeError, EnsembleError, InvalidMessageError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { FeatureEvent, Prediction } from '../shared/records.js';
import { GROUPS, type Topics } from '../shared/topics.js';
import type { ModelAnswer, ModelRunner } from './model-runner.js';

export interface WorkerOptions {
  kafka: Kafka;
  topics: Topics;
  runner: ModelRunner;
  logger: Logger;
  /** @defaultValue the model's own group, so every model sees every request */
  groupId?: string;
  /** Feature events larger than this go to the dead-letter topic unread. @defaultValue 1 MiB */
  maxMessageBytes?: number;
  /** Model calls in flight at once within a batch (remote models). @defaultValue 64 */
  concurrency?: number;
  breaker?: BreakerOptions;
}

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
}

/**
 * A model worker: consumes feature events in its model's own consumer group, calls the model behind
 * a circuit breaker, and publishes one prediction per request keyed by request id. A failed or
 * refused call is published at once as ERROR or ABSTAIN, so the aggregator need not wait for the
 * deadline. Offsets are committed only after the batch's predictions are acknowledged (at least once;
 * the aggregator drops duplicates).
 */
export class ModelWorker {
  readonly stats: WorkerStats = { predictions: 0, errors: 0, abstains: 0, deadLetters: 0 };
  readonly breaker: CircuitBreaker<[readonly number[]], ModelAnswer>;
  private readonly consumer: Consumer;
  private readonly producer: Producer;
  private readonly service: string;

  constructor(private readonly o: WorkerOptions) {
    const { runner } = o;
    this.service = `worker:${runner.modelId}`;
    this.consumer = o.kafka.consumer({ groupId: o.groupId ?? GROUPS.worker(runner.modelId), maxWaitTimeInMs: 20 });
    this.producer = o.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    this.breaker = new CircuitBreaker((features: readonly number[]) => runner.predict(features), {
      timeout: o.breaker?.timeout ?? 1000,
      errorThresholdPercentage: o.breaker?.errorThresholdPercentage ?? 50,
      resetTimeout: o.breaker?.resetTimeout ?? 5000,
      volumeThreshold: o.breaker?.volumeThreshold ?? 10,
      // Bad input says nothing about the model's health.
      errorFilter: (error: unknown) => error instanceof EnsembleError && !error.retriable,
      name: runner.modelId,
    });
    const transition = (state: string) => () => o.logger.warn(`model breaker ${state}`, { model: runner.modelId });
    this.breaker.on('open', transition('open'));
    this.breaker.on('halfOpen', transition('half-open'));
    this.breaker.on('close', transition('closed'));
  }

  async start(): Promise<void> {
    await this.producer.connect();
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: this.o.topics.features, fromBeginning: true });
    await this.consumer.run({ autoCommit: false, eachBatch: (payload) => this.onBatch(payload) });
    this.o.logger.info('worker started', { model: this.o.runner.modelId, version: this.o.runner.modelVersion });
  }

  async stop(): Promise<void> {
    await this.consumer.disconnect();
    await this.producer.disconnect();
    this.breaker.shutdown();
    await this.o.runner.close?.();
  }

  private async onBatch({ batch, isStale }: EachBatchPayload): Promise<void> {
    if (batch.messages.length === 0 || isStale()) return;
    const { topic, partition } = batch;
    const predictions: Message[] = [];
    const deadLetters: Message[] = [];
    const accepted: { event: FeatureEvent; receivedAtMs: number }[] = [];
    for (const m of batch.messages) {
      const receivedAtMs = Date.now();
      try {
        accepted.push({ event: this.accept(m), receivedAtMs });
      } catch (error) {
        if (!(error instanceof InvalidMessageError)) throw error;
        deadLetters.push(deadLetterMessage({ topic, partition, offset: m.offset, key: m.key, value: m.value }, error, this.service, receivedAtMs));
        this.o.logger.warn('dead letter', { topic, partition, offset: m.offset, code: error.code, reason: error.message });
      }
    }
    const results = await mapLimited(accepted, this.o.concurrency ?? 64, ({ event, receivedAtMs }) => this.predict(event, receivedAtMs));
    for (const p of results) predictions.push({ key: p.requestId, value: codecs.prediction.encode(p), headers: codecs.prediction.headers });

    await this.producer.sendBatch({
      acks: -1,
      topicMessages: [
        { topic: this.o.topics.predictions, messages: predictions },
        { topic: this.o.topics.deadLetters, messages: deadLetters },
      ].filter((t) => t.messages.length > 0),
    });
    const last = batch.messages[batch.messages.length - 1];
    await this.consumer.commitOffsets([{ topic, partition, offset: (BigInt(last?.offset ?? '0') + 1n).toString() }]);
    this.stats.deadLetters += deadLetters.length;
  }

  private accept(m: KafkaMessage): FeatureEvent {
    checkSize(m.value, this.o.maxMessageBytes ?? 1_048_576);
    const key = requestKey(m.key);
    const event = codecs.featureEvent.decode(m.value, m.headers);
    if (event.requestId !== key) throw new InvalidMessageError('KEY_MISMATCH', `message key "${key}" differs from requestId "${event.requestId}"`);
    const expected = this.o.runner.featureCount;
    if (expected !== undefined && event.features.length !== expected) {
      throw new InvalidMessageError('WRONG_FEATURE_COUNT', `${event.features.length} features, model ${this.o.runner.modelId} takes ${expected}`);
    }
    if (!event.features.every(Number.isFinite)) throw new InvalidMessageError('INVALID_VALUE', 'features must be finite numbers');
    return event;
  }

  private async predict(event: FeatureEvent, receivedAtMs: number): Promise<Prediction> {
    const { runner } = this.o;
    const started = process.hrtime.bigint();
    const base = {
      requestId: event.requestId,
      modelId: runner.modelId,
      modelVersion: runner.modelVersion,
      requestCreatedAtMs: event.createdAtMs,
      deadlineMs: event.deadlineMs,
      receivedAtMs,
    };
    try {
      const answer = await this.breaker.fire(event.features);
      const inferenceMicros = Number((process.hrtime.bigint() - started) / 1000n);
      this.stats.predictions++;
      return 'value' in answer
        ? { ...base, status: 'OK', probabilities: null, value: answer.value, error: null, inferenceMicros }
        : { ...base, status: 'OK', probabilities: answer.probabilities, value: null, error: null, inferenceMicros };
    } catch (error) {
      const inferenceMicros = Number((process.hrtime.bigint() - started) / 1000n);
      const open = (error as { code?: string }).code === 'EOPENBREAKER';
      if (open) this.stats.abstains++;
      else this.stats.errors++;
      return {
        ...base,
        status: open ? 'ABSTAIN' : 'ERROR',
        probabilities: null,
        value: null,
        error: open ? 'circuit open' : describeError(error),
        inferenceMicros,
      };
    }
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
