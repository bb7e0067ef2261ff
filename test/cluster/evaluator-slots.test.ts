import type { Cluster } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { type EventEntry, EvaluatorStore } from '../../services/evaluator/evaluator-store.js';
import { classificationSample, sampleLoss } from '../../services/evaluator/rolling-metrics.js';
import { encodeAnswer, encodeLabel } from '../../services/evaluator/stored-answers.js';
import { RollingWindow } from '../../services/evaluator/window.js';
import { createRedis } from '../../services/shared/redis.js';
import { RedisKeys } from '../../services/shared/redis-keys.js';
import { uniqueName } from '../support/ids.js';
import { testInfra } from '../support/infra.js';

// The evaluator's state on a Redis Cluster: every script call stays on one slot (a cross-slot call
// fails), the figures add up, and the keys of one evaluator spread over the cluster's masters.
const MODELS = ['m1', 'm2', 'm3'];
const REQUESTS = 300;

describe("the evaluator's keys on a Redis Cluster", () => {
  const redis = createRedis(testInfra().redisUrl, 'evaluator-slots-test') as Cluster;
  const keys = new RedisKeys(uniqueName('eval-slots'));
  afterAll(async () => {
    for (const node of redis.nodes('master')) {
      const found = await node.keys(`${keys.namespace}:*`);
      for (const key of found) await node.del(key);
    }
    redis.disconnect();
  });

  it('records, scores and reads on one slot per call, and spreads over every master', async () => {
    const store = new EvaluatorStore(redis, keys, {
      window: RollingWindow.parse('count:1000'),
      eventWindow: RollingWindow.parse('time:60000'),
      requestTtlMs: 600_000,
      decay: 0.99,
    });
    const now = Date.now();
    const bucket = store.options.eventWindow.bucketOf(now);
    const entries: EventEntry[] = [];
    for (let i = 0; i < REQUESTS; i++) {
      const requestId = `r-${i}`;
      for (const [m, modelId] of MODELS.entries()) {
        const picked = (i + m) % 2;
        entries.push({
          kind: 'prediction',
          requestId,
          modelId,
          answer: encodeAnswer(picked, 5, picked === 0 ? [0.9, 0.1] : [0.1, 0.9]),
          bucket,
          sketchField: 'lat:1',
        });
      }
      entries.push({ kind: 'label', requestId, label: encodeLabel({ observedAtMs: now, target: 0 }) });
    }
    const unscored = await store.record(entries);
    expect(unscored).toHaveLength(REQUESTS);
    expect(unscored.map((u) => u.requestId)).toEqual(entries.filter((e) => e.kind === 'label').map((e) => e.requestId));

    const samples = unscored.flatMap(({ requestId, label, answers }) =>
      [...answers].map(([subject, bytes]) => {
        const picked = bytes.readDoubleLE(0);
        const sample = classificationSample(label.target, picked, picked === 0 ? [0.9, 0.1] : [0.1, 0.9]);
        return { requestId, subject, bucket: null, sample, loss: sampleLoss(sample) };
      }),
    );
    expect(await store.score(samples)).toBe(REQUESTS * MODELS.length);
    // Scored once: the same samples again (a redelivered batch) add nothing.
    expect(await store.score(samples)).toBe(0);
    expect(await store.record(entries)).toHaveLength(REQUESTS);

    const state = await store.read(MODELS, [bucket]);
    for (const m of MODELS) {
      expect(state.totals.get(`pred:${m}`)).toBe(REQUESTS);
      expect(state.totals.get(`lab:${m}`)).toBe(REQUESTS);
      expect(state.events.get(`pred:${m}`)).toBe(REQUESTS);
      expect(state.learning.get(`w:${m}`)).toBeGreaterThan(0);
      const held = [...(state.windows.get(m)?.values() ?? [])];
      expect(held.reduce((n, fields) => n + Number(fields.get('n') ?? 0), 0)).toBe(REQUESTS);
    }

    // Where the keys landed: each master holds some.
    const perMaster = await Promise.all(redis.nodes('master').map(async (node) => (await node.keys(`${keys.namespace}:*`)).length));
    console.log(`evaluator keys per master: ${perMaster.join(', ')} (${keys.evaluatorShards().length} request shards, ${MODELS.length} subjects)`);
    expect(perMaster.length).toBeGreaterThanOrEqual(3);
    for (const n of perMaster) expect(n).toBeGreaterThan(0);
  });
});
