import type { RedisClient as Redis } from '../shared/redis.js';
import type { Consumer, EachBatchPayload, Kafka, Message, Producer } from 'kafkajs';
import { codecs } from '../shared/codec.js';
import { deadLetterMessage } from '../shared/dead-letters.js';
import { describeError, InvalidMessageError } from '../shared/errors.js';
import { fetchOptions, header } from '../shared/kafka.js';
import type { Logger } from '../shared/log.js';
import type { FetchSettings } from '../shared/runtime-config.js';
import type { FusedPrediction, Prediction } from '../shared/records.js';
import { CONTROL_DEADLINE, GROUPS, HEADERS, type Topics } from '../shared/topics.js';
import type { AggregatorConfig } from './config.js';
import { DeadlineSweeper } from './deadline-sweeper.js';
import { staticFuser } from './fuser-factory.js';
import type { Fuser } from './fusion/index.js';
import { type JoinEntry, JoinStore } from './join-store.js';
import { ModelHealth } from './model-health.js';
import { PredictionIngress } from './prediction-ingress.js';
import { RequestFusion } from './request-fusion.js';

export interface AggregatorOptions {
  kafka: Kafka;
  redis: Redis;
  /** A second connection for the deadline sweeper, so its calls never queue behind a batch. */
  sweeperRedis: Redis;
  topics: Topics;
  config: AggregatorConfig;
  joinStore: JoinStore;
  instanceId: string;
  logger: Logger;
  /** How requests are fused; defaults to the config's fixed-weight strategy (see buildFuser). */
  fuser?: Fuser;
  /** Consumer group; defaults to the aggregator tier's group. */
  groupId?: string;
  /** Partitions whose batches are processed at the same time. @defaultValue 8 */
  partitionsConsumedConcurrently?: number;
  /** How often expired requests are looked for, ms. @defaultValue 100 */
  sweepIntervalMs?: number;
  /** @defaultValue FETCH_DEFAULTS */
  fetch?: FetchSettings;
}

/** Running totals since start, for reports and tests. */
export interface AggregatorStats {
  fused: number;
  complete: number;
  partial: number;
  insufficient: number;
  duplicates: number;
  late: Record<string, number>;
  deadLetters: number;
  batches: number;
}

/** Most bytes fetched per partition at once: bounds the size of a batch's transaction. */
const MAX_BATCH_BYTES = 256 * 1024;

/**
 * The fusion aggregator. For each batch of one predictions partition: check every message, join the
 * good ones in Redis with one script call, fuse the requests that closed, and commit the fused
 * results, the dead letters and the consumed offsets in one Kafka transaction. Exactly one fused
 * result per request follows from that transaction plus the join script's offset rule.
 */
export class Aggregator {
  readonly stats: AggregatorStats = { fused: 0, complete: 0, partial: 0, insufficient: 0, duplicates: 0, late: {}, deadLetters: 0, batches: 0 };
  private readonly consumer: Consumer;
  /** One transactional producer per input partition, created on the partition's first batch. */
  private readonly producers = new Map<number, Promise<Producer>>();
  private readonly ingress: PredictionIngress;
  private readonly fusion: RequestFusion;
  private readonly sweeper: DeadlineSweeper;
  private readonly expected: readonly string[];
  readonly health: ModelHealth;
  private readonly groupId: string;
  private readonly service = 'aggregator';

