import { IDEMPOTENT_RETRY } from '../shared/kafka.js';
import type { RedisClient } from '../shared/redis.js';
import type { Consumer, EachBatchPayload, Kafka, Message, Producer } from 'kafkajs';
import type { AggregatorConfig } from '../core/ensemble-config.js';
import { codecs } from '../shared/codec.js';
import { type FatalHandler, logFatal, watchConsumer } from '../shared/consumer-crash.js';
import { describeError, InvalidMessageError } from '../shared/errors.js';
import { rejectMessage } from '../shared/ingress.js';
import type { Logger } from '../shared/log.js';
import { FETCH_MAX_BYTES } from '../shared/message-limits.js';
import { PoisonGuard } from '../shared/poison-guard.js';
import type { RedisKeys } from '../shared/redis-keys.js';
import { GROUPS, type Topics } from '../shared/topics.js';
import type { EvaluatorSettings } from './config.js';
import { EvaluationIngress } from './evaluation-ingress.js';
import { type EventEntry, EvaluatorStore, type ScoredSample, type Unscored } from './evaluator-store.js';
import { ENSEMBLE } from './event-figures.js';
import { decayPerLabel } from '../core/learned-weights.js';
import { MetricsEndpoint } from './prometheus.js';
import { buildReport, type EvaluationReport } from './report.js';
import { classificationSample, regressionSample, sampleLoss } from './rolling-metrics.js';
import { decodeAnswer } from './stored-answers.js';

export interface EvaluatorOptions {
  kafka: Kafka;
  redis: RedisClient;
  keys: RedisKeys;
  topics: Topics;
  /** The aggregator's config: the task, the class order and the models to evaluate. */
  config: AggregatorConfig;
  settings: EvaluatorSettings;
  instanceId: string;
  logger: Logger;
  /** Consumer group; defaults to GROUPS.evaluator. */
  groupId?: string;
  /** Called when the consumer is gone for good. @defaultValue logs it */
  onFatal?: FatalHandler;
}

/** Running totals of this instance since start, for reports and tests. */
export interface EvaluatorStats {
  predictions: number;
  fused: number;
  labels: number;
  /** Labelled answers this instance added to the windows. */
  scored: number;
  /** Predictions and fused results that fail their checks (the aggregator dead-letters those). */
  skipped: number;
  deadLetters: number;
  batches: number;
  snapshots: number;
}

/**
 * The evaluator. It reads predictions, fused results and labels in its own consumer group, keeps each
 * request's answers in Redis until the label arrives (in either order), and adds every labelled answer
 * to its subject's rolling window; label-free figures (latency, completeness, late answers) are
 * counted on arrival. Every `metricsIntervalMs` it computes a snapshot from Redis alone, publishes it
 * on the metrics topic, stores it for the learned-weight readers and serves it to Prometheus. All
 * state is in Redis and every write is idempotent, so offsets are committed after the writes
 * (at least once) and instances can restart or run side by side.
 */
export class Evaluator {
  readonly stats: EvaluatorStats = { predictions: 0, fused: 0, labels: 0, scored: 0, skipped: 0, deadLetters: 0, batches: 0, snapshots: 0 };
  private readonly consumer: Consumer;
  private readonly guard: PoisonGuard;
  private readonly producer: Producer;
  private readonly store: EvaluatorStore;
  private readonly ingress: EvaluationIngress;
  private readonly endpoint = new MetricsEndpoint();
  private readonly models: readonly string[];
  private readonly groupId: string;
  private timer: NodeJS.Timeout | undefined;
  private publishing: Promise<unknown> | undefined;
  private port: number | undefined;

  constructor(private readonly o: EvaluatorOptions) {
    this.groupId = o.groupId ?? GROUPS.evaluator;
    this.consumer = o.kafka.consumer({ groupId: this.groupId, maxWaitTimeInMs: 100, maxBytes: FETCH_MAX_BYTES });
    watchConsumer(this.consumer, 'evaluator', o.logger, o.onFatal ?? logFatal(o.logger));
    this.guard = new PoisonGuard(o.logger, 'evaluator');
    this.producer = o.kafka.producer({ idempotent: true, retry: IDEMPOTENT_RETRY, maxInFlightRequests: 1 });
    this.models = o.config.models.map((m) => m.id);
    this.store = new EvaluatorStore(o.redis, o.keys, {
      window: o.settings.window,
      eventWindow: o.settings.eventWindow,
      requestTtlMs: o.settings.stateTtlMs,
      decay: decayPerLabel(o.settings.learning.halfLifeLabels),
    });
    this.ingress = new EvaluationIngress(o.config, o.settings.eventWindow);
  }

