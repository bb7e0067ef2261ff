import type { Registry } from 'prom-client';
import type { Batch, Consumer, EachBatchPayload, Kafka, KafkaMessage, Message, Producer, TopicOffsets } from 'kafkajs';
import type { RedisClient as Redis } from '../shared/redis.js';
import { codecs } from '../shared/codec.js';
import { type FatalHandler, logFatal, watchConsumer } from '../shared/consumer-crash.js';
import { describeError } from '../shared/errors.js';
import { connectTransactional, fetchOptions, retryConcurrentTransactions, retryForever } from '../shared/kafka.js';
import type { Logger } from '../shared/log.js';
import { PeriodicOffsetCommits } from '../shared/periodic-offset-commits.js';
import { blamesTheMessages, PoisonGuard } from '../shared/poison-guard.js';
import { FETCH_DEFAULTS, type FetchSettings } from '../shared/runtime-config.js';
import type { FusedPrediction } from '../shared/records.js';
import { GROUPS, type Topics } from '../shared/topics.js';
import type { AggregatorConfig } from '../core/ensemble-config.js';
import { drainBeforeRejoin } from '../shared/kafkajs-rejoin-drain.js';
import { AggregatorMetrics } from './aggregator-metrics.js';
import { CommitLanes } from './commit-lanes.js';
import { DeadlineSweeper } from './deadline-sweeper.js';
import { staticFuser } from './fuser-factory.js';
import type { Fuser } from '../core/fusion/index.js';
import { type Admitted, admit, deadLetters, type Rejected, type Settled, settle } from './join-plan.js';
import { type JoinBatchResult, JoinStore, StateLostError } from './join-store.js';
import { type AwaitPlan, ModelHealth } from './model-health.js';
import { PredictionIngress } from '../core/prediction-ingress.js';
import { RequestFusion } from './request-fusion.js';
import { restorePartition } from './state-restore.js';

export interface AggregatorOptions {
  kafka: Kafka;
  /** A second connection for the deadline sweeper, so its calls never queue behind a batch. */
  sweeperRedis: Redis;
  topics: Topics;
  config: AggregatorConfig;
  joinStore: JoinStore;
  logger: Logger;
  /** How requests are fused; defaults to the config's fixed-weight strategy (see buildFuser). */
  fuser?: Fuser;
  /** Consumer group; defaults to the aggregator tier's group. */
  groupId?: string;
  /** Partitions whose batches are processed at the same time. @defaultValue 8 */
  partitionsConsumedConcurrently?: number;
  /** How often every partition is swept for expired requests, as a backstop to exact timers, ms. @defaultValue 1000 */
  sweepIntervalMs?: number;
  /** Consumer group session timeout: how soon a dead instance's partitions move, ms. @defaultValue 4000 */
  sessionTimeoutMs?: number;
  /** @defaultValue FETCH_DEFAULTS */
  fetch?: FetchSettings;
  /** The secret the aggregators sign deadline records with (control-records.ts). */
  controlSecret: Buffer;
  /** Called when the consumer is gone for good. @defaultValue logs it */
  onFatal?: FatalHandler;
  /** Where the aggregator's instruments are registered (its /metrics). @defaultValue a registry of its own */
  metrics?: Registry;
  /** At least once: how often the acknowledged offsets are committed, ms. @defaultValue 1000 */
  commitIntervalMs?: number;
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
  /** Batches that failed (Redis, Kafka, fencing) and were processed again. */
  retriedBatches: number;
  /** Partitions whose join state was rebuilt from Kafka. */
  restores: number;
}

/** A batch joined and settled, with the records its commit writes. */
interface PreparedBatch {
  batch: Batch;
  settled: Settled;
  rejected: Rejected[];
  fused: Message[];
  letters: Message[];
  /** performance.now() when the batch started. */
  started: number;
}

/** Most bytes fetched per partition at once: bounds the size of a batch's transaction. */
const MAX_BATCH_BYTES = 256 * 1024;

/**
 * The fusion aggregator. For each batch of one predictions partition: decide which messages join
 * (join-plan.ts), join them in Redis with one script call, settle the outcomes into fused results
 * and dead letters, and commit those with the consumed offsets in one Kafka transaction. Exactly
 * one fused result per request follows from that transaction plus the join script's offset rule.
 * A failed batch (fenced producer, Redis or Kafka error) never stops the consumer: the partition's
 * producer is dropped and the batch is read again from its first offset.
 */
