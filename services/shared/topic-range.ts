import { randomUUID } from 'node:crypto';
import type { Kafka, KafkaMessage } from 'kafkajs';
import { InfrastructureError } from './errors.js';

/** Per partition: read from `from` (inclusive) up to `to` (exclusive). */
export type OffsetRanges = Map<number, { from: bigint; to: bigint }>;

/** The end offset (next offset to be written) of every partition of `topic`. */
export async function endOffsets(kafka: Kafka, topic: string): Promise<Map<number, bigint>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return new Map((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, BigInt(o.high)]));
  } finally {
    await admin.disconnect();
  }
}

/** Per partition, the first offset whose timestamp is at or after `timestampMs` (the end offset if none). */
export async function offsetsAtTime(kafka: Kafka, topic: string, timestampMs: number): Promise<Map<number, bigint>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [atTime, ends] = await Promise.all([admin.fetchTopicOffsetsByTimestamp(topic, timestampMs), admin.fetchTopicOffsets(topic)]);
    const end = new Map(ends.map((o) => [o.partition, BigInt(o.high)]));
    return new Map(atTime.map((o) => [o.partition, BigInt(o.offset) < 0n ? (end.get(o.partition) ?? 0n) : BigInt(o.offset)]));
  } finally {
    await admin.disconnect();
  }
}

/**
 * Reads the given offset ranges of a topic once, read_committed, with a throw-away consumer group
 * (kafkajs has no manual assignment), and resolves when every range was read to its end. Records of
 * aborted transactions and transaction markers are skipped but still count as read.
 */
export async function readRanges(
  kafka: Kafka,
  topic: string,
  ranges: OffsetRanges,
  onMessage: (partition: number, message: KafkaMessage) => void,
  timeoutMs = 60_000,
): Promise<void> {
  const pending = new Set([...ranges].filter(([, r]) => r.to > r.from).map(([p]) => p));
  if (pending.size === 0) return;
  const groupId = `ensemble-stream.range-reader.${randomUUID()}`;
  const ends = await endOffsets(kafka, topic);
  const admin = kafka.admin();
  await admin.connect();
  try {
    const partitions = [...ends].map(([partition, end]) => ({
      partition,
      offset: String(pending.has(partition) ? (ranges.get(partition)?.from ?? end) : end),
    }));
    await admin.setOffsets({ groupId, topic, partitions });
  } finally {
    await admin.disconnect();
  }
  const consumer = kafka.consumer({ groupId, readUncommitted: false, maxWaitTimeInMs: 50, sessionTimeout: 10_000 });
  let done: (error?: Error) => void = () => undefined;
  const finished = new Promise<void>((resolve, reject) => (done = (error) => (error ? reject(error) : resolve())));
  const reached = (partition: number, lastOffset: string) => {
    if (BigInt(lastOffset) + 1n >= (ranges.get(partition)?.to ?? 0n)) pending.delete(partition);
    if (pending.size === 0) done();
  };
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => reached(payload.partition, payload.lastOffset));
  await consumer.connect();
  const timer = setTimeout(() => done(new InfrastructureError(`reading ${topic} back timed out with partitions ${[...pending].join(',')} unread`)), timeoutMs);
  try {
    await consumer.subscribe({ topic });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const to = ranges.get(batch.partition)?.to ?? 0n;
        for (const m of batch.messages) if (BigInt(m.offset) < to) onMessage(batch.partition, m);
      },
    });
    await finished;
  } finally {
    clearTimeout(timer);
    await consumer.disconnect();
    const cleanup = kafka.admin();
    await cleanup.connect();
    await cleanup.deleteGroups([groupId]).catch(() => undefined);
    await cleanup.disconnect();
  }
}
