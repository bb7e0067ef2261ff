import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { BREAKER_DEFAULTS } from '../../services/core/ensemble-config.js';
import type { FusedPrediction } from '../../services/shared/records.js';
import type { ModelAnswer, ModelRunner } from '../../services/worker/model-runner.js';
import { testInfra } from '../support/infra.js';
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
const MODELS = ['m1', 'm2', 'm3'];

/** A model that answers like SliceRunner, each call held back by `delayMs()` (a stall, a cold start). */
class DelayedRunner implements ModelRunner {
  readonly featureCount = undefined;
  private readonly inner: SliceRunner;
  constructor(
    readonly modelId: string,
    index: number,
    public delayMs: () => number,
  ) {
    this.inner = new SliceRunner(modelId, index, 3);
  }
  get modelVersion(): string {
    return this.inner.modelVersion;
  }
  async predict(features: readonly number[]): Promise<ModelAnswer> {
    const wait = this.delayMs();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    return this.inner.predict(features);
  }
}

/** Sends `n` requests at about `perSecond`, ids `${prefix}-<i>`. */
async function stream(
  kafka: ReturnType<typeof testKafka>,
  topic: string,
  prefix: string,
  n: number,
  perSecond: number,
  during?: (sent: number) => Promise<void>,
) {
  const chunk = Math.max(1, Math.round(perSecond / 10));
  for (let i = 0; i < n; i += chunk) {
    await produce(
      kafka,
      topic,
      Array.from({ length: Math.min(chunk, n - i) }, (_, j) => featureMessage(`${prefix}-${i + j}`, FEATURES)),
    );
    await during?.(i + chunk);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function once(received: readonly { key: string }[]): number {
  return [...countByKey(received).values()].filter((n) => n !== 1).length;
}

describe('join semantics under faults', () => {
  let pipeline: TestPipeline | undefined;
  afterEach(async () => {
    await pipeline?.stop();
    pipeline = undefined;
  });

  it('a stalled model never turns answers into INSUFFICIENT while quorum answered, and every result names every model', async () => {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka);
    pipeline = new TestPipeline(kafka, topics);
    let stalled = false;
    await pipeline.startWorker(new SliceRunner('m1', 0, 3));
    await pipeline.startWorker(new SliceRunner('m2', 1, 3));
    // m3 stalls for 3.5 s per call while `stalled` (its own breaker's timeout is longer).
    await pipeline.startWorker(new DelayedRunner('m3', 2, () => (stalled ? 3500 : 0)), { breaker: { timeout: 30_000 } });
    const config = classificationConfig(MODELS, {
      deadlineMs: 1000,
      quorum: 2,
      breaker: { ...BREAKER_DEFAULTS, volumeThreshold: 5, resetTimeout: 2000, warmupMs: 0 },
    });
    const aggregator = await pipeline.startAggregator(config);
    const fused = await tailFused(kafka, topics);

    await stream(kafka, topics.features, 'before', 60, 100);
    stalled = true;
    await stream(kafka, topics.features, 'stall', 500, 100);
    stalled = false;
    await stream(kafka, topics.features, 'after', 100, 100);
    await eventually(() => new Set(fused.received.map((f) => f.key)).size >= 660, '660 results', 90_000);
    await pipeline.drained(fused);
    await fused.stop();

    expect(countByKey(fused.received).size).toBe(660);
    expect(once(fused.received)).toBe(0);
    const results = fused.received.map((f) => f.value);
    expect(results.filter((r) => r.status === 'INSUFFICIENT')).toEqual([]);
    for (const r of results) {
      const named = [...r.contributors.map((c) => c.modelId), ...r.missing.map((m) => m.modelId)].sort();
      expect(named).toEqual(MODELS);
      expect(r.contributors.map((c) => c.modelId)).toEqual(expect.arrayContaining(['m1', 'm2']));
    }
    // The stall opened m3's breaker, so most stalled requests did not wait for it (those made before
    // its first missed deadline could not know).
    expect(aggregator.health.transitions.m3?.open).toBeGreaterThanOrEqual(1);
    const stallResults = results.filter((r) => r.requestId.startsWith('stall-'));
    const waitedFull = stallResults.filter((r) => r.fusedAtMs - r.requestCreatedAtMs >= 1000).length;
    expect(waitedFull).toBeLessThan(stallResults.length / 2);
    expect(stallResults.some((r) => r.missing.some((m) => m.modelId === 'm3' && m.reason === 'CIRCUIT_OPEN'))).toBe(true);
  });

  it('a pipeline that warms up slowly trips no breaker', async () => {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka);
    pipeline = new TestPipeline(kafka, topics);
    const startedAt = Date.now();
    // Every model takes 1.5 s per call for the first 2.5 s: the first requests all miss a 1 s deadline.
    const cold = () => (Date.now() - startedAt < 2500 ? 1500 : 0);
    for (const [i, id] of MODELS.entries())
      await pipeline.startWorker(new DelayedRunner(id, i, i === 2 ? () => cold() + 300 : cold), { breaker: { timeout: 30_000 } });
    const aggregator = await pipeline.startAggregator(classificationConfig(MODELS, { deadlineMs: 1000, breaker: { ...BREAKER_DEFAULTS, volumeThreshold: 5 } }));
    const fused = await tailFused(kafka, topics);
    await stream(kafka, topics.features, 'warm', 300, 100);
    await eventually(() => countByKey(fused.received).size >= 300, '300 results', 90_000);
    await pipeline.drained(fused);
    await fused.stop();

    expect(once(fused.received)).toBe(0);
    expect(fused.received.some(({ value }) => value.status === 'PARTIAL')).toBe(true); // the warm-up did miss deadlines
    for (const m of MODELS) expect(aggregator.health.transitions[m]).toEqual({ open: 0, 'half-open': 0, closed: 0 });
  });

  it.each([
    ['all models healthy', MODELS],
    ['one model down', ['m1', 'm2']],
  ])('FLUSHALL mid-stream loses and duplicates nothing (%s)', async (_, running) => {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka);
    pipeline = new TestPipeline(kafka, topics);
    for (const id of running) await pipeline.startWorker(new SliceRunner(id, MODELS.indexOf(id), 3));
    const config = classificationConfig(MODELS, { deadlineMs: 1500, breaker: { ...BREAKER_DEFAULTS, warmupMs: 0, volumeThreshold: 1000 } });
    const aggregator = await pipeline.startAggregator(config);
    const fused = await tailFused(kafka, topics);
    // Redis as a restart without persistence leaves it: every key gone, the pipeline still running.
    const admin = new Redis(testInfra().redisUrl);
    let wiped = 0;
    await stream(kafka, topics.features, 'r', 600, 200, async (sent) => {
      if (sent % 200 === 0 && sent < 600) {
        await admin.flushall();
        wiped++;
      }
    });
    admin.disconnect();
    await eventually(() => countByKey(fused.received).size >= 600, '600 results', 90_000);
    await pipeline.drained(fused);
    await fused.stop();

    expect(wiped).toBe(2);
    expect(countByKey(fused.received).size).toBe(600);
    expect(once(fused.received)).toBe(0);
    expect(aggregator.stats.restores).toBeGreaterThanOrEqual(2);
    // Every answer accepted before a wipe still counts: each result has every running model in it.
    const short = fused.received.filter(({ value }) => value.contributors.length !== running.length).map(({ value }) => value);
    expect(short).toEqual([]);
  });

  it('a backlog older than the state TTL is fused, once per request', async () => {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka);
    pipeline = new TestPipeline(kafka, topics);
    // Predictions of 500 requests made two hours ago, as an aggregator outage leaves them.
    const createdAt = Date.now() - 2 * 3600_000;
    const p = [0.2, 0.3, 0.5];
    const backlog = Array.from({ length: 500 }, (_, i) => `old-${i}`).flatMap((id, i) =>
      MODELS.slice(0, i % 5 === 0 ? 2 : 3).map((m) => predictionMessage(id, m, p, { requestCreatedAtMs: createdAt + i, receivedAtMs: createdAt + i })),
    );
    await produce(kafka, topics.predictions, backlog);
    const aggregator = await pipeline.startAggregator(
      classificationConfig(MODELS, { deadlineMs: 1000, stateTtlMs: 10_000, breaker: { ...BREAKER_DEFAULTS, warmupMs: 0 } }),
    );
    const fused = await tailFused(kafka, topics);
    await eventually(() => countByKey(fused.received).size >= 500, '500 results', 60_000);
    await pipeline.drained(fused);
    await fused.stop();

    expect(once(fused.received)).toBe(0);
    const byId = new Map(fused.received.map(({ value }) => [value.requestId, value] as [string, FusedPrediction]));
    expect(byId.size).toBe(500);
    // Every fifth request never got m3's answer: fused at its (long past) deadline, m3 missing.
    expect(byId.get('old-0')).toMatchObject({ status: 'PARTIAL', missing: [{ modelId: 'm3', reason: 'DEADLINE', detail: null }] });
    expect(byId.get('old-1')?.status).toBe('COMPLETE');
    expect(aggregator.stats.late).toEqual({});
    expect(aggregator.stats.deadLetters).toBe(0);
  });
});