  constructor(private readonly o: AggregatorOptions) {
    this.groupId = o.groupId ?? GROUPS.aggregator;
    // A dead instance holds its partitions until its session times out: keep it short.
    this.consumer = o.kafka.consumer({
      groupId: this.groupId,
      readUncommitted: false,
      ...fetchOptions(o.fetch),
      // A batch's transaction carries about as many bytes as the batch (a fused result per request,
      // a dead letter per bad message); the broker refuses a record batch over 1 MiB, so a backlog
      // fetch of the default 1 MiB per partition could never commit.
      maxBytesPerPartition: MAX_BATCH_BYTES,
      sessionTimeout: 10_000,
      heartbeatInterval: 1000,
    });
    this.ingress = new PredictionIngress(o.config);
    this.fusion = new RequestFusion(o.config, o.fuser ?? staticFuser(o.config));
    this.expected = o.config.models.map((m) => m.id);
    this.health = new ModelHealth(this.expected, o.config.breaker, o.logger);
    this.sweeper = new DeadlineSweeper({
      kafka: o.kafka,
      joinStore: new JoinStore(o.sweeperRedis, o.joinStore.keys, o.joinStore.options),
      predictionsTopic: o.topics.predictions,
      intervalMs: o.sweepIntervalMs ?? 100,
      logger: o.logger,
    });
  }

