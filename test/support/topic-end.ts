import type { Kafka } from 'kafkajs';
import { endOffsets } from '../../services/shared/topic-range.js';
import { uniqueName } from './ids.js';

/** Polls until `check` resolves true (or throws after `timeoutMs` with `what`). */
async function until(check: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export { endOffsets };

/** Waits until `groupId` has committed, on every partition of `topic`, at least the offsets `ends`. */
export async function groupReached(kafka: Kafka, groupId: string, topic: string, ends: ReadonlyMap<number, bigint>, timeoutMs = 60_000): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await until(
      async () => {
        const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
        const at = new Map((committed?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
        return [...ends].every(([partition, end]) => end === 0n || (at.get(partition) ?? -1n) >= end);
      },
      `group ${groupId} to commit ${topic} up to its end offsets`,
      timeoutMs,
    );
  } finally {
    await admin.disconnect();
  }
}

/**
 * Every record of `topic` (read_committed) up to its end offsets as they are now: the reader follows
 * kafkajs's batch events, whose last offset counts transaction markers too, until every partition's
 * position reaches its end offset, so nothing that was in the topic when this was called is missed.
 */
export async function readToEnd<T>(
  kafka: Kafka,
  topic: string,
  decode: (value: Buffer | null, headers: Record<string, unknown> | undefined) => T,
  timeoutMs = 60_000,
): Promise<{ key: string; partition: number; value: T }[]> {
  const ends = await endOffsets(kafka, topic);
  const records: { key: string; partition: number; value: T }[] = [];
  const reached = new Map<number, bigint>();
  const consumer = kafka.consumer({ groupId: uniqueName('read-to-end'), readUncommitted: false, maxWaitTimeInMs: 50 });
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    if (payload.topic === topic) reached.set(payload.partition, BigInt(payload.lastOffset) + 1n);
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        records.push({ key: message.key?.toString() ?? '', partition, value: decode(message.value, message.headers) });
      },
    });
    await until(
      async () => [...ends].every(([partition, end]) => end === 0n || (reached.get(partition) ?? 0n) >= end),
      `a reader to reach the end of ${topic}`,
      timeoutMs,
    );
  } finally {
    await consumer.disconnect();
  }
  return records;
}
