import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type JoinEntry, type JoinOutcome, JoinStore, StateLostError } from '../../services/aggregator/join-store.js';
import { FUSED_BUCKET_MS, JOIN_STATE, REQUEST_FIELD, RedisKeys } from '../../services/shared/redis-keys.js';
import { uniqueName } from '../support/ids.js';
import { testInfra } from '../support/infra.js';

const MODELS = ['m1', 'm2', 'm3'];
const TTL = 60_000;

const OPTIONS = { stateTtlMs: TTL, fusedMemoryMs: 3_600_000, quorum: 1 };

function prediction(
  requestId: string,
  modelId: string,
  offset: number,
  deadlineAtMs = Date.now() + 10_000,
  ok = true,
  requestCreatedAtMs = Date.now(),
): JoinEntry {
  return {
    kind: 'prediction',
    requestId,
    modelId,
    offset: String(offset),
    requestCreatedAtMs,
    deadlineAtMs,
    ok,
    payload: Buffer.from(`${modelId}:${requestId}\u0000\u00ff`, 'latin1'),
  };
}

/** Joins with every model in `waitFor` awaited and no probes; returns the outcomes. */
async function join(store: JoinStore, partition: number, entries: JoinEntry[], waitFor: string[], nowMs: number): Promise<JoinOutcome[]> {
  return (await store.joinBatch(partition, entries, { waitFor, probe: [], probeBudget: 0 }, nowMs)).outcomes;
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

  async function fresh(): Promise<JoinStore> {
    keys = new RedisKeys(uniqueName('t'));
    store = new JoinStore(redis, keys, OPTIONS);
    for (let p = 0; p < 4; p++) await store.restore(p, { fused: [], open: [] }, true, 0, Date.now());
    return store;
  }

  it('fuses a request once every awaited model answered, with every stored prediction, bytes intact', async () => {
    await fresh();
    const out = await join(store, 0, [prediction('r1', 'm1', 1), prediction('r1', 'm2', 2), prediction('r1', 'm3', 3)], MODELS, Date.now());
    expect(out.map((o) => o.kind)).toEqual(['pending', 'pending', 'fuse']);
    const fuse = out[2] as Extract<JoinOutcome, { kind: 'fuse' }>;
    expect(fuse.why).toBe('all');
    expect([...fuse.predictions.keys()].sort()).toEqual(MODELS);
    expect(fuse.predictions.get('m2')).toEqual(Buffer.from('m2:r1\u0000\u00ff', 'latin1'));
  });

  it('treats a redelivered prediction as a duplicate and an answer after fusion as late', async () => {
    await fresh();
    const first = await join(store, 0, [prediction('r1', 'm1', 1), prediction('r1', 'm1', 2)], ['m1', 'm2'], Date.now());
    expect(first.map((o) => o.kind)).toEqual(['pending', 'duplicate']);
    const closed = await join(store, 0, [prediction('r1', 'm2', 3)], ['m1', 'm2'], Date.now());
    expect(closed[0]?.kind).toBe('fuse');
    await store.finish(0, ['r1']);
    const after = await join(store, 0, [prediction('r1', 'm3', 4), prediction('r1', 'm2', 5)], ['m1', 'm2'], Date.now());
    expect(after.map((o) => o.kind)).toEqual(['late', 'duplicate']);
  });

  it('fuses again only when the message that fused is delivered again before its results were committed', async () => {
    await fresh();
    await join(store, 0, [prediction('r1', 'm1', 10)], ['m1', 'm2'], Date.now());
    const closedAt = Date.now() - 5000;
    const fused = await join(store, 0, [prediction('r1', 'm2', 11)], ['m1', 'm2'], closedAt);
    expect(fused[0]).toMatchObject({ kind: 'fuse', fusedAtMs: closedAt });
    // The transaction aborted: Kafka delivers offsets 10 and 11 again.
    const replay = await join(store, 0, [prediction('r1', 'm1', 10), prediction('r1', 'm2', 11)], ['m1', 'm2'], Date.now());
    expect(replay.map((o) => o.kind)).toEqual(['duplicate', 'fuse']);
    // Fused again as it was the first time: the same close time, so the same result bytes.
    expect(replay[1]).toMatchObject({ kind: 'fuse', fusedAtMs: closedAt });
    expect([...(replay[1] as Extract<JoinOutcome, { kind: 'fuse' }>).predictions.keys()].sort()).toEqual(['m1', 'm2']);
    // Once committed and finished, the same delivery changes nothing.
    await store.finish(0, ['r1']);
    const again = await join(store, 0, [prediction('r1', 'm2', 11)], ['m1', 'm2'], Date.now());
    expect(again[0]?.kind).toBe('duplicate');
  });

  it('completes without the models it is not told to wait for (open breakers)', async () => {
    await fresh();
    const out = await join(store, 0, [prediction('r1', 'm1', 1), prediction('r1', 'm2', 2)], ['m1', 'm2'], Date.now());
    expect(out.map((o) => o.kind)).toEqual(['pending', 'fuse']);
  });

  it('claims due deadlines once per lease, and a deadline record fuses what is there exactly once', async () => {
    await fresh();
    const now = Date.now();
    await join(store, 1, [prediction('late-req', 'm1', 1, now - 1), prediction('on-time', 'm1', 2, now + 60_000)], MODELS, now);
    // The claim says when to look again: the lease, before the on-time request (due in 60 s).
    expect(await store.claimDue(1, now, 5000, 100)).toEqual({ due: ['late-req'], nextAtMs: now + 5000 });
    expect((await store.claimDue(1, now + 10, 5000, 100)).due).toEqual([]); // leased
    expect((await store.claimDue(1, now + 6000, 5000, 100)).due).toEqual(['late-req']); // lease ran out: claimable again

    const expired = await join(store, 1, [{ kind: 'deadline', requestId: 'late-req', offset: '3' }], MODELS, now);
    expect(expired[0]).toMatchObject({ kind: 'fuse', why: 'deadline' });
    expect([...(expired[0] as Extract<JoinOutcome, { kind: 'fuse' }>).predictions.keys()]).toEqual(['m1']);
    // A second claim's record, and records for unknown requests, are ignored.
    const repeat = await join(
      store,
      1,
      [
        { kind: 'deadline', requestId: 'late-req', offset: '4' },
        { kind: 'deadline', requestId: 'nope', offset: '5' },
      ],
      MODELS,
      now,
    );
    expect(repeat.map((o) => o.kind)).toEqual(['ignored', 'ignored']);
    expect(await store.claimDue(1, now + 60_000, 5000, 100)).toEqual({ due: ['on-time'], nextAtMs: now + 65_000 });
    expect(await redis.zrange(keys.deadlines(1), 0, -1)).toEqual(['on-time']);
  });

  it('keeps every key under a TTL and frees predictions when finished', async () => {
    await fresh();
    await join(store, 2, [prediction('r1', 'm1', 1), prediction('r1', 'm2', 2), prediction('r1', 'm3', 3)], MODELS, Date.now());
    for (const key of [keys.request(2, 'r1'), keys.requestPredictions(2, 'r1')]) {
      const ttl = await redis.pttl(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(TTL);
    }
    await store.finish(2, ['r1']);
    expect(await redis.exists(keys.requestPredictions(2, 'r1'))).toBe(0);
    expect(await redis.hget(keys.request(2, 'r1'), REQUEST_FIELD.state)).toBe(JOIN_STATE.done);
    expect(await redis.pttl(keys.request(2, 'r1'))).toBeGreaterThan(0);
  });

  it('fuses every request exactly once under concurrent delivery from many connections', async () => {
    await fresh();
    const requests = 300;
    const connections = Array.from({ length: 6 }, () => new Redis(testInfra().redisUrl));
    try {
      const stores = connections.map((c) => new JoinStore(c, keys, OPTIONS));
      // Every prediction delivered twice (redelivery), shuffled, split into batches across connections.
      const entries: JoinEntry[] = [];
      let offset = 0;
      for (let r = 0; r < requests; r++) for (const m of MODELS) for (let copy = 0; copy < 2; copy++) entries.push(prediction(`r${r}`, m, offset++));
      entries.sort(() => Math.random() - 0.5);
      const batches: JoinEntry[][] = [];
      for (let i = 0; i < entries.length; i += 25) batches.push(entries.slice(i, i + 25));
      const results = await Promise.all(batches.map((b, i) => join(stores[i % stores.length] as JoinStore, 3, b, MODELS, Date.now())));
      const fusedPerRequest = new Map<string, number>();
      results.forEach((outcomes, i) => {
        outcomes.forEach((o, j) => {
          if (o.kind !== 'fuse') return;
          const id = (batches[i] as JoinEntry[])[j]?.requestId as string;
          fusedPerRequest.set(id, (fusedPerRequest.get(id) ?? 0) + 1);
          expect(o.predictions.size).toBe(MODELS.length);
        });
      });
      expect(fusedPerRequest.size).toBe(requests);
      expect([...fusedPerRequest.values()].every((n) => n === 1)).toBe(true);
      const kinds = results.flat().map((o) => o.kind);
      expect(kinds.filter((k) => k === 'duplicate')).toHaveLength(requests * MODELS.length);
    } finally {
      for (const c of connections) c.disconnect();
    }
  });

  it('closes early only once quorum answered OK; an open breaker never makes it close on the first answer', async () => {
    keys = new RedisKeys(uniqueName('t'));
    const quorum2 = new JoinStore(redis, keys, { ...OPTIONS, quorum: 2 });
    await quorum2.restore(0, { fused: [], open: [] }, true, 0, Date.now());
    const none = { waitFor: [], probe: [], probeBudget: 0 };
    // Every breaker open: nobody is awaited, but one answer is below quorum.
    const first = await quorum2.joinBatch(0, [prediction('r1', 'm1', 1), prediction('r1', 'm2', 2, Date.now() + 10_000, false)], none, Date.now());
    expect(first.outcomes.map((o) => o.kind)).toEqual(['pending', 'pending']);
    const second = await quorum2.joinBatch(0, [prediction('r1', 'm3', 3)], none, Date.now());
    expect(second.outcomes[0]).toMatchObject({ kind: 'fuse', why: 'all', awaited: new Set() });
    expect((second.outcomes[0] as Extract<JoinOutcome, { kind: 'fuse' }>).predictions.size).toBe(3);
  });

  it('makes only the first probeBudget new requests wait for a half-open model', async () => {
    await fresh();
    const plan = { waitFor: ['m1'], probe: ['m2'], probeBudget: 1 };
    const out = await store.joinBatch(0, [prediction('p1', 'm1', 1), prediction('p2', 'm1', 2)], plan, Date.now());
    expect(out.probesOpened).toBe(1);
    // p1 is a probe and waits for m2; p2 closed on m1 alone.
    expect(out.outcomes.map((o) => o.kind)).toEqual(['pending', 'fuse']);
    const probe = await store.joinBatch(0, [prediction('p1', 'm2', 3)], { ...plan, probeBudget: 0 }, Date.now());
    expect(probe.outcomes[0]).toMatchObject({ kind: 'fuse', awaited: new Set(['m1', 'm2']), probes: new Set(['m2']) });
  });

  it('refuses to join a partition whose state was lost, until it is restored', async () => {
    await fresh();
    await redis.del(keys.epoch(1));
    await expect(store.joinBatch(1, [prediction('r1', 'm1', 1)], { waitFor: MODELS, probe: [], probeBudget: 0 }, Date.now())).rejects.toBeInstanceOf(
      StateLostError,
    );
    expect(await redis.exists(keys.request(1, 'r1'))).toBe(0);
    const now = Date.now();
    await store.restore(
      1,
      {
        fused: [{ requestId: 'done-before', requestCreatedAtMs: now }],
        open: [{ requestId: 'r0', requestCreatedAtMs: now, deadlineAtMs: now + 5000, predictions: [{ modelId: 'm1', ok: true, payload: Buffer.from('x') }] }],
      },
      true,
      now - 60_000,
      now,
    );
    const out = await join(
      store,
      1,
      [
        prediction('r0', 'm2', 5),
        prediction('r0', 'm3', 6),
        prediction('done-before', 'm1', 7),
        prediction('ancient', 'm1', 8, now + 1000, true, now - 120_000),
      ],
      MODELS,
      now,
    );
    expect(out.map((o) => o.kind)).toEqual(['pending', 'fuse', 'late', 'expired']);
  });

  it('writes the deadline index and fused buckets of a call of thousands of messages in full', async () => {
    await fresh();
    const now = Date.now();
    // 600 requests opened and fused within the call (no deadline entry left), 900 opened only;
    // the 1,800 deadline arguments and 1,200 bucket arguments exceed one slice.
    const closed = Array.from({ length: 600 }, (_, i) => `c${i}`);
    const open = Array.from({ length: 900 }, (_, i) => `o${i}`);
    let offset = 0;
    // One creation time for all: they share one fused bucket.
    const at = (id: string, model: string) => prediction(id, model, offset++, now + 10_000, true, now);
    const first = [...closed.flatMap((id) => MODELS.map((m) => at(id, m))), ...open.map((id) => at(id, 'm1'))];
    const out = await join(store, 2, first, MODELS, now);
    expect(out.filter((o) => o.kind === 'fuse')).toHaveLength(600);
    expect((await redis.zrange(keys.deadlines(2), 0, -1)).sort()).toEqual([...open].sort());
    // The next call closes the rest: the index is empty, and every request is in its fused bucket.
    const second = open.flatMap((id) => ['m2', 'm3'].map((m) => at(id, m)));
    expect((await join(store, 2, second, MODELS, now)).filter((o) => o.kind === 'fuse')).toHaveLength(900);
    expect(await redis.zcard(keys.deadlines(2))).toBe(0);
    const bucket = keys.fusedBucket(2, Math.floor(now / FUSED_BUCKET_MS));
    expect(await redis.hlen(bucket)).toBe(1500);
    // A request whose state is gone is still known as fused (late), from its bucket.
    await redis.del(keys.request(2, 'c7'), keys.request(2, 'o7'));
    const late = await join(store, 2, [at('c7', 'm1'), at('o7', 'm1')], MODELS, now);
    expect(late.map((o) => o.kind)).toEqual(['late', 'late']);
  });

  it('remembers fused requests after their state expired, and forgets them after fusedMemoryMs of log time', async () => {
    keys = new RedisKeys(uniqueName('t'));
    const short = new JoinStore(redis, keys, { ...OPTIONS, stateTtlMs: 1000, fusedMemoryMs: 60_000 });
    await short.restore(0, { fused: [], open: [] }, true, 0, Date.now());
    const all = { waitFor: ['m1'], probe: [], probeBudget: 0 };
    const t0 = Date.now();
    await short.joinBatch(0, [prediction('r1', 'm1', 1, t0 + 500, true, t0)], all, t0, t0);
    await redis.del(keys.request(0, 'r1'), keys.requestPredictions(0, 'r1')); // as if its TTL ran out
    // An answer long after, but within the memory: late, not a new request.
    const later = await short.joinBatch(0, [prediction('r1', 'm2', 2, t0 + 500, true, t0)], all, t0 + 30_000, t0 + 30_000);
    expect(later.outcomes.map((o) => o.kind)).toEqual(['late']);
    // Log time moves past the memory (another request): the bucket is dropped, the floor rises.
    await short.joinBatch(0, [prediction('r2', 'm1', 3, t0 + 200_000, true, t0 + 190_000)], all, t0 + 190_000, t0 + 190_000);
    const after = await short.joinBatch(0, [prediction('r1', 'm2', 4, t0 + 500, true, t0)], all, t0 + 190_001, t0 + 190_001);
    expect(after.outcomes.map((o) => o.kind)).toEqual(['expired']);
    // A request created after the floor is new, however late it is consumed.
    const fresh2 = await short.joinBatch(0, [prediction('r3', 'm1', 5, t0 + 200_500, true, t0 + 185_000)], all, t0 + 500_000, t0 + 190_002);
    expect(fresh2.outcomes.map((o) => o.kind)).toEqual(['fuse']);
  });
});
