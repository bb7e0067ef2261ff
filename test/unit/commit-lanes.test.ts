import { describe, expect, it } from 'vitest';
import { CommitLanes } from '../../services/aggregator/commit-lanes.js';

/** A promise settled from outside, to play a commit that is still in flight. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const offsets = (...list: string[]) => list.map((offset) => ({ offset }));

const tick = () => new Promise((r) => setImmediate(r));

/** A batch as the lanes see it: its last offset and the bytes its commit writes. */
interface Item {
  last: number;
  bytes: number;
}

/** Lanes whose commits and recoveries the test settles by hand, one deferred per call, in order. */
function lanesUnderTest(limits: { maxCommitBytes?: number; maxQueuedBytes?: number } = {}) {
  const commits: { partition: number; items: Item[]; done: ReturnType<typeof deferred<bigint>> }[] = [];
  const recoveries: { partition: number; items: Item[]; error: unknown; done: ReturnType<typeof deferred<void>> }[] = [];
  const lanes = new CommitLanes<Item>({
    commit: (partition, items) => {
      const done = deferred<bigint>();
      commits.push({ partition, items: [...items], done });
      return done.promise;
    },
    recover: (partition, items, error) => {
      const done = deferred<void>();
      recoveries.push({ partition, items: [...items], error, done });
      return done.promise;
    },
    bytes: (item) => item.bytes,
    maxCommitBytes: limits.maxCommitBytes ?? 1000,
    maxQueuedBytes: limits.maxQueuedBytes ?? 10_000,
  });
  /** Settles commit `i` with the offset after its last item. */
  const commit = (i: number) => {
    const c = commits[i];
    if (c === undefined) throw new Error(`no commit ${i} (of ${commits.length})`);
    c.done.resolve(BigInt((c.items[c.items.length - 1] as Item).last + 1));
  };
  return { lanes, commits, recoveries, commit };
}

const batch = (last: number, bytes = 100): Item => ({ last, bytes });
const lastOffsets = (items: Item[]) => items.map((i) => i.last);

