import { afterEach, describe, expect, it } from 'vitest';
import { codecs } from '../../services/shared/codec.js';
import type { DeadLetter } from '../../services/shared/records.js';
import { HEADERS } from '../../services/shared/topics.js';
import {
  classificationConfig,
  createTestTopics,
  eventually,
  featureMessage,
  predictionMessage,
  produce,
  SliceRunner,
  tail,
  tailFused,
  TestPipeline,
  testKafka,
} from '../support/pipeline.js';

const MODELS = ['m1', 'm2'];
const OK = [0.2, 0.3, 0.5];

describe('bad input goes to the dead-letter topic, with its reason, and costs no other message', () => {
  let pipeline: TestPipeline | undefined;
  afterEach(async () => {
    await pipeline?.stop();
    pipeline = undefined;
  });

  it('in the aggregator', async () => {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka, 1);
    pipeline = new TestPipeline(kafka, topics);
    await pipeline.startAggregator(classificationConfig(MODELS, { maxMessageBytes: 1024 }));
    const fused = await tailFused(kafka, topics);
    const dead = await tail<DeadLetter>(kafka, topics.deadLetters, (v, h) => codecs.deadLetter.decode(v, h as never));

    const garbage = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x01]);
    const bad = [
      { code: 'UNDECODABLE', message: { key: 'bad-1', value: garbage, headers: codecs.prediction.headers } },
      { code: 'SCHEMA_MISMATCH', message: { ...featureMessage('bad-2', [1, 2, 3]) } },
      { code: 'INVALID_PROBABILITIES', message: predictionMessage('bad-3', 'm1', [Number.NaN, 0.5, 0.5]) },
      { code: 'INVALID_PROBABILITIES', message: predictionMessage('bad-4', 'm1', [-0.2, 0.7, 0.5]) },
      { code: 'INVALID_PROBABILITIES', message: predictionMessage('bad-5', 'm1', [0.2, 0.2, 0.2]) },
      { code: 'WRONG_CLASS_COUNT', message: predictionMessage('bad-6', 'm1', [0.5, 0.5]) },
      { code: 'UNKNOWN_MODEL', message: predictionMessage('bad-7', 'intruder', OK) },
      { code: 'OVERSIZED', message: predictionMessage('bad-8', 'm1', OK, { error: 'x'.repeat(2000) }) },
      { code: 'MISSING_KEY', message: { ...predictionMessage('bad-9', 'm1', OK), key: null } },
      { code: 'KEY_MISMATCH', message: { ...predictionMessage('bad-10', 'm1', OK), key: 'someone-else' } },
    ];
    // Good predictions before, between and after the bad ones: every good request must be fused.
    const good = (r: string) => MODELS.map((m) => predictionMessage(r, m, OK));
    await produce(kafka, topics.predictions, [
      ...good('good-1'),
      ...bad.slice(0, 5).map((b) => b.message),
      ...good('good-2'),
      ...bad.slice(5).map((b) => b.message),
      ...good('good-3'),
    ]);

    await eventually(() => dead.received.length >= bad.length && fused.received.length >= 3, 'dead letters and fused results');
    // Nothing more can come: the aggregator consumed every prediction, both readers are at the end.
    await pipeline.drained(fused);
    await dead.caughtUp();
    await Promise.all([dead.stop(), fused.stop()]);

    expect(fused.received.map((f) => f.key).sort()).toEqual(['good-1', 'good-2', 'good-3']);
    expect(dead.received.map((d) => d.value.reasonCode)).toEqual(bad.map((b) => b.code));
    dead.received.forEach(({ value }, i) => {
      const original = (bad[i] as (typeof bad)[number]).message;
      expect(value.sourceTopic).toBe(topics.predictions);
      expect(value.sourcePartition).toBe(0);
      expect(Number(value.sourceOffset)).toBeGreaterThanOrEqual(0);
      expect(value.value).toEqual(original.value);
      expect(value.service).toBe('aggregator');
      expect(value.reason.length).toBeGreaterThan(10);
    });
    expect(dead.received[0]?.value.reason).toMatch(/not a valid .*Prediction/);
    expect(dead.received[6]?.value.reason).toContain('intruder');
    // Offsets are distinct and increasing: each rejected message is accounted for once.
    const offsets = dead.received.map((d) => Number(d.value.sourceOffset));
    expect([...offsets].sort((a, b) => a - b)).toEqual(offsets);
    expect(new Set(offsets).size).toBe(offsets.length);
  });

  it('in a model worker', async () => {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka, 1);
    pipeline = new TestPipeline(kafka, topics);
    const runner = new SliceRunner('m1', 0, 3);
    Object.defineProperty(runner, 'featureCount', { value: 3 });
    const worker = await pipeline.startWorker(runner, { maxMessageBytes: 512 });
    const dead = await tail<DeadLetter>(kafka, topics.deadLetters, (v, h) => codecs.deadLetter.decode(v, h as never));
    const predictions = await tail(kafka, topics.predictions, (v, h) => codecs.prediction.decode(v, h as never));

    const bad = [
      { code: 'UNDECODABLE', message: { key: 'bad-1', value: Buffer.from('{"json": true}'), headers: codecs.featureEvent.headers } },
      { code: 'SCHEMA_MISMATCH', message: predictionMessage('bad-2', 'm1', OK) },
      { code: 'WRONG_FEATURE_COUNT', message: featureMessage('bad-3', [0.1, 0.2]) },
      { code: 'INVALID_VALUE', message: featureMessage('bad-4', [0.1, Number.NaN, 0.2]) },
      {
        code: 'OVERSIZED',
        message: featureMessage(
          'bad-5',
          Array.from({ length: 3 }, () => 0.3),
          Date.now(),
          null,
        ),
      },
    ];
    (bad[4] as (typeof bad)[number]).message.value = Buffer.concat([(bad[4] as (typeof bad)[number]).message.value as Buffer, Buffer.alloc(600)]);
    await produce(kafka, topics.features, [featureMessage('good-1', OK), ...bad.map((b) => b.message), featureMessage('good-2', OK)]);
    await eventually(() => dead.received.length >= bad.length && predictions.received.length >= 2, 'dead letters and predictions');
    await Promise.all([dead.stop(), predictions.stop()]);

    expect(predictions.received.map((p) => p.key)).toEqual(['good-1', 'good-2']);
    expect(dead.received.map((d) => d.value.reasonCode)).toEqual(bad.map((b) => b.code));
    expect(dead.received.every((d) => d.value.service === 'worker:m1' && d.value.sourceTopic === topics.features)).toBe(true);
    expect(dead.received.every((d) => d.key !== '' || d.value.key === null)).toBe(true);
    await eventually(() => worker.stats.deadLetters === bad.length, 'the worker to count its dead letters');
  });

  it('says why in a header too, so the topic can be filtered without decoding', async () => {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka, 1);
    pipeline = new TestPipeline(kafka, topics);
    await pipeline.startAggregator(classificationConfig(MODELS));
    const reasons = await tail(kafka, topics.deadLetters, (_v, h) => String((h as Record<string, Buffer>)[HEADERS.reason]));
    await produce(kafka, topics.predictions, [predictionMessage('x', 'nobody', OK)]);
    await eventually(() => reasons.received.length >= 1, 'one dead letter');
    await reasons.stop();
    expect(reasons.received[0]?.value).toBe('UNKNOWN_MODEL');
  });
});
