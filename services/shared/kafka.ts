import { type Admin, type ITopicConfig, Kafka, logLevel as KafkaLogLevel, type logCreator } from 'kafkajs';
import { InfrastructureError } from './errors.js';
import type { Logger } from './log.js';

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

/**
 * Creates the topics that do not exist yet (existing ones are left as they are) and waits until every
 * partition has a leader. kafkajs's own wait gives up when a loaded KRaft broker still answers "does
 * not host this topic-partition" right after creation, so leaders are polled here instead.
 */
export async function ensureTopics(admin: Admin, names: string[], partitions: number, timeoutMs = 30_000): Promise<string[]> {
  const existing = new Set(await admin.listTopics());
  const missing = names.filter((t) => !existing.has(t));
  if (missing.length > 0) {
    const topics: ITopicConfig[] = missing.map((topic) => ({ topic, numPartitions: partitions, replicationFactor: 1 }));
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