describe('CommitLanes', () => {
  it('commits a batch at once, and every batch queued meanwhile together in the next commit', async () => {
    const { lanes, commits, commit } = lanesUnderTest();
    expect(await lanes.enqueue(0, lanes.epoch(0), batch(9))).toBe(true);
    expect(commits).toHaveLength(1);
    // Queued behind the commit in flight: their eachBatch returns without waiting for it.
    expect(await lanes.enqueue(0, lanes.epoch(0), batch(19))).toBe(true);
    expect(await lanes.enqueue(0, lanes.epoch(0), batch(29))).toBe(true);
    expect(commits).toHaveLength(1);
    commit(0);
    await tick();
    expect(commits.map((c) => lastOffsets(c.items))).toEqual([[9], [19, 29]]);
    commit(1);
    await lanes.settled(0);
    expect(lanes.firstUncommitted(0, offsets('29', '30'))).toBe(1);
    expect(lanes.recovering(0)).toBe(false);
  });

  it('keeps a commit within maxCommitBytes, committing the rest next, in order', async () => {
    const { lanes, commits, commit } = lanesUnderTest({ maxCommitBytes: 250 });
    await lanes.enqueue(0, 0, batch(1, 100));
    for (const last of [2, 3, 4]) await lanes.enqueue(0, 0, batch(last, 100));
    // A batch larger than the limit still commits, alone.
    await lanes.enqueue(0, 0, batch(5, 400));
    commit(0);
    await tick();
    commit(1);
    await tick();
    commit(2);
    await tick();
    expect(commits.map((c) => lastOffsets(c.items))).toEqual([[1], [2, 3], [4], [5]]);
  });

  it('makes the next batch wait while the queue holds more than maxQueuedBytes', async () => {
    const { lanes, commit } = lanesUnderTest({ maxCommitBytes: 1000, maxQueuedBytes: 150 });
    await lanes.enqueue(0, 0, batch(1, 100));
    await lanes.enqueue(0, 0, batch(2, 100));
    let returned = false;
    const third = lanes.enqueue(0, 0, batch(3, 100)).then(() => {
      returned = true;
    });
    await tick();
    expect(returned).toBe(false);
    // The commit in flight settles and takes the queue with it: room again.
    commit(0);
    await third;
    expect(returned).toBe(true);
  });

  it('drops the batches queued behind a failed commit and starts a new epoch once the partition is repositioned', async () => {
    const { lanes, commits, recoveries } = lanesUnderTest();
    const epoch = lanes.epoch(1);
    await lanes.enqueue(1, epoch, batch(9));
    await lanes.enqueue(1, epoch, batch(19));
    commits[0]?.done.reject(new Error('fenced'));
    await tick();
    expect(recoveries.map((r) => [r.partition, lastOffsets(r.items), (r.error as Error).message])).toEqual([[1, [9], 'fenced']]);
    expect(lanes.recovering(1)).toBe(true);
    // A batch joined before the failure and queued after it waits for the recovery, then is dropped.
    let queued: boolean | undefined;
    const late = lanes.enqueue(1, epoch, batch(29)).then((ok) => {
      queued = ok;
    });
    await tick();
    expect(queued).toBeUndefined();
    recoveries[0]?.done.resolve();
    await late;
    expect(queued).toBe(false);
    expect(lanes.epoch(1)).toBe(epoch + 1);
    // Neither the queued batch nor the late one was ever committed.
    expect(commits).toHaveLength(1);
    // The first batch read again commits before its eachBatch returns.
    const again = lanes.commitNow(1, lanes.epoch(1), batch(9));
    await tick();
    commits[1]?.done.resolve(10n);
    expect(await again).toBe(true);
    expect(lanes.recovering(1)).toBe(false);
  });

  it('drops a batch that started after the failure but before the partition was repositioned', async () => {
    const { lanes, commits, recoveries } = lanesUnderTest();
    await lanes.enqueue(0, lanes.epoch(0), batch(9));
    commits[0]?.done.reject(new Error('fenced'));
    await tick();
    // Fetched from the old position: the seek has not happened yet.
    const early = lanes.epoch(0);
    expect(lanes.recovering(0)).toBe(true);
    const waiting = lanes.commitNow(0, early, batch(19));
    recoveries[0]?.done.resolve();
    expect(await waiting).toBe(false);
    expect(commits).toHaveLength(1);
  });

  it('rejects a commit made before returning when it fails, to the caller', async () => {
    const { lanes, commits, recoveries } = lanesUnderTest();
    await lanes.enqueue(0, 0, batch(9));
    commits[0]?.done.reject(new Error('fenced'));
    await tick();
    recoveries[0]?.done.resolve();
    await lanes.settled(0);
    const now = lanes.commitNow(0, lanes.epoch(0), batch(9));
    await tick();
    commits[1]?.done.reject(new Error('poison'));
    await expect(now).rejects.toThrow('poison');
    // No recovery of its own: the caller handles the error (the poison guard, or a retry).
    expect(recoveries).toHaveLength(1);
  });

  it('keeps partitions apart', async () => {
    const { lanes, commits, commit } = lanesUnderTest();
    await lanes.enqueue(0, 0, batch(5));
    // Partition 2 does not queue behind partition 0's commit in flight.
    await lanes.enqueue(2, 0, batch(7));
    expect(commits.map((c) => c.partition)).toEqual([0, 2]);
    commit(0);
    commit(1);
    await lanes.drain();
  });

  it('skips the offsets this instance committed already', async () => {
    const { lanes, commit } = lanesUnderTest();
    expect(lanes.firstUncommitted(0, offsets('5', '6', '7'))).toBe(0);
    await lanes.enqueue(0, 0, batch(6));
    commit(0);
    await lanes.settled(0);
    expect(lanes.firstUncommitted(0, offsets('5', '6', '7', '8'))).toBe(2);
    expect(lanes.firstUncommitted(0, offsets('5', '6'))).toBe(2);
    // A lower offset committed later never moves the mark back.
    await lanes.enqueue(0, 0, batch(2));
    commit(1);
    await lanes.settled(0);
    expect(lanes.firstUncommitted(0, offsets('6', '7'))).toBe(1);
  });

  it('drains every commit queued or in flight, failed ones included', async () => {
    const { lanes, commits, commit } = lanesUnderTest();
    await lanes.enqueue(0, 0, batch(4));
    await lanes.enqueue(0, 0, batch(8));
    await lanes.enqueue(1, 0, batch(3));
    let drained = false;
    const draining = lanes.drain().then(() => {
      drained = true;
    });
    commit(0);
    await tick();
    // Partition 0's queued batch is committing now, partition 1's is still in flight.
    expect(drained).toBe(false);
    commits[1]?.done.reject(new Error('broker gone'));
    await tick();
    expect(drained).toBe(false);
    commit(2);
    await draining;
    expect(drained).toBe(true);
    expect(commits.map((c) => [c.partition, lastOffsets(c.items)])).toEqual([
      [0, [4]],
      [1, [3]],
      [0, [8]],
    ]);
  });
});
