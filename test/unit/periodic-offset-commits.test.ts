import { describe, expect, it } from 'vitest';
import { type PartitionOffset, PeriodicOffsetCommits } from '../../services/shared/periodic-offset-commits.js';

const at = (partition: number, offset: number): PartitionOffset => ({ topic: 'features', partition, offset: String(offset) });

function recorder(fail = () => false) {
  const commits: PartitionOffset[][] = [];
  const errors: unknown[] = [];
  const committer = new PeriodicOffsetCommits(
    async (offsets) => {
      if (fail()) throw new Error('rebalancing');
      commits.push(offsets);
    },
    60_000,
    (error) => errors.push(error),
  );
  return { committer, commits, errors };
}

describe('periodic offset commits', () => {
  it('holds offsets until the interval passed, then commits the highest per partition', async () => {
    const { committer, commits } = recorder();
    await committer.done([at(0, 10), at(1, 5)]);
    await committer.done([at(0, 20)]);
    expect(commits).toEqual([]);
    await committer.flush();
    expect(commits).toEqual([[at(0, 20), at(1, 5)]]);
    await committer.flush();
    expect(commits).toHaveLength(1);
  });

  it('commits at once when the interval has passed', async () => {
    const commits: PartitionOffset[][] = [];
    const committer = new PeriodicOffsetCommits(
      async (o) => void commits.push(o),
      1,
      () => undefined,
    );
    await new Promise((r) => setTimeout(r, 5));
    await committer.done([at(2, 7)]);
    expect(commits).toEqual([[at(2, 7)]]);
  });

  it('keeps the offsets of a failed commit for the next one, without going back', async () => {
    let failing = true;
    const { committer, commits, errors } = recorder(() => failing);
    await committer.done([at(0, 10), at(1, 3)]);
    await committer.flush();
    expect(errors).toHaveLength(1);
    await committer.done([at(0, 15)]);
    failing = false;
    await committer.stop();
    expect(commits).toEqual([[at(0, 15), at(1, 3)]]);
  });

  it('forgets partitions this member lost in a rebalance', async () => {
    const { committer, commits } = recorder();
    await committer.done([at(0, 10), at(1, 3), at(2, 8)]);
    committer.retain(new Map([['features', [1]]]));
    await committer.flush();
    expect(commits).toEqual([[at(1, 3)]]);
  });
});
