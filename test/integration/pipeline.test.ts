import { BREAKER_DEFAULTS } from '../../services/core/ensemble-config.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { FusedPrediction } from '../../services/shared/records.js';
import {
  classificationConfig,
  countByKey,
  createTestTopics,
  eventually,
  featureMessage,
  produce,
  SliceRunner,
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

describe('the pipeline on real Kafka and Redis', () => {
  let pipeline: TestPipeline | undefined;
  afterEach(async () => {
    await pipeline?.stop();
    pipeline = undefined;
  });

  it('fuses every request exactly once, with the weighted soft vote of every model', async () => {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka);
    pipeline = new TestPipeline(kafka, topics);
    const models = ['m1', 'm2', 'm3'];
    const weights = [1, 2, 3];
    for (const [i, id] of models.entries()) await pipeline.startWorker(new SliceRunner(id, i, 3));
    await pipeline.startAggregator(classificationConfig(models, { models: models.map((id, i) => ({ id, weight: weights[i] as number })) }));
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
      const probs = perModel.get(key) as number[][];
      // soft vote: sum_i w_i p_i / sum_i w_i
      const expected = [0, 1, 2].map((c) => probs.reduce((s, p, i) => s + (weights[i] as number) * (p[c] as number), 0) / 6);
      expect(value.status).toBe('COMPLETE');
      expect(value.strategy).toBe('soft-voting');
      expect(value.contributors.map((c) => c.modelId).sort()).toEqual(models);
      expect(value.missing).toEqual([]);
      value.probabilities?.forEach((p, c) => {
        expect(p).toBeCloseTo(expected[c] as number, 12);
      });
      expect(value.label).toBe(['a', 'b', 'c'][expected.indexOf(Math.max(...expected))]);
    }
  });

  it('emits a partial result at the deadline, naming the model that never answered', async () => {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka);
    pipeline = new TestPipeline(kafka, topics);
    const models = ['m1', 'm2', 'silent'];
    await pipeline.startWorker(new SliceRunner('m1', 0, 3));
    await pipeline.startWorker(new SliceRunner('m2', 1, 3));
    // A breaker that cannot open within this test, so every result shows the deadline at work.
    await pipeline.startAggregator(classificationConfig(models, { deadlineMs: 1500, breaker: { ...BREAKER_DEFAULTS, volumeThreshold: 1000 } }));
    const fused = await tailFused(kafka, topics);

    const requests = 40;
    await produce(
      kafka,
      topics.features,
      Array.from({ length: requests }, (_, r) => featureMessage(`req-${r}`, [0.2, 0.3, 0.5, 0.6, 0.3, 0.1, 0, 0, 1])),
    );
    await eventually(() => fused.received.length >= requests, `${requests} partial results`);
    await pipeline.drained(fused);
    await fused.stop();

    expect(countByKey(fused.received).size).toBe(requests);
    expect(fused.received).toHaveLength(requests);
    for (const { value } of fused.received as { value: FusedPrediction; receivedAtMs: number }[]) {
      expect(value.status).toBe('PARTIAL');
      expect(value.missing).toEqual([{ modelId: 'silent', reason: 'DEADLINE', detail: null }]);
      // (0.2+0.6)/2, (0.3+0.3)/2, (0.5+0.1)/2: the weights are renormalised over m1 and m2
      expect(value.probabilities?.[0]).toBeCloseTo(0.4, 12);
      expect(value.probabilities?.[1]).toBeCloseTo(0.3, 12);
      expect(value.probabilities?.[2]).toBeCloseTo(0.3, 12);
      expect(value.fusedAtMs - value.requestCreatedAtMs).toBeGreaterThanOrEqual(1500);
    }
  });
});
