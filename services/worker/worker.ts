import CircuitBreaker from 'opossum';
import type { Registry } from 'prom-client';
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage, Message, Producer, TopicMessages } from 'kafkajs';
import { codecs } from '../shared/codec.js';
import { type FatalHandler, logFatal, watchConsumer } from '../shared/consumer-crash.js';
import { ConfigError, describeError, EnsembleError, InvalidMessageError } from '../shared/errors.js';
import { decodeKeyed, rejectMessage } from '../shared/ingress.js';
import { fetchOptions, retryForever } from '../shared/kafka.js';
import type { Logger } from '../shared/log.js';
import { probabilitiesProblem, valueProblem } from '../shared/model-output.js';
import { PoisonGuard } from '../shared/poison-guard.js';
import type { FetchSettings } from '../shared/runtime-config.js';
import type { FeatureEvent, Prediction } from '../shared/records.js';
import { GROUPS, type Topics } from '../shared/topics.js';
import { REQUEST_LIMITS, type RequestLimits } from './config.js';
import type { ModelAnswer, ModelRunner } from './model-runner.js';
import { PeriodicOffsetCommits } from './offset-commits.js';
import { WorkerMetrics } from './worker-metrics.js';

export interface WorkerOptions {
  kafka: Kafka;
  topics: Topics;
  runner: ModelRunner;
  logger: Logger;
  /** @defaultValue the model's own group, so every model sees every request */
  groupId?: string;
  /** Feature events larger than this go to the dead-letter topic unread. @defaultValue REQUEST_LIMITS */
  maxMessageBytes?: number;
  /** Bounds of createdAtMs and deadlineMs (maxMessageBytes above wins over its field). @defaultValue REQUEST_LIMITS */
  limits?: Partial<RequestLimits>;
  /** Called when the consumer is gone for good. @defaultValue logs it */
  onFatal?: FatalHandler;
  /** Model calls in flight at once within a batch (remote models). @defaultValue 64 */
  concurrency?: number;
  breaker?: BreakerOptions;
  /** @defaultValue FETCH_DEFAULTS */
  fetch?: FetchSettings;
  /** Consumed offsets are committed at most this often, ms. @defaultValue 1000 */
  commitIntervalMs?: number;
  /** Consumer group session timeout: how soon a dead worker's partitions move, ms. @defaultValue 4000 */
  sessionTimeoutMs?: number;
  /** Where the worker's instruments are registered (its /metrics). @defaultValue a registry of its own */
  metrics?: Registry;
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
  /** Dead letters by reason code (INVALID_TIMESTAMP, INVALID_DEADLINE, OVERSIZED, ...). */
  deadLettersByReason: Record<string, number>;
  /** Answers of the model that were no valid output (published as ERROR predictions; also in `errors`). */
  invalidOutputs: number;
}

/** Most partitions whose batches are handled at the same time (kafkajs starts a worker for each). */
const PARTITIONS_AT_ONCE = 16;

/** Most feature-event bytes fetched per partition at once (a few hundred requests). */
const MAX_FETCH_BYTES = 64 * 1024;

/** What one partition's batch hands to its round: its predictions, dead letters and next offset. */
interface RoundBatch {
  topic: string;
  partition: number;
  offset: string;
  predictions: Message[];
  deadLetters: Message[];
}

/**
 * A model worker: consumes feature events in its model's own consumer group, calls the model behind
 * a circuit breaker, and publishes one prediction per request keyed by request id. A failed or
 * refused call is published at once as ERROR or ABSTAIN, so the aggregator need not wait for the
 * deadline. Offsets are committed only after the batch's predictions are acknowledged, once a
 * second (at least once; the aggregator drops duplicates).
 */
export class ModelWorker {
  readonly stats: WorkerStats = { predictions: 0, errors: 0, abstains: 0, deadLetters: 0, deadLettersByReason: {}, invalidOutputs: 0 };
  readonly breaker: CircuitBreaker<[readonly number[], string], ModelAnswer>;
  readonly metrics: WorkerMetrics;
  /** Around the runner's batch call, when it has one: one call (and one breaker outcome) per partition batch. */
  private readonly batchBreaker: CircuitBreaker<[readonly (readonly number[])[]], ModelAnswer[]> | undefined;
  private readonly consumer: Consumer;
  private readonly producer: Producer;
  private readonly service: string;
  private readonly round = new FetchRound<RoundBatch>((batches) => this.flush(batches));
  private readonly commits: PeriodicOffsetCommits;
  private readonly guard: PoisonGuard;
  private readonly limits: RequestLimits;
  private running = false;

