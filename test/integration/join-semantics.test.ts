import { afterEach, describe, expect, it } from 'vitest';
import {
  classificationConfig,
  countByKey,
  createTestTopics,
  eventually,
  featureMessage,
  predictionMessage,
  produce,
  SliceRunner,
  tailFused,
  TestPipeline,
  testKafka,
} from '../support/pipeline.js';

const FEATURES = [0.2, 0.3, 0.5, 0.6, 0.3, 0.1, 0.1, 0.1, 0.8];
const MODELS = ['m1', 'm2', 'flaky'];

describe('join semantics under real traffic', () => {
  let pipeline: TestPipeline | undefined;
  afterEach(async () => {
    await pipeline?.stop();
    pipeline = undefined;
  });

  it('stops waiting for a dead model once its breaker opens, and waits again after it recovers', async () => {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka);
    pipeline = new TestPipeline(kafka, topics);
    await pipeline.startWorker(new SliceRunner('m1', 0, 3));
    await pipeline.startWorker(new SliceRunner('m2', 1, 3));
    const deadlineMs = 1500;
    const aggregator = await pipeline.startAggregator(
      classificationConfig(MODELS, {
        deadlineMs,
        breaker: { volumeThreshold: 5, errorThresholdPercentage: 50, resetTimeout: 3000, rollingCountTimeout: 60_000, probeRequests: 1, warmupMs: 0 },
      }),
    );
    const fused = await tailFused(kafka, topics);
    const send = (from: number, n: number) =>
      produce(
        kafka,
        topics.features,
        Array.from({ length: n }, (_, i) => featureMessage(`req-${from + i}`, FEATURES)),
      );

    // 1. 'flaky' never answers: each request waits for the deadline; five misses open its breaker.
    await send(0, 5);
    await eventually(() => aggregator.health.state('flaky') === 'open', 'the breaker of flaky to open', 30_000);
    await eventually(() => fused.received.length >= 5, 'the first five results');
    for (const { value } of fused.received.slice(0, 5)) {
      expect(value.status).toBe('PARTIAL');
      expect(value.missing).toEqual([{ modelId: 'flaky', reason: 'DEADLINE', detail: null }]);
      expect(value.fusedAtMs - value.requestCreatedAtMs).toBeGreaterThanOrEqual(deadlineMs);
    }

    // 2. Breaker open: requests close as soon as m1 and m2 answered, well before the deadline.
    await send(100, 10);
    await eventually(() => fused.received.length >= 15, 'ten results without flaky');
    for (const { value } of fused.received.slice(5)) {
      expect(value.status).toBe('PARTIAL');
      expect(value.missing).toEqual([{ modelId: 'flaky', reason: 'CIRCUIT_OPEN', detail: null }]);
      expect(value.fusedAtMs - value.requestCreatedAtMs).toBeLessThan(deadlineMs);
    }

    // 3. flaky comes back; after resetTimeout the breaker lets a trial through and closes on success.
    await pipeline.startWorker(new SliceRunner('flaky', 2, 3));
    await eventually(() => aggregator.health.state('flaky') !== 'open', 'the breaker of flaky to half-open', 30_000);
    let next = 200;
    await eventually(
      () => {
        if (fused.received.at(-1)?.value.status === 'COMPLETE') return true;
        void send(next++, 1);
        return false;
      },
      'a COMPLETE result after recovery',
      60_000,
    );
    expect(aggregator.health.state('flaky')).toBe('closed');
    expect(aggregator.health.transitions.flaky).toMatchObject({ open: 1, 'half-open': 1, closed: 1 });
    await fused.stop();
    expect([...countByKey(fused.received).values()].every((n) => n === 1)).toBe(true);
  });

  it('counts a prediction after fusion as late and a redelivered one as a duplicate, never fusing twice', async () => {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka);
    pipeline = new TestPipeline(kafka, topics);
    const aggregator = await pipeline.startAggregator(classificationConfig(MODELS, { deadlineMs: 1000 }));
    const fused = await tailFused(kafka, topics);
    const p = [0.2, 0.3, 0.5];
    const requests = Array.from({ length: 20 }, (_, i) => `req-${i}`);
    // Each of m1, m2 delivered twice (a producer retry, a consumer replay); flaky not at all.
    await produce(
      kafka,
      topics.predictions,
      requests.flatMap((r) => [predictionMessage(r, 'm1', p), predictionMessage(r, 'm2', p), predictionMessage(r, 'm1', p)]),
    );
    await eventually(() => fused.received.length >= requests.length, 'partial results at the deadline');
    // flaky answers after the deadline; m2 is delivered again after fusion.
    await produce(
      kafka,
      topics.predictions,
      requests.flatMap((r) => [predictionMessage(r, 'flaky', p), predictionMessage(r, 'm2', p)]),
    );
    await eventually(() => (aggregator.stats.late.flaky ?? 0) >= requests.length, 'late answers counted');
    await pipeline.drained(fused);
    await fused.stop();

    expect(fused.received).toHaveLength(requests.length);
    expect(countByKey(fused.received).size).toBe(requests.length);
    expect(aggregator.stats.late).toEqual({ flaky: requests.length });
    // At least the second m1 and the late m2 of every request; a batch retried after an aborted
    // transaction sees its own predictions again, which are duplicates too.
    expect(aggregator.stats.duplicates).toBeGreaterThanOrEqual(requests.length * 2);
    for (const { value } of fused.received) expect(value.missing).toEqual([{ modelId: 'flaky', reason: 'DEADLINE', detail: null }]);
  });

  it('gives exactly one result per request while two aggregator instances race and one leaves mid-stream', async () => {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka, 4);
    pipeline = new TestPipeline(kafka, topics);
    for (const [i, id] of MODELS.entries()) await pipeline.startWorker(new SliceRunner(id, i, 3));
    const config = classificationConfig(MODELS);
    const first = await pipeline.startAggregator(config);
    await pipeline.startAggregator(config);
    const fused = await tailFused(kafka, topics);
    const total = 1200;
    const firstHalf = produce(
      kafka,
      topics.features,
      Array.from({ length: total / 2 }, (_, i) => featureMessage(`req-${i}`, FEATURES)),
    );
    await eventually(() => fused.received.length >= 100, 'the first results');
    await first.stop(); // its partitions move to the other instance mid-stream
    await firstHalf;
    await produce(
      kafka,
      topics.features,
      Array.from({ length: total / 2 }, (_, i) => featureMessage(`req-${total / 2 + i}`, FEATURES)),
    );
    await eventually(() => fused.received.length >= total, `${total} results`, 90_000);
    await pipeline.drained(fused);
    await fused.stop();

    const counts = countByKey(fused.received);
    expect(counts.size).toBe(total);
    expect([...counts.entries()].filter(([, n]) => n > 1)).toEqual([]);
    expect(fused.received.every(({ value }) => value.status === 'COMPLETE')).toBe(true);
  });
});
