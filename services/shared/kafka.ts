// First: replaces kafkajs's send loop before kafkajs loads (see the module).
import './kafkajs-produce-fix.js';
import { createRequire } from 'node:module';
import type { ConnectionOptions } from 'node:tls';
import {
  type Admin,
  type ITopicConfig,
  Kafka,
  type ConsumerConfig,
  type KafkaConfig,
  logLevel as KafkaLogLevel,
  type logCreator,
  type SASLOptions,
  type Producer,
} from 'kafkajs';
import { type AdaptiveFetchSettings, idleWaitFor, nextFetchWait } from './adaptive-fetch.js';
import { InfrastructureError } from './errors.js';
import { followMovedCoordinators } from './kafkajs-coordinator-failover.js';
import { stopIdleRequestQueueTimers } from './kafkajs-request-queue-fix.js';
import type { Logger } from './log.js';
import { FETCH_MAX_BYTES } from './message-limits.js';
import { readiness } from './readiness.js';
import type { FetchSettings, KafkaSecurity, TlsSettings, TopicReplication } from './runtime-config.js';

/**
 * The thin seam between ensemble-stream and its Kafka client. kafkajs is feature-complete but no
 * longer actively developed; keeping every use of it behind this module keeps a switch cheap.
 */
export interface KafkaClientOptions {
  brokers: string[];
  clientId: string;
  logger: Logger;
  /** SASL and TLS (RuntimeConfig.kafkaSecurity); none: plaintext. */
  security?: KafkaSecurity;
}

/** node:tls options for a TlsSettings. */
export function tlsOptions(tls: TlsSettings): ConnectionOptions {
  return {
    rejectUnauthorized: tls.rejectUnauthorized,
    ...(tls.ca === undefined ? {} : { ca: [tls.ca] }),
    ...(tls.cert === undefined ? {} : { cert: tls.cert }),
    ...(tls.key === undefined ? {} : { key: tls.key.reveal() }),
  };
}

function securityOptions(security: KafkaSecurity | undefined): Pick<KafkaConfig, 'sasl' | 'ssl'> {
  const options: Pick<KafkaConfig, 'sasl' | 'ssl'> = {};
  if (security?.sasl !== undefined) {
    const { mechanism, username, password } = security.sasl;
    options.sasl = { mechanism, username, password: password.reveal() } as SASLOptions;
  }
  if (security?.tls !== undefined) options.ssl = tlsOptions(security.tls);
  return options;
}

export function createKafka({ brokers, clientId, logger, security }: KafkaClientOptions): Kafka {
  cacheCoordinatorLookups();
  followMovedCoordinators();
  stopIdleRequestQueueTimers();
  adaptFetchWaits();
  const toLogger: logCreator =
    () =>
    ({ level, log }) => {
      const { message, ...rest } = log;
      // kafkajs logs retried protocol errors (a coordinator still loading, say) as errors; what it
      // finally gives up on reaches the caller as an exception, so its own lines are warnings here.
      if (level <= KafkaLogLevel.WARN) logger.warn(`kafka: ${message}`, rest);
    };
  const kafka = new Kafka({
    clientId,
    brokers,
    logLevel: KafkaLogLevel.WARN,
    logCreator: toLogger,
    ...securityOptions(security),
    ...KAFKA_TIMING,
  });
  // Every consumer counts towards the process's readiness (/readyz).
  const consumer = kafka.consumer.bind(kafka);
  kafka.consumer = (config: ConsumerConfig & { idleWaitTimeInMs?: number }) => {
    if (config.idleWaitTimeInMs !== undefined) idleWaits.set(config.groupId, config.idleWaitTimeInMs);
    const created = consumer(config);
    readiness.trackConsumer(created, config.groupId);
    return created;
  };
  return kafka;
}

/**
 * How kafkajs waits and retries. Its defaults let backoff grow to 30 s between attempts, so a client
 * that met a dead broker a few times in a row could sit idle for half a minute after the cluster had
 * moved the partitions' leaders (a worker's consumer stalled for 40 s). Capping each wait at 1 s and
 * allowing more attempts keeps the total patience (about 15 s, more than a controller needs to move
 * leaders) while the first attempt after recovery comes within a second.
 */
const KAFKA_TIMING: Pick<KafkaConfig, 'retry' | 'connectionTimeout' | 'requestTimeout'> = {
  retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: 15 },
  connectionTimeout: 3000,
  requestTimeout: 30_000,
};

/**
 * kafkajs consumer options for the pipeline's fetch settings and a consumer's heartbeat interval; a
 * response may hold the largest record a topic accepts. `idleWaitTimeInMs` is ours
 * (adaptFetchWaits): the long poll of an idle consumer.
 */
export function fetchOptions(
  fetch: FetchSettings,
  heartbeatInterval: number,
): { maxWaitTimeInMs: number; minBytes: number; maxBytes: number; heartbeatInterval: number; idleWaitTimeInMs: number } {
  return {
    maxWaitTimeInMs: fetch.maxWaitMs,
    minBytes: fetch.minBytes,
    maxBytes: FETCH_MAX_BYTES,
    heartbeatInterval,
    idleWaitTimeInMs: idleWaitFor(fetch, heartbeatInterval),
  };
}