  constructor(private readonly o: WorkerOptions) {
    const { runner } = o;
    this.service = `worker:${runner.modelId}`;
    this.consumer = o.kafka.consumer({
      groupId: o.groupId ?? GROUPS.worker(runner.modelId),
      ...fetchOptions(o.fetch),
      // A round's predictions go out only once all of it is predicted: a backlog fetch of the default
      // 1 MiB per partition (thousands of requests) would hold them back for seconds with a slow model.
      maxBytesPerPartition: MAX_FETCH_BYTES,
      // A dead worker's partitions move to its peers after this (kafkajs's default is 30 s).
      sessionTimeout: o.sessionTimeoutMs ?? 4000,
      heartbeatInterval: 500,
    });
    watchConsumer(this.consumer, this.service, o.logger, o.onFatal ?? logFatal(o.logger));
    this.guard = new PoisonGuard(o.logger, this.service);
    this.limits = { ...REQUEST_LIMITS, ...o.limits, ...(o.maxMessageBytes === undefined ? {} : { maxMessageBytes: o.maxMessageBytes }) };
    this.producer = o.kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: retryForever({ initialRetryTime: 100, maxRetryTime: 2000 }) });
    this.commits = new PeriodicOffsetCommits(
      (offsets) => this.consumer.commitOffsets(offsets),
      o.commitIntervalMs ?? 1000,
      (error) => o.logger.warn('offset commit failed; retried with the next one', { error: describeError(error) }),
    );
    this.consumer.on(this.consumer.events.GROUP_JOIN, ({ payload }) => this.commits.retain(new Map(Object.entries(payload.memberAssignment))));
    const breakerOptions = {
      timeout: o.breaker?.timeout ?? 1000,
      errorThresholdPercentage: o.breaker?.errorThresholdPercentage ?? 50,
      resetTimeout: o.breaker?.resetTimeout ?? 5000,
      volumeThreshold: o.breaker?.volumeThreshold ?? 10,
      // Bad input says nothing about the model's health.
      errorFilter: (error: unknown) => error instanceof EnsembleError && !error.retriable,
      name: runner.modelId,
      // Per-call latency lists cost memory on every call, and opossum sorts them all on every failure.
      rollingPercentilesEnabled: false,
    };
    this.breaker = new CircuitBreaker((features: readonly number[], requestId: string) => runner.predict(features, requestId), breakerOptions);
    const batch = runner.predictBatch?.bind(runner);
    this.batchBreaker = batch === undefined ? undefined : new CircuitBreaker(batch, breakerOptions);
    const transition = (state: string) => () => o.logger.warn(`model breaker ${state}`, { model: runner.modelId });
    this.metrics = new WorkerMetrics(runner.modelId, this.stats, o.metrics);
    for (const breaker of [this.breaker, this.batchBreaker]) {
      if (breaker !== undefined) this.metrics.watchBreaker(breaker);
      breaker?.on('open', transition('open'));
      breaker?.on('halfOpen', transition('half-open'));
      breaker?.on('close', transition('closed'));
    }
  }

  async start(): Promise<void> {
    await this.checkPartitions();
    await this.producer.connect();
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: this.o.topics.features, fromBeginning: true });
    // A fetch's batches (one per partition) are handled at once and flushed together.
    await this.consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: PARTITIONS_AT_ONCE,
      eachBatchAutoResolve: false,
      eachBatch: (payload) => this.guard.run(payload, (p) => this.onBatch(p)),
    });
    this.commits.start();
    this.running = true;
    this.o.logger.info('worker started', { model: this.o.runner.modelId, version: this.o.runner.modelVersion });
  }

  async stop(): Promise<void> {
    // Finish what was fetched and commit it while still in the group, so a restart repeats nothing.
    if (this.running) {
      this.consumer.pause([{ topic: this.o.topics.features }]);
      await this.round.drained();
      await this.commits.stop();
    }
    await this.consumer.disconnect();
    await this.producer.disconnect();
    this.breaker.shutdown();
    this.batchBreaker?.shutdown();
    await this.o.runner.close?.();
  }

  private async onBatch({ batch, isStale }: EachBatchPayload): Promise<void> {
    if (batch.messages.length === 0 || isStale()) return;
    this.metrics.batch(batch.partition, batch.messages.length, batch.offsetLag());
    this.round.enter();
    let joined = false;
    try {
      const { topic, partition } = batch;
      const predictions: Message[] = [];
      const deadLetters: Message[] = [];
      const accepted: { event: FeatureEvent; receivedAtMs: number }[] = [];
      const reasons: string[] = [];
      for (const m of batch.messages) {
        const receivedAtMs = Date.now();
        try {
          accepted.push({ event: this.accept(m, receivedAtMs), receivedAtMs });
        } catch (error) {
          if (!(error instanceof InvalidMessageError)) throw error;
          deadLetters.push(rejectMessage(batch, m, error, this.service, receivedAtMs, this.o.logger));
          reasons.push(error.code);
        }
      }
      const results =
        this.batchBreaker === undefined
          ? await mapLimited(accepted, this.o.concurrency ?? 64, ({ event, receivedAtMs }) => this.predict(event, receivedAtMs))
          : await this.predictBatch(this.batchBreaker, accepted);
      // The feature event's partition number: every model's answer to a request meets on one
      // predictions partition whatever partitioner wrote the request (checkPartitions).
      for (const p of results) predictions.push({ key: p.requestId, value: codecs.prediction.encode(p), headers: codecs.prediction.headers, partition });
      const last = batch.messages[batch.messages.length - 1];
      joined = true;
      await this.round.join({ topic, partition, offset: (BigInt(last?.offset ?? '0') + 1n).toString(), predictions, deadLetters });
      this.stats.deadLetters += deadLetters.length;
      for (const code of reasons) this.stats.deadLettersByReason[code] = (this.stats.deadLettersByReason[code] ?? 0) + 1;
    } finally {
      if (!joined) this.round.leave();
    }
  }

  /** Sends a round's predictions and dead letters (one request unless large), then hands its offsets to the committer. */
  private async flush(batches: readonly RoundBatch[]): Promise<void> {
    const outgoing = [
      ...batches.flatMap((b) => b.predictions.map((message) => ({ topic: this.o.topics.predictions, message }))),
      ...batches.flatMap((b) => b.deadLetters.map((message) => ({ topic: this.o.topics.deadLetters, message }))),
    ];
    for (const topicMessages of requestSlices(outgoing)) await this.producer.sendBatch({ acks: -1, topicMessages });
    await this.commits.done(batches.map(({ topic, partition, offset }) => ({ topic, partition, offset })));
  }

  private accept(m: KafkaMessage, nowMs: number): FeatureEvent {
    const event = decodeKeyed(m, codecs.featureEvent, this.limits.maxMessageBytes);
    // A stale createdAtMs is answered: whether an old request still counts is the aggregator's call.
    if (!Number.isFinite(event.createdAtMs) || event.createdAtMs <= 0 || event.createdAtMs > nowMs + this.limits.maxClockSkewMs) {
      throw new InvalidMessageError('INVALID_TIMESTAMP', `createdAtMs ${event.createdAtMs} is not a time up to ${this.limits.maxClockSkewMs} ms from now (${nowMs})`);
    }
    if (event.deadlineMs !== null && (event.deadlineMs <= 0 || event.deadlineMs > this.limits.maxDeadlineMs)) {
      throw new InvalidMessageError('INVALID_DEADLINE', `deadlineMs ${event.deadlineMs} is not between 1 and ${this.limits.maxDeadlineMs}`);
    }
    const expected = this.o.runner.featureCount;
    if (expected !== undefined && event.features.length !== expected) {
      throw new InvalidMessageError('WRONG_FEATURE_COUNT', `${event.features.length} features, model ${this.o.runner.modelId} takes ${expected}`);
    }
    if (!event.features.every(Number.isFinite)) throw new InvalidMessageError('INVALID_VALUE', 'features must be finite numbers');
    return event;
  }

  private async predict(event: FeatureEvent, receivedAtMs: number): Promise<Prediction> {
    const started = performance.now();
    try {
      const answer = await this.breaker.fire(event.features, event.requestId);
      return this.answered(event, receivedAtMs, answer, started);
    } catch (error) {
      return this.failed(event, receivedAtMs, error, started);
    } finally {
      this.metrics.call(performance.now() - started);
    }
  }

  /** One model call for a partition's batch; each prediction's inferenceMicros is the whole call's time. */
  private async predictBatch(
    breaker: CircuitBreaker<[readonly (readonly number[])[]], ModelAnswer[]>,
    accepted: readonly { event: FeatureEvent; receivedAtMs: number }[],
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
      this.metrics.call(performance.now() - started);
    }
  }

  private base(event: FeatureEvent, receivedAtMs: number) {
    const { runner } = this.o;
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
    const problem = 'value' in answer ? valueProblem(answer.value) : probabilitiesProblem(answer.probabilities, this.o.runner.classCount);
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

  /**
   * Predictions go to the partition number of the feature event they answer, so the predictions
   * topic needs at least as many partitions as the features topic: refused at start otherwise.
   */
  private async checkPartitions(): Promise<void> {
    const { features, predictions } = this.o.topics;
    const admin = this.o.kafka.admin();
    await admin.connect();
    try {
      const meta = await admin.fetchTopicMetadata({ topics: [features, predictions] });
      const count = (topic: string) => meta.topics.find((t) => t.name === topic)?.partitions.length ?? 0;
      if (count(predictions) < count(features)) {
        throw new ConfigError(
          `topic ${predictions} has ${count(predictions)} partitions, fewer than ${features} (${count(features)}): a worker writes each prediction to its feature event's partition number; give both topics the same partition count`,
        );
      }
    } finally {
      await admin.disconnect();
    }
  }
}

