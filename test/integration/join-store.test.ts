import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type JoinEntry, type JoinOutcome, JoinStore } from '../../services/aggregator/join-store.js';
import { RedisKeys } from '../../services/shared/redis-keys.js';
import { uniqueName } from '../support/ids.js';
import { testInfra } from '../support/infra.js';

const MODELS = ['m1', 'm2', 'm3'];
const TTL = 60_000;

function prediction(requestId: string, modelId: string, offset: number, deadlineAtMs = Date.now() + 10_000): JoinEntry {
  return { kind: 'prediction', requestId, modelId, offset: String(offset), deadlineAtMs, payload: Buffer.from(`${modelId}:${requestId}\u0000\u00ff`, 'latin1') };
}

describe('join scripts on real Redis', () => {
  let redis: Redis;
  let keys: RedisKeys;
  let store: JoinStore;

  beforeAll(() => {
    redis = new Redis(testInfra().redisUrl);
  });
  afterAll(async () => {
    redis.disconnect();
  });

  function fresh(): JoinStore {
    keys = new RedisKeys(uniqueName('t'));
    store = new JoinStore(redis, keys, { stateTtlMs: TTL });
    return store;
  }

  it('fuses a request once every awaited model answered, with every stored prediction, bytes intact', async () => {
    fresh();
    const out = await store.joinBatch(0, [prediction('r1', 'm1', 1), prediction('r1', 'm2', 2), prediction('r1', 'm3', 3)], MODELS, Date.now());
    expect(out.map((o) => o.kind)).toEqual(['pending', 'pending', 'fuse']);
    const fuse = out[2] as Extract<JoinOutcome, { kind: 'fuse' }>;
    expect(fuse.why).toBe('all');
    expect([...fuse.predictions.keys()].sort()).toEqual(MODELS);
    expect(fuse.predictions.get('m2')).toEqual(Buffer.from('m2:r1\u0000\u00ff', 'latin1'));
  });

  it('treats a redelivered prediction as a duplicate and an answer after fusion as late', async () => {
    fresh();
    const first = await store.joinBatch(0, [prediction('r1', 'm1', 1), prediction('r1', 'm1', 2)], ['m1', 'm2'], Date.now());
    expect(first.map((o) => o.kind)).toEqual(['pending', 'duplicate']);
    const closed = await store.joinBatch(0, [prediction('r1', 'm2', 3)], ['m1', 'm2'], Date.now());
    expect(closed[0]?.kind).toBe('fuse');
    await store.finish(0, ['r1']);
    const after = await store.joinBatch(0, [prediction('r1', 'm3', 4), prediction('r1', 'm2', 5)], ['m1', 'm2'], Date.now());
    expect(after.map((o) => o.kind)).toEqual(['late', 'duplicate']);
  });

  it('fuses again only when the message that fused is delivered again before its results were committed', async () => {
    fresh();
    await store.joinBatch(0, [prediction('r1', 'm1', 10)], ['m1', 'm2'], Date.now());
    const fused = await store.joinBatch(0, [prediction('r1', 'm2', 11)], ['m1', 'm2'], Date.now());
    expect(fused[0]?.kind).toBe('fuse');
    // The transaction aborted: Kafka delivers offsets 10 and 11 again.
    const replay = await store.joinBatch(0, [prediction('r1', 'm1', 10), prediction('r1', 'm2', 11)], ['m1', 'm2'], Date.now());
    expect(replay.map((o) => o.kind)).toEqual(['duplicate', 'fuse']);
    expect([...(replay[1] as Extract<JoinOutcome, { kind: 'fuse' }>).predictions.keys()].sort()).toEqual(['m1', 'm2']);
    // Once committed and finished, the same delivery changes nothing.
    await store.finish(0, ['r1']);
    const again = await store.joinBatch(0, [prediction('r1', 'm2', 11)], ['m1', 'm2'], Date.now());
    expect(again[0]?.kind).toBe('duplicate');
  });

  it('completes without the models it is not told to wait for (open breakers)', async () => {
    fresh();
    const out = await store.joinBatch(0, [prediction('r1', 'm1', 1), prediction('r1', 'm2', 2)], ['m1', 'm2'], Date.now());
    expect(out.map((o) => o.kind)).toEqual(['pending', 'fuse']);
  });

  it('claims due deadlines once per lease, and a deadline record fuses what is there exactly once', async () => {
    fresh();
    const now = Date.now();
    await store.joinBatch(1, [prediction('late-req', 'm1', 1, now - 1), prediction('on-time', 'm1', 2, now + 60_000)], MODELS, now);
    expect(await store.claimDue(1, now, 5000, 100)).toEqual(['late-req']);
    expect(await store.claimDue(1, now + 10, 5000, 100)).toEqual([]); // leased
    expect(await store.claimDue(1, now + 6000, 5000, 100)).toEqual(['late-req']); // lease ran out: claimable again

    const expired = await store.joinBatch(1, [{ kind: 'deadline', requestId: 'late-req', offset: '3' }], MODELS, now);
    expect(expired[0]).toMatchObject({ kind: 'fuse', why: 'deadline' });
    expect([...(expired[0] as Extract<JoinOutcome, { kind: 'fuse' }>).predictions.keys()]).toEqual(['m1']);
    // A second claim's record, and records for unknown requests, are ignored.
    const repeat = await store.joinBatch(1, [{ kind: 'deadline', requestId: 'late-req', offset: '4' }, { kind: 'deadline', requestId: 'nope', offset: '5' }], MODELS, now);
    expect(repeat.map((o) => o.kind)).toEqual(['ignored', 'ignored']);
    expect(await store.claimDue(1, now + 60_000, 5000, 100)).toEqual(['on-time']);
    expect(await redis.zrange(keys.deadlines(1), 0, -1)).toEqual(['on-time']);
  });

  it('keeps every key under a TTL and frees predictions when finished', async () => {
    fresh();
    await store.joinBatch(2, [prediction('r1', 'm1', 1), prediction('r1', 'm2', 2), prediction('r1', 'm3', 3)], MODELS, Date.now());
    for (const key of [keys.request(2, 'r1'), keys.requestPredictions(2, 'r1')]) {
      const ttl = await redis.pttl(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(TTL);
    }
    await store.finish(2, ['r1']);
    expect(await redis.exists(keys.requestPredictions(2, 'r1'))).toBe(0);
    expect(await redis.hget(keys.request(2, 'r1'), 'st')).toBe('done');
    expect(await redis.pttl(keys.request(2, 'r1'))).toBeGreaterThan(0);
  });

  it('fuses every request exactly once under concurrent delivery from many connections', async () => {
    fresh();
    const requests = 300;
    const connections = Array.from({ length: 6 }, () => new Redis(testInfra().redisUrl));
    try {
      const stores = connections.map((c) => new JoinStore(c, keys, { stateTtlMs: TTL }));
      // Every prediction delivered twice (redelivery), shuffled, split into batches across connections.
      const entries: JoinEntry[] = [];
      let offset = 0;
      for (let r = 0; r < requests; r++) for (const m of MODELS) for (let copy = 0; copy < 2; copy++) entries.push(prediction(`r${r}`, m, offset++));
      entries.sort(() => Math.random() - 0.5);
      const batches: JoinEntry[][] = [];
      for (let i = 0; i < entries.length; i += 25) batches.push(entries.slice(i, i + 25));
      const results = await Promise.all(batches.map((b, i) => (stores[i % stores.length] as JoinStore).joinBatch(3, b, MODELS, Date.now())));
      const fusedPerRequest = new Map<string, number>();
      results.forEach((outcomes, i) =>
        outcomes.forEach((o, j) => {
          if (o.kind !== 'fuse') return;
          const id = (batches[i] as JoinEntry[])[j]?.requestId as string;
          fusedPerRequest.set(id, (fusedPerRequest.get(id) ?? 0) + 1);
          expect(o.predictions.size).toBe(MODELS.length);
        }),
      );
      expect(fusedPerRequest.size).toBe(requests);
      expect([...fusedPerRequest.values()].every((n) => n === 1)).toBe(true);
      const kinds = results.flat().map((o) => o.kind);
      expect(kinds.filter((k) => k === 'duplicate')).toHaveLength(requests * MODELS.length);
    } finally {
      for (const c of connections) c.disconnect();
    }
  });
});
