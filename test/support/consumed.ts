import type { Kafka } from 'kafkajs';

/** A consumer group reading one topic. */
export interface GroupOnTopic {
  groupId: string;
  topic: string;
}

/** Partitions whose committed offset is behind the topic's end, per group: the stuck ones once traffic stopped. */
export async function lagging(kafka: Kafka, readers: readonly GroupOnTopic[]): Promise<string[]> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const behind: string[] = [];
    for (const { groupId, topic } of readers) {
      const ends = await admin.fetchTopicOffsets(topic);
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
      for (const end of ends) {
        const at = committed?.partitions.find((p) => p.partition === end.partition)?.offset ?? '-1';
        const position = Math.max(0, Number(at));
        if (position < Number(end.offset)) behind.push(`${groupId} ${topic}/${end.partition} at ${position} of ${end.offset}`);
      }
    }
    return behind;
  } finally {
    await admin.disconnect();
  }
}

/**
 * Waits until every reader has committed up to its topic's end offsets (reading again after each
 * check, since consumers write to topics others read); throws listing the partitions still behind.
 */
export async function untilConsumed(kafka: Kafka, readers: readonly GroupOnTopic[], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const behind = await lagging(kafka, readers);
    if (behind.length === 0) return;
    if (Date.now() > deadline) throw new Error(`partitions still behind after ${timeoutMs} ms:\n  ${behind.join('\n  ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
