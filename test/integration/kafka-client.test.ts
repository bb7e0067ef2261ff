import { afterEach, describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import { connectTransactional, IDEMPOTENT_RETRY } from '../../services/shared/kafka.js';
import { codecs } from '../../services/shared/codec.js';
import { uniqueName } from '../support/ids.js';
import { createTestTopics, eventually, featureMessage, produce, SliceRunner, tail, TestPipeline, testKafka } from '../support/pipeline.js';

// How the project uses its Kafka client, measured by the requests it sends: each one costs a round
// trip and broker work, so the hot paths must not send more than the protocol needs.
describe('the Kafka client on a real broker', () => {
  let pipeline: TestPipeline | undefined;
  afterEach(async () => {
    await pipeline?.stop();
    pipeline = undefined;
  });

  it('looks coordinators up once per client, not before every transactional call', async () => {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka, 1);
    const producer = kafka.producer({ transactionalId: uniqueName('txn'), idempotent: true, retry: IDEMPOTENT_RETRY, maxInFlightRequests: 1 });
    const sent = new Map<string, number>();
    producer.on(producer.events.REQUEST, ({ payload }) => sent.set(payload.apiName, (sent.get(payload.apiName) ?? 0) + 1));
    await producer.connect();
    const transactions = 10;
    const consumerGroupId = uniqueName('g');
    try {
      for (let i = 0; i < transactions; i++) {
        const transaction = await producer.transaction();
        await transaction.send({ topic: topics.fused, messages: [{ key: `r${i}`, value: 'v' }] });
        await transaction.sendOffsets({ consumerGroupId, topics: [{ topic: topics.predictions, partitions: [{ partition: 0, offset: String(i + 1) }] }] });
        await transaction.commit();
      }
    } finally {
      await producer.disconnect();
    }
    expect(sent.get('EndTxn')).toBe(transactions);
    // Uncached, kafkajs asks four times per transaction (41 here); a lookup lives for a second.
    expect(sent.get('GroupCoordinator') ?? 0).toBeLessThan(transactions);
    expect(sent.get('GroupCoordinator') ?? 0).toBeGreaterThan(0);
  });

  it('takes a transactional id over only at the first transaction(), which connectTransactional does before it resolves', async () => {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka, 1);
    const id = uniqueName('txn');
    const producerOf = () => kafka.producer({ transactionalId: id, idempotent: true, retry: IDEMPOTENT_RETRY, maxInFlightRequests: 1 });
    const send = async (producer: Producer, value: string) => {
      const transaction = await producer.transaction();
      await transaction.send({ topic: topics.fused, messages: [{ key: value, value }] });
      return transaction;
    };
    const first = producerOf();
    await first.connect();
    const second = producerOf();
    const third = producerOf();
    try {
      // kafkajs's connect() alone takes nothing over: the first producer's open transaction commits.
      const unfenced = await send(first, 'first, committed');
      await second.connect();
      await unfenced.commit();
      // connectTransactional fences it: its open transaction is aborted and its commit refused.
      const fenced = await send(first, 'first, fenced');
      await connectTransactional(third);
      await expect(fenced.commit()).rejects.toThrow();
      await (await send(third, 'third, committed')).commit();
    } finally {
      await Promise.allSettled([first.disconnect(), second.disconnect(), third.disconnect()]);
    }
    const read = await tail(kafka, topics.fused, (value) => value?.toString() ?? '');
    await read.caughtUp();
    await read.stop();
    expect(read.received.map((r) => r.value)).toEqual(['first, committed', 'third, committed']);
  });

  it('a worker commits every consumed offset when it stops, so its successor repeats nothing', async () => {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka);
    pipeline = new TestPipeline(kafka, topics);
    const groupId = uniqueName('worker');
    // Commits are due once a minute here: only the one made while stopping can cover the requests.
    const first = await pipeline.startWorker(new SliceRunner('m1', 0, 3), { groupId, commitIntervalMs: 60_000 });
    const predictions = await tail(kafka, topics.predictions, (v, h) => codecs.prediction.decode(v, h as never));
    const requests = 200;
    await produce(
      kafka,
      topics.features,
      Array.from({ length: requests }, (_, i) => featureMessage(`r${i}`, [0.2, 0.3, 0.5])),
    );
    await eventually(() => predictions.received.length >= requests, `${requests} predictions`);
    await first.stop();
    pipeline.workers.length = 0;

    const admin = kafka.admin();
    await admin.connect();
    try {
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topics.features] });
      const ends = await admin.fetchTopicOffsets(topics.features);
      const committedTotal = (committed?.partitions ?? []).reduce((a, p) => a + Number(p.offset), 0);
      expect(committedTotal).toBe(ends.reduce((a, p) => a + Number(p.high), 0));
    } finally {
      await admin.disconnect();
    }

    await pipeline.startWorker(new SliceRunner('m1', 0, 3), { groupId });
    await produce(kafka, topics.features, [featureMessage('after-restart', [0.2, 0.3, 0.5])]);
    await eventually(() => predictions.received.some((p) => p.key === 'after-restart'), 'the prediction after the restart');
    await predictions.stop();
    expect(predictions.received).toHaveLength(requests + 1);
  });
});
