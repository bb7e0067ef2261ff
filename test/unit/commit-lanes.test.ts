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

describe('CommitLanes', () => {
  it('lets the next batch commit only once the one in flight has committed', async () => {
    const lanes = new CommitLanes();
    const first = deferred<bigint>();
    lanes.start(
      0,
      () => first.promise,
      async () => undefined,
    );
    const epoch = lanes.epoch(0);
    let allowed: boolean | undefined;
    const waiting = lanes.mayCommit(0, epoch).then((ok) => {
      allowed = ok;
    });
    await tick();
    expect(allowed).toBeUndefined();
    first.resolve(10n);
    await waiting;
    expect(allowed).toBe(true);
    expect(lanes.recovering(0)).toBe(false);
  });

  it('drops a batch joined before a failed commit, after the recovery repositioned the partition', async () => {
    const lanes = new CommitLanes();
    const first = deferred<bigint>();
    const recovered = deferred<void>();
    const recoveries: unknown[] = [];
    lanes.start(
      1,
      () => first.promise,
      (error) => {
        recoveries.push(error);
        return recovered.promise;
      },
    );
    const epoch = lanes.epoch(1);
    let allowed: boolean | undefined;
    const waiting = lanes.mayCommit(1, epoch).then((ok) => {
      allowed = ok;
    });
    first.reject(new Error('fenced'));
    await tick();
    expect(recoveries).toHaveLength(1);
    // Still waiting: the partition has not been repositioned yet.
    expect(allowed).toBeUndefined();
    recovered.resolve();
    await waiting;
    expect(allowed).toBe(false);
    // A batch read again after the recovery belongs to the new epoch and commits before returning.
    expect(lanes.epoch(1)).toBe(epoch + 1);
    expect(lanes.recovering(1)).toBe(true);
    expect(await lanes.mayCommit(1, lanes.epoch(1))).toBe(true);
    lanes.committed(1, 20n);
    expect(lanes.recovering(1)).toBe(false);
  });

  it('drops a batch that started after the failure but before the partition was repositioned', async () => {
    const lanes = new CommitLanes();
    const first = deferred<bigint>();
    const recovered = deferred<void>();
    lanes.start(
      0,
      () => first.promise,
      () => recovered.promise,
    );
    first.reject(new Error('fenced'));
    await tick();
    // Fetched from the old position: the seek has not happened yet.
    const early = lanes.epoch(0);
    const waiting = lanes.mayCommit(0, early);
    recovered.resolve();
    expect(await waiting).toBe(false);
    // Fetched after the seek: commits.
    expect(await lanes.mayCommit(0, lanes.epoch(0))).toBe(true);
  });

  it('keeps partitions apart', async () => {
    const lanes = new CommitLanes();
    const slow = deferred<bigint>();
    lanes.start(
      0,
      () => slow.promise,
      async () => undefined,
    );
    expect(await lanes.mayCommit(2, lanes.epoch(2))).toBe(true);
    slow.resolve(1n);
  });

  it('skips the offsets this instance committed already', () => {
    const lanes = new CommitLanes();
    expect(lanes.firstUncommitted(0, offsets('5', '6', '7'))).toBe(0);
    lanes.committed(0, 7n);
    expect(lanes.firstUncommitted(0, offsets('5', '6', '7', '8'))).toBe(2);
    expect(lanes.firstUncommitted(0, offsets('5', '6'))).toBe(2);
    // A lower offset reported later never moves the mark back.
    lanes.committed(0, 3n);
    expect(lanes.firstUncommitted(0, offsets('6', '7'))).toBe(1);
  });

  it('drains every commit in flight, failed ones included', async () => {
    const lanes = new CommitLanes();
    const a = deferred<bigint>();
    const b = deferred<bigint>();
    lanes.start(
      0,
      () => a.promise,
      async () => undefined,
    );
    lanes.start(
      1,
      () => b.promise,
      async () => undefined,
    );
    let drained = false;
    const draining = lanes.drain().then(() => {
      drained = true;
    });
    a.resolve(4n);
    await tick();
    expect(drained).toBe(false);
    b.reject(new Error('broker gone'));
    await draining;
    expect(drained).toBe(true);
  });
});
