import { createRequire } from 'node:module';
import { type Admin, type ITopicConfig, Kafka, logLevel as KafkaLogLevel, type logCreator } from 'kafkajs';
import { InfrastructureError } from './errors.js';
import type { Logger } from './log.js';
import { FETCH_MAX_BYTES, TOPIC_MAX_MESSAGE_BYTES } from './message-limits.js';
import { FETCH_DEFAULTS, type FetchSettings } from './runtime-config.js';

/**
 * The thin seam between ensemble-stream and its Kafka client. kafkajs is feature-complete but no
 * longer actively developed; keeping every use of it behind this module keeps a switch cheap.
 */
export interface KafkaClientOptions {
  brokers: string[];
  clientId: string;
  logger: Logger;
}

export function createKafka({ brokers, clientId, logger }: KafkaClientOptions): Kafka {
  cacheCoordinatorLookups();
  const toLogger: logCreator = () => ({ level, log }) => {
    const { message, ...rest } = log;
    // kafkajs logs retried protocol errors (a coordinator still loading, say) as errors; what it
    // finally gives up on reaches the caller as an exception, so its own lines are warnings here.
    if (level <= KafkaLogLevel.WARN) logger.warn(`kafka: ${message}`, rest);
  };
  return new Kafka({
    clientId,
    brokers,
    logLevel: KafkaLogLevel.WARN,
    logCreator: toLogger,
    retry: { initialRetryTime: 100, retries: 8 },
  });
}

/** kafkajs consumer options for the pipeline's fetch settings; a response may hold the largest record a topic accepts. */
export function fetchOptions(fetch: FetchSettings = FETCH_DEFAULTS): { maxWaitTimeInMs: number; minBytes: number; maxBytes: number } {
  return { maxWaitTimeInMs: fetch.maxWaitMs, minBytes: fetch.minBytes, maxBytes: FETCH_MAX_BYTES };
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

/**
 * Creates the topics that do not exist yet (existing ones are left as they are) and waits until every
 * partition has a leader. kafkajs's own wait gives up when a loaded KRaft broker still answers "does
 * not host this topic-partition" right after creation, so leaders are polled here instead.
 */
export async function ensureTopics(admin: Admin, names: string[], partitions: number, timeoutMs = 30_000): Promise<string[]> {
  const existing = new Set(await admin.listTopics());
  const missing = names.filter((t) => !existing.has(t));
  if (missing.length > 0) {
    const topics: ITopicConfig[] = missing.map((topic) => ({ topic, numPartitions: partitions, replicationFactor: 1, configEntries: [{ name: 'max.message.bytes', value: String(TOPIC_MAX_MESSAGE_BYTES) }] }));
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
