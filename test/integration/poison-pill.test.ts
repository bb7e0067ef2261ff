import { KafkaJSNonRetriableError } from 'kafkajs';
import { afterEach, describe, expect, it } from 'vitest';
import { createFuser } from '../../services/core/fusion/index.js';
import type { Fuser } from '../../services/core/fusion/types.js';
import { codecs } from '../../services/shared/codec.js';
import { watchConsumer } from '../../services/shared/consumer-crash.js';
import type { DeadLetter, Prediction } from '../../services/shared/records.js';
import { HEADERS } from '../../services/shared/topics.js';
import { untilConsumed } from '../support/consumed.js';
import { uniqueName } from '../support/ids.js';
import {
  classificationConfig,
  countByKey,
  createTestTopics,
  eventually,
  featureMessage,
  predictionMessage,
  produce,
  quietLogger,
  SliceRunner,
  tail,
  tailFused,
  TestPipeline,
  testKafka,
} from '../support/pipeline.js';

const MODELS = ['m1', 'm2'];
const FEATURES = [0.2, 0.3, 0.5, 0.6, 0.3, 0.1];
/** The report's 17 bytes: a FeatureEvent whose features array declares about 4 billion items. */
const HUGE_ARRAY = Buffer.from('146172726179 2d6875676500 80a0d9e61d'.replace(/ /g, ''), 'hex');

const decodeDeadLetter = (v: Buffer | null, h: unknown) => codecs.deadLetter.decode(v, h as never);
const idsAfter = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