export class Aggregator {
  readonly stats: AggregatorStats = {
    fused: 0,
    complete: 0,
    partial: 0,
    insufficient: 0,
    duplicates: 0,
    late: {},
    deadLetters: 0,
    batches: 0,
    retriedBatches: 0,
    restores: 0,
  };
  private readonly consumer: Consumer;
  /** One transactional producer per input partition, created on the partition's first batch. */
  private readonly producers = new Map<number, Promise<Producer>>();
  private readonly failures = new Map<number, number>();
  private readonly lanes = new CommitLanes();
  /** At least once: the offsets of acknowledged batches, committed once a second. */
  private readonly offsetCommits: PeriodicOffsetCommits | undefined;
  /** The eachBatch calls running; stop() waits for them before it commits and leaves. */
  private readonly running = new Set<Promise<unknown>>();
  private stopping = false;
  /** consumer.run was called (kafkajs refuses to pause a consumer before that). */
  private consuming = false;
  private undrain: () => void = () => undefined;
  private readonly ingress: PredictionIngress;
  private readonly fusion: RequestFusion;
  private readonly sweeper: DeadlineSweeper;
  private readonly expected: readonly string[];
  readonly health: ModelHealth;
  readonly metrics: AggregatorMetrics;
  private readonly groupId: string;
  private readonly service = 'aggregator';
  private readonly guard: PoisonGuard;

  constructor(private readonly o: AggregatorOptions) {
    this.groupId = o.groupId ?? GROUPS.aggregator;
    this.consumer = o.kafka.consumer({
      groupId: this.groupId,
      readUncommitted: false,
      // Heartbeats twice a second: an instance that leaves hands its partitions over within about
      // that long (a rebalance is noticed on a heartbeat).
      ...fetchOptions(o.fetch ?? FETCH_DEFAULTS, 500),
      // A batch's transaction carries about as many bytes as the batch (a fused result per request,
      // a dead letter per bad message); the broker refuses a record batch over 1 MiB, so a backlog
      // fetch of the default 1 MiB per partition could never commit.
      maxBytesPerPartition: MAX_BATCH_BYTES,
      // A dead instance holds its partitions until its session times out: keep it short.
      sessionTimeout: o.sessionTimeoutMs ?? 4000,
    });
    watchConsumer(this.consumer, this.service, o.logger, o.onFatal ?? logFatal(o.logger));
    if (o.config.delivery === 'at-least-once') {
      const commits = new PeriodicOffsetCommits(
        (offsets) => this.consumer.commitOffsets(offsets),
        o.commitIntervalMs ?? 1000,
        (error) => o.logger.warn('offset commit failed; retried with the next one', { error: describeError(error) }),
      );
      this.consumer.on(this.consumer.events.GROUP_JOIN, ({ payload }) => commits.retain(new Map(Object.entries(payload.memberAssignment))));
      this.offsetCommits = commits;
    }
    this.guard = new PoisonGuard(o.logger, this.service);
    this.ingress = new PredictionIngress(o.config);
    this.fusion = new RequestFusion(o.config, o.fuser ?? staticFuser(o.config));
    this.expected = o.config.models.map((m) => m.id);
    this.health = new ModelHealth(this.expected, o.config.breaker, o.logger);
    const openJoins = (p: number) => o.sweeperRedis.zcard(o.joinStore.keys.deadlines(p));
    this.metrics = new AggregatorMetrics(o.config, this.stats, this.health, openJoins, o.metrics);
    this.sweeper = new DeadlineSweeper({
      kafka: o.kafka,
      joinStore: new JoinStore(o.sweeperRedis, o.joinStore.keys, o.joinStore.options),
      predictionsTopic: o.topics.predictions,
      controlSecret: o.controlSecret,
      intervalMs: o.sweepIntervalMs ?? 1000,
      logger: o.logger,
    });
  }

