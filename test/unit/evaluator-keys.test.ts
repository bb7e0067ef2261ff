import { describe, expect, it } from 'vitest';
import { EVALUATOR_REQUEST_SHARDS, RedisKeys } from '../../services/shared/redis-keys.js';

/** The part of a key Redis Cluster hashes: between the first `{` and the next `}`, when not empty. */
function hashTag(key: string): string {
  const open = key.indexOf('{');
  const close = open < 0 ? -1 : key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

describe("the evaluator's Redis keys", () => {
  const keys = new RedisKeys('es');

  it("keep a request's keys on its shard's slot and a subject's keys on the subject's slot", () => {
    const shard = keys.evaluatorShard('req-42');
    const tag = hashTag(keys.evaluatorShardPrefix(shard));
    expect(tag).toBe(`eval:r${shard}`);
    expect(hashTag(keys.evaluatorRequest('req-42'))).toBe(tag);
    expect(hashTag(keys.evaluatorEventBucket(shard, 7))).toBe(tag);
    expect(hashTag(keys.evaluatorTotals(shard))).toBe(tag);
    const subject = hashTag(keys.evaluatorSubjectPrefix('knn'));
    expect(subject).toBe('eval:s:knn');
    for (const key of [
      keys.evaluatorSubjectState('knn'),
      keys.evaluatorWindowBucket('knn', 3),
      keys.evaluatorWindowIndex('knn'),
      keys.evaluatorScored('knn', 'req-42'),
    ]) {
      expect(hashTag(key)).toBe(subject);
    }
  });

  it('spread requests over every shard, the same way each time', () => {
    const counts = new Array<number>(EVALUATOR_REQUEST_SHARDS).fill(0);
    for (let i = 0; i < 16_000; i++) counts[keys.evaluatorShard(`req-${i}`)]! += 1;
    expect(keys.evaluatorShards()).toEqual(counts.map((_, i) => i));
    // 1,000 a shard on average: none far off.
    for (const n of counts) expect(n).toBeGreaterThan(800);
    for (const n of counts) expect(n).toBeLessThan(1200);
    expect(keys.evaluatorShard('req-7')).toBe(new RedisKeys('other').evaluatorShard('req-7'));
  });
});