describe('poison pills: one message never stops a partition', () => {
  let pipeline: TestPipeline | undefined;
  afterEach(async () => {
    await pipeline?.stop();
    pipeline = undefined;
  });

  async function start(partitions = 1) {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka, partitions);
    pipeline = new TestPipeline(kafka, topics);
    await pipeline.startWorker(new SliceRunner('m1', 0, 3), { commitIntervalMs: 100 });
    await pipeline.startWorker(new SliceRunner('m2', 1, 3), { commitIntervalMs: 100 });
    await pipeline.startAggregator(classificationConfig(MODELS));
    const fused = await tailFused(kafka, topics);
    const dead = await tail<DeadLetter>(kafka, topics.deadLetters, decodeDeadLetter);
    const readers = [
      ...MODELS.map((m) => ({ groupId: `${topics.features}-${m}`, topic: topics.features })),
      { groupId: `${topics.predictions}-aggregator`, topic: topics.predictions },
    ];
    return { kafka, topics, fused, dead, readers };
  }

  it('a feature event of about 1 MB is dead-lettered (quoted in part) by every worker, and the next 30 requests are answered', async () => {
    const { kafka, topics, fused, dead, readers } = await start();
    // 130,000 features: 1,040,000 bytes of Avro, under the topic's 1 MiB, far over the workers' 64 KiB.
    const big = featureMessage(
      'big-1',
      Array.from({ length: 130_000 }, () => 0.5),
    );
    expect((big.value as Buffer).length).toBeGreaterThan(1_000_000);
    await produce(kafka, topics.features, [big, ...idsAfter(30, 'next').map((id) => featureMessage(id, FEATURES))]);
    await eventually(() => fused.received.length >= 30 && dead.received.length >= 2, '30 results and two dead letters');
    await untilConsumed(kafka, readers);
    expect(new Set(fused.received.map((f) => f.key))).toEqual(new Set(idsAfter(30, 'next')));
    expect(dead.received.map((d) => [d.key, d.value.reasonCode, d.value.service]).sort()).toEqual([
      ['big-1', 'OVERSIZED', 'worker:m1'],
      ['big-1', 'OVERSIZED', 'worker:m2'],
    ]);
    for (const { value } of dead.received) {
      expect(value.value?.length).toBe(64 * 1024);
      expect(value.reason).toContain(`${topics.features}/0/0`);
    }
  });

  it('a prediction of 1,048,378 bytes is dead-lettered by the aggregator, and the next 30 requests are fused', async () => {
    const { kafka, topics, fused, dead, readers } = await start();
    const big = predictionMessage('big-1', 'm1', null, { status: 'ERROR', error: 'x'.repeat(1_048_300) });
    expect((big.value as Buffer).length).toBeGreaterThan(1_048_300);
    await produce(kafka, topics.predictions, [big]);
    await produce(
      kafka,
      topics.features,
      idsAfter(30, 'next').map((id) => featureMessage(id, FEATURES)),
    );
    await eventually(() => fused.received.length >= 30 && dead.received.length >= 1, '30 results and a dead letter');
    await untilConsumed(kafka, readers);
    expect(new Set(fused.received.map((f) => f.key))).toEqual(new Set(idsAfter(30, 'next')));
    expect(dead.received.map((d) => [d.key, d.value.reasonCode, d.value.service])).toEqual([['big-1', 'OVERSIZED', 'aggregator']]);
  });

  it('the 17-byte message with a 4-billion-item array is undecodable for every worker and the aggregator, and the next 30 are answered', async () => {
    const { kafka, topics, fused, dead, readers } = await start();
    await produce(kafka, topics.features, [{ key: 'array-huge', value: HUGE_ARRAY, headers: codecs.featureEvent.headers }]);
    await produce(kafka, topics.predictions, [{ key: 'array-huge', value: HUGE_ARRAY, headers: codecs.prediction.headers }]);
    await produce(
      kafka,
      topics.features,
      idsAfter(30, 'next').map((id) => featureMessage(id, FEATURES)),
    );
    await eventually(() => fused.received.length >= 30 && dead.received.length >= 3, '30 results and three dead letters');
    await untilConsumed(kafka, readers);
    expect(new Set(fused.received.map((f) => f.key))).toEqual(new Set(idsAfter(30, 'next')));
    expect(dead.received.map((d) => [d.value.service, d.value.reasonCode]).sort()).toEqual([
      ['aggregator', 'UNDECODABLE'],
      ['worker:m1', 'UNDECODABLE'],
      ['worker:m2', 'UNDECODABLE'],
    ]);
    expect(dead.received.every((d) => d.value.value?.equals(HUGE_ARRAY))).toBe(true);
  });

  it('a message that crashes its consumer twice is dead-lettered as POISON and skipped; the rest of its batch is fused exactly once', async () => {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka, 1);
    pipeline = new TestPipeline(kafka, topics);
    const config = classificationConfig(MODELS, { deadlineMs: 1000 });
    // A defect met on odd data: for m2's probabilities [0.4, 0.4, 0.2] this fuser returns a label that
    // cannot be encoded, so the batch holding the message that closes such a request throws.
    const real = createFuser({ task: 'classification', strategy: 'soft-voting', classes: config.classes });
    const defective: Fuser = {
      task: real.task,
      strategy: real.strategy,
      fuse: (outputs) => {
        const m2 = outputs.find((o) => o.modelId === 'm2')?.probabilities;
        return m2 !== undefined && m2[0] === 0.4 && m2[1] === 0.4 ? { ...real.fuse(outputs), label: 42 as never } : real.fuse(outputs);
      },
    };
    const aggregator = await pipeline.startAggregatorWith(config, { fuser: defective });
    const fused = await tailFused(kafka, topics);
    const dead = await tail<DeadLetter>(kafka, topics.deadLetters, decodeDeadLetter);
    const good = (id: string) => MODELS.map((m) => predictionMessage(id, m, [0.2, 0.3, 0.5]));
    const closing = predictionMessage('poison-1', 'm2', [0.4, 0.4, 0.2]);
    await produce(kafka, topics.predictions, [
      ...good('before'),
      predictionMessage('poison-1', 'm1', [0.2, 0.3, 0.5]),
      closing,
      ...idsAfter(30, 'next').flatMap(good),
    ]);

    await eventually(() => fused.received.length >= 31 && dead.received.length >= 1, 'every other result and a dead letter', 30_000);
    await untilConsumed(kafka, [{ groupId: `${topics.predictions}-aggregator`, topic: topics.predictions }]);
    expect(dead.received.map((d) => [d.key, d.value.reasonCode, d.value.sourceOffset])).toEqual([['poison-1', 'POISON', '3']]);
    expect(dead.received[0]?.value.reason).toMatch(/failed its consumer twice/);
    expect(dead.received[0]?.value.value).toEqual(closing.value);
    const counts = countByKey(fused.received);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    // The request whose fusion crashed is accounted for by its closing message's dead letter, not a result.
    expect(new Set(counts.keys())).toEqual(new Set(['before', ...idsAfter(30, 'next')]));
    expect(aggregator.stats.deadLetters).toBe(1);
  });

  it('a consumer that kafkajs gives up (crash, restart false) is reported to the service, which exits', async () => {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka, 1);
    const consumer = kafka.consumer({ groupId: uniqueName('crash') });
    const reasons: string[] = [];
    watchConsumer(consumer, 'test-consumer', quietLogger, (reason) => reasons.push(reason));
    try {
      await consumer.connect();
      await consumer.subscribe({ topic: topics.features, fromBeginning: true });
      await consumer.run({
        eachBatch: () => {
          throw new KafkaJSNonRetriableError('the producer was fenced');
        },
      });
      await produce(kafka, topics.features, [featureMessage('r-1', FEATURES)]);
      await eventually(() => reasons.length > 0, 'the crash to be reported', 30_000);
      expect(reasons[0]).toMatch(/test-consumer: consumer of group crash-.* crashed: the producer was fenced \(kafkajs does not restart it\)/);
    } finally {
      await consumer.disconnect();
    }
  });

  it('headers say when a dead letter quotes its original in part', async () => {
    const { kafka, topics, dead } = await start();
    const headers = await tail(kafka, topics.deadLetters, (_v, h) => String((h as Record<string, Buffer>)[HEADERS.truncated]));
    const big = predictionMessage('big-2', 'm1', null, { status: 'ERROR', error: 'y'.repeat(200_000) } as Partial<Prediction>);
    await produce(kafka, topics.predictions, [big]);
    await eventually(() => headers.received.length >= 1 && dead.received.length >= 1, 'the dead letter');
    await headers.stop();
    expect(headers.received[0]?.value).toBe(`key=5,value=${(big.value as Buffer).length}`);
  });
});
