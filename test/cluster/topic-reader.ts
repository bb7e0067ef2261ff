import type { Kafka, KafkaMessage } from 'kafkajs';
import { uniqueName } from '../support/ids.js';

/**
 * Reads a topic from the beginning (read_committed) and keeps what `pick` makes of each message,
 * with the message's timestamp. `atEnd` tells when the reader has passed the topic's end offsets,
 * i.e. has seen everything written so far, transaction markers included: after the writers stopped,
 * nothing more can arrive.
 */
export async function readTopic<T>(kafka: Kafka, topic: string, pick: (message: KafkaMessage) => T | undefined) {
  const records: { key: string; timestampMs: number; value: T }[] = [];
  const groupId = uniqueName('reader');
  const consumer = kafka.consumer({ groupId, readUncommitted: false, maxWaitTimeInMs: 50 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  // Where the reader is, per partition: kafkajs reports every batch it processed, also those that
  // held only transaction markers (which eachMessage never sees).
  const positions = new Map<number, number>();
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    positions.set(payload.partition, Math.max(positions.get(payload.partition) ?? 0, Number(payload.lastOffset) + 1));
  });
  // The reader itself meets the dead broker too: kafkajs then restarts it from its last committed
  // offset and it sees some records again. A record is one (partition, offset), counted once; a
  // duplicate result of the pipeline is another record and still counts.
  const seen = new Set<string>();
  await consumer.run({
    eachMessage: async ({ message, partition }) => {
      const at = `${partition}:${message.offset}`;
      if (seen.has(at)) return;
      seen.add(at);
      const value = pick(message);
      if (value !== undefined) records.push({ key: message.key?.toString() ?? '', timestampMs: Number(message.timestamp), value });
    },
  });
  const admin = kafka.admin();
  await admin.connect();
  const atEnd = async (): Promise<boolean> => {
    const ends = await admin.fetchTopicOffsets(topic);
    return ends.every((e) => Number(e.high) === 0 || (positions.get(e.partition) ?? 0) >= Number(e.high));
  };
  const stop = async () => {
    await consumer.disconnect();
    await admin.disconnect();
  };
  return { records, atEnd, stop };
}

/** The longest time between consecutive timestamps inside [from, to], and where it started. */
export function longestGap(timestampsMs: readonly number[], from: number, to: number): { gapMs: number; atMs: number } {
  const inside = timestampsMs.filter((t) => t >= from && t <= to).sort((a, b) => a - b);
  let best = { gapMs: 0, atMs: from };
  let previous = from;
  for (const t of [...inside, to]) {
    if (t - previous > best.gapMs) best = { gapMs: t - previous, atMs: previous };
    previous = t;
  }
  return best;
}
