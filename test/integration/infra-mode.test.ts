// Proves which infrastructure path the run took and that it carries real traffic: a silent fallback
// from containers to some other broker, or the reverse, fails here.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Kafka, Partitioners, logLevel, type Producer, type ProducerConfig } from 'kafkajs';
import { getContainerRuntimeClient } from 'testcontainers';
import { describe, expect, it } from 'vitest';
import { assertReachable, testInfra, untilAnswered } from '../support/infra.js';

const infra = testInfra();

describe('integration infrastructure', () => {
  it('runs in the mode CI expects (ES_EXPECT_INFRA)', () => {
    const expected = process.env.ES_EXPECT_INFRA;
    expect(['containers', 'external']).toContain(infra.mode);
    if (expected) expect(infra.mode).toBe(expected);
  });

  it(`took the ${infra.mode} path`, async () => {
    if (infra.mode === 'containers') {
      await expectTestContainerPorts();
    } else {
      expect(infra.kafkaBrokers).toEqual(splitBrokers(process.env.KAFKA_BROKERS ?? ''));
      expect(infra.redisUrl).toBe(process.env.REDIS_URL?.trim());
      expect(infra.containers).toEqual([]);
    }
    await expect(assertReachable(infra)).resolves.toBeUndefined();
  });

  it('round-trips one message through Kafka', async () => {
    const value = randomUUID();
    const received = await roundTrip(async (producer, topic) => {
      await producer.send({ topic, messages: [{ key: 'k', value }] });
    });
    expect(received).toBe(value);
  });

  it('round-trips one message through a committed Kafka transaction', async () => {
    // A committed message becomes visible to read_committed consumers only once the broker has written
    // the transaction markers, which also needs the transaction state log and the broker reaching itself.
    const value = randomUUID();
    const transactionalId = `infra-mode-${randomUUID()}`;
    const received = await roundTrip(
      async (producer, topic) => {
        const transaction = await producer.transaction();
        await transaction.send({ topic, messages: [{ key: 'k', value }] });
        await transaction.commit();
      },
      { transactionalId, idempotent: true, maxInFlightRequests: 1 },
    );
    expect(received).toBe(value);
  });

  it('round-trips one key through Redis', async () => {
    const redis = new Redis(infra.redisUrl, { maxRetriesPerRequest: 1 });
    const key = `infra-mode:${randomUUID()}`;
    try {
      expect(await redis.set(key, 'v', 'EX', 60)).toBe('OK');
      expect(await redis.get(key)).toBe('v');
    } finally {
      await redis.del(key);
      await redis.quit();
    }
  });
});

/**
 * Creates a fresh topic, lets `send` produce one message to it, and returns the value a new
 * read_committed consumer group reads from it.
 */
async function roundTrip(send: (producer: Producer, topic: string) => Promise<void>, producerConfig: ProducerConfig = {}): Promise<string> {
  const kafka = new Kafka({ clientId: 'infra-mode-test', brokers: infra.kafkaBrokers, logLevel: logLevel.WARN });
  const topic = `infra-mode-${randomUUID()}`;
  const admin = kafka.admin();
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, ...producerConfig });
  const consumer = kafka.consumer({ groupId: `${topic}-group`, readUncommitted: false });
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
    // kafkajs' own waitForLeaders gives up when a KRaft broker does not know the new topic yet.
    await untilAnswered(async () => {
      const [metadata] = (await admin.fetchTopicMetadata({ topics: [topic] })).topics;
      if (!metadata?.partitions.every((p) => p.leader >= 0)) throw new Error(`${topic} has no leader yet`);
    });
    await producer.connect();
    await send(producer, topic);
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no message on ${topic} within 30 s`)), 30_000);
      consumer
        .run({
          eachMessage: async ({ message }) => {
            clearTimeout(timer);
            resolve(message.value?.toString() ?? '');
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
    await producer.disconnect();
    await admin.deleteTopics({ topics: [topic] });
    await admin.disconnect();
  }
}

/** Both addresses are ports that the container API says test containers publish. */
async function expectTestContainerPorts(): Promise<void> {
  const client = await getContainerRuntimeClient();
  const publishedBy = new Map<number, Record<string, string>>();
  for (const { id } of infra.containers) {
    const inspect = await client.container.inspect(client.container.getById(id));
    expect(inspect.State.Running).toBe(true);
    for (const bindings of Object.values(inspect.NetworkSettings.Ports ?? {})) {
      for (const binding of bindings ?? []) publishedBy.set(Number(binding.HostPort), inspect.Config.Labels);
    }
  }
  const kafka = publishedBy.get(portOf(only(infra.kafkaBrokers)));
  const redis = publishedBy.get(portOf(infra.redisUrl));
  expect(kafka).toMatchObject({ 'org.testcontainers': 'true', 'org.ensemble-stream.role': 'kafka' });
  expect(redis).toMatchObject({ 'org.testcontainers': 'true', 'org.ensemble-stream.role': 'redis' });

  // The broker advertises the very address the host dialled, so clients stay on the mapped port.
  const admin = new Kafka({ clientId: 'infra-mode-test', brokers: infra.kafkaBrokers, logLevel: logLevel.WARN }).admin();
  await admin.connect();
  try {
    const { brokers } = await admin.describeCluster();
    expect(brokers.map((b) => `${b.host}:${b.port}`)).toEqual(infra.kafkaBrokers);
  } finally {
    await admin.disconnect();
  }
}

function splitBrokers(list: string): string[] {
  return list
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b !== '');
}

function only<T>(items: T[]): T {
  expect(items).toHaveLength(1);
  return items[0] as T;
}

function portOf(address: string): number {
  const port = Number(new URL(address.includes('://') ? address : `tcp://${address}`).port);
  expect(port).toBeGreaterThan(0);
  return port;
}
