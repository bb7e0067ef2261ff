import { afterEach, describe, expect, it } from 'vitest';
import { codecs } from '../../services/shared/codec.js';
import type { DeadLetter, FusedPrediction } from '../../services/shared/records.js';
import { ModelWorker } from '../../services/worker/worker.js';
import {
  classificationConfig,
  countByKey,
  createTestTopics,
  eventually,
  featureMessage,
  produce,
  quietLogger,
  SliceRunner,
  tail,
  tailFused,
  TestPipeline,
  testKafka,
} from '../support/pipeline.js';

/** A random distribution over `n` classes. */
function distribution(n: number): number[] {
  const raw = Array.from({ length: n }, () => Math.random() + 0.01);
  const sum = raw.reduce((a, b) => a + b, 0);
  return raw.map((x) => x / sum);
}

/** One worker serving every runner from one consumer, stopped with the pipeline. */
async function startColocated(pipeline: TestPipeline, runners: SliceRunner[]): Promise<ModelWorker> {
  const { kafka, topics } = pipeline;
  const worker = new ModelWorker({ kafka, topics, runner: runners, logger: quietLogger, groupId: `${topics.features}-colocated` });
  await worker.start();
  pipeline.workers.push(worker);
  return worker;
}

describe('a co-located worker (several models, one consumer) on real Kafka and Redis', () => {
  let pipeline: TestPipeline | undefined;
  afterEach(async () => {
    await pipeline?.stop();
    pipeline = undefined;
  });

  it('fuses every request exactly once from the answers of all its models, each under its own id', async () => {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka);
    pipeline = new TestPipeline(kafka, topics);
    const models = ['m1', 'm2', 'm3'];
    const worker = await startColocated(
      pipeline,
      models.map((id, i) => new SliceRunner(id, i, 3)),
    );
    await pipeline.startAggregator(classificationConfig(models));
    const fused = await tailFused(kafka, topics);

    const requests = 300;
    const perModel = new Map<string, number[][]>();
    const messages = Array.from({ length: requests }, (_, r) => {
      const probs = models.map(() => distribution(3));
      perModel.set(`req-${r}`, probs);
      return featureMessage(`req-${r}`, probs.flat());
    });
    await produce(kafka, topics.features, messages);
    await eventually(() => fused.received.length >= requests, `${requests} fused results`);
    await pipeline.drained(fused);
    await fused.stop();

    const counts = countByKey(fused.received);
    expect(counts.size).toBe(requests);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    for (const { key, value } of fused.received) {
      const probs = perModel.get(key)!;
      const expected = [0, 1, 2].map((c) => probs.reduce((s, p) => s + p[c]!, 0) / 3);
      expect(value.status).toBe('COMPLETE');
      expect(value.contributors.map((c) => c.modelId).sort()).toEqual(models);
      value.probabilities?.forEach((p, c) => {
        expect(p).toBeCloseTo(expected[c]!, 12);
      });
    }
    expect(worker.lanes.map((l) => [l.modelId, l.stats.predictions])).toEqual(models.map((id) => [id, requests]));
    expect(worker.stats.predictions).toBe(3 * requests);
  });

  it('answers for the healthy models at once while one of them fails', async () => {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka);
    pipeline = new TestPipeline(kafka, topics);
    const models = ['m1', 'm2', 'down'];
    const runners = [new SliceRunner('m1', 0, 3), new SliceRunner('m2', 1, 3), new SliceRunner('down', 2, 3, 'v1', () => true)];
    const worker = await startColocated(pipeline, runners);
    // A deadline far beyond the test's timeout: results can only come from answers (the failing
    // model's ERROR or ABSTAIN included), never from waiting it out.
    await pipeline.startAggregator(classificationConfig(models, { deadlineMs: 290_000, restoreHorizonMs: 295_000, quorum: 2 }));
    const fused = await tailFused(kafka, topics);

    const requests = 200;
    await produce(
      kafka,
      topics.features,
      Array.from({ length: requests }, (_, r) => featureMessage(`req-${r}`, [0.2, 0.3, 0.5, 0.6, 0.3, 0.1, 0, 0, 1])),
    );
    await eventually(() => fused.received.length >= requests, `${requests} results`);
    await pipeline.drained(fused);
    await fused.stop();

    expect(countByKey(fused.received).size).toBe(requests);
    expect(fused.received).toHaveLength(requests);
    for (const { value } of fused.received as { value: FusedPrediction }[]) {
      expect(value.status).toBe('PARTIAL');
      expect(value.contributors.map((c) => c.modelId).sort()).toEqual(['m1', 'm2']);
      expect(value.missing).toHaveLength(1);
      expect(value.missing[0]!.modelId).toBe('down');
      expect(['ERROR', 'ABSTAIN']).toContain(value.missing[0]!.reason);
      expect(value.probabilities?.[0]).toBeCloseTo(0.4, 12);
    }
    const [m1, m2, down] = worker.lanes;
    expect([m1!.stats.predictions, m2!.stats.predictions, m1!.stats.errors + m2!.stats.errors]).toEqual([requests, requests, 0]);
    expect(down!.stats.predictions).toBe(0);
    expect(down!.stats.errors + down!.stats.abstains).toBe(requests);
    // Its own breaker opened; the others' stayed closed.
    expect(down!.breaker.opened).toBe(true);
    expect(m1!.breaker.opened || m2!.breaker.opened).toBe(false);
  });

  it("dead-letters an event for the one model that cannot take it, under that model's name, and answers it with the others", async () => {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka, 1);
    pipeline = new TestPipeline(kafka, topics);
    const strict = new SliceRunner('strict', 0, 3);
    Object.defineProperty(strict, 'featureCount', { value: 3 });
    const worker = await startColocated(pipeline, [new SliceRunner('m1', 0, 3), strict]);
    const dead = await tail<DeadLetter>(kafka, topics.deadLetters, (v, h) => codecs.deadLetter.decode(v, h as never));
    const predictions = await tail(kafka, topics.predictions, (v, h) => codecs.prediction.decode(v, h as never));

    await produce(kafka, topics.features, [
      featureMessage('three', [0.2, 0.3, 0.5]),
      featureMessage('six', [0.2, 0.3, 0.5, 0.1, 0.1, 0.8]),
      { key: 'bad', value: Buffer.from('not avro'), headers: codecs.featureEvent.headers },
    ]);
    await eventually(() => dead.received.length >= 3 && predictions.received.length >= 3, 'dead letters and predictions');
    await dead.caughtUp();
    await predictions.caughtUp();
    await Promise.all([dead.stop(), predictions.stop()]);

    expect(predictions.received.map((p) => `${p.key}:${p.value.modelId}`).sort()).toEqual(['six:m1', 'three:m1', 'three:strict']);
    // A bad event is every model's dead letter, as separate workers would each write one.
    expect(dead.received.map((d) => `${d.key}:${d.value.service}:${d.value.reasonCode}`).sort()).toEqual([
      'bad:worker:m1:UNDECODABLE',
      'bad:worker:strict:UNDECODABLE',
      'six:worker:strict:WRONG_FEATURE_COUNT',
    ]);
    await eventually(() => worker.lanes[1]!.stats.deadLetters === 2 && worker.lanes[0]!.stats.deadLetters === 1, 'each model to count its own dead letters');
  });
});
