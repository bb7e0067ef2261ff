import type { Kafka, Message } from 'kafkajs';
import { Aggregator, type AggregatorOptions } from '../../services/aggregator/aggregator.js';
import { type AggregatorConfig, validateAggregatorConfig } from '../../services/core/ensemble-config.js';
import { JoinStore, joinStoreOptions } from '../../services/aggregator/join-store.js';
import { codecs } from '../../services/shared/codec.js';
import { createKafka, ensureTopics, IDEMPOTENT_RETRY } from '../../services/shared/kafka.js';
import { createLogger } from '../../services/shared/log.js';
import type { FusedPrediction, Prediction } from '../../services/shared/records.js';
import { createRedis, type RedisClient } from '../../services/shared/redis.js';
import { RedisKeys } from '../../services/shared/redis-keys.js';
import { allTopics, type Topics, topicsToEnv, withPrefix } from '../../services/shared/topics.js';
import type { ModelAnswer, ModelRunner } from '../../services/worker/model-runner.js';
import { ModelWorker, type WorkerOptions } from '../../services/worker/worker.js';
import { endOffsets } from '../../services/shared/topic-range.js';
import { uniqueName } from './ids.js';
import { groupReached } from './topic-end.js';
import { testInfra } from './infra.js';

/** What the test aggregators sign deadline records with. */
export const TEST_CONTROL_SECRET = Buffer.from('ensemble-stream test control secret');

export const quietLogger = createLogger('test', (process.env.LOG_LEVEL as 'debug' | undefined) ?? 'error');

export function testKafka(clientId = 'ensemble-stream-test'): Kafka {
  return createKafka({ brokers: testInfra().kafkaBrokers, clientId, logger: quietLogger });
}

/** Fresh topics with a unique prefix for one test. */
export async function createTestTopics(kafka: Kafka, partitions = 3): Promise<Topics> {
  const topics = withPrefix(`${uniqueName('t')}-`);
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(admin, allTopics(topics), partitions);
  } finally {
    await admin.disconnect();
  }
  return topics;
}

/**
 * A model whose answer is a slice of the request's features: a request carries each model's
 * probabilities, so a test knows exactly what every model says and what the fusion must give.
 */
export class SliceRunner implements ModelRunner {
  readonly featureCount = undefined;
  calls = 0;
  constructor(
    readonly modelId: string,
    private readonly index: number,
    private readonly classes: number,
    readonly modelVersion = 'v1',
    /** Makes the model fail (throw) while it returns true. */
    public failing: () => boolean = () => false,
  ) {}

  predict(features: readonly number[]): Promise<ModelAnswer> {
    this.calls++;
    if (this.failing()) return Promise.reject(new Error(`${this.modelId} is down`));
    return Promise.resolve({ probabilities: features.slice(this.index * this.classes, (this.index + 1) * this.classes) });
  }
}

export function classificationConfig(models: string[], overrides: Partial<AggregatorConfig> = {}): AggregatorConfig {
  return validateAggregatorConfig({
    task: 'classification',
    classes: ['a', 'b', 'c'],
    strategy: 'soft-voting',
    models: models.map((id) => ({ id, weight: 1 })),
    deadlineMs: 3000,
    ...overrides,
  });
}

/** Workers and aggregators of one test, all stopped by `stop()`. */
export class TestPipeline {
  readonly workers: ModelWorker[] = [];
  readonly aggregators: Aggregator[] = [];
  readonly redis: RedisClient[] = [];
  readonly keys = new RedisKeys(uniqueName('t'));

  constructor(
    readonly kafka: Kafka,
    readonly topics: Topics,
  ) {}

  /**
   * The environment of a service this pipeline starts as its own process (the built CLI): its
   * topics, Kafka, Redis and namespace, a fresh aggregator group, and a free metrics port each, since
   * several services share the host.
   */
  serviceEnv(groupPrefix: string): NodeJS.ProcessEnv & { ES_AGGREGATOR_GROUP: string } {
    return {
      ...process.env,
      ...topicsToEnv(this.topics),
      KAFKA_BROKERS: testInfra().kafkaBrokers.join(','),
      REDIS_URL: testInfra().redisUrl,
      ES_REDIS_NAMESPACE: this.keys.namespace,
      ES_AGGREGATOR_GROUP: uniqueName(groupPrefix),
      LOG_LEVEL: 'error',
      ES_METRICS_PORT: '0',
    };
  }

  async startWorker(runner: ModelRunner, options: Partial<WorkerOptions> = {}): Promise<ModelWorker> {
    const worker = new ModelWorker({
      kafka: this.kafka,
      topics: this.topics,
      runner,
      logger: quietLogger,
      groupId: `${this.topics.features}-${runner.modelId}`,
      ...options,
    });
    await worker.start();
    this.workers.push(worker);
    return worker;
  }

  async startAggregator(config: AggregatorConfig): Promise<Aggregator> {
    return this.startAggregatorWith(config);
  }