/** The idle long poll of a consumer that set none (kafkajs's default heartbeat interval is 3 s). */
const DEFAULT_IDLE_WAIT_MS = 250;

/** Idle long polls by consumer group, for groups whose consumer set one; others use DEFAULT_IDLE_WAIT_MS. */
const idleWaits = new Map<string, number>();

interface ConsumerGroupInternals {
  groupId: string;
  maxWaitTime: number;
  minBytes: number;
  fetch(nodeId: number): Promise<{ isEmpty(): boolean }[]>;
}
const fetchStates = new WeakMap<object, AdaptiveFetchSettings & { brought: boolean }>();
let fetchWaitsAdapted = false;

/**
 * A consumer with short fetch waits keeps the broker busy when nothing flows: at 10 ms, a hundred
 * empty fetches a second per consumer (the bench measured an idle aggregator costing the broker
 * 16 % of a core). kafkajs reads its wait and minimum size once, so the fetch of its consumer
 * group class is wrapped, once per process, to choose them from what the group's last fetch
 * brought (adaptive-fetch.ts): the configured ones while records flow, a long poll answered by the
 * first record once a fetch came back empty. With several brokers their fetchers share the state.
 */
function adaptFetchWaits(): void {
  if (fetchWaitsAdapted) return;
  fetchWaitsAdapted = true;
  const ConsumerGroup = createRequire(import.meta.url)('kafkajs/src/consumer/consumerGroup.js') as { prototype: ConsumerGroupInternals };
  const fetch = ConsumerGroup.prototype.fetch;
  ConsumerGroup.prototype.fetch = async function adaptiveFetch(this: ConsumerGroupInternals, nodeId: number) {
    let state = fetchStates.get(this);
    if (state === undefined) {
      state = {
        busy: { maxWaitMs: this.maxWaitTime, minBytes: this.minBytes },
        idleWaitMs: idleWaits.get(this.groupId) ?? DEFAULT_IDLE_WAIT_MS,
        brought: true,
      };
      fetchStates.set(this, state);
    }
    const wait = nextFetchWait(state, state.brought);
    this.maxWaitTime = wait.maxWaitMs;
    this.minBytes = wait.minBytes;
    const batches = await fetch.call(this, nodeId);
    state.brought = batches.some((b) => !b.isEmpty());
    return batches;
  };
}

/** How long a client trusts a coordinator it looked up. */
const COORDINATOR_TTL_MS = 1000;

interface CoordinatorLookup {
  groupId: string;
  coordinatorType?: number;
}
interface ClusterInternals {
  findGroupCoordinator(lookup: CoordinatorLookup): Promise<{ isConnected(): boolean }>;
}
const cachedLookups = new WeakMap<object, Map<string, { at: number; coordinator: ReturnType<ClusterInternals['findGroupCoordinator']> }>>();
let lookupsCached = false;

/**
 * kafkajs sends a FindCoordinator request before every transactional call and every group call
 * it makes on a transaction's behalf: four per transaction, nearly half of the aggregator's Kafka
 * requests (measured by the bench), each a round trip and broker work. Each client (kafkajs
 * cluster) now keeps the answer for COORDINATOR_TTL_MS while its connection is up. A coordinator
 * that moved meanwhile answers NOT_COORDINATOR; the aggregator then aborts and recreates its
 * producer, and consumers look it up again once the entry expires. kafkajs has no option for
 * this, so its cluster class is wrapped, once per process.
 */
function cacheCoordinatorLookups(): void {
  if (lookupsCached) return;
  lookupsCached = true;
  const Cluster = createRequire(import.meta.url)('kafkajs/src/cluster/index.js') as { prototype: ClusterInternals };
  const lookUp = Cluster.prototype.findGroupCoordinator;
  Cluster.prototype.findGroupCoordinator = function cachedFindGroupCoordinator(this: ClusterInternals, lookup) {
    let cache = cachedLookups.get(this);
    if (cache === undefined) cachedLookups.set(this, (cache = new Map()));
    const key = `${lookup.coordinatorType ?? 0}:${lookup.groupId}`;
    const now = Date.now();
    const hit = cache.get(key);
    if (hit !== undefined && now - hit.at < COORDINATOR_TTL_MS) {
      return hit.coordinator.then((broker) => {
        if (broker.isConnected()) return broker;
        if (cache.get(key) === hit) cache.delete(key);
        return this.findGroupCoordinator(lookup);
      });
    }
    const coordinator = lookUp.call(this, lookup);
    cache.set(key, { at: now, coordinator });
    coordinator.catch(() => {
      if (cache.get(key)?.coordinator === coordinator) cache.delete(key);
    });
    return coordinator;
  } as ClusterInternals['findGroupCoordinator'];
}

