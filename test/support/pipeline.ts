import type { Kafka, Message } from 'kafkajs';
import { Aggregator } from '../../services/aggregator/aggregator.js';
import { type AggregatorConfig, validateAggregatorConfig } from '../../services/aggregator/config.js';
import { JoinStore } from '../../services/aggregator/join-store.js';
import { codecs } from '../../services/shared/codec.js';
import { createKafka, ensureTopics } from '../../services/shared/kafka.js';
import { createLogger } from '../../services/shared/log.js';
import type { FusedPrediction, Prediction } from '../../services/shared/records.js';
import { createRedis, type RedisClient } from '../../services/shared/redis.js';
import { RedisKeys } from '../../services/shared/redis-keys.js';
import { allTopics, type Topics, withPrefix } from '../../services/shared/topics.js';
import type { ModelAnswer, ModelRunner } from '../../services/worker/model-runner.js';
import { ModelWorker, type WorkerOptions } from '../../services/worker/worker.js';
import { uniqueName } from './ids.js';
import { testInfra } from './infra.js';

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

  async startWorker(runner: ModelRunner, options: Partial<WorkerOptions> = {}): Promise<ModelWorker> {
    const worker = new ModelWorker({ kafka: this.kafka, topics: this.topics, runner, logger: quietLogger, groupId: `${this.topics.features}-${runner.modelId}`, ...options });
    await worker.start();
    this.workers.push(worker);
    return worker;
  }

  async startAggregator(config: AggregatorConfig, instanceId = uniqueName('agg')): Promise<Aggregator> {
    // One server or a Redis Cluster, as the run's REDIS_URL says.
    const redis = createRedis(testInfra().redisUrl, `${instanceId}-join`);
    const sweeperRedis = createRedis(testInfra().redisUrl, `${instanceId}-sweeper`);
    this.redis.push(redis, sweeperRedis);
    const aggregator = new Aggregator({
      kafka: this.kafka,
      redis,
      sweeperRedis,
      topics: this.topics,
      config,
      joinStore: new JoinStore(redis, this.keys, { stateTtlMs: config.stateTtlMs }),
      instanceId,
      logger: quietLogger,
      groupId: `${this.topics.predictions}-aggregator`,
      sweepIntervalMs: 50,
    });
    await aggregator.start();
    this.aggregators.push(aggregator);
    return aggregator;
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.workers.map((w) => w.stop()), ...this.aggregators.map((a) => a.stop())]);
    for (const r of this.redis) r.disconnect();
  }
}

export async function produce(kafka: Kafka, topic: string, messages: Message[]): Promise<void> {
  const producer = kafka.producer({ idempotent: true });
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

/** Reads a topic from the beginning (read_committed) into a list, until `stop` is called. */
export async function tail<T>(kafka: Kafka, topic: string, decode: (value: Buffer | null, headers: Message['headers']) => T) {
  const received: { key: string; value: T; receivedAtMs: number }[] = [];
  const consumer = kafka.consumer({ groupId: uniqueName('tail'), readUncommitted: false, maxWaitTimeInMs: 20 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      received.push({ key: message.key?.toString() ?? '', value: decode(message.value, message.headers), receivedAtMs: Date.now() });
    },
  });
  return { received, stop: () => consumer.disconnect() };
}

export function tailFused(kafka: Kafka, topics: Topics) {
  return tail<FusedPrediction>(kafka, topics.fused, (v, h) => codecs.fusedPrediction.decode(v, h as never));
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