  async startAggregatorWith(config: AggregatorConfig, options: Partial<AggregatorOptions> = {}): Promise<Aggregator> {
    // One server or a Redis Cluster, as the run's REDIS_URL says.
    const instanceId = uniqueName('agg');
    const redis = createRedis(testInfra().redisUrl, `${instanceId}-join`);
    const sweeperRedis = createRedis(testInfra().redisUrl, `${instanceId}-sweeper`);
    this.redis.push(redis, sweeperRedis);
    const aggregator = new Aggregator({
      kafka: this.kafka,
      sweeperRedis,
      topics: this.topics,
      config,
      joinStore: new JoinStore(redis, this.keys, joinStoreOptions(config)),
      logger: quietLogger,
      groupId: this.aggregatorGroup,
      controlSecret: TEST_CONTROL_SECRET,
      sweepIntervalMs: 50,
      ...options,
    });
    await aggregator.start();
    this.aggregators.push(aggregator);
    return aggregator;
  }

  get aggregatorGroup(): string {
    return `${this.topics.predictions}-aggregator`;
  }

  /**
   * Resolves once the aggregators committed every prediction written so far and `fused` read every
   * result committed by then: whatever the pipeline will emit for what it was given is in `fused`.
   */
  async drained(fused: { caughtUp: (timeoutMs?: number) => Promise<void> }, timeoutMs = 60_000): Promise<void> {
    await this.drainedBy(this.aggregatorGroup, fused, timeoutMs);
  }

  /** `drained`, for aggregators of another group (processes started by a test). */
  async drainedBy(groupId: string, fused: { caughtUp: (timeoutMs?: number) => Promise<void> }, timeoutMs = 60_000): Promise<void> {
    await untilConsumed(this.kafka, groupId, this.topics.predictions, timeoutMs);
    await fused.caughtUp(timeoutMs);
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.workers.map((w) => w.stop()), ...this.aggregators.map((a) => a.stop())]);
    for (const r of this.redis) r.disconnect();
  }
}

export async function produce(kafka: Kafka, topic: string, messages: Message[]): Promise<void> {
  const producer = kafka.producer({ idempotent: true, retry: IDEMPOTENT_RETRY });
  await producer.connect();
  try {
    for (let i = 0; i < messages.length; i += 500) await producer.send({ topic, messages: messages.slice(i, i + 500), acks: -1 });
  } finally {
    await producer.disconnect();
  }
}

export function featureMessage(requestId: string, features: number[], createdAtMs = Date.now(), deadlineMs: number | null = null): Message {
  return { key: requestId, value: codecs.featureEvent.encode({ requestId, createdAtMs, features, deadlineMs }), headers: codecs.featureEvent.headers };
}

/**
 * Reads a topic from the beginning (read_committed) into a list, until `stop` is called.
 * `caughtUp()` resolves once the reader has passed every partition's end offset as it was when
 * called (transaction markers included): nothing written before that can still arrive, so a test
 * proves absence by position, never by sleeping.
 */
export async function tail<T>(kafka: Kafka, topic: string, decode: (value: Buffer | null, headers: Message['headers']) => T) {
  const received: { key: string; value: T; receivedAtMs: number; partition: number; offset: string }[] = [];
  const positions = new Map<number, bigint>();
  const groupId = uniqueName('tail');
  const consumer = kafka.consumer({ groupId, readUncommitted: false, maxWaitTimeInMs: 20 });
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    const next = BigInt(payload.lastOffset) + 1n;
    if (next > (positions.get(payload.partition) ?? 0n)) positions.set(payload.partition, next);
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    // Batches, not messages: a batch's resolved offset includes a trailing transaction marker, so the
    // reader's committed offset reaches the topic's end (see support/consumed.ts).
    eachBatch: async ({ batch }) => {
      for (const message of batch.messages) {
        received.push({
          key: message.key?.toString() ?? '',
          value: decode(message.value, message.headers),
          receivedAtMs: Date.now(),
          partition: batch.partition,
          offset: message.offset,
        });
      }
    },
  });
  const caughtUp = async (timeoutMs = 60_000) => {
    const ends = await endOffsets(kafka, topic);
    await eventually(
      () => [...ends].every(([p, end]) => end === 0n || (positions.get(p) ?? 0n) >= end),
      `the reader of ${topic} at its end offsets`,
      timeoutMs,
    );
  };
  return { received, groupId, topic, caughtUp, stop: () => consumer.disconnect() };
}

export function tailFused(kafka: Kafka, topics: Topics) {
  return tail<FusedPrediction>(kafka, topics.fused, (v, h) => codecs.fusedPrediction.decode(v, h as never));
}

/** Polls until `groupId` has committed offsets at the end of every partition of `topic` (as the end is then). */
export async function untilConsumed(kafka: Kafka, groupId: string, topic: string, timeoutMs = 60_000): Promise<void> {
  await groupReached(kafka, groupId, topic, await endOffsets(kafka, topic), timeoutMs);
}

/** Polls until `check` holds (or throws after `timeoutMs` with `what`). */
export async function eventually(check: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Counts how often each key occurs. */
export function countByKey(items: readonly { key: string }[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { key } of items) counts.set(key, (counts.get(key) ?? 0) + 1);
  return counts;
}

export function predictionMessage(requestId: string, modelId: string, probabilities: number[] | null, overrides: Partial<Prediction> = {}): Message {
  const now = Date.now();
  const p: Prediction = {
    requestId,
    modelId,
    modelVersion: 'v1',
    status: 'OK',
    probabilities,
    value: null,
    error: null,
    requestCreatedAtMs: now,
    deadlineMs: null,
    receivedAtMs: now,
    inferenceMicros: 10,
    ...overrides,
  };
  return { key: requestId, value: codecs.prediction.encode(p), headers: codecs.prediction.headers };
}