  async start(): Promise<void> {
    this.port = await this.endpoint.listen(this.o.settings.metricsPort);
    await this.producer.connect();
    await this.consumer.connect();
    const { predictions, fused, labels } = this.o.topics;
    await this.consumer.subscribe({ topics: [predictions, fused, labels], fromBeginning: true });
    await this.consumer.run({
      // Batches of three partitions at once: each script call is atomic and idempotent, so they may overlap.
      partitionsConsumedConcurrently: 3,
      eachBatchAutoResolve: false,
      eachBatch: (payload) => this.guard.run(payload, (p) => this.onBatch(p)),
    });
    this.timer = setInterval(() => {
      if (this.publishing !== undefined) return;
      this.publishing = this.publish()
        .catch((error: unknown) => this.o.logger.warn('metrics snapshot failed', { error: describeError(error) }))
        .finally(() => {
          this.publishing = undefined;
        });
    }, this.o.settings.metricsIntervalMs);
    this.o.logger.info('evaluator started', { group: this.groupId, window: this.o.settings.window.toString(), metricsPort: this.port });
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.publishing;
    await this.consumer.disconnect();
    await this.producer.disconnect();
    await this.endpoint.close();
  }

  /** The port the Prometheus endpoint listens on, once started. */
  metricsPort(): number | undefined {
    return this.port;
  }

  /** Computes a snapshot from Redis, stores it, serves it on /metrics and publishes it; the timer calls this. */
  async publish(nowMs = Date.now()): Promise<EvaluationReport> {
    const state = await this.store.read([...this.models, ENSEMBLE], this.o.settings.eventWindow.bucketsUntil(nowMs));
    const report = buildReport(state, {
      task: this.o.config.task,
      classes: this.o.config.classes,
      models: this.models,
      window: this.o.settings.window,
      learning: this.o.settings.learning,
      nowMs,
      source: this.o.instanceId,
    });
    const value = codecs.ensembleMetrics.encode(report.snapshot);
    await this.store.saveSnapshot(value);
    this.endpoint.update(report);
    await this.producer.send({
      topic: this.o.topics.metrics,
      messages: [{ key: this.o.instanceId, value, headers: codecs.ensembleMetrics.headers }],
    });
    this.stats.snapshots++;
    return report;
  }

  private async onBatch({ batch }: EachBatchPayload): Promise<void> {
    if (batch.messages.length === 0) return;
    const now = Date.now();
    const { topic } = batch;
    const { topics } = this.o;
    const entries: EventEntry[] = [];
    const deadLetters: Message[] = [];
    for (const m of batch.messages) {
      try {
        if (topic === topics.predictions) {
          const entry = this.ingress.prediction(m, now);
          if (entry !== undefined) entries.push(entry);
        } else if (topic === topics.fused) entries.push(this.ingress.fused(m, now));
        else entries.push(this.ingress.label(m));
      } catch (error) {
        if (!(error instanceof InvalidMessageError)) throw error;
        // Bad predictions and fused results are the aggregator's to dead-letter; labels and what crashes the evaluator are ours.
        if (topic !== topics.labels && error.code !== 'POISON') {
          this.stats.skipped++;
          continue;
        }
        deadLetters.push(rejectMessage(batch, m, error, 'evaluator', now, this.o.logger));
      }
    }

    const unscored = await this.store.record(entries);
    const scored = await this.store.score(this.samples(unscored, now));
    if (deadLetters.length > 0) await this.producer.send({ topic: topics.deadLetters, messages: deadLetters });

    for (const e of entries) {
      if (e.kind === 'prediction') this.stats.predictions++;
      else if (e.kind === 'fused') this.stats.fused++;
      else this.stats.labels++;
    }
    this.stats.scored += scored;
    this.stats.deadLetters += deadLetters.length;
    this.stats.batches++;
  }

  private samples(unscored: readonly Unscored[], nowMs: number): ScoredSample[] {
    const { window } = this.o.settings;
    const classification = this.o.config.task === 'classification';
    const samples: ScoredSample[] = [];
    for (const { requestId, label, answers } of unscored) {
      // Time windows place a sample by when its label was observed.
      const bucket = window.kind === 'time' && window.admits(label.observedAtMs, nowMs) ? window.bucketOf(label.observedAtMs) : null;
      for (const [subject, bytes] of answers) {
        const answer = decodeAnswer(bytes);
        if (answer === undefined) continue;
        const sample = classification
          ? classificationSample(label.target, answer.prediction, answer.probabilities)
          : regressionSample(label.target, answer.prediction);
        samples.push({ requestId, subject, bucket, sample, loss: subject === ENSEMBLE ? null : sampleLoss(sample) });
      }
    }
    return samples;
  }
}