  async start(): Promise<void> {
    // Before a rebalance: the commits in flight, then (at least once) their offsets, so that the
    // partitions' next owners start where this instance's acknowledged results end.
    this.undrain = drainBeforeRejoin(this.groupId, async () => {
      await this.lanes.drain();
      await this.offsetCommits?.flush();
    });
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: this.o.topics.predictions, fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      // Partitions have their own producers, so their batches (and transactions) run side by side.
      partitionsConsumedConcurrently: this.o.partitionsConsumedConcurrently ?? 8,
      // The guard resolves what was handled; a batch left unresolved is fetched again.
      eachBatchAutoResolve: false,
      eachBatch: (payload) => this.tracked(this.guard.run(payload, (p) => this.onBatch(p))),
    });
    this.consuming = true;
    this.offsetCommits?.start();
    await this.sweeper.start();
    this.o.logger.info('aggregator started', { group: this.groupId, strategy: this.o.config.strategy, models: this.expected });
  }

  async stop(): Promise<void> {
    // From here nothing is fetched, and no batch fetched already is started (onBatch leaves it to
    // the partition's next owner).
    this.stopping = true;
    if (this.consuming) this.consumer.pause([{ topic: this.o.topics.predictions }]);
    await this.sweeper.stop();
    // kafkajs commits no offsets once its consumer stops: the batches in hand finish, and their
    // commits and offsets land, while the consumer still runs. Leaving the group drains again.
    await Promise.allSettled([...this.running]);
    await this.lanes.drain();
    await this.offsetCommits?.stop();
    await this.consumer.disconnect();
    this.undrain();
    await Promise.allSettled([...this.producers.values()].map(async (p) => (await p).disconnect()));
    this.producers.clear();
  }

  /**
   * An error that may be the messages' fault goes to the guard (PoisonGuard), which isolates the
   * message that causes it; any other failure is retried from the committed offset (retryLater).
   * The batch's commit runs after this returns (CommitLanes), unless the partition's last commit
   * failed: then it runs here, so that its errors reach the guard too.
   */
  private async onBatch(payload: EachBatchPayload): Promise<'retry' | undefined> {
    const { batch, isStale } = payload;
    if (this.stopping) return 'retry';
    if (batch.messages.length === 0 || isStale()) return undefined;
    const { partition } = batch;
    const epoch = this.lanes.epoch(partition);
    try {
      const fresh = this.uncommittedPart(batch);
      if (fresh === undefined) return undefined;
      const prepared = await this.prepare({ ...payload, batch: fresh });
      if (!(await this.lanes.mayCommit(partition, epoch))) return 'retry';
      if (this.lanes.recovering(partition)) {
        this.lanes.committed(partition, await this.commitPrepared(prepared));
        return undefined;
      }
      this.lanes.start(
        partition,
        () => this.commitPrepared(prepared),
        (error) => this.recover(payload, error),
      );
      return undefined;
    } catch (error) {
      if (blamesTheMessages(error)) throw error;
      // The committed offset is read only once the commit in flight settled: read before, it could
      // be older than that commit, and the batch it wrote would be fused again.
      await this.lanes.settled(partition);
      await this.retryLater(payload, error);
      return undefined;
    }
  }

  /** Keeps `batch` in `running` until it settles. */
  private async tracked<T>(batch: Promise<T>): Promise<T> {
    this.running.add(batch);
    try {
      return await batch;
    } finally {
      this.running.delete(batch);
    }
  }

  /** The batch without the messages this instance committed already; undefined if nothing is left. */
  private uncommittedPart(batch: Batch): Batch | undefined {
    const first = this.lanes.firstUncommitted(batch.partition, batch.messages);
    if (first === 0) return batch;
    if (first === batch.messages.length) return undefined;
    return Object.create(batch, { messages: { value: batch.messages.slice(first) } }) as Batch;
  }

  /** Joins a batch and settles its outcomes into the records its commit writes. */
  private async prepare({ batch, heartbeat }: EachBatchPayload): Promise<PreparedBatch> {
    const now = Date.now();
    const started = performance.now();
    this.metrics.fetched(batch.partition, batch.offsetLag());
    const admitted = admit(batch, this.ingress, this.o.config.deadlineMs, this.o.controlSecret);
    const plan = this.health.plan(now);
    const joined = await this.join(batch, admitted, plan, now, heartbeat);
    this.metrics.step('join', performance.now() - started);
    this.health.probesStarted(plan.probe, joined.probesOpened);
    this.wakeAtDeadlines(admitted, joined);
    const settled = settle(admitted, joined.outcomes, this.fusion);
    const rejected = [...admitted.rejected, ...settled.rejected];
    const letters = deadLetters(batch, rejected, this.service, now, this.o.logger);
    const fused = settled.fused.map((f) => ({ key: f.requestId, value: codecs.fusedPrediction.encode(f), headers: codecs.fusedPrediction.headers }));
    return { batch, settled, rejected, fused, letters, started };
  }

  /** Commits a prepared batch and counts it; resolves with the partition's next offset. */
  private async commitPrepared({ batch, settled, rejected, fused, letters, started }: PreparedBatch): Promise<bigint> {
    const committing = performance.now();
    const nextOffset = await this.commit(batch, fused, letters);
    this.counted(batch.partition, settled, letters.length);
    const done = performance.now();
    this.metrics.step('transaction', done - committing);
    this.metrics.step('batch', done - started);
    this.metrics.committed(
      settled.fused,
      rejected.map((r) => r.error.code),
    );
    this.failures.delete(batch.partition);
    return nextOffset;
  }

  /**
   * A commit that ran after its eachBatch returned failed: read the partition again from its
   * committed offset (retryLater), trying again until that works or the aggregator stops. The
   * partition's batches wait meanwhile (CommitLanes.mayCommit), so nothing is fetched past it.
   */
  private async recover(payload: EachBatchPayload, error: unknown): Promise<void> {
    let failure = error;
    while (!this.stopping) {
      try {
        await this.retryLater(payload, failure);
        return;
      } catch (again) {
        failure = again;
      }
    }
  }

  /** One join script call; a partition whose state Redis lost is rebuilt from Kafka first. */
  private async join(batch: Batch, admitted: Admitted, plan: AwaitPlan, now: number, heartbeat: () => Promise<void>): Promise<JoinBatchResult> {
    const logTime = Number(batch.messages[batch.messages.length - 1]?.timestamp ?? now);
    try {
      return await this.o.joinStore.joinBatch(batch.partition, admitted.entries, plan, now, logTime);
    } catch (error) {
      if (!(error instanceof StateLostError)) throw error;
    }
    // Keep the group session alive while Kafka is read back.
    const beat = setInterval(() => void heartbeat().catch(() => undefined), 1000);
    try {
      const options = {
        kafka: this.o.kafka,
        joinStore: this.o.joinStore,
        topics: this.o.topics,
        groupId: this.groupId,
        deadlineMs: this.o.config.deadlineMs,
        horizonMs: this.o.config.restoreHorizonMs,
        logger: this.o.logger,
        accept: (m: KafkaMessage) => this.ingress.accept(m),
      };
      await restorePartition(options, batch.partition, BigInt(batch.firstOffset() ?? '0'));
      this.stats.restores++;
    } finally {
      clearInterval(beat);
    }
    return this.o.joinStore.joinBatch(batch.partition, admitted.entries, plan, now, logTime);
  }

  /** Asks the sweeper to wake exactly at the earliest deadline of the requests still waiting. */
  private wakeAtDeadlines(admitted: Admitted, joined: JoinBatchResult): void {
    let earliest = Infinity;
    joined.outcomes.forEach((outcome, i) => {
      const e = admitted.entries[i];
      if (outcome.kind === 'pending' && e?.kind === 'prediction' && e.deadlineAtMs < earliest) earliest = e.deadlineAtMs;
    });
    if (earliest < Infinity) this.sweeper.wake(earliest);
  }

  /** Writes a batch's results and commits its offsets, in one transaction unless delivery is at-least-once. */
  private async commit(batch: Batch, fused: Message[], letters: Message[]): Promise<bigint> {
    const { topic, partition } = batch;
    const last = batch.messages[batch.messages.length - 1];
    const nextOffset = BigInt(last?.offset ?? '0') + 1n;
    const offsets = [{ topic, partitions: [{ partition, offset: nextOffset.toString() }] }];
    const producer = await this.producerFor(topic, partition);
    if (this.o.config.delivery === 'at-least-once') {
      await this.commitAcknowledged(producer, offsets, fused, letters);
      return nextOffset;
    }
    const transaction = await producer.transaction();
    try {
      if (fused.length > 0) await transaction.send({ topic: this.o.topics.fused, messages: fused });
      if (letters.length > 0) await transaction.send({ topic: this.o.topics.deadLetters, messages: letters });
      await retryConcurrentTransactions(() => transaction.sendOffsets({ consumerGroupId: this.groupId, topics: offsets }));
      await transaction.commit();
    } catch (error) {
      await transaction.abort().catch(() => undefined);
      throw error;
    }
    return nextOffset;
  }

  /**
   * At least once: one produce request for the results and dead letters, acknowledged by every
   * in-sync replica; the offsets are committed once a second (PeriodicOffsetCommits), and before a
   * rebalance or a stop. After a crash the next owner reads again what came after the last commit:
   * the requests already freed in Redis are dropped as late answers, and those whose state was
   * still there are fused again by the join's offset rule with their first close time: the same
   * bytes again.
   */
  private async commitAcknowledged(producer: Producer, offsets: TopicOffsets[], fused: Message[], letters: Message[]): Promise<void> {
    const topicMessages = [
      ...(fused.length > 0 ? [{ topic: this.o.topics.fused, messages: fused }] : []),
      ...(letters.length > 0 ? [{ topic: this.o.topics.deadLetters, messages: letters }] : []),
    ];
    if (topicMessages.length > 0) await producer.sendBatch({ topicMessages, acks: -1 });
    await this.offsetCommits?.done(offsets.flatMap(({ topic, partitions }) => partitions.map((p) => ({ topic, ...p }))));
  }

  /**
   * A batch failed: the partition's producer may be fenced (another instance owns the partition
   * now) or Kafka or Redis misbehaved. Whether its transaction committed can be unknown (a broker
   * died after the coordinator decided), so the batch is never simply read again from its first
   * offset: that would fuse its requests a second time if it had committed. Instead a new producer
   * takes the partition's transactional id over (connectTransactional), which makes the coordinator
   * finish or abort every transaction of the old one first, and only then is the partition read
   * again from the group's committed offset. (Read before that, a commit whose markers were still
   * being written, e.g. to a partition whose leader had just died, reads as not committed: its
   * batches were fused again, and delivered twice once the commit completed.)
   * The consumer keeps running; if the partition moved meanwhile, its new owner reads it instead.
   * If even that fails, the error goes on to kafkajs, which restarts the consumer from the
   * committed offsets too.
   */
  private async retryLater({ batch, heartbeat }: EachBatchPayload, error: unknown): Promise<void> {
    const { topic, partition } = batch;
    const attempt = (this.failures.get(partition) ?? 0) + 1;
    this.failures.set(partition, attempt);
    this.stats.retriedBatches++;
    this.o.logger.warn('batch failed; reading the partition again from its committed offset', { partition, attempt, error: describeError(error) });
    const producer = this.producers.get(partition);
    this.producers.delete(partition);
    void producer?.then((p) => p.disconnect()).catch(() => undefined);
    await new Promise((r) => setTimeout(r, Math.min(2000, 50 * 2 ** attempt)));
    await heartbeat().catch(() => undefined);
    await this.producerFor(topic, partition);
    const committed = await this.committedOffset(topic, partition);
    this.consumer.seek({ topic, partition, offset: committed ?? batch.firstOffset() ?? '0' });
  }

  /** The group's committed offset of a partition; undefined if it never committed one. */
  private async committedOffset(topic: string, partition: number): Promise<string | undefined> {
    const admin = this.o.kafka.admin();
    await admin.connect();
    try {
      const [offsets] = await admin.fetchOffsets({ groupId: this.groupId, topics: [topic] });
      const offset = offsets?.partitions.find((p) => p.partition === partition)?.offset;
      return offset === undefined || BigInt(offset) < 0n ? undefined : offset;
    } finally {
      await admin.disconnect();
    }
  }

  /** Counted only once committed: an aborted batch is processed again and would count twice. */
  private counted(partition: number, settled: Settled, deadLetterCount: number): void {
    const now = Date.now();
    for (const f of settled.fused) this.countFused(f);
    for (const c of settled.closed) this.health.record(c, now);
    for (const model of settled.late) this.stats.late[model] = (this.stats.late[model] ?? 0) + 1;
    this.stats.duplicates += settled.duplicates;
    this.stats.deadLetters += deadLetterCount;
    this.stats.batches++;
    // Not awaited: the partition's next join queues behind it on the same connection anyway, and
    // a failure only leaves the predictions in Redis until their TTL.
    this.o.joinStore
      .finish(
        partition,
        settled.fused.map((f) => f.requestId),
      )
      .catch((error: unknown) => {
        this.o.logger.warn('freeing fused predictions failed; they expire with their TTL', { partition, error: describeError(error) });
      });
  }

  /**
   * The transactional id is the input partition's, not the instance's (as before KIP-447): whoever
   * takes a partition over, after a rebalance or a crash, fences the previous owner's producer and
   * aborts its open transaction at once, so a zombie can never commit and readers are not held back.
   * At least once, the producer is idempotent only: retries never write a result twice, a crash may.
   */
  private producerFor(topic: string, partition: number): Promise<Producer> {
    let producer = this.producers.get(partition);
    if (producer === undefined) {
      const transactional =
        this.o.config.delivery === 'exactly-once' ? { transactionalId: `${this.groupId}.${topic}.${partition}`, transactionTimeout: 10_000 } : {};
      const created = this.o.kafka.producer({
        ...transactional,
        idempotent: true,
        maxInFlightRequests: 1,
        // Right after a commit the broker answers CONCURRENT_TRANSACTIONS until the commit markers are
        // written (a few ms): retry soon, and never give up on a retriable error (a fenced producer
        // fails at once and is dropped by retryLater).
        retry: retryForever({ initialRetryTime: 5, maxRetryTime: 200 }),
      });
      // Exactly once, the id is taken over before anything reads the committed offsets
      // (connectTransactional): retryLater relies on the old producer's last commit being done.
      producer = this.o.config.delivery === 'exactly-once' ? connectTransactional(created) : created.connect().then(() => created);
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
}
