import type { Registry } from 'prom-client';
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage, Message, Producer, TopicMessages } from 'kafkajs';
import { codecs } from '../shared/codec.js';
import { type FatalHandler, logFatal, watchConsumer } from '../shared/consumer-crash.js';
import { ConfigError, describeError, InvalidMessageError } from '../shared/errors.js';
import { decodeKeyed, rejectMessage } from '../shared/ingress.js';
import { fetchOptions, retryForever } from '../shared/kafka.js';
import type { Logger } from '../shared/log.js';
import { PoisonGuard } from '../shared/poison-guard.js';
import { FETCH_DEFAULTS, type FetchSettings } from '../shared/runtime-config.js';
import type { FeatureEvent } from '../shared/records.js';
import { GROUPS, type Topics } from '../shared/topics.js';
import { REQUEST_LIMITS, type RequestLimits } from './config.js';
import { type AcceptedEvent, type BreakerOptions, emptyStats, ModelLane, type WorkerStats } from './model-lane.js';
import type { ModelRunner } from './model-runner.js';
import { PeriodicOffsetCommits } from '../shared/periodic-offset-commits.js';
import { WorkerMetrics } from './worker-metrics.js';

export type { BreakerOptions, WorkerStats } from './model-lane.js';

export interface WorkerOptions {
  kafka: Kafka;
  topics: Topics;
  /**
   * The model, or several served from one consumer (co-located): one fetch and one produce for
   * all, each model with its own id, breaker, checks, dead letters, stats and predictions.
   */
  runner: ModelRunner | readonly ModelRunner[];
  logger: Logger;
  /** @defaultValue the model's own group (co-located: the models' ids joined by `+`), so every model sees every request */
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
  /** One per model, in the order given. */
  readonly lanes: readonly ModelLane[];
  readonly metrics: WorkerMetrics;
  private readonly consumer: Consumer;
  private readonly producer: Producer;
  private readonly service: string;
  /** The models' ids joined by `+`: names the group, the service and the logs. */
  private readonly modelIds: string;
  private readonly round = new FetchRound<RoundBatch>((batches) => this.flush(batches));
  private readonly commits: PeriodicOffsetCommits;
  private readonly guard: PoisonGuard;
  private readonly limits: RequestLimits;
  private running = false;