/** The broker's own defaults (`default.replication.factor`, `min.insync.replicas`). */
export const BROKER_DEFAULT_REPLICATION: TopicReplication = { replicationFactor: -1, minInsyncReplicas: -1 };

/** A CreateTopics entry: -1 leaves the replication factor and min ISR to the broker. */
export function topicConfig(topic: string, partitions: number, replication: TopicReplication = BROKER_DEFAULT_REPLICATION): ITopicConfig {
  return {
    topic,
    numPartitions: partitions,
    replicationFactor: replication.replicationFactor,
    ...(replication.minInsyncReplicas === -1 ? {} : { configEntries: [{ name: 'min.insync.replicas', value: String(replication.minInsyncReplicas) }] }),
  };
}

/**
 * Creates the topics that do not exist yet (existing ones are left as they are) and waits until every
 * partition has a leader. kafkajs's own wait gives up when a loaded KRaft broker still answers "does
 * not host this topic-partition" right after creation, so leaders are polled here instead.
 */
export async function ensureTopics(
  admin: Admin,
  names: string[],
  partitions: number,
  replication: TopicReplication = BROKER_DEFAULT_REPLICATION,
  timeoutMs = 30_000,
): Promise<string[]> {
  const existing = new Set(await admin.listTopics());
  const missing = names.filter((t) => !existing.has(t));
  if (missing.length > 0) {
    const topics: ITopicConfig[] = missing.map((topic) => topicConfig(topic, partitions, replication));
    await admin.createTopics({ topics, waitForLeaders: false });
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: names });
      if (topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) return missing;
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
    if (Date.now() > deadline) throw new InfrastructureError(`topics have no leaders after ${timeoutMs} ms: ${names.join(', ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** kafkajs header values arrive as Buffers; this reads one as text. */
export function header(headers: Record<string, unknown> | undefined, name: string): string | undefined {
  const raw = headers?.[name];
  const first = Array.isArray(raw) ? raw[0] : raw;
  if (first === undefined || first === null) return undefined;
  return Buffer.isBuffer(first) ? first.toString('utf8') : String(first);
}

/**
 * Retry settings for an idempotent or transactional producer. kafkajs warns that "limiting
 * retries for the idempotent producer may invalidate EoS guarantees", and rightly: a send that
 * gave up can leave the producer's sequence numbers out of step. So retriable errors are retried
 * until they clear; errors that cannot clear (fencing, authorisation) still fail at once.
 */
export function retryForever(times: { initialRetryTime: number; maxRetryTime: number }): { retries: number; initialRetryTime: number; maxRetryTime: number } {
  return { retries: Number.MAX_SAFE_INTEGER, ...times };
}

/** The retry settings of every idempotent producer that has no reason for others (see retryForever). */
export const IDEMPOTENT_RETRY = retryForever({ initialRetryTime: 100, maxRetryTime: 2000 });

/**
 * Connects a transactional producer and takes its transactional id over before it resolves.
 * kafkajs's connect() asks for a producer id *without* the transactional id; only the first
 * transaction() sends the InitProducerId that fences the id's previous producer and waits until
 * that producer's last transaction has committed or aborted (its markers written, so its offsets
 * are in the group's committed offsets). Anything that reads the committed offsets to decide what
 * to process again must come after that, or a commit still being completed reads as not done.
 * An empty transaction, begun and aborted, does it: kafkajs sends no EndTxn for it.
 */
export async function connectTransactional(producer: Producer): Promise<Producer> {
  await producer.connect();
  const takeover = await producer.transaction();
  await takeover.abort();
  return producer;
}

/** The coordinator is still completing a transaction's state change (for example its previous commit's markers). */
export function isConcurrentTransactions(error: unknown): boolean {
  const e = error as { type?: unknown; cause?: { type?: unknown } } | null;
  return e?.type === 'CONCURRENT_TRANSACTIONS' || e?.cause?.type === 'CONCURRENT_TRANSACTIONS';
}

/**
 * Calls `call` again while it fails with CONCURRENT_TRANSACTIONS, backing off from `initialMs` to
 * `maxMs`, for at most `timeoutMs`. kafkajs retries that answer for AddPartitionsToTxn but sends
 * AddOffsetsToTxn once, so a transaction begun right after a commit whose markers are slow (a
 * partition's leader just died) failed as a whole, and every retry of its batch could meet the
 * same answer after its own commit. The Java client retries it; so do we. AddOffsetsToTxn changes
 * nothing on the client when it fails, so sending it again is safe.
 */
export async function retryConcurrentTransactions<T>(
  call: () => Promise<T>,
  { initialMs = 5, maxMs = 200, timeoutMs = 10_000 }: { initialMs?: number; maxMs?: number; timeoutMs?: number } = {},
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<T> {
  let waited = 0;
  let wait = initialMs;
  for (;;) {
    try {
      return await call();
    } catch (error) {
      if (!isConcurrentTransactions(error) || waited + wait > timeoutMs) throw error;
      await sleep(wait);
      waited += wait;
      wait = Math.min(maxMs, wait * 2);
    }
  }
}