/**
 * The broker refuses a record batch larger than its max.message.bytes (1 MiB by default), and a
 * backlog fetch (up to 1 MiB per partition) turns into more bytes of predictions than it held:
 * larger rounds are sent as several requests of at most this many bytes.
 */
const MAX_REQUEST_BYTES = 512 * 1024;

/** Messages grouped by topic, in slices of at most MAX_REQUEST_BYTES of keys and values. */
function requestSlices(outgoing: readonly { topic: string; message: Message }[]): TopicMessages[][] {
  const slices: TopicMessages[][] = [];
  let current = new Map<string, Message[]>();
  let bytes = 0;
  const close = () => {
    if (current.size > 0) slices.push([...current].map(([topic, messages]) => ({ topic, messages })));
    current = new Map();
    bytes = 0;
  };
  for (const { topic, message } of outgoing) {
    const size = byteLength(message.value) + byteLength(message.key);
    if (bytes > 0 && bytes + size > MAX_REQUEST_BYTES) close();
    const list = current.get(topic);
    if (list === undefined) current.set(topic, [message]);
    else list.push(message);
    bytes += size;
  }
  close();
  return slices;
}

function byteLength(data: Buffer | string | null | undefined): number {
  if (data === null || data === undefined) return 0;
  return typeof data === 'string' ? Buffer.byteLength(data) : data.length;
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

/**
 * Gathers the batches handled at the same time (kafkajs hands over one fetch, one batch per
 * partition, and fetches again once all are done) into one flush: one produce request and one
 * offset commit per fetch instead of one of each per partition. A round closes when every batch in
 * flight has joined it or left without joining; rounds flush one after another. A failed flush
 * fails every batch of its round, which kafkajs then processes again from the committed offsets.
 */
class FetchRound<T> {
  private inFlight = 0;
  private members: T[] = [];
  private waiters: { resolve: () => void; reject: (error: unknown) => void }[] = [];
  private flushing: Promise<void> = Promise.resolve();

  constructor(private readonly flush: (members: T[]) => Promise<void>) {}

  /** Resolves once no batch is in flight and every round is flushed (the consumer is paused). */
  async drained(): Promise<void> {
    while (this.inFlight > 0 || this.members.length > 0) await new Promise((r) => setTimeout(r, 10));
    await this.flushing;
  }

  /** A batch started; it must then `join` or `leave`. */
  enter(): void {
    this.inFlight++;
  }

  /** A batch ended without joining (it failed before its flush). */
  leave(): void {
    this.inFlight--;
    this.close();
  }

  /** Resolves once the round holding `member` is flushed. */
  join(member: T): Promise<void> {
    return new Promise((resolve, reject) => {
      this.members.push(member);
      this.waiters.push({ resolve, reject });
      this.inFlight--;
      this.close();
    });
  }

  private close(): void {
    if (this.inFlight > 0 || this.members.length === 0) return;
    const members = this.members;
    const waiters = this.waiters;
    this.members = [];
    this.waiters = [];
    this.flushing = this.flushing
      .then(() => this.flush(members))
      .then(
        () => waiters.forEach((w) => { w.resolve(); }),
        (error: unknown) => waiters.forEach((w) => { w.reject(error); }),
      );
  }
}