  constructor(private readonly o: WorkerOptions) {
    const runners: readonly ModelRunner[] = Array.isArray(o.runner) ? o.runner : [o.runner as ModelRunner];
    const ids = runners.map((r) => r.modelId);
    if (runners.length === 0) throw new ConfigError('a worker needs at least one model');
    if (new Set(ids).size !== ids.length) throw new ConfigError(`a worker serves each model once; given ${ids.join(', ')}`);
    this.lanes = runners.map((runner) => new ModelLane(runner, o.breaker ?? {}, o.logger, o.concurrency ?? 64));
    this.modelIds = ids.join('+');
    this.service = `worker:${this.modelIds}`;
    this.consumer = o.kafka.consumer({
      groupId: o.groupId ?? GROUPS.worker(this.modelIds),
      // A worker only needs its partitions back within its session timeout, so it heartbeats (and,
      // idle, polls) once a second: an idle worker sends two requests a second instead of six.
      ...fetchOptions(o.fetch ?? FETCH_DEFAULTS, 1000),
      // A round's predictions go out only once all of it is predicted: a backlog fetch of the default
      // 1 MiB per partition (thousands of requests) would hold them back for seconds with a slow model.
      maxBytesPerPartition: MAX_FETCH_BYTES,
      // A dead worker's partitions move to its peers after this (kafkajs's default is 30 s).
      sessionTimeout: o.sessionTimeoutMs ?? 4000,
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
    this.metrics = new WorkerMetrics(
      this.lanes.map((lane) => ({ model: lane.modelId, counts: lane.stats })),
      o.metrics,
    );
    for (const lane of this.lanes) lane.watch(this.metrics);
  }

  /** Totals over the models (one model: its own). */
  get stats(): WorkerStats {
    if (this.lanes.length === 1) return this.lanes[0]!.stats;
    const total = emptyStats();
    for (const { stats } of this.lanes) {
      for (const key of ['predictions', 'errors', 'abstains', 'deadLetters', 'invalidOutputs'] as const) total[key] += stats[key];
      for (const [code, n] of Object.entries(stats.deadLettersByReason)) total.deadLettersByReason[code] = (total.deadLettersByReason[code] ?? 0) + n;
    }
    return total;
  }

  /** The first model's breaker (the only one, unless co-located). */
  get breaker(): ModelLane['breaker'] {
    return this.lanes[0]!.breaker;
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
    this.o.logger.info('worker started', { model: this.modelIds, version: this.lanes.map((l) => l.runner.modelVersion).join('+') });
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
    for (const lane of this.lanes) lane.shutdown();
    for (const lane of this.lanes) await lane.runner.close?.();
  }

  private async onBatch({ batch, isStale }: EachBatchPayload): Promise<void> {
    if (batch.messages.length === 0 || isStale()) return;
    this.metrics.batch(batch.partition, batch.messages.length, batch.offsetLag());
    this.round.enter();
    let joined = false;
    try {
      const { topic, partition } = batch;
      const { accepted, deadLetters, refused } = this.sort(batch);
      // Side by side: a model that fails answers ERROR at once and holds no other model's answers.
      const results = (await Promise.all(this.lanes.map((lane, i) => lane.predictAll(accepted[i]!)))).flat();
      // The feature event's partition number: every model's answer to a request meets on one
      // predictions partition whatever partitioner wrote the request (checkPartitions).
      const predictions: Message[] = results.map((p) => ({
        key: p.requestId,
        value: codecs.prediction.encode(p),
        headers: codecs.prediction.headers,
        partition,
      }));
      const last = batch.messages[batch.messages.length - 1];
      joined = true;
      await this.round.join({ topic, partition, offset: (BigInt(last?.offset ?? '0') + 1n).toString(), predictions, deadLetters });
      for (const { lane, code } of refused) lane.countDeadLetter(code);
    } finally {
      if (!joined) this.round.leave();
    }
  }

  /**
   * Each model's accepted events and every model's own dead letters, as separate workers would
   * write them: the shared checks refuse an event for all, a model's own (feature count) for it alone.
   */
  private sort(batch: EachBatchPayload['batch']) {
    const deadLetters: Message[] = [];
    const refused: { lane: ModelLane; code: string }[] = [];
    const accepted = this.lanes.map((): AcceptedEvent[] => []);
    for (const m of batch.messages) {
      const receivedAtMs = Date.now();
      const refuse = (lane: ModelLane, error: unknown) => {
        if (!(error instanceof InvalidMessageError)) throw error;
        deadLetters.push(rejectMessage(batch, m, error, lane.service, receivedAtMs, this.o.logger));
        refused.push({ lane, code: error.code });
      };
      let event: FeatureEvent;
      try {
        event = this.accept(m, receivedAtMs);
      } catch (error) {
        for (const lane of this.lanes) refuse(lane, error);
        continue;
      }
      this.lanes.forEach((lane, i) => {
        try {
          lane.check(event);
          accepted[i]!.push({ event, receivedAtMs });
        } catch (error) {
          refuse(lane, error);
        }
      });
    }
    return { accepted, deadLetters, refused };
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

  /** The checks every model shares (the model's own follow in ModelLane.check). */
  private accept(m: KafkaMessage, nowMs: number): FeatureEvent {
    const event = decodeKeyed(m, codecs.featureEvent, this.limits.maxMessageBytes);
    // A stale createdAtMs is answered: whether an old request still counts is the aggregator's call.
    if (!Number.isFinite(event.createdAtMs) || event.createdAtMs <= 0 || event.createdAtMs > nowMs + this.limits.maxClockSkewMs) {
      throw new InvalidMessageError(
        'INVALID_TIMESTAMP',
        `createdAtMs ${event.createdAtMs} is not a time up to ${this.limits.maxClockSkewMs} ms from now (${nowMs})`,
      );
    }
    if (event.deadlineMs !== null && (event.deadlineMs <= 0 || event.deadlineMs > this.limits.maxDeadlineMs)) {
      throw new InvalidMessageError('INVALID_DEADLINE', `deadlineMs ${event.deadlineMs} is not between 1 and ${this.limits.maxDeadlineMs}`);
    }
    return event;
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
        () =>
          waiters.forEach((w) => {
            w.resolve();
          }),
        (error: unknown) =>
          waiters.forEach((w) => {
            w.reject(error);
          }),
      );
  }
}
