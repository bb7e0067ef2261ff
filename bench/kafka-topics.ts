import type { Kafka } from 'kafkajs';
import { describeError } from '../services/shared/errors.js';
import { ensureTopics } from '../services/shared/kafka.js';
import { allTopics, type Topics } from '../services/shared/topics.js';

// Each bench run (and each profile in it) has topics of its own, deleted at the end.

/** A just-created topic may answer "not the leader" for a moment; this many tries, 250 ms apart. */
const READY_ATTEMPTS = 40;

/** Creates the topics and waits until each answers an offsets request (new leaders take a moment). */
export async function createTopics(kafka: Kafka, topics: Topics, partitions: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(admin, allTopics(topics), partitions);
    for (const topic of allTopics(topics)) {
      for (let attempt = 1; ; attempt++) {
        try {
          await admin.fetchTopicOffsets(topic);
          break;
        } catch (error) {
          if (attempt >= READY_ATTEMPTS) throw error;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    }
  } finally {
    await admin.disconnect();
  }
}

export async function deleteTopics(kafka: Kafka, topics: string[], say: (line: string) => void): Promise<void> {
  const admin = kafka.admin();
  try {
    await admin.connect();
    const existing = new Set(await admin.listTopics());
    await admin.deleteTopics({ topics: topics.filter((t) => existing.has(t)) });
  } catch (error) {
    say(`could not delete the bench topics: ${describeError(error)}`);
  } finally {
    await admin.disconnect();
  }
}