  async start(): Promise<void> {
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: this.o.topics.predictions, fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      // Partitions have their own producers, so their batches (and transactions) run side by side.
      partitionsConsumedConcurrently: this.o.partitionsConsumedConcurrently ?? 8,
      eachBatch: (payload) => this.onBatch(payload),
    });
    await this.sweeper.start();
    this.o.logger.info('aggregator started', { group: this.groupId, strategy: this.o.config.strategy, models: this.expected });
  }

  async stop(): Promise<void> {
    await this.sweeper.stop();
    await this.consumer.disconnect();
    await Promise.allSettled([...this.producers.values()].map(async (p) => (await p).disconnect()));
    this.producers.clear();
    this.health.shutdown();
  }

  private async onBatch({ batch, isStale }: EachBatchPayload): Promise<void> {
    if (batch.messages.length === 0 || isStale()) return;
    const now = Date.now();
    const { topic, partition } = batch;
    const entries: JoinEntry[] = [];
    const lateBeforeJoin: string[] = [];
    // What this batch decoded already: most predictions of a request that closes here arrived in
    // this batch, and need not be decoded a second time from the bytes the join returns.
    const decoded = new Map<string, { bytes: Buffer; prediction: Prediction }>();
    const out: Message[] = [];
    const deadLetters: Message[] = [];

    for (const m of batch.messages) {
      if (header(m.headers, HEADERS.control) === CONTROL_DEADLINE && m.key !== null) {
        entries.push({ kind: 'deadline', requestId: m.key.toString('utf8'), offset: m.offset });
        continue;
      }
      try {
        const p = this.ingress.accept(m);
        const deadlineAtMs = p.requestCreatedAtMs + (p.deadlineMs ?? this.o.config.deadlineMs);
        if (now >= p.requestCreatedAtMs + this.o.config.stateTtlMs) {
          // Older than any join state can be: the request was fused (or expired) long ago.
          lateBeforeJoin.push(p.modelId);
          continue;
        }
        entries.push({ kind: 'prediction', requestId: p.requestId, modelId: p.modelId, offset: m.offset, deadlineAtMs, payload: m.value as Buffer });
        decoded.set(`${p.requestId}\n${p.modelId}`, { bytes: m.value as Buffer, prediction: p });
      } catch (error) {
        if (!(error instanceof InvalidMessageError)) throw error;
        deadLetters.push(deadLetterMessage({ topic, partition, offset: m.offset, key: m.key, value: m.value }, error, this.service, now));
        this.o.logger.warn('dead letter', { topic, partition, offset: m.offset, code: error.code, reason: error.message });
      }
    }

    const waitFor = this.health.awaited();
    const down = new Set(this.expected.filter((m) => !waitFor.includes(m)));
    const outcomes = await this.o.joinStore.joinBatch(partition, entries, waitFor, now);
    const fused: FusedPrediction[] = [];
    let duplicates = 0;
    const late: string[] = [];
    outcomes.forEach((outcome, i) => {
      const entry = entries[i] as JoinEntry;
      if (outcome.kind === 'fuse') {
        const predictions = [...outcome.predictions].map(([modelId, bytes]) => {
          const here = decoded.get(`${entry.requestId}\n${modelId}`);
          // The join keeps a model's first prediction; a differing duplicate in this batch is not it.
          return here !== undefined && here.bytes.equals(bytes) ? here.prediction : codecs.prediction.decode(bytes);
        });
        const result = this.fusion.fuse({ requestId: entry.requestId, predictions, why: outcome.why, down, nowMs: Date.now() });
        out.push({ key: entry.requestId, value: codecs.fusedPrediction.encode(result), headers: codecs.fusedPrediction.headers });
        fused.push(result);
      } else if (outcome.kind === 'duplicate') {
        duplicates++;
      } else if (outcome.kind === 'late' && entry.kind === 'prediction') {
        late.push(entry.modelId);
      }
    });

    const last = batch.messages[batch.messages.length - 1];
    const producer = await this.producerFor(topic, partition);
    const transaction = await producer.transaction();
    try {
      if (out.length > 0) await transaction.send({ topic: this.o.topics.fused, messages: out });
      if (deadLetters.length > 0) await transaction.send({ topic: this.o.topics.deadLetters, messages: deadLetters });
      await transaction.sendOffsets({
        consumerGroupId: this.groupId,
        topics: [{ topic, partitions: [{ partition, offset: (BigInt(last?.offset ?? '0') + 1n).toString() }] }],
      });
      await transaction.commit();
    } catch (error) {
      await transaction.abort().catch(() => undefined);
      // Possibly fenced by another instance that owned this partition meanwhile: start afresh.
      this.producers.delete(partition);
      await producer.disconnect().catch(() => undefined);
      throw error;
    }
    // Counted only once committed: an aborted batch is processed again and would count twice.
    for (const f of fused) {
      this.countFused(f);
      this.health.record(f);
    }
    for (const model of [...lateBeforeJoin, ...late]) this.countLate(model);
    this.stats.duplicates += duplicates;
    this.stats.deadLetters += deadLetters.length;
    this.stats.batches++;
    // Not awaited: the partition's next join queues behind it on the same connection anyway, and
    // a failure only leaves the predictions in Redis until their TTL.
    this.o.joinStore.finish(partition, fused.map((f) => f.requestId)).catch((error: unknown) => {
      this.o.logger.warn('freeing fused predictions failed; they expire with their TTL', { partition, error: describeError(error) });
    });
  }

  /**
   * The transactional id is the input partition's, not the instance's (as before KIP-447): whoever
   * takes a partition over, after a rebalance or a crash, fences the previous owner's producer and
   * aborts its open transaction at once, so a zombie can never commit and readers are not held back.
   */
  private producerFor(topic: string, partition: number): Promise<Producer> {
    let producer = this.producers.get(partition);
    if (producer === undefined) {
      const created = this.o.kafka.producer({
        transactionalId: `${this.groupId}.${topic}.${partition}`,
        transactionTimeout: 10_000,
        idempotent: true,
        maxInFlightRequests: 1,
        // Right after a commit the broker answers CONCURRENT_TRANSACTIONS until the commit markers are
        // written (a few ms); kafkajs's default 100 ms+ backoff would cap a partition at a few batches a second.
        retry: { initialRetryTime: 5, maxRetryTime: 200, retries: 40, factor: 0.2, multiplier: 1.5 },
      });
      producer = created.connect().then(() => created);
      producer.catch(() => this.producers.delete(partition));
      this.producers.set(partition, producer);
    }
    return producer;
  }

  private countFused(fused: FusedPrediction): void {
    this.stats.fused++;
    if (fused.status === 'COMPLETE') this.stats.complete++;
    else if (fused.status === 'PARTIAL') this.stats.partial++;
    else this.stats.insufficient++;
  }

  private countLate(modelId: string): void {
    this.stats.late[modelId] = (this.stats.late[modelId] ?? 0) + 1;
  }
}
